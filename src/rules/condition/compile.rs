//! Compiling the YAML condition tree (`all` / `any` / `not` / `expr` / leaf) into [`Node`]s.
//!
//! Only some YAML fields carry a location (`path`, `expr`, `matches`, durations); a problem in a
//! node without one is reported at the nearest located field below it.

use serde_json::Value;
use serde_saphyr::Location;

use super::leaf::{self, Operator};
use super::path::Path;
use super::{MAX_DEPTH, Node, expr};
use crate::rules::diagnostic::Diagnostics;
use crate::rules::model::{self, SpannedString};

/// The operator fields of a leaf that are set, with their argument and, where the model keeps
/// one, the argument's location.
fn operators(tree: &model::Condition) -> Vec<(Operator, Value, Option<&SpannedString>)> {
    let text = |s: &Option<SpannedString>| s.as_ref().map(|s| Value::String(s.value.clone()));
    let candidates = [
        (Operator::Equals, tree.equals.clone(), None),
        (Operator::NotEquals, tree.not_equals.clone(), None),
        (Operator::In, tree.is_in.clone().map(Value::Array), None),
        (Operator::NotIn, tree.not_in.clone().map(Value::Array), None),
        (Operator::Exists, tree.exists.map(Value::Bool), None),
        (
            Operator::Matches,
            text(&tree.matches),
            tree.matches.as_ref(),
        ),
        (Operator::Contains, tree.contains.clone(), None),
        (
            Operator::StartsWith,
            tree.starts_with.clone().map(Value::String),
            None,
        ),
        (
            Operator::EndsWith,
            tree.ends_with.clone().map(Value::String),
            None,
        ),
        (Operator::Gt, tree.gt.clone(), None),
        (Operator::Gte, tree.gte.clone(), None),
        (Operator::Lt, tree.lt.clone(), None),
        (Operator::Lte, tree.lte.clone(), None),
        (
            Operator::OlderThan,
            text(&tree.older_than),
            tree.older_than.as_ref(),
        ),
        (
            Operator::NewerThan,
            text(&tree.newer_than),
            tree.newer_than.as_ref(),
        ),
    ];
    candidates
        .into_iter()
        .filter_map(|(op, arg, at)| arg.map(|arg| (op, arg, at)))
        .collect()
}

/// The first location found in this node or below it.
fn anchor(tree: &model::Condition) -> Option<Location> {
    let own = [
        &tree.path,
        &tree.expr,
        &tree.matches,
        &tree.older_than,
        &tree.newer_than,
    ]
    .into_iter()
    .flatten()
    .map(|s| s.referenced)
    .find(|l| *l != Location::UNKNOWN);
    own.or_else(|| {
        tree.all
            .iter()
            .chain(tree.any.iter())
            .flatten()
            .chain(tree.not.as_deref())
            .find_map(anchor)
    })
}

fn report(diags: &mut Diagnostics, at: Option<Location>, message: String, hint: Option<String>) {
    diags.error(at.unwrap_or(Location::UNKNOWN), message, hint);
}

/// Compiles one node (and its children), reporting every problem found.
pub(super) fn compile_node(
    tree: &model::Condition,
    depth: usize,
    diags: &mut Diagnostics,
) -> Option<Node> {
    let at = anchor(tree);
    if depth > MAX_DEPTH {
        report(
            diags,
            at,
            format!("condition tree nests deeper than {MAX_DEPTH} levels"),
            Some("flatten nested `all`/`any` lists".into()),
        );
        return None;
    }
    let ops = operators(tree);
    let is_leaf = tree.path.is_some() || !ops.is_empty() || tree.ignore_case;
    let kinds: Vec<&str> = [
        (tree.all.is_some(), "all"),
        (tree.any.is_some(), "any"),
        (tree.not.is_some(), "not"),
        (tree.expr.is_some(), "expr"),
        (is_leaf, "path"),
    ]
    .into_iter()
    .filter_map(|(present, name)| present.then_some(name))
    .collect();
    match kinds.as_slice() {
        [] => {
            report(
                diags,
                at,
                "empty condition".into(),
                Some("write one of `all: [...]`, `any: [...]`, `not: {...}`, `expr: ...` or `path:` with one operator".into()),
            );
            None
        }
        [_, _, ..] => {
            report(
                diags,
                at,
                format!(
                    "a condition node is exactly one of all/any/not/expr/path, found {}",
                    kinds
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
                Some("nest them: list each one under `all:`".into()),
            );
            // Still check the parts, so their own problems are reported in the same run.
            compile_children(tree, depth, diags);
            None
        }
        ["all"] | ["any"] => {
            let (name, list) = match (&tree.all, &tree.any) {
                (Some(list), _) => ("all", list),
                (_, Some(list)) => ("any", list),
                _ => return None,
            };
            if list.is_empty() {
                report(
                    diags,
                    at,
                    format!("`{name}` needs at least one condition"),
                    Some(format!("remove the empty `{name}: []`")),
                );
                return None;
            }
            let children: Vec<Option<Node>> = list
                .iter()
                .map(|child| compile_node(child, depth + 1, diags))
                .collect();
            let children: Option<Vec<Node>> = children.into_iter().collect();
            let children = children?.into_boxed_slice();
            Some(if name == "all" {
                Node::All(children)
            } else {
                Node::Any(children)
            })
        }
        ["not"] => {
            let inner = compile_node(tree.not.as_deref()?, depth + 1, diags)?;
            Some(inner.negate())
        }
        ["expr"] => {
            let src = tree.expr.as_ref()?;
            compile_expr_node(src, diags)
        }
        _ => compile_leaf(tree, ops, at, diags),
    }
}

/// Compiles the children of a malformed node for their own diagnostics.
fn compile_children(tree: &model::Condition, depth: usize, diags: &mut Diagnostics) {
    for child in tree
        .all
        .iter()
        .chain(tree.any.iter())
        .flatten()
        .chain(tree.not.as_deref())
    {
        compile_node(child, depth + 1, diags);
    }
    if let Some(src) = &tree.expr {
        compile_expr_node(src, diags);
    }
}

/// Characters between a scalar's location and its first content character. serde-saphyr
/// locates a quoted scalar at its opening quote, and its span then covers both quotes (at least
/// two characters more than the value); plain and block scalars are located at their content.
fn content_shift(src: &SpannedString) -> usize {
    let span = src.referenced.span().len();
    let value = src.value.chars().count() as u64;
    usize::from(
        src.referenced != Location::UNKNOWN && span >= value + 2 && !src.value.contains('\n'),
    )
}

/// Reports a problem `offset` characters into the content of `src`.
fn error_inside(
    diags: &mut Diagnostics,
    src: &SpannedString,
    offset: usize,
    message: String,
    hint: Option<String>,
) {
    diags.error_in(src.referenced, content_shift(src) + offset, message, hint);
}

/// Parses an expression and reports its problems at their columns.
pub(super) fn compile_expr_node(src: &SpannedString, diags: &mut Diagnostics) -> Option<Node> {
    let (node, problems) = expr::parse(&src.value);
    for problem in problems {
        error_inside(diags, src, problem.offset, problem.message, problem.hint);
    }
    node
}

fn compile_leaf(
    tree: &model::Condition,
    mut ops: Vec<(Operator, Value, Option<&SpannedString>)>,
    at: Option<Location>,
    diags: &mut Diagnostics,
) -> Option<Node> {
    let names: Vec<String> = ops
        .iter()
        .map(|(op, _, _)| format!("`{}`", op.yaml_name()))
        .collect();
    let Some(path_src) = &tree.path else {
        let what = if names.is_empty() {
            "`ignore_case`".to_owned()
        } else {
            names.join(" and ")
        };
        report(
            diags,
            at,
            format!("{what} needs a `path`"),
            Some("add e.g. `path: labels.severity`".into()),
        );
        return None;
    };
    let path_at = Some(path_src.referenced);
    let path = match Path::parse(&path_src.value) {
        Ok(path) => Some(path),
        Err(e) => {
            error_inside(
                diags,
                path_src,
                e.offset,
                format!("invalid path `{}`: {}", path_src.value, e.message),
                None,
            );
            None
        }
    };
    if ops.len() > 1 {
        report(
            diags,
            path_at,
            format!(
                "path `{}` has {} operators ({}); a leaf takes exactly one",
                path_src.value,
                ops.len(),
                names.join(", ")
            ),
            Some("combine several tests with `all:`, one leaf each".into()),
        );
        return None;
    }
    let Some((op, arg, arg_at)) = ops.pop() else {
        report(
            diags,
            path_at,
            format!("path `{}` has no operator", path_src.value),
            Some("add one of equals, not_equals, in, not_in, exists, matches, contains, starts_with, ends_with, gt, gte, lt, lte, older_than, newer_than".into()),
        );
        return None;
    };
    // With a broken path the operator is still checked (against a stand-in path), so a bad
    // regex next to a bad path is reported in the same run.
    let path_ok = path.is_some();
    let checked = match path {
        Some(path) => path,
        None => Path::parse("_").ok()?,
    };
    match leaf::build(checked, op, arg, tree.ignore_case) {
        Ok(leaf) => path_ok.then_some(Node::Leaf(leaf)),
        Err(problem) => {
            match (arg_at, problem.offset) {
                (Some(arg_at), Some(offset)) => {
                    error_inside(diags, arg_at, offset, problem.message, problem.hint);
                }
                (Some(arg_at), None) => {
                    diags.error(arg_at.referenced, problem.message, problem.hint)
                }
                (None, _) => report(diags, path_at, problem.message, problem.hint),
            }
            None
        }
    }
}
