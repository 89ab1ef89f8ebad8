//! Paths: forms, normalisation, resolution (payload, JSONPath, metadata) and parse errors.

use std::borrow::Cow;
use std::collections::HashSet;

use serde_json::{Value, json};

use super::super::{Path, PathError};
use super::{alert, event, holds};

fn path(text: &str) -> Path {
    Path::parse(text).unwrap_or_else(|e| panic!("`{text}` should parse: {e:?}"))
}

fn one(text: &str, payload: Value) -> Option<Value> {
    path(text).resolve_one(&event(payload)).map(Cow::into_owned)
}

fn error(text: &str) -> PathError {
    match Path::parse(text) {
        Ok(p) => panic!("`{text}` should be rejected, parsed as {p:?}"),
        Err(e) => e,
    }
}

#[test]
fn dotted_bracket_and_index_forms_resolve_in_the_payload() {
    let p = alert();
    assert_eq!(one("labels.severity", p.clone()), Some(json!("critical")));
    assert_eq!(
        one(r#"labels["app.kubernetes.io/name"]"#, p.clone()),
        Some(json!("checkout"))
    );
    assert_eq!(
        one("labels['app.kubernetes.io/name']", p.clone()),
        Some(json!("checkout"))
    );
    assert_eq!(one("alerts[1].status", p.clone()), Some(json!("resolved")));
    assert_eq!(one("alerts[-1].name", p.clone()), Some(json!("b")));
    assert_eq!(one("alerts.0.name", p.clone()), Some(json!("a")));
    assert_eq!(one("alerts[2]", p.clone()), None);
    assert_eq!(one("alerts[-3]", p.clone()), None);
    assert_eq!(one("labels.severity.deeper", p.clone()), None);
    assert_eq!(one("labels[0]", p), None);
}

#[test]
fn a_digits_only_dotted_segment_is_a_key_on_objects() {
    assert_eq!(
        one("codes.404", json!({"codes": {"404": "not found"}})),
        Some(json!("not found"))
    );
}

#[test]
fn equivalent_spellings_normalise_to_the_same_path() {
    assert_eq!(path("labels['severity']"), path("labels.severity"));
    assert_eq!(path("$.labels.severity"), path("labels.severity"));
    assert_eq!(
        path(r#"$['labels']['severity']"#).as_str(),
        "labels.severity"
    );
    assert_eq!(
        path(r#"labels["app.kubernetes.io/name"]"#).as_str(),
        r#"labels["app.kubernetes.io/name"]"#
    );
    assert_eq!(path("@headers['trace-id']").as_str(), "@headers.trace-id");
    assert_eq!(path(r#"["not"].x"#).as_str(), r#"["not"].x"#);
    let set: HashSet<Path> = ["a.b", "a['b']", "$.a.b", "a.c"]
        .into_iter()
        .map(path)
        .collect();
    assert_eq!(set.len(), 2);
}

#[test]
fn keys_with_control_characters_normalise_to_text_that_parses_back() {
    // Regression (property test): the normalised text used JSON escapes (`["a\\nb"]`), which the
    // bracket parser rejects, so the path did not parse back as itself.
    for text in ["[\"a\nb\"]", "@headers[\"\t\"]", "x[\"\u{0}\\\\\\\"\"]"] {
        let p = path(text);
        assert_eq!(
            Path::parse(p.as_str()).as_ref(),
            Ok(&p),
            "{text:?} -> {p:?}"
        );
    }
}

#[test]
fn jsonpath_with_a_filter_selects_several_values_and_any_one_counts() {
    let p = json!({"containers": [
        {"name": "app", "state": "running", "restarts": 0},
        {"name": "sidecar", "state": "waiting", "restarts": 12},
    ]});
    let names = path(r#"$.containers[?(@.state == "waiting")].name"#);
    assert!(!names.is_single());
    let e = event(p.clone());
    assert_eq!(
        names.resolve_all(&e),
        vec![Cow::Borrowed(&json!("sidecar"))]
    );
    assert!(holds(
        r#"$.containers[?(@.state == "waiting")].name == "sidecar""#,
        &p
    ));
    assert!(holds("$.containers[*].restarts > 10", &p));
    assert!(!holds("$.containers[*].restarts > 20", &p));
    // Negative operators hold only when no selected value matches.
    assert!(!holds(r#"$.containers[*].state != "running""#, &p));
    assert!(holds(r#"$.containers[*].state not in ["crashed"]"#, &p));
    // Selecting nothing is a missing path.
    assert!(!holds(
        r#"$.containers[?(@.state == "crashed")].name == "x""#,
        &p
    ));
    assert!(holds(
        r#"not exists($.containers[?(@.state == "crashed")])"#,
        &p
    ));
}

#[test]
fn jsonpath_resolve_all_returns_every_selected_value() {
    let e = event(json!({"items": [1, 2, 3]}));
    let values: Vec<Value> = path("$.items[*]")
        .resolve_all(&e)
        .into_iter()
        .map(Cow::into_owned)
        .collect();
    assert_eq!(values, vec![json!(1), json!(2), json!(3)]);
    assert_eq!(
        path("$.items[*]").resolve_one(&e).map(Cow::into_owned),
        Some(json!(1))
    );
    assert!(path("$.nothing[*]").resolve_all(&e).is_empty());
}

#[test]
fn metadata_paths_resolve_every_field() {
    let e = event(json!({}));
    let get = |text: &str| path(text).resolve_one(&e).map(Cow::into_owned);
    assert_eq!(get("@id"), Some(json!("ev-1")));
    assert_eq!(get("@topic"), Some(json!("alerts")));
    assert_eq!(get("@partition"), Some(json!(3)));
    assert_eq!(get("@offset"), Some(json!(42)));
    assert_eq!(get("@key"), Some(json!("pod-a")));
    assert_eq!(get("@timestamp"), Some(json!("2024-05-01T12:00:00Z")));
    assert_eq!(get("@format"), Some(json!("alertmanager")));
    assert_eq!(get("@type"), Some(json!("KubePodCrashLooping")));
    assert_eq!(get("@source"), None);
    assert_eq!(get("@headers.trace-id"), Some(json!("abc123")));
    assert_eq!(get(r#"@headers["x.dotted"]"#), Some(json!("yes")));
    assert_eq!(get("@headers.missing"), None);
    assert_eq!(
        get("@headers"),
        Some(json!({"trace-id": "abc123", "x.dotted": "yes"}))
    );
    assert_eq!(get("@attributes.status"), Some(json!("firing")));
    assert_eq!(get("@attributes.group.labels.team"), Some(json!("core")));
    assert_eq!(get("@attributes.missing"), None);
}

#[test]
fn metadata_paths_work_in_conditions() {
    let p = json!({});
    assert!(holds(r#"@topic == "alerts""#, &p));
    assert!(holds("@partition == 3 and @offset >= 40", &p));
    assert!(holds(r#"@format == "alertmanager""#, &p));
    assert!(holds(r#"@type startswith "KubePod""#, &p));
    assert!(holds(r#"@headers.trace-id == "abc123""#, &p));
    assert!(holds(r#"@attributes.status in ["firing"]"#, &p));
    assert!(holds(r#"@timestamp == "2024-05-01T12:00:00Z""#, &p));
    assert!(holds(r#"@timestamp == "2024-05-01T14:00:00+02:00""#, &p));
    assert!(!holds(r#"@source == "x""#, &p));
    assert!(holds(r#"@source != "x""#, &p));
    assert!(holds("not exists(@source)", &p));
}

#[test]
fn resolve_str_borrows_strings_from_payload_and_metadata() {
    let e = event(alert());
    assert_eq!(path("labels.severity").resolve_str(&e), Some("critical"));
    assert_eq!(path("@topic").resolve_str(&e), Some("alerts"));
    assert_eq!(path("@format").resolve_str(&e), Some("alertmanager"));
    assert_eq!(path("count").resolve_str(&e), None);
    assert_eq!(path("@partition").resolve_str(&e), None);
}

#[test]
fn bad_paths_are_rejected_with_the_offset_of_the_problem() {
    let e = error("labels.");
    assert_eq!(e.offset, 7);
    assert!(
        e.message.contains("expected a key after `.`"),
        "{}",
        e.message
    );

    let e = error("labels[\"a");
    assert_eq!(e.offset, 7);
    assert!(e.message.contains("unterminated"), "{}", e.message);

    let e = error("items[*].x");
    assert_eq!(e.offset, 6);
    assert!(e.message.contains("JSONPath"), "{}", e.message);

    let e = error("labels/x");
    assert_eq!(e.offset, 6);
    assert!(e.message.contains("brackets"), "{}", e.message);

    assert_eq!(error("").message, "empty path");
    assert_eq!(
        error(&"a.".repeat(600)).offset,
        super::super::MAX_PATH_CHARS
    );
}

#[test]
fn unknown_metadata_fields_suggest_the_closest_one() {
    let e = error("@topc");
    assert_eq!(e.offset, 1);
    assert!(
        e.message.contains("did you mean `@topic`?"),
        "{}",
        e.message
    );
    let e = error("@topic.x");
    assert!(e.message.contains("single value"), "{}", e.message);
    let e = error("@headers.a.b");
    assert!(e.message.contains("strings"), "{}", e.message);
    let e = error("@");
    assert!(e.message.contains("@topic"), "{}", e.message);
}

#[test]
fn bad_jsonpath_points_at_the_character_in_error() {
    let e = error("$.items[?(@.a ==)]");
    assert!(e.message.starts_with("invalid JSONPath"), "{}", e.message);
    // The parser stops inside the filter, past `$.items[`.
    assert!(
        e.offset >= 8 && e.offset < 18,
        "offset {} in {}",
        e.offset,
        e.message
    );
}
