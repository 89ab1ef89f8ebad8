//! The one-line expression language of `when:` and `expr:`, parsed straight into the same
//! compiled tree as the YAML form.
//!
//! ```text
//! expr       = or EOF
//! or         = and { ("or" | "||") and }
//! and        = unary { ("and" | "&&") unary }
//! unary      = ("not" | "!") unary | primary
//! primary    = "(" or ")" | "true" | "false"
//!            | "exists" "(" path ")"
//!            | operand compare
//! operand    = path | "lower" "(" path ")"            (lower = ignore case)
//! compare    = ("==" | "!=" | "<" | "<=" | ">" | ">=") value
//!            | ("in" | "not" "in") list
//!            | ("=~" | "!~" | "matches") string
//!            | "contains" value
//!            | ("startswith" | "starts_with" | "endswith" | "ends_with") string
//!            | ("older_than" | "newer_than") duration
//! value      = string | number | "true" | "false" | "null" | list
//! list       = "[" [ value { "," value } [","] ] "]"
//! duration   = 500ms | 45s | 10m | 1h30m | 2d   (bare or quoted)
//! ```
//!
//! Syntax errors stop the parse (the first one is the useful one); problems inside an otherwise
//! well-formed comparison (bad regex, bad duration, wrong value type, bad path) are all reported.

mod hints;
mod scan;

use serde_json::Value;

use super::leaf::{self, Operator};
use super::path::Path;
use super::{MAX_DEPTH, Node};
use scan::Cursor;

/// Expressions are one line in a rule file; 4096 characters is far beyond any readable one and
/// bounds parse time, memory and the size of error messages for hostile or generated input.
/// Longer logic belongs in a structured `condition:` tree.
pub(super) const MAX_EXPR_CHARS: usize = 4096;

/// One problem, at a character offset in the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ExprError {
    pub(super) offset: usize,
    pub(super) message: String,
    pub(super) hint: Option<String>,
}

impl ExprError {
    fn at(offset: usize, message: impl Into<String>, hint: Option<String>) -> Self {
        ExprError {
            offset,
            message: message.into(),
            hint,
        }
    }
}

type Parsed<T> = Result<T, ExprError>;

/// Parses `src`; returns the tree when there were no problems, and every problem found.
pub(super) fn parse(src: &str) -> (Option<Node>, Vec<ExprError>) {
    let length = src.chars().count();
    if length > MAX_EXPR_CHARS {
        return (
            None,
            vec![ExprError::at(
                MAX_EXPR_CHARS,
                format!("expression is {length} characters long; the limit is {MAX_EXPR_CHARS}"),
                Some("move long logic into a structured `condition:` tree".into()),
            )],
        );
    }
    let mut parser = Parser {
        cur: Cursor::new(src),
        problems: Vec::new(),
    };
    let result = parser.parse_all();
    let mut problems = parser.problems;
    match result {
        Ok(node) if problems.is_empty() => (Some(node), problems),
        Ok(_) => (None, problems),
        Err(syntax) => {
            problems.push(syntax);
            problems.sort_by_key(|p| p.offset);
            (None, problems)
        }
    }
}

struct Parser {
    cur: Cursor,
    /// Problems that did not stop the parse.
    problems: Vec<ExprError>,
}

impl Parser {
    fn parse_all(&mut self) -> Parsed<Node> {
        self.cur.skip_ws();
        if self.cur.at_end() {
            return Err(ExprError::at(
                0,
                "empty expression",
                Some("write a condition such as labels.severity == \"critical\"".into()),
            ));
        }
        let node = self.parse_or(0)?;
        self.cur.skip_ws();
        match self.cur.peek() {
            None => Ok(node),
            Some(')') => Err(self.error_here("unmatched `)`", None)),
            Some(_) => {
                let word = self.cur.word();
                let hint = match word.to_ascii_lowercase().as_str() {
                    w @ ("and" | "or" | "not") => Some(format!("keywords are lowercase: `{w}`")),
                    _ => Some("join conditions with `and` or `or`".into()),
                };
                let found = self.found();
                Err(self.error_here(&format!("unexpected {found}"), hint))
            }
        }
    }

    /// An error at the cursor; the message gets "at column N".
    fn error_here(&self, message: &str, hint: Option<String>) -> ExprError {
        ExprError::at(
            self.cur.pos,
            format!("{message} at column {}", self.cur.pos + 1),
            hint,
        )
    }

    /// What is at the cursor, for messages: "`foo`", "`=`" or "the end".
    fn found(&self) -> String {
        match self.cur.peek() {
            None => "the end of the expression".into(),
            Some(c) => {
                let word = self.cur.word();
                if word.is_empty() {
                    format!("`{c}`")
                } else {
                    format!("`{word}`")
                }
            }
        }
    }

    fn check_depth(&self, depth: usize) -> Parsed<()> {
        if depth > MAX_DEPTH {
            Err(self.error_here(
                &format!("expression nests deeper than {MAX_DEPTH} levels"),
                Some("flatten it, or split it into a structured `condition:` tree".into()),
            ))
        } else {
            Ok(())
        }
    }

    fn parse_or(&mut self, depth: usize) -> Parsed<Node> {
        let mut items = vec![self.parse_and(depth, "")?];
        loop {
            self.cur.skip_ws();
            let word = if self.cur.eat_keyword("or") {
                "or"
            } else if self.cur.eat_symbol("||") {
                "||"
            } else if self.cur.at_symbol("|") {
                return Err(
                    self.error_here("unknown operator `|`", Some("use `or` (or `||`)".into()))
                );
            } else {
                break;
            };
            items.push(self.parse_and(depth, word)?);
        }
        Ok(if items.len() == 1 {
            items.swap_remove(0)
        } else {
            Node::Any(items.into_boxed_slice())
        })
    }

    fn parse_and(&mut self, depth: usize, after: &str) -> Parsed<Node> {
        let mut items = vec![self.parse_unary(depth, after)?];
        loop {
            self.cur.skip_ws();
            let word = if self.cur.eat_keyword("and") {
                "and"
            } else if self.cur.eat_symbol("&&") {
                "&&"
            } else if self.cur.at_symbol("&") {
                return Err(
                    self.error_here("unknown operator `&`", Some("use `and` (or `&&`)".into()))
                );
            } else {
                break;
            };
            items.push(self.parse_unary(depth, word)?);
        }
        Ok(if items.len() == 1 {
            items.swap_remove(0)
        } else {
            Node::All(items.into_boxed_slice())
        })
    }

    fn parse_unary(&mut self, depth: usize, after: &str) -> Parsed<Node> {
        self.cur.skip_ws();
        let bang = self.cur.peek() == Some('!') && !matches!(self.cur.peek_at(1), Some('=' | '~'));
        if self.cur.at_keyword("not") || bang {
            let word = if bang { "!" } else { "not" };
            self.check_depth(depth + 1)?;
            self.cur.pos += word.len();
            let inner = self.parse_unary(depth + 1, word)?;
            return Ok(inner.negate());
        }
        self.parse_primary(depth, after)
    }

    /// "expected a condition after `and`" and friends.
    fn expected_condition(&self, after: &str) -> ExprError {
        let after = if after.is_empty() {
            String::new()
        } else {
            format!(" after `{after}`")
        };
        let found = if self.cur.at_end() {
            String::new()
        } else {
            format!(", found {}", self.found())
        };
        self.error_here(
            &format!("expected a condition{after}{found}"),
            Some("a condition looks like labels.severity == \"critical\"".into()),
        )
    }

    fn parse_primary(&mut self, depth: usize, after: &str) -> Parsed<Node> {
        self.cur.skip_ws();
        let Some(c) = self.cur.peek() else {
            return Err(self.expected_condition(after));
        };
        if c == '(' {
            self.check_depth(depth + 1)?;
            let open = self.cur.pos;
            self.cur.pos += 1;
            let node = self.parse_or(depth + 1)?;
            self.cur.skip_ws();
            if !self.cur.eat_symbol(")") {
                let found = self.found();
                return Err(self.error_here(
                    &format!(
                        "expected `)` to close the `(` at column {}, found {found}",
                        open + 1
                    ),
                    None,
                ));
            }
            return Ok(node);
        }
        if self.cur.word_then_paren("exists") {
            self.cur.pos += "exists".len();
            let path = self.parenthesised_path("exists")?;
            return Ok(self.leaf(path, Operator::Exists, Value::Bool(true), false, 0, false));
        }
        if self.cur.word_then_paren("lower") {
            self.cur.pos += "lower".len();
            let path = self.parenthesised_path("lower")?;
            return self.parse_comparison(path, true, depth);
        }
        for (word, value) in [("true", true), ("false", false)] {
            if self.cur.eat_keyword(word) {
                return Ok(Node::Const(value));
            }
        }
        if c == '"' || c == '\'' || self.cur.at_number() || self.cur.at_keyword("null") {
            return Err(self.error_here(
                "the left side of a comparison must be a path, found a value",
                Some("write the path first, e.g. labels.severity == \"critical\"".into()),
            ));
        }
        if c.is_alphabetic() || matches!(c, '_' | '@' | '$' | '[') {
            let path = self.path()?;
            return self.parse_comparison(path, false, depth);
        }
        Err(self.expected_condition(after))
    }

    /// `( path )` after `exists` / `lower`.
    fn parenthesised_path(&mut self, func: &str) -> Parsed<Option<(Path, usize)>> {
        self.cur.skip_ws();
        self.cur.eat_symbol("(");
        self.cur.skip_ws();
        if self.cur.at_end() || self.cur.peek() == Some(')') {
            return Err(self.error_here(&format!("expected a path inside `{func}(…)`"), None));
        }
        let path = self.path()?;
        self.cur.skip_ws();
        if !self.cur.eat_symbol(")") {
            let found = self.found();
            return Err(self.error_here(
                &format!("expected `)` after the path in `{func}(…)`, found {found}"),
                None,
            ));
        }
        Ok(path)
    }

    /// A path at the cursor; a malformed one is reported and parsing goes on (`None`).
    fn path(&mut self) -> Parsed<Option<(Path, usize)>> {
        let (start, end) = self.cur.scan_path();
        let text = self.cur.text(start, end);
        match Path::parse(&text) {
            Ok(path) => Ok(Some((path, start))),
            Err(e) => {
                let at = start + e.offset;
                self.problems.push(ExprError::at(
                    at,
                    format!("invalid path `{text}` at column {}: {}", at + 1, e.message),
                    None,
                ));
                Ok(None)
            }
        }
    }

    /// Builds a leaf, reporting a problem at `value_at` (plus the offset inside a string
    /// argument when the builder gives one). A failed leaf becomes `false` so parsing goes on.
    fn leaf(
        &mut self,
        path: Option<(Path, usize)>,
        op: Operator,
        arg: Value,
        ignore_case: bool,
        value_at: usize,
        quoted: bool,
    ) -> Node {
        let Some((path, _)) = path else {
            return Node::Const(false);
        };
        match leaf::build(path, op, arg, ignore_case) {
            Ok(leaf) => Node::Leaf(leaf),
            Err(problem) => {
                let at = value_at + problem.offset.map_or(0, |o| o + usize::from(quoted));
                self.problems.push(ExprError::at(
                    at,
                    format!("{} at column {}", problem.message, at + 1),
                    problem.hint,
                ));
                Node::Const(false)
            }
        }
    }

    fn parse_comparison(
        &mut self,
        path: Option<(Path, usize)>,
        ignore_case: bool,
        depth: usize,
    ) -> Parsed<Node> {
        self.cur.skip_ws();
        let op_at = self.cur.pos;
        let symbols: [(&str, Operator, bool); 8] = [
            ("==", Operator::Equals, false),
            ("!=", Operator::NotEquals, false),
            ("=~", Operator::Matches, false),
            ("!~", Operator::Matches, true),
            ("<=", Operator::Lte, false),
            (">=", Operator::Gte, false),
            ("<", Operator::Lt, false),
            (">", Operator::Gt, false),
        ];
        let mut found: Option<(String, Operator, bool)> = None;
        for (sym, op, negate) in symbols {
            if self.cur.eat_symbol(sym) {
                found = Some((sym.to_owned(), op, negate));
                break;
            }
        }
        if found.is_none() {
            found = self.operator_word()?;
        }
        let Some((op_text, op, negate)) = found else {
            return Err(self.unknown_operator(path.as_ref().map(|(p, _)| p)));
        };
        if ignore_case && !op_takes_ignore_case(op) {
            self.problems.push(ExprError::at(
                op_at,
                format!("lower(…) does not apply to `{op_text}` at column {}", op_at + 1),
                Some("lower(…) works with ==, !=, in, not in, =~, !~, contains, startswith and endswith".into()),
            ));
        }
        self.cur.skip_ws();
        let value_at = self.cur.pos;
        let (arg, quoted) = match op {
            Operator::OlderThan | Operator::NewerThan => {
                if matches!(self.cur.peek(), Some('"' | '\'')) {
                    (Value::String(self.cur.string()?), true)
                } else {
                    let token = self.cur.duration_token();
                    if token.is_empty() {
                        let found = self.found();
                        return Err(self.error_here(
                            &format!("expected a duration after `{op_text}`, found {found}"),
                            Some("e.g. 10m, 1h30m, 2d".into()),
                        ));
                    }
                    (Value::String(token), false)
                }
            }
            _ => {
                let quoted = matches!(self.cur.peek(), Some('"' | '\''));
                (self.value(&op_text, depth)?, quoted)
            }
        };
        let mut node = self.leaf(
            path,
            op,
            arg,
            ignore_case && op_takes_ignore_case(op),
            value_at,
            quoted,
        );
        if negate && let Node::Leaf(leaf) = &mut node {
            leaf.negated = true;
        }
        Ok(node)
    }

    /// A word operator at the cursor (`in`, `not in`, `contains`…), or `None`.
    fn operator_word(&mut self) -> Parsed<Option<(String, Operator, bool)>> {
        let words: [(&str, Operator); 9] = [
            ("in", Operator::In),
            ("contains", Operator::Contains),
            ("startswith", Operator::StartsWith),
            ("starts_with", Operator::StartsWith),
            ("endswith", Operator::EndsWith),
            ("ends_with", Operator::EndsWith),
            ("matches", Operator::Matches),
            ("older_than", Operator::OlderThan),
            ("newer_than", Operator::NewerThan),
        ];
        for (word, op) in words {
            if self.cur.eat_keyword(word) {
                return Ok(Some((word.to_owned(), op, false)));
            }
        }
        if self.cur.at_keyword("not") {
            let not_at = self.cur.pos;
            self.cur.pos += 3;
            self.cur.skip_ws();
            if self.cur.eat_keyword("in") {
                return Ok(Some(("not in".to_owned(), Operator::NotIn, false)));
            }
            self.cur.pos = not_at;
            return Err(self.error_here(
                "expected `in` after `not`",
                Some("write `path not in [..]`, or put `not` before the whole comparison: not (path contains \"x\")".into()),
            ));
        }
        Ok(None)
    }

    /// A literal value after operator `op`.
    fn value(&mut self, op: &str, depth: usize) -> Parsed<Value> {
        self.cur.skip_ws();
        match self.cur.peek() {
            Some('"' | '\'') => Ok(Value::String(self.cur.string()?)),
            Some('[') => self.list(depth + 1),
            Some(_) if self.cur.at_number() => self.cur.number(),
            Some(c) => {
                for (word, value) in [
                    ("true", Value::Bool(true)),
                    ("false", Value::Bool(false)),
                    ("null", Value::Null),
                ] {
                    if self.cur.eat_keyword(word) {
                        return Ok(value);
                    }
                }
                if c.is_alphabetic() || matches!(c, '_' | '@' | '$') {
                    let word = self.cur.word();
                    let shown = if word.is_empty() {
                        c.to_string()
                    } else {
                        word.clone()
                    };
                    return Err(self.error_here(
                        &format!("expected a value after `{op}`, found `{shown}`"),
                        Some(format!(
                            "strings need quotes: \"{shown}\" (comparing two paths is not supported)"
                        )),
                    ));
                }
                let found = self.found();
                Err(self.error_here(
                    &format!("expected a value after `{op}`, found {found}"),
                    None,
                ))
            }
            None => Err(self.error_here(
                &format!("expected a value after `{op}`"),
                Some("e.g. \"text\", 42, true, null or [\"a\", \"b\"]".into()),
            )),
        }
    }

    fn list(&mut self, depth: usize) -> Parsed<Value> {
        self.check_depth(depth)?;
        let open = self.cur.pos;
        self.cur.pos += 1;
        let mut items = Vec::new();
        loop {
            self.cur.skip_ws();
            if self.cur.eat_symbol("]") {
                break;
            }
            let ctx = if items.is_empty() { "[" } else { "," };
            items.push(self.value(ctx, depth)?);
            self.cur.skip_ws();
            if self.cur.eat_symbol(",") {
                continue;
            }
            if self.cur.eat_symbol("]") {
                break;
            }
            let found = self.found();
            return Err(self.error_here(
                &format!(
                    "expected `,` or `]` in the list opened at column {}, found {found}",
                    open + 1
                ),
                None,
            ));
        }
        Ok(Value::Array(items))
    }
}

fn op_takes_ignore_case(op: Operator) -> bool {
    op.takes_ignore_case()
}
