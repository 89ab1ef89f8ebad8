//! The comparison side of the expression language: operands (a path, `lower(path)`,
//! `exists(path)`), operators (symbols and words) and the values they compare with, each
//! turned into a compiled leaf with every problem inside it reported.

use serde_json::Value;

use super::{ExprError, Parsed, Parser};
use crate::rules::condition::Node;
use crate::rules::condition::leaf::{self, Operator};
use crate::rules::condition::path::Path;

impl Parser {
    /// `( path )` after `exists` / `lower`.
    pub(super) fn parenthesised_path(&mut self, func: &str) -> Parsed<Option<(Path, usize)>> {
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
    pub(super) fn path(&mut self) -> Parsed<Option<(Path, usize)>> {
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
    pub(super) fn leaf(
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

    pub(super) fn parse_comparison(
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
