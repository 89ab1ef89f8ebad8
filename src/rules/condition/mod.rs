//! Conditions: paths into the event, the one-line expression language, the compiled tree.
//!
//! Both the YAML tree (`all`/`any`/`not`/`expr`/leaf) and the expression language (`when:`,
//! `expr:`) compile to the same immutable [`Condition`], which evaluates an [`Event`] without
//! errors and, for dotted and metadata paths, without allocating.
//!
//! Semantics (the same in both forms):
//! - A leaf applies one operator to the values at one [`Path`]. A missing path makes the leaf
//!   false, except for the negative operators (`not_equals`/`!=`, `not_in`/`not in`,
//!   `exists: false`/`not exists(…)`, `!~`), which are exact negations of their positive
//!   operator and therefore true for a missing path.
//! - A JSONPath can select several values: a positive operator holds if ANY selected value
//!   satisfies it; a negative one holds if NONE does. Selecting nothing is a missing path.
//! - Type mismatches are false, never errors: `gt` on a boolean, `starts_with` on a number…
//! - `equals`/`in` compare JSON values by type and value; numbers by value (`1 == 1.0`); no
//!   conversion between types (`"1" != 1`). `null` equals only `null` (a present JSON null).
//! - `gt`/`gte`/`lt`/`lte` take a number or an RFC 3339 timestamp. Against a number, an event
//!   number compares by value and an event string is converted when it parses as a number
//!   (`"0.93"`, `"1e3"`, `"+Inf"`; Prometheus and Alertmanager send values as strings).
//!   Against a timestamp, event strings holding RFC 3339 date-times and `@timestamp` compare as
//!   instants; numbers never do (their unit would be a guess).
//! - `matches`/`=~` searches (unanchored; write `^…$` to anchor) with the `regex` crate, linear
//!   time. Non-strings do not match.
//! - `contains`: substring of a string, or an element (by `equals`) of an array.
//! - `older_than: 10m`: the timestamp at the path is more than 10 minutes before the event's
//!   own time (`@timestamp`), so evaluation is deterministic on replay; `newer_than: 10m`: at
//!   most 10 minutes before (or after) it.
//! - `ignore_case` (expression: `lower(path)`) folds case on both sides for `equals`, `in`,
//!   their negations, `matches`, `contains`, `starts_with` and `ends_with`.
//! - `exists: true` holds for a present JSON `null`.

mod compile;
mod explain;
mod expr;
mod leaf;
mod path;
mod render;
mod value;

#[cfg(test)]
mod tests;

use serde_json::Value;

use crate::event::Event;
use crate::rules::diagnostic::Diagnostics;
use crate::rules::model::{self, SpannedString};

pub use explain::Explanation;
pub use path::{MAX_PATH_CHARS, Path, PathError};
pub use value::equality_key;

/// Deepest nesting of a condition (parentheses, `not`, lists, YAML `all`/`any`/`not`).
/// Real conditions nest a few levels; the bound keeps the recursive parser, compiler, evaluator
/// and explainer far from the stack limit on hostile input.
pub const MAX_DEPTH: usize = 64;

/// A compiled condition: immutable, cheap to share between threads.
#[derive(Debug, Clone)]
pub struct Condition {
    root: Node,
}

/// A node of the compiled tree.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// `true` / `false` (an empty `all` from [`Condition::all`], or the literal in expressions).
    Const(bool),
    All(Box<[Node]>),
    Any(Box<[Node]>),
    Not(Box<Node>),
    Leaf(leaf::Leaf),
}

impl Condition {
    /// Compiles a one-line expression (rule `when:` / tree `expr:`), e.g.
    /// `labels.severity == "critical" and value > 0.9`, pushing every problem with its column.
    pub fn compile_expr(src: &SpannedString, diags: &mut Diagnostics) -> Option<Condition> {
        compile::compile_expr_node(src, diags).map(|root| Condition { root })
    }

    /// Compiles a structured tree, checking that each node is exactly one of
    /// all/any/not/expr/leaf, that a leaf has a `path` and exactly one operator, and every
    /// operator's value (types, regexes, durations).
    pub fn compile(tree: &model::Condition, diags: &mut Diagnostics) -> Option<Condition> {
        compile::compile_node(tree, 0, diags).map(|root| Condition { root })
    }

    /// AND of several conditions (used to combine `when` and `condition`). Nested ANDs are
    /// flattened; no children gives a condition that is always true.
    pub fn all(children: Vec<Condition>) -> Condition {
        let mut items = Vec::with_capacity(children.len());
        for child in children {
            match child.root {
                Node::All(nodes) => items.extend(nodes.into_vec()),
                Node::Const(true) => {}
                other => items.push(other),
            }
        }
        let root = match items.len() {
            0 => Node::Const(true),
            1 => items.swap_remove(0),
            _ => Node::All(items.into_boxed_slice()),
        };
        Condition { root }
    }

    /// Evaluates against one event. Never panics, never errors: type mismatches are `false`.
    #[inline]
    pub fn eval(&self, event: &Event) -> bool {
        self.root.eval(event)
    }

    /// Evaluates and explains: a tree saying for each node whether it held and why not.
    pub fn explain(&self, event: &Event) -> Explanation {
        explain::explain(&self.root, event)
    }

    /// Equality facts that MUST hold for this condition to be true, for indexing rules: from the
    /// top-level AND chain only, leaves `path == literal` / `path in [literals]` on single-value
    /// paths (dotted and metadata, not `@timestamp`, not general JSONPath), without
    /// `ignore_case`. Each entry holds on its own; the event value at the path must equal one of
    /// the values under `equals` semantics (numbers by value: index by [`equality_key`]).
    pub fn required_equalities(&self) -> Vec<(Path, Vec<Value>)> {
        let mut out = Vec::new();
        collect_equalities(&self.root, &mut out);
        out
    }
}

fn collect_equalities(node: &Node, out: &mut Vec<(Path, Vec<Value>)>) {
    match node {
        Node::All(items) => {
            for item in items.iter() {
                collect_equalities(item, out);
            }
        }
        Node::Leaf(leaf)
            if !leaf.negated
                && !leaf.ignore_case
                && leaf.path.is_single()
                && !leaf.path.is_timestamp() =>
        {
            match &leaf.test {
                leaf::Test::Equals(lit) => out.push((leaf.path.clone(), vec![lit.value.clone()])),
                leaf::Test::In(lits) => out.push((
                    leaf.path.clone(),
                    lits.iter().map(|l| l.value.clone()).collect(),
                )),
                _ => {}
            }
        }
        _ => {}
    }
}

impl Node {
    /// `not node`. A leaf whose operator has a negative form (`==`/`!=`, `in`/`not in`,
    /// `exists`/`not exists`, `=~`/`!~`) is negated in place, which is exact because negative
    /// leaves are defined as the negation of positive ones; it reads better in explanations.
    pub(crate) fn negate(self) -> Node {
        match self {
            Node::Const(value) => Node::Const(!value),
            Node::Leaf(mut leaf)
                if matches!(
                    leaf.test,
                    leaf::Test::Equals(_)
                        | leaf::Test::In(_)
                        | leaf::Test::Exists
                        | leaf::Test::Matches(_)
                ) =>
            {
                leaf.negated = !leaf.negated;
                Node::Leaf(leaf)
            }
            other => Node::Not(Box::new(other)),
        }
    }

    fn eval(&self, event: &Event) -> bool {
        match self {
            Node::Const(value) => *value,
            Node::All(items) => items.iter().all(|n| n.eval(event)),
            Node::Any(items) => items.iter().any(|n| n.eval(event)),
            Node::Not(inner) => !inner.eval(event),
            Node::Leaf(leaf) => leaf.eval(event),
        }
    }
}
