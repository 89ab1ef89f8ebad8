//! Leaf predicates: one operator applied to the values at one path, built (and checked) once
//! by both front ends (the YAML tree and the expression language) and evaluated per event.

use chrono::TimeDelta;
use regex::{Regex, RegexBuilder};
use serde_json::Value;

use super::path::Path;
use super::value::{Bound, Literal, Val, describe_json, parse_timestamp};
use crate::event::Event;
use crate::rules::duration;

/// Compiled program size limit for one regex. A pattern whose automaton would be bigger (e.g.
/// `(a{1000}){1000}`) is rejected at load instead of using memory per rule; matching stays
/// linear in the input by the `regex` crate's guarantee.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The operators of a leaf, named as in YAML (`equals`, `gt`…) and written in expressions
/// (`==`, `>`…).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operator {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    Matches,
    Contains,
    StartsWith,
    EndsWith,
    Gt,
    Gte,
    Lt,
    Lte,
    OlderThan,
    NewerThan,
}

impl Operator {
    /// The YAML key.
    pub(crate) fn yaml_name(self) -> &'static str {
        match self {
            Operator::Equals => "equals",
            Operator::NotEquals => "not_equals",
            Operator::In => "in",
            Operator::NotIn => "not_in",
            Operator::Exists => "exists",
            Operator::Matches => "matches",
            Operator::Contains => "contains",
            Operator::StartsWith => "starts_with",
            Operator::EndsWith => "ends_with",
            Operator::Gt => "gt",
            Operator::Gte => "gte",
            Operator::Lt => "lt",
            Operator::Lte => "lte",
            Operator::OlderThan => "older_than",
            Operator::NewerThan => "newer_than",
        }
    }

    /// Whether `ignore_case` means something for this operator.
    pub(crate) fn takes_ignore_case(self) -> bool {
        matches!(
            self,
            Operator::Equals
                | Operator::NotEquals
                | Operator::In
                | Operator::NotIn
                | Operator::Matches
                | Operator::Contains
                | Operator::StartsWith
                | Operator::EndsWith
        )
    }
}

/// Why a leaf cannot be built: message, hint, and optionally a character offset inside the
/// operator's string argument (regex errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
    pub(crate) offset: Option<usize>,
}

impl Problem {
    fn new(message: impl Into<String>, hint: Option<&str>) -> Self {
        Problem {
            message: message.into(),
            hint: hint.map(str::to_owned),
            offset: None,
        }
    }
}

/// One compiled predicate.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    pub(crate) path: Path,
    pub(crate) test: Test,
    /// `not_equals`, `not_in`, `exists: false`: the exact negation of the positive test, so a
    /// missing path makes them true and a JSONPath makes them true when NO value passes.
    pub(crate) negated: bool,
    pub(crate) ignore_case: bool,
}

/// The positive test applied to each value.
#[derive(Debug, Clone)]
pub(crate) enum Test {
    Equals(Literal),
    In(Box<[Literal]>),
    Exists,
    Matches(Regex),
    /// The literal, and for a case-insensitive string the equivalent escaped regex (it folds
    /// case without allocating per event).
    Contains(Literal, Option<Regex>),
    StartsWith(Affix),
    EndsWith(Affix),
    Compare(CmpOp, Bound),
    OlderThan(TimeDelta),
    NewerThan(TimeDelta),
}

/// A prefix or suffix; case-insensitive ones are anchored escaped regexes.
#[derive(Debug, Clone)]
pub(crate) struct Affix {
    pub(crate) text: Box<str>,
    folded: Option<Regex>,
}

/// Ordering operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

impl CmpOp {
    fn accepts(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::{Greater, Less};
        match self {
            CmpOp::Gt => ordering == Greater,
            CmpOp::Gte => ordering != Less,
            CmpOp::Lt => ordering == Less,
            CmpOp::Lte => ordering != Greater,
        }
    }

    pub(crate) fn symbol(self) -> &'static str {
        match self {
            CmpOp::Gt => ">",
            CmpOp::Gte => ">=",
            CmpOp::Lt => "<",
            CmpOp::Lte => "<=",
        }
    }
}

/// Compiles a regex with the size limit; `Problem::offset` is the error's character offset
/// inside `pattern` when the regex parser reported one.
pub(crate) fn compile_regex(pattern: &str, ignore_case: bool) -> Result<Regex, Problem> {
    RegexBuilder::new(pattern)
        .case_insensitive(ignore_case)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|err| regex_problem(pattern, &err))
}

fn regex_problem(pattern: &str, err: &regex::Error) -> Problem {
    match err {
        regex::Error::CompiledTooBig(limit) => Problem::new(
            format!("regex `{pattern}` is too big: its compiled form exceeds {limit} bytes"),
            Some(
                "simplify the pattern (large counted repetitions such as {1000} multiply its size)",
            ),
        ),
        other => {
            // The syntax error text is: "regex parse error:", the pattern, a caret line, then
            // "error: <what>". Take the what, and the caret position when the pattern is one line.
            let text = other.to_string();
            let lines: Vec<&str> = text.lines().collect();
            let what = lines
                .iter()
                .find_map(|l| l.trim_start().strip_prefix("error: "))
                .unwrap_or(text.as_str());
            let offset = if pattern.contains('\n') {
                None
            } else {
                lines
                    .iter()
                    .position(|l| l.trim() == pattern.trim() && !pattern.trim().is_empty())
                    .and_then(|i| lines.get(i + 1))
                    .and_then(|caret_line| {
                        let indent = lines
                            .iter()
                            .find(|l| l.trim() == pattern.trim())
                            .map_or(0, |l| l.chars().count() - l.trim_start().chars().count());
                        caret_line
                            .chars()
                            .position(|c| c == '^')
                            .map(|p| p.saturating_sub(indent))
                    })
            };
            Problem {
                message: format!("invalid regex `{pattern}`: {what}"),
                hint: Some(
                    "regexes use Rust `regex` syntax (no look-around or backreferences)".into(),
                ),
                offset,
            }
        }
    }
}

/// Builds a leaf from an operator and its argument, checking the argument's type.
pub(crate) fn build(
    path: Path,
    op: Operator,
    arg: Value,
    ignore_case: bool,
) -> Result<Leaf, Problem> {
    if ignore_case && !op.takes_ignore_case() {
        return Err(Problem::new(
            format!("ignore_case does not apply to `{}`", op.yaml_name()),
            Some(
                "ignore_case works with equals, not_equals, in, not_in, matches, contains, starts_with and ends_with",
            ),
        ));
    }
    let (test, negated) = match op {
        Operator::Equals | Operator::NotEquals => (
            Test::Equals(Literal::new(arg, ignore_case)),
            op == Operator::NotEquals,
        ),
        Operator::In | Operator::NotIn => match arg {
            Value::Array(items) => (
                Test::In(
                    items
                        .into_iter()
                        .map(|v| Literal::new(v, ignore_case))
                        .collect(),
                ),
                op == Operator::NotIn,
            ),
            other => {
                return Err(Problem::new(
                    format!(
                        "`{}` needs a list, got {}",
                        op.yaml_name(),
                        describe_json(&other)
                    ),
                    Some("write a list, e.g. [\"critical\", \"page\"]"),
                ));
            }
        },
        Operator::Exists => match arg {
            Value::Bool(b) => (Test::Exists, !b),
            other => {
                return Err(Problem::new(
                    format!(
                        "`exists` needs true or false, got {}",
                        describe_json(&other)
                    ),
                    None,
                ));
            }
        },
        Operator::Matches => {
            let pattern = string_arg(op, &arg)?;
            (Test::Matches(compile_regex(pattern, ignore_case)?), false)
        }
        Operator::Contains => {
            let folded = match (&arg, ignore_case) {
                (Value::String(s), true) => Some(compile_regex(&regex::escape(s), true)?),
                _ => None,
            };
            (
                Test::Contains(Literal::new(arg, ignore_case), folded),
                false,
            )
        }
        Operator::StartsWith | Operator::EndsWith => {
            let text = string_arg(op, &arg)?;
            let folded = if ignore_case {
                let escaped = regex::escape(text);
                let anchored = if op == Operator::StartsWith {
                    format!("^(?:{escaped})")
                } else {
                    format!("(?:{escaped})$")
                };
                Some(compile_regex(&anchored, true)?)
            } else {
                None
            };
            let affix = Affix {
                text: text.into(),
                folded,
            };
            if op == Operator::StartsWith {
                (Test::StartsWith(affix), false)
            } else {
                (Test::EndsWith(affix), false)
            }
        }
        Operator::Gt | Operator::Gte | Operator::Lt | Operator::Lte => {
            let cmp = match op {
                Operator::Gt => CmpOp::Gt,
                Operator::Gte => CmpOp::Gte,
                Operator::Lt => CmpOp::Lt,
                _ => CmpOp::Lte,
            };
            (Test::Compare(cmp, bound_arg(op, &arg)?), false)
        }
        Operator::OlderThan | Operator::NewerThan => {
            let text = string_arg(op, &arg)?;
            let duration = duration::parse(text).map_err(|message| Problem {
                message: format!("invalid duration `{text}`: {message}"),
                hint: Some("durations look like 500ms, 45s, 10m, 1h30m or 2d".into()),
                offset: None,
            })?;
            if op == Operator::OlderThan {
                (Test::OlderThan(duration), false)
            } else {
                (Test::NewerThan(duration), false)
            }
        }
    };
    Ok(Leaf {
        path,
        test,
        negated,
        ignore_case,
    })
}

fn string_arg(op: Operator, arg: &Value) -> Result<&str, Problem> {
    arg.as_str().ok_or_else(|| {
        Problem::new(
            format!(
                "`{}` needs a string, got {}",
                op.yaml_name(),
                describe_json(arg)
            ),
            Some("quote the value"),
        )
    })
}

fn bound_arg(op: Operator, arg: &Value) -> Result<Bound, Problem> {
    match arg {
        Value::Number(n) => Ok(Bound::Number(n.clone())),
        Value::String(s) => {
            if let Some(t) = parse_timestamp(s) {
                Ok(Bound::Time(t))
            } else if s.trim().parse::<f64>().is_ok() {
                Err(Problem::new(
                    format!(
                        "`{}` needs a number, got the string \"{s}\"",
                        op.yaml_name()
                    ),
                    Some(&format!("write {} without quotes", s.trim())),
                ))
            } else {
                Err(Problem::new(
                    format!(
                        "`{}` needs a number or an RFC 3339 timestamp, got \"{s}\"",
                        op.yaml_name()
                    ),
                    Some("e.g. 0.9 or \"2024-05-01T12:00:00Z\""),
                ))
            }
        }
        other => Err(Problem::new(
            format!(
                "`{}` needs a number or an RFC 3339 timestamp, got {}",
                op.yaml_name(),
                describe_json(other)
            ),
            None,
        )),
    }
}

impl Leaf {
    /// Evaluates the leaf: missing path → `negated`; else ANY value passes, XOR `negated`.
    #[inline]
    pub(crate) fn eval(&self, event: &Event) -> bool {
        match self.path.any_value(event, |v| self.test.holds(v, event)) {
            None => self.negated,
            Some(passed) => passed != self.negated,
        }
    }
}

impl Test {
    /// Whether one value passes the positive test.
    #[inline]
    pub(crate) fn holds(&self, v: &Val<'_>, event: &Event) -> bool {
        match self {
            Test::Equals(lit) => lit.equals(v),
            Test::In(lits) => lits.iter().any(|lit| lit.equals(v)),
            Test::Exists => true,
            Test::Matches(re) => v.as_str().is_some_and(|s| re.is_match(s)),
            Test::Contains(lit, folded) => match v.as_str() {
                Some(s) => match (folded, &lit.value) {
                    (Some(re), _) => re.is_match(s),
                    (None, Value::String(needle)) => s.contains(needle.as_str()),
                    _ => false,
                },
                None => match v {
                    Val::Json(Value::Array(items)) | Val::Owned(Value::Array(items)) => {
                        items.iter().any(|item| lit.equals_json(item))
                    }
                    _ => false,
                },
            },
            Test::StartsWith(a) => v.as_str().is_some_and(|s| match &a.folded {
                Some(re) => re.is_match(s),
                None => s.starts_with(&*a.text),
            }),
            Test::EndsWith(a) => v.as_str().is_some_and(|s| match &a.folded {
                Some(re) => re.is_match(s),
                None => s.ends_with(&*a.text),
            }),
            Test::Compare(op, bound) => bound.compare(v).is_some_and(|o| op.accepts(o)),
            Test::OlderThan(d) => {
                match (v.as_time(), event.meta.timestamp.checked_sub_signed(*d)) {
                    (Some(t), Some(reference)) => t < reference,
                    _ => false,
                }
            }
            Test::NewerThan(d) => {
                match (v.as_time(), event.meta.timestamp.checked_sub_signed(*d)) {
                    (Some(t), Some(reference)) => t >= reference,
                    _ => false,
                }
            }
        }
    }
}
