//! The `event.` prefix (templates and Event-Driven Ansible write it): the same payload path as
//! without it, everywhere a path is parsed; a real top-level `event` field stays reachable.

use std::borrow::Cow;

use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Value, json};

use super::super::Path;
use super::{alert, compile_tree, event, holds};
use crate::event::decode::arbitrary::{config, event as any_event, text_from};

fn path(text: &str) -> Path {
    Path::parse(text).unwrap_or_else(|e| panic!("`{text}` should parse: {e:?}"))
}

fn one(text: &str, payload: &Value) -> Option<Value> {
    path(text)
        .resolve_one(&event(payload.clone()))
        .map(Cow::into_owned)
}

#[test]
fn event_prefixed_paths_are_the_bare_payload_paths() {
    for (prefixed, bare) in [
        ("event.labels.severity", "labels.severity"),
        (
            r#"event.labels["app.kubernetes.io/name"]"#,
            r#"labels["app.kubernetes.io/name"]"#,
        ),
        ("event.alerts[0].status", "alerts[0].status"),
        ("event.alerts.1.name", "alerts.1.name"),
        (r#"event["labels"].severity"#, "labels.severity"),
    ] {
        assert_eq!(path(prefixed), path(bare), "{prefixed}");
        assert_eq!(path(prefixed).as_str(), bare);
        assert_eq!(one(prefixed, &alert()), one(bare, &alert()), "{prefixed}");
        assert!(one(prefixed, &alert()).is_some(), "{prefixed}");
    }
}

#[test]
fn event_alone_is_the_whole_payload() {
    let p = path("event");
    assert_eq!(p.as_str(), "event");
    assert_eq!(one("event", &alert()), Some(alert()));
    assert!(holds("exists(event)", &alert()));
}

#[test]
fn a_payload_field_named_event_is_reached_as_event_event_or_in_brackets() {
    // The prefix wins, as in ansible-rulebook where `event` is the whole payload.
    let payload = json!({"event": {"type": "inner"}, "type": "outer"});
    assert_eq!(one("event.type", &payload), Some(json!("outer")));
    assert_eq!(one("type", &payload), Some(json!("outer")));
    for inner in [
        "event.event.type",
        r#"["event"].type"#,
        "$.event.type",
        r#"event["event"].type"#,
    ] {
        assert_eq!(one(inner, &payload), Some(json!("inner")), "{inner}");
        // The normalised text brackets the key, so it parses back as the field, not the prefix.
        assert_eq!(path(inner).as_str(), r#"["event"].type"#, "{inner}");
    }
    assert_eq!(
        one(r#"["event"]"#, &payload),
        Some(json!({"type": "inner"}))
    );
}

#[test]
fn metadata_jsonpath_and_longer_keys_are_not_prefixes() {
    let payload = json!({"events": [1], "event_id": "e1", "event-kind": "k", "eventual": true});
    assert_eq!(one("events[0]", &payload), Some(json!(1)));
    assert_eq!(one("event_id", &payload), Some(json!("e1")));
    assert_eq!(one("event-kind", &payload), Some(json!("k")));
    assert_eq!(one("eventual", &payload), Some(json!(true)));
    assert_eq!(one("@topic", &payload), Some(json!("alerts")));
    assert_eq!(one("$.event_id", &payload), Some(json!("e1")));
    assert!(Path::parse("event.@topic").is_err());
}

#[test]
fn a_dangling_or_doubled_prefix_is_an_error_not_a_silent_non_match() {
    for (text, offset) in [("event.", 6), ("event.[0]", 6), ("event..a", 6)] {
        let err = Path::parse(text).expect_err(text);
        assert_eq!(err.offset, offset, "{text}: {}", err.message);
    }
}

#[test]
fn the_prefix_works_in_expressions_trees_and_ansible_style_comparisons() {
    let p = alert();
    assert!(holds(r#"event.labels.severity == "critical""#, &p));
    assert!(holds(
        r#"event.status == "firing" and event.count > 5 and event.flags contains "paged""#,
        &p
    ));
    assert!(!holds(r#"event.labels.severity != "critical""#, &p));
    let (cond, problems) = compile_tree(
        "all:\n  - {path: event.labels.severity, equals: critical}\n  - {expr: 'event.count >= 7'}\n",
    );
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(cond.expect("compiles").eval(&event(p)));
}

/// Payload path texts, plain and odd (keys that look like words, brackets, indexes).
const PAYLOAD_PATHS: &[&str] = &[
    "labels.severity",
    "labels[\"app.kubernetes.io/name\"]",
    "alerts[0].status",
    "alerts[-1].labels",
    "alerts.0",
    "[0]",
    "[\"\"]",
    "event",
    "[\"event\"].x",
    "not.in",
    "type",
    ".",
    "[",
    "'",
];

proptest! {
    #![proptest_config(config())]

    #[test]
    fn event_dot_p_and_p_evaluate_the_same(
        text in prop_oneof![select(PAYLOAD_PATHS).prop_map(str::to_owned), text_from(PAYLOAD_PATHS)],
        ev in any_event(),
    ) {
        // `p` as written and as normalised: the normalised text brackets a first key named
        // `event`, which is what makes the property hold for every payload path.
        if let Ok(bare) = Path::parse(&text) {
            let normal = bare.as_str().to_owned();
            if normal != "event" && !normal.starts_with(['$', '@']) {
                let prefixed = if normal.starts_with('[') {
                    format!("event{normal}")
                } else {
                    format!("event.{normal}")
                };
                let with = Path::parse(&prefixed);
                prop_assert_eq!(with.as_ref().ok(), Some(&bare), "`{}` vs `{}`", prefixed, normal);
                let with = with.expect("checked");
                prop_assert_eq!(with.resolve_all(&ev), bare.resolve_all(&ev));
            }
        }
    }
}
