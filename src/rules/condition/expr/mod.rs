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

mod compare;
mod hints;
mod scan;

use serde_json::Value;

use super::leaf::Operator;
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
}
