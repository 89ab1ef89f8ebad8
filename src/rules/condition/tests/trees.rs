//! YAML condition trees: combinators, embedded expressions, and the shape checks.

use serde_json::json;

use super::{alert, compile_tree, event};

fn valid(yaml: &str) -> super::super::Condition {
    let (cond, problems) = compile_tree(yaml);
    assert!(problems.is_empty(), "{yaml}: {problems:#?}");
    cond.expect("compiles")
}

fn messages(yaml: &str) -> Vec<String> {
    let (cond, problems) = compile_tree(yaml);
    assert!(cond.is_none(), "{yaml} should be rejected");
    assert!(!problems.is_empty());
    problems.into_iter().map(|d| d.message).collect()
}

#[test]
fn all_any_not_and_expr_combine_like_the_expression_language() {
    let cond = valid(
        r#"
all:
  - path: labels.severity
    in: [critical, page]
  - any:
      - expr: 'count > 100'
      - not:
          path: labels.team
          exists: true
  - expr: '@topic == "alerts"'
"#,
    );
    assert!(cond.eval(&event(alert())));
    let mut with_team = alert();
    with_team["labels"]["team"] = json!("core");
    assert!(!cond.eval(&event(with_team)));
    assert_eq!(
        cond.to_string(),
        r#"labels.severity in ["critical", "page"] and (count > 100 or not exists(labels.team)) and @topic == "alerts""#
    );
}

#[test]
fn a_node_with_two_kinds_is_rejected() {
    let m = messages("all: [{path: a, exists: true}]\npath: b\nequals: 1\n");
    assert_eq!(
        m,
        vec!["a condition node is exactly one of all/any/not/expr/path, found `all` and `path`"]
    );
}

#[test]
fn an_empty_node_is_rejected() {
    let m = messages("ignore_case: false\n");
    assert_eq!(m, vec!["empty condition"]);
}

#[test]
fn a_leaf_needs_exactly_one_operator() {
    let m = messages("path: a\nequals: 1\nin: [1]\n");
    assert_eq!(
        m,
        vec!["path `a` has 2 operators (`equals`, `in`); a leaf takes exactly one"]
    );
    let m = messages("path: a\n");
    assert_eq!(m, vec!["path `a` has no operator"]);
    let m = messages("equals: 1\n");
    assert_eq!(m, vec!["`equals` needs a `path`"]);
}

#[test]
fn empty_all_and_any_lists_are_rejected() {
    assert_eq!(
        messages("all: []\n"),
        vec!["`all` needs at least one condition"]
    );
    assert_eq!(
        messages("any: []\n"),
        vec!["`any` needs at least one condition"]
    );
}

#[test]
fn operator_value_types_are_checked() {
    let m = messages("path: a\ngt: high\n");
    assert!(
        m[0].starts_with("`gt` needs a number or an RFC 3339 timestamp"),
        "{m:?}"
    );
    let m = messages("path: a\nlte: [1]\n");
    assert!(
        m[0].starts_with("`lte` needs a number or an RFC 3339 timestamp, got [1]"),
        "{m:?}"
    );
    let m = messages("path: a\ngt: '5'\n");
    assert!(
        m[0].starts_with("`gt` needs a number, got the string \"5\""),
        "{m:?}"
    );
    let m = messages("path: a\nexists: true\nignore_case: true\n");
    assert_eq!(m, vec!["ignore_case does not apply to `exists`"]);
    // Timestamps are fine for ordering.
    valid("path: startsAt\nlt: '2024-05-01T12:00:00Z'\n");
}

#[test]
fn every_problem_in_a_tree_is_reported_at_once() {
    let (cond, problems) = compile_tree(
        r#"
all:
  - path: labels.
    equals: x
  - path: a
    matches: 'x(('
  - path: b
    older_than: 10 minutes
  - expr: 'c = 1'
  - path: $.items[?(@.a ==)]
    exists: true
"#,
    );
    assert!(cond.is_none());
    assert_eq!(problems.len(), 5, "{problems:#?}");
    assert!(problems[0].message.starts_with("invalid path `labels.`"));
    assert!(problems[1].message.starts_with("invalid regex `x((`"));
    assert!(
        problems[2]
            .message
            .starts_with("invalid duration `10 minutes`")
    );
    assert!(problems[3].message.starts_with("unknown operator `=`"));
    assert!(
        problems[4]
            .message
            .starts_with("invalid path `$.items[?(@.a ==)]`")
    );
}

#[test]
fn problems_point_at_the_line_and_column_of_the_field() {
    let (_, problems) =
        compile_tree("all:\n  - path: labels.\n    equals: x\n  - path: a\n    matches: 'ab('\n");
    assert_eq!(problems.len(), 2, "{problems:#?}");
    // `labels.` starts at line 2 column 11; the problem is at its 8th character.
    assert_eq!((problems[0].line, problems[0].column), (2, 11 + 7));
    // `ab(` starts at line 5 column 15 (after the quote at 14); the regex error points at the
    // unclosed `(`.
    assert_eq!(problems[1].line, 5);
    assert_eq!(problems[1].column, 15 + 2, "{problems:#?}");
}

#[test]
fn trees_deeper_than_the_limit_are_rejected() {
    // Built in code: the YAML parser's own depth budget (and, in debug builds, the stack) stops
    // such documents before they reach the compiler.
    let leaf = || super::yaml_tree("path: a\nexists: true\n");
    let wrap = |depth: usize| {
        let mut node = leaf();
        for _ in 0..depth {
            node = crate::rules::model::Condition {
                not: Some(Box::new(node)),
                ..super::yaml_tree("ignore_case: false\n")
            };
        }
        node
    };
    let mut diags = crate::rules::diagnostic::Diagnostics::new();
    assert!(super::super::Condition::compile(&wrap(70), &mut diags).is_none());
    let problems = diags.into_vec();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(
        problems[0].message,
        "condition tree nests deeper than 64 levels"
    );
    let mut diags = crate::rules::diagnostic::Diagnostics::new();
    let ok = super::super::Condition::compile(&wrap(64), &mut diags).expect("64 levels are fine");
    // 64 `not`s around `exists(a)`: an even count cancels out.
    assert!(ok.eval(&event(json!({"a": 1}))));
}

#[test]
fn a_bad_expression_inside_a_tree_is_located_inside_the_expression() {
    let (_, problems) = compile_tree("expr: 'a == 1 and'\n");
    assert_eq!(problems.len(), 1);
    assert_eq!(
        problems[0].message,
        "expected a condition after `and` at column 11"
    );
    assert_eq!(problems[0].line, 1);
}
