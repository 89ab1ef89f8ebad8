//! Error hints for the expression parser: what to write instead of a wrong operator.

use super::{ExprError, Parser};
use crate::rules::condition::path::Path;
use crate::rules::diagnostic::closest;

/// Operator words accepted after a path, for "did you mean" hints.
const OPERATOR_WORDS: [&str; 10] = [
    "in",
    "not in",
    "contains",
    "startswith",
    "starts_with",
    "endswith",
    "ends_with",
    "matches",
    "older_than",
    "newer_than",
];

/// Words people reach for from other languages, and what to write instead.
const OPERATOR_ALIASES: [(&str, &str); 16] = [
    ("equals", "=="),
    ("eq", "=="),
    ("is", "=="),
    ("not_equals", "!="),
    ("ne", "!="),
    ("neq", "!="),
    ("gt", ">"),
    ("gte", ">="),
    ("ge", ">="),
    ("lt", "<"),
    ("lte", "<="),
    ("le", "<="),
    ("not_in", "not in"),
    ("like", "=~"),
    ("has", "contains"),
    ("includes", "contains"),
];

impl Parser {
    /// The error for a missing or unknown operator after a path, with the likely fix.
    pub(super) fn unknown_operator(&self, path: Option<&Path>) -> ExprError {
        let path_text = path.map_or_else(|| "the path".to_owned(), |p| format!("`{p}`"));
        let plain = path.map_or_else(|| "path".to_owned(), |p| p.to_string());
        match self.cur.peek() {
            None | Some(')') => self.error_here(
                &format!("expected an operator after {path_text}"),
                Some(format!(
                    "e.g. {plain} == \"value\" or {plain} in [\"a\", \"b\"]; to test presence write exists({plain})"
                )),
            ),
            Some('=') => self.error_here("unknown operator `=`", Some("use == for comparison".into())),
            Some('!') => self.error_here("unknown operator `!`", Some("use != (not equal) or !~ (no regex match)".into())),
            Some(_) => {
                let word = self.cur.word();
                if word.is_empty() {
                    let found = self.found();
                    return self.error_here(&format!("unknown operator {found}"), None);
                }
                if word == "exists" {
                    return self.error_here(
                        "`exists` is written as a function",
                        Some(format!("write exists({plain}) or not exists({plain})")),
                    );
                }
                if word == "and" || word == "or" {
                    return self.error_here(
                        &format!("expected an operator after {path_text}, found `{word}`"),
                        Some(format!("to test presence write exists({plain})")),
                    );
                }
                let lower = word.to_lowercase();
                let hint = OPERATOR_ALIASES
                    .iter()
                    .find(|(alias, _)| *alias == lower)
                    .map(|(_, op)| (*op).to_owned())
                    .or_else(|| {
                        OPERATOR_WORDS
                            .iter()
                            .find(|w| **w == lower)
                            .map(|w| (*w).to_owned())
                    })
                    .or_else(|| closest(&lower, OPERATOR_WORDS).map(str::to_owned))
                    .map(|op| format!("did you mean `{op}`?"));
                self.error_here(&format!("unknown operator `{word}`"), hint)
            }
        }
    }
}
