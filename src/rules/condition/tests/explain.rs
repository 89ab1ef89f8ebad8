//! Explanations, `Condition::all`, and the equality facts used to index rules.

use serde_json::{Value, json};

use super::super::{Condition, Path, equality_key};
use super::{alert, event, expr};

#[test]
fn explanation_says_why_each_leaf_failed() {
    let cond = expr(r#"labels.severity in ["critical"] and labels.team == "core""#);
    let mut payload = alert();
    payload["labels"]["severity"] = json!("warning");
    let why = cond.explain(&event(payload));
    assert!(!why.holds);
    assert_eq!(why.text, "all of 2: 2 failed");
    assert_eq!(
        why.children[0].text,
        r#"labels.severity is "warning", expected one of ["critical"]"#
    );
    assert_eq!(why.children[1].text, "labels.team: path not found");
}

#[test]
fn explanation_display_is_an_indented_tree_with_marks() {
    let cond = expr(
        r#"labels.severity == "critical" and (count > 100 or not (labels.team contains "x")) and not exists(labels.owner)"#,
    );
    let text = cond.explain(&event(alert())).to_string();
    let expected = "\
✓ all of 3: every one holds
  ✓ labels.severity is \"critical\" (expected \"critical\")
  ✓ any of 2: 1 held
    ✗ count is 7, expected > 100
    ✓ not: the condition below does not hold
      ✗ labels.team: path not found
  ✓ labels.owner: path not found (expected it to be absent)
";
    assert_eq!(text, expected);
}

#[test]
fn explanation_describes_every_operator() {
    let e = event(alert());
    let cases = [
        (
            r#"labels.severity != "critical""#,
            false,
            r#"labels.severity is "critical", expected anything but "critical""#,
        ),
        (
            r#"labels.team != "x""#,
            true,
            r#"labels.team: path not found (expected anything but "x")"#,
        ),
        (
            r#"labels.severity not in ["critical", "page"]"#,
            false,
            r#"labels.severity is "critical", expected none of ["critical", "page"]"#,
        ),
        (
            "exists(labels.severity)",
            true,
            r#"labels.severity is "critical" (expected it to exist)"#,
        ),
        (
            "not exists(labels.severity)",
            false,
            r#"labels.severity is "critical", expected it to be absent"#,
        ),
        (
            r#"labels.severity =~ "^warn""#,
            false,
            r#"labels.severity is "critical", expected a match for regex "^warn""#,
        ),
        (
            r#"labels.severity !~ "^crit""#,
            false,
            r#"labels.severity is "critical", expected no match for regex "^crit""#,
        ),
        (
            r#"flags contains "x""#,
            false,
            r#"flags is ["paged","Urgent"], expected to contain "x""#,
        ),
        (
            r#"labels.severity startswith "w""#,
            false,
            r#"labels.severity is "critical", expected to start with "w""#,
        ),
        (
            r#"lower(labels.severity) endswith "AL""#,
            true,
            r#"labels.severity is "critical" (expected to end with "AL" (ignoring case))"#,
        ),
        ("value > 0.95", false, r#"value is "0.93", expected > 0.95"#),
        (
            "enabled > 1",
            false,
            "enabled is true, expected > 1 — the value is not comparable (type mismatch)",
        ),
        (
            "startsAt older_than 30m",
            false,
            r#"startsAt is "2024-05-01T11:40:00Z", expected a time before 2024-05-01T11:30:00Z (30m before the event time)"#,
        ),
        (
            "startsAt newer_than 1h",
            true,
            r#"startsAt is "2024-05-01T11:40:00Z" (expected a time at or after 2024-05-01T11:00:00Z (at most 1h before the event time))"#,
        ),
        ("@partition == 4", false, "@partition is 3, expected 4"),
        ("true", true, "always true"),
    ];
    for (src, holds, text) in cases {
        let cond = expr(src);
        let why = cond.explain(&e);
        assert_eq!(why.holds, holds, "{src}");
        assert_eq!(why.holds, cond.eval(&e), "{src}: explain agrees with eval");
        assert_eq!(why.text, text, "{src}");
    }
}

#[test]
fn explanation_lists_the_values_a_jsonpath_selected() {
    let cond = expr(r#"$.alerts[*].status == "pending""#);
    let why = cond.explain(&event(alert()));
    assert!(!why.holds);
    assert_eq!(
        why.text,
        r#"$.alerts[*].status selects ["firing", "resolved"] (any value counts), expected "pending""#
    );
}

#[test]
fn explanation_truncates_long_values() {
    let long = "x".repeat(500);
    let why = expr(r#"s == "y""#).explain(&event(json!({ "s": long })));
    assert!(why.text.chars().count() < 200, "{}", why.text);
    assert!(why.text.contains('…'));
}

#[test]
fn explanation_agrees_with_eval_on_mixed_events() {
    let cond = expr(
        r#"(labels.severity in ["critical", "page"] or count >= 10) and not ($.alerts[*].status contains "x") and @topic != "other""#,
    );
    for payload in [
        alert(),
        json!({"count": 12}),
        json!({"labels": {"severity": "info"}}),
        json!(null),
    ] {
        let e = event(payload);
        assert_eq!(cond.explain(&e).holds, cond.eval(&e));
    }
}

#[test]
fn all_flattens_and_treats_no_children_as_always_true() {
    let e = event(alert());
    assert!(Condition::all(Vec::new()).eval(&e));
    let both = Condition::all(vec![
        expr("count == 7"),
        expr(r#"labels.severity == "critical" and status == "firing""#),
    ]);
    assert!(both.eval(&e));
    assert_eq!(
        both.to_string(),
        r#"count == 7 and labels.severity == "critical" and status == "firing""#
    );
    let one_false = Condition::all(vec![expr("count == 7"), expr("count == 8")]);
    assert!(!one_false.eval(&e));
    assert_eq!(Condition::all(vec![expr("a == 1")]).to_string(), "a == 1");
}

fn facts(cond: &Condition) -> Vec<(String, Vec<Value>)> {
    cond.required_equalities()
        .into_iter()
        .map(|(p, v)| (p.as_str().to_owned(), v))
        .collect()
}

#[test]
fn required_equalities_come_from_the_top_level_and_chain_only() {
    let cond = expr(
        r#"@topic == "alerts" and labels.severity in ["critical", "page"] and (status == "firing" and count == 7) and (a == 1 or b == 2) and not c == 3"#,
    );
    assert_eq!(
        facts(&cond),
        vec![
            ("@topic".to_owned(), vec![json!("alerts")]),
            (
                "labels.severity".to_owned(),
                vec![json!("critical"), json!("page")]
            ),
            ("status".to_owned(), vec![json!("firing")]),
            ("count".to_owned(), vec![json!(7)]),
        ]
    );
}

#[test]
fn required_equalities_skip_what_cannot_be_indexed() {
    let cond = expr(
        r#"lower(a) == "x" and b != "y" and c not in [1] and $.items[*].d == 1 and @timestamp == "2024-05-01T12:00:00Z" and e > 1 and $.f.g == "h""#,
    );
    // Only the singular JSONPath (`$.f.g` is the dotted path `f.g`) remains.
    assert_eq!(facts(&cond), vec![("f.g".to_owned(), vec![json!("h")])]);
    assert!(facts(&expr("a == 1 or b == 2")).is_empty());
    assert_eq!(
        facts(&expr("a == 1")),
        vec![("a".to_owned(), vec![json!(1)])]
    );
}

#[test]
fn required_equalities_agree_with_eval_for_matching_events() {
    let cond = expr(r#"labels.severity in ["critical"] and count == 7.0 and @partition == 3"#);
    let e = event(alert());
    assert!(cond.eval(&e));
    for (path, values) in cond.required_equalities() {
        let actual = path.resolve_one(&e).expect("value present");
        let key = equality_key(&actual);
        assert!(
            values.iter().any(|v| equality_key(v) == key),
            "{path:?}: {actual} not in {values:?}"
        );
    }
}

#[test]
fn equality_keys_agree_with_equals() {
    assert_eq!(equality_key(&json!(1)), equality_key(&json!(1.0)));
    assert_eq!(
        equality_key(&json!([1, {"a": 2.0}])),
        equality_key(&json!([1.0, {"a": 2}]))
    );
    assert_ne!(equality_key(&json!(1)), equality_key(&json!("1")));
    assert_ne!(equality_key(&json!(1.5)), equality_key(&json!(1)));
    assert_ne!(equality_key(&json!(null)), equality_key(&json!("null")));
    assert_ne!(
        equality_key(&json!(["a,b"])),
        equality_key(&json!(["a", "b"]))
    );
}

#[test]
fn conditions_are_send_sync_and_cheap_to_share() {
    fn assert_shareable<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_shareable::<Condition>();
    assert_shareable::<Path>();
}
