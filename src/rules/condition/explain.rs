//! Explanations: the evaluation of a condition as a tree saying, for each node, whether it
//! held and why not. Shown by `reflex replay --explain` and `reflex test`.

use std::fmt;

use serde::Serialize;

use serde_json::Value;

use super::Node;
use super::leaf::{Leaf, Test};
use super::value::{Val, describe_json, format_time};
use crate::event::Event;
use crate::rules::duration;

/// Whether one node of a condition held for an event, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// Whether this node held.
    pub holds: bool,
    /// What was tested and what was found, e.g.
    /// `labels.severity is "warning", expected one of ["critical"]`.
    pub text: String,
    /// The explanations of the child nodes (empty for a leaf).
    pub children: Vec<Explanation>,
}

impl Explanation {
    fn leaf(holds: bool, text: String) -> Self {
        Explanation {
            holds,
            text,
            children: Vec::new(),
        }
    }

    fn write_indented(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        let mark = if self.holds { '✓' } else { '✗' };
        writeln!(f, "{:indent$}{mark} {}", "", self.text, indent = depth * 2)?;
        for child in &self.children {
            child.write_indented(f, depth + 1)?;
        }
        Ok(())
    }
}

/// An indented tree, one node per line, `✓` for held and `✗` for not.
impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_indented(f, 0)
    }
}

/// Explains `node` for `event`. Every child is evaluated (no short-circuit) so the whole picture
/// is shown; `holds` always equals what evaluation returns.
pub(super) fn explain(node: &Node, event: &Event) -> Explanation {
    match node {
        Node::Const(value) => Explanation::leaf(*value, format!("always {value}")),
        Node::Leaf(leaf) => {
            let (holds, text) = leaf.explain(event);
            Explanation::leaf(holds, text)
        }
        Node::Not(inner) => {
            let child = explain(inner, event);
            let text = if child.holds {
                "not: the condition below holds"
            } else {
                "not: the condition below does not hold"
            };
            Explanation {
                holds: !child.holds,
                text: text.to_owned(),
                children: vec![child],
            }
        }
        Node::All(items) => {
            let children: Vec<Explanation> = items.iter().map(|n| explain(n, event)).collect();
            let failed = children.iter().filter(|c| !c.holds).count();
            let text = if failed == 0 {
                format!("all of {}: every one holds", children.len())
            } else {
                format!("all of {}: {failed} failed", children.len())
            };
            Explanation {
                holds: failed == 0,
                text,
                children,
            }
        }
        Node::Any(items) => {
            let children: Vec<Explanation> = items.iter().map(|n| explain(n, event)).collect();
            let held = children.iter().filter(|c| c.holds).count();
            let text = if held == 0 {
                format!("any of {}: none holds", children.len())
            } else {
                format!("any of {}: {held} held", children.len())
            };
            Explanation {
                holds: held > 0,
                text,
                children,
            }
        }
    }
}

/// Leaf explanations: what was found at the path, and what was expected.
impl Leaf {
    /// Evaluates and says why, for `explain`.
    pub(crate) fn explain(&self, event: &Event) -> (bool, String) {
        let values = self.path.values(event);
        let path = self.path.as_str();
        let expected = self.expectation(event);
        if values.is_empty() {
            return if self.negated {
                (
                    true,
                    format!("{path}: path not found (expected {expected})"),
                )
            } else {
                (false, format!("{path}: path not found"))
            };
        }
        let passed = values.iter().any(|v| self.test.holds(v, event));
        let holds = passed != self.negated;
        let shown = if self.path.is_single() {
            format!("{path} is {}", values[0].describe())
        } else {
            let list: Vec<String> = values.iter().map(Val::describe).collect();
            let scope = if self.negated { "every" } else { "any" };
            format!(
                "{path} selects [{}] ({scope} value counts)",
                list.join(", ")
            )
        };
        let mut text = if holds {
            format!("{shown} (expected {expected})")
        } else {
            format!("{shown}, expected {expected}")
        };
        if matches!(self.test, Test::Compare(..)) && !values.iter().any(|v| self.comparable(v)) {
            text.push_str(" — the value is not comparable (type mismatch)");
        }
        (holds, text)
    }

    fn comparable(&self, v: &Val<'_>) -> bool {
        match &self.test {
            Test::Compare(_, bound) => bound.compare(v).is_some(),
            _ => true,
        }
    }

    /// What a value must look like, in words (for explanations).
    fn expectation(&self, event: &Event) -> String {
        let n = self.negated;
        let mut text = match &self.test {
            Test::Equals(lit) if n => format!("anything but {}", describe_json(&lit.value)),
            Test::Equals(lit) => describe_json(&lit.value),
            Test::In(lits) => format!(
                "{} [{}]",
                if n { "none of" } else { "one of" },
                lits.iter()
                    .map(|l| describe_json(&l.value))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Test::Exists if n => "it to be absent".to_owned(),
            Test::Exists => "it to exist".to_owned(),
            Test::Matches(re) => format!(
                "{} for regex {}",
                if n { "no match" } else { "a match" },
                describe_json(&Value::String(re.as_str().to_owned()))
            ),
            Test::Contains(lit, _) => format!("{}to contain {}", not(n), describe_json(&lit.value)),
            Test::StartsWith(a) => format!("{}to start with {}", not(n), quote(&a.text)),
            Test::EndsWith(a) => format!("{}to end with {}", not(n), quote(&a.text)),
            Test::Compare(op, bound) => format!("{}{} {}", not(n), op.symbol(), bound.render()),
            Test::OlderThan(d) => match event.meta.timestamp.checked_sub_signed(*d) {
                Some(at) => format!(
                    "a time before {} ({} before the event time)",
                    format_time(at),
                    duration::format(*d)
                ),
                None => format!(
                    "a time more than {} before the event time",
                    duration::format(*d)
                ),
            },
            Test::NewerThan(d) => match event.meta.timestamp.checked_sub_signed(*d) {
                Some(at) => format!(
                    "a time at or after {} (at most {} before the event time)",
                    format_time(at),
                    duration::format(*d)
                ),
                None => format!(
                    "a time at most {} before the event time",
                    duration::format(*d)
                ),
            },
        };
        if self.ignore_case {
            text.push_str(" (ignoring case)");
        }
        text
    }
}

pub(super) fn not(negated: bool) -> &'static str {
    if negated { "not " } else { "" }
}

pub(super) fn quote(text: &str) -> String {
    describe_json(&Value::String(text.to_owned()))
}
