//! Stored events are bounded: a behaviour that keeps an event for later refuses one whose JSON
//! exceeds the bound, with an error naming the rule and the fix, and changes nothing.

use serde_json::json;

use super::correlate::OOM_THEN_BACKOFF as CORRELATE;
use super::*;
use crate::rules::state::MAX_STORED_EVENT_BYTES;

const ONCE_AFTER: &str = r#"
name: burst
throttle:
  key: "{{ event.pod }}"
  once_after: 1m
"#;

const ABSENCE: &str = r#"
name: deploy-stuck
absence:
  key: "{{ event.pod }}"
  within: 10m
  expect:
    name: finished
    condition: {path: phase, equals: finished}
"#;

/// 100 KiB of payload, above the bound.
fn huge(id: &str) -> Event {
    event(
        id,
        json!({"pod": "api-1", "reason": "OOMKilled", "phase": "started",
               "log": "x".repeat(100 * 1024)}),
    )
}

fn small(id: &str) -> Event {
    event(
        id,
        json!({"pod": "api-1", "reason": "OOMKilled", "phase": "started"}),
    )
}

fn refused(yaml: &str) -> String {
    let mut h = Harness::new(yaml);
    let err = h
        .behaviour
        .on_event(&mut h.state, &huge("1"), true, at(0), &h.limits)
        .expect_err("an event above the bound is not stored");
    assert!(h.state.is_empty(), "nothing was stored");
    assert_eq!(h.deadline(), None);
    // A small event still works afterwards.
    h.hit(&small("2"), at(1));
    assert_eq!(h.state.len(), 1);
    err.to_string()
}

#[test]
fn once_after_refuses_to_keep_an_event_above_the_bound() {
    let message = refused(ONCE_AFTER);
    assert!(message.contains("rule `burst`"), "{message}");
    assert!(
        message.contains(&format!("{MAX_STORED_EVENT_BYTES} bytes")),
        "{message}"
    );
    assert!(message.contains("select:"), "names the fix: {message}");
}

#[test]
fn absence_refuses_to_arm_with_an_event_above_the_bound() {
    let message = refused(ABSENCE);
    assert!(message.contains("rule `deploy-stuck`"), "{message}");
}

#[test]
fn correlate_refuses_to_keep_a_step_event_above_the_bound() {
    let message = refused(CORRELATE);
    assert!(message.contains("rule `oom-then-backoff`"), "{message}");
}

#[test]
fn an_event_above_the_bound_still_joins_an_open_burst_it_need_not_be_kept_for() {
    // The burst's trigger is already kept; a later event without a fingerprint is only counted.
    let mut h = Harness::new(ONCE_AFTER);
    h.hit(&small("1"), at(0));
    assert_eq!(
        h.hit(&huge("2"), at(1)),
        Decision::Buffered {
            key: "api-1".into(),
            count: 2,
            due: at(60)
        }
    );
    let firings = h.tick(at(60));
    assert_eq!(firings.len(), 1);
    assert_eq!(firings[0].event.meta.id, "1");
    assert_eq!(firings[0].info.count, 2);
}

#[test]
fn a_saved_key_holding_an_event_above_the_bound_is_reported_at_load() {
    let mut h = Harness::new(ABSENCE);
    h.hit(&small("1"), at(0));
    let mut docs = h.state.export_keys().expect("export");
    // As an earlier version, without the bound, would have saved it.
    docs[0].1["value"]["event"]["payload"]["log"] = json!("x".repeat(100 * 1024));
    let (state, unreadable) = RuleState::from_keys(docs, 0);
    assert!(state.is_empty(), "the key starts empty");
    assert_eq!(unreadable.len(), 1);
    let message = unreadable[0].to_string();
    assert!(message.contains("`api-1`"), "{message}");
    assert!(
        message.contains(&format!("{MAX_STORED_EVENT_BYTES} bytes")),
        "{message}"
    );
}
