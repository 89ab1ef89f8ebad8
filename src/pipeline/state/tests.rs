//! What a record makes the pipeline serialize and persist: only the keys it changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use super::{Change, Inner, Saved, changed};
use crate::event::Event;
use crate::event::decode::{Decoding, decode_json};
use crate::rules::{Engine, load_sources};

const RULE: &str = "burst-per-pod";

/// A `once_after` rule (its keys hold whole events) whose condition the index cannot place, so
/// an event with `restarts: 0` reaches the rule and fails its condition.
const RULES: &str = r#"rules:
  - name: burst-per-pod
    when: 'restarts > 0'
    throttle:
      key: "{{ event.pod }}"
      once_after: 1h
    actions:
      - log: {message: "{{ event.pod }}"}
"#;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0)
        .single()
        .expect("valid time")
}

fn event(pod: &str, restarts: u32) -> Event {
    decode_json(
        json!({"pod": pod, "restarts": restarts}),
        "events",
        0,
        0,
        None,
        &Default::default(),
        Some(now()),
        Decoding::Json,
    )
    .expect("decodes")
    .remove(0)
}

/// A pipeline's engine and save cache holding keys `a`, `b` and `c`, all saved. The saved
/// document of `b` is written differently from what this version would write for the same state
/// (as a row of an earlier version would be): any serialization of `b` shows up as an upsert.
fn inner() -> Inner {
    let rules = Arc::new(
        load_sources(&[("r.yaml".into(), RULES.to_owned())]).expect("test rules are valid"),
    );
    let mut engine = Engine::new(rules);
    for pod in ["a", "b", "c"] {
        engine.process(&event(pod, 1), now());
    }
    let _ = engine.take_dirty();
    let mut docs = engine.state().rules[RULE]
        .export_keys()
        .expect("state serializes");
    for (key, doc) in &mut docs {
        if key == "b" {
            doc["value"]["written_by"] = json!("an earlier version");
        }
    }
    let mut saved = Saved::default();
    saved.apply(Change {
        rule: RULE.to_owned(),
        upserts: docs,
        deletes: Vec::new(),
        evictions: Some(0),
    });
    Inner {
        engine,
        saved: BTreeMap::from([(RULE.to_owned(), saved)]),
        unsaved: Default::default(),
    }
}

fn keys(docs: &[(String, Value)]) -> Vec<&str> {
    docs.iter().map(|(key, _)| key.as_str()).collect()
}

#[test]
fn a_record_touching_one_key_serializes_and_persists_only_that_key() {
    let mut inner = inner();
    inner.engine.process(&event("c", 1), now());
    let changes = changed(&mut inner).expect("changes");
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(keys(&changes[0].upserts), ["c"], "{changes:?}");
    assert!(changes[0].deletes.is_empty(), "{changes:?}");
    assert_eq!(changes[0].evictions, None);
}

#[test]
fn a_record_whose_condition_failed_persists_nothing() {
    let mut inner = inner();
    let evaluation = inner.engine.process(&event("c", 0), now());
    assert!(evaluation.planned.is_empty() && evaluation.failures.is_empty());
    let changes = changed(&mut inner).expect("changes");
    assert!(changes.is_empty(), "{changes:?}");
}

#[test]
fn a_key_evicted_by_a_new_key_is_deleted_and_the_new_key_written() {
    let mut inner = inner();
    let mut rules = RULES.to_owned();
    rules.push_str("    max_keys: 3\n");
    let rules = Arc::new(load_sources(&[("r.yaml".into(), rules)]).expect("valid"));
    inner.engine.replace_rules(rules);
    inner.engine.process(&event("d", 1), now());
    let changes = changed(&mut inner).expect("changes");
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(keys(&changes[0].upserts), ["d"], "{changes:?}");
    assert_eq!(
        keys(&changes[0].deletes),
        ["a"],
        "the oldest key is evicted"
    );
    assert_eq!(changes[0].evictions, Some(1));
    let untouched: BTreeSet<&str> = inner.engine.state().rules[RULE].keys().collect();
    assert_eq!(untouched, BTreeSet::from(["b", "c", "d"]));
}
