//! What a decision writes back for the keys it locked, and which redeliveries it recognises.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use super::{FORGET_AFTER, KeyLocks, already_applied, engine_for, writes};
use crate::event::Event;
use crate::event::decode::{Decoding, decode_json};
use crate::rules::{RuleSet, StateKey, load_sources};
use crate::store::{Applied, KeyRow, KeyWrite};

/// A `threshold` of two per pod, and a rule that is not stateful.
const RULES: &str = r#"rules:
  - name: twice-per-pod
    when: 'restarts > 0'
    threshold:
      key: "{{ event.pod }}"
      count: 2
      within: 1h
    actions:
      - log: {message: "{{ event.pod }}"}
"#;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0)
        .single()
        .expect("valid time")
}

fn rules() -> Arc<RuleSet> {
    Arc::new(load_sources(&[("r.yaml".into(), RULES.to_owned())]).expect("test rules are valid"))
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

fn key(pod: &str) -> StateKey {
    StateKey {
        rule: "twice-per-pod".to_owned(),
        key: pod.to_owned(),
    }
}

fn empty(pod: &str, existed: bool) -> KeyRow {
    KeyRow {
        key: key(pod),
        state: None,
        applied: Applied::new(),
        existed,
    }
}

/// The rows one event leaves after counting once for `pod` (offset 7 of `events/0`).
fn counted_once(pod: &str) -> KeyRow {
    let rules = rules();
    let mut engine = engine_for(&rules, &[empty(pod, false)]);
    engine.process(&event(pod, 1), now());
    let written = writes(
        &mut engine,
        vec![empty(pod, false)],
        &BTreeSet::new(),
        Some(("events/0", 7)),
        now(),
    )
    .expect("serializes");
    match written.as_slice() {
        [
            KeyWrite::Put {
                key,
                state: Some(state),
                applied,
                due,
            },
        ] => {
            assert_eq!(*key, self::key(pod));
            assert_eq!(*applied, Applied::from([("events/0".to_owned(), 7)]));
            assert_eq!(
                *due,
                Some(now() + chrono::Duration::hours(1)),
                "the window ends"
            );
            KeyRow {
                key: key.clone(),
                state: Some(state.clone()),
                applied: applied.clone(),
                existed: true,
            }
        }
        other => panic!("one key written with its state, got {other:?}"),
    }
}

#[test]
fn a_counted_event_writes_its_key_with_state_deadline_and_the_records_offset() {
    counted_once("a");
}

#[test]
fn the_second_event_fires_and_leaves_a_row_without_state_that_remembers_both_records() {
    let rules = rules();
    let row = counted_once("a");
    let mut engine = engine_for(&rules, std::slice::from_ref(&row));
    let evaluation = engine.process(&event("a", 2), now());
    assert_eq!(evaluation.planned.len(), 1, "the count of two is reached");
    let written = writes(
        &mut engine,
        vec![row],
        &BTreeSet::new(),
        Some(("events/3", 2)),
        now(),
    )
    .expect("serializes");
    assert_eq!(
        written,
        vec![KeyWrite::Put {
            key: key("a"),
            state: None,
            applied: Applied::from([("events/0".to_owned(), 7), ("events/3".to_owned(), 2)]),
            due: Some(now() + FORGET_AFTER),
        }]
    );
}

#[test]
fn a_redelivered_record_is_recognised_per_partition_and_offset() {
    let row = counted_once("a");
    let rows = [row, empty("b", false)];
    assert_eq!(
        already_applied(&rows, "events/0", 7),
        BTreeSet::from([key("a")])
    );
    assert_eq!(
        already_applied(&rows, "events/0", 6),
        BTreeSet::from([key("a")])
    );
    assert!(
        already_applied(&rows, "events/0", 8).is_empty(),
        "a later record"
    );
    assert!(
        already_applied(&rows, "events/1", 7).is_empty(),
        "another partition"
    );
}

#[test]
fn keys_a_record_did_not_touch_are_left_alone_and_placeholders_removed() {
    let rules = rules();
    let kept = counted_once("a");
    let rows = vec![kept.clone(), empty("b", false), empty("c", true)];
    let mut engine = engine_for(&rules, &rows);
    // The condition fails: the rule decides nothing.
    engine.process(&event("a", 0), now());
    let written = writes(
        &mut engine,
        rows,
        &BTreeSet::new(),
        Some(("events/0", 9)),
        now(),
    )
    .expect("serializes");
    assert_eq!(written, vec![KeyWrite::Delete(key("b"))]);
}

#[test]
fn the_timer_sweep_forgets_rows_without_state_and_rewrites_rows_with_state() {
    let rules = rules();
    let live = counted_once("a");
    let forgotten = KeyRow {
        applied: Applied::from([("events/0".to_owned(), 1)]),
        ..empty("b", true)
    };
    let mut engine = engine_for(&rules, &[live.clone(), forgotten.clone()]);
    let later = now() + chrono::Duration::hours(2);
    engine.tick(later);
    let written = writes(
        &mut engine,
        vec![live, forgotten],
        &BTreeSet::new(),
        None,
        later,
    )
    .expect("serializes");
    assert_eq!(
        written,
        vec![
            // The window expired: the key keeps what was applied to it for a while.
            KeyWrite::Put {
                key: key("a"),
                state: None,
                applied: Applied::from([("events/0".to_owned(), 7)]),
                due: Some(later + FORGET_AFTER),
            },
            KeyWrite::Delete(key("b")),
        ]
    );
}

#[test]
fn an_unreadable_state_document_starts_the_key_empty() {
    let rules = rules();
    let row = KeyRow {
        state: Some(json!({"kind": "not a state"})),
        ..empty("a", true)
    };
    let engine = engine_for(&rules, &[row]);
    assert!(
        engine
            .state()
            .rules
            .get("twice-per-pod")
            .is_none_or(|s| s.is_empty())
    );
}

#[tokio::test]
async fn a_key_locked_in_this_process_is_skipped_by_try_lock_until_released() {
    let locks = KeyLocks::default();
    let held = locks.lock_all(&BTreeSet::from([key("a"), key("b")])).await;
    assert!(locks.try_lock(&key("a")).is_none());
    assert!(locks.try_lock(&key("c")).is_some());
    drop(held);
    assert!(locks.try_lock(&key("a")).is_some());
}
