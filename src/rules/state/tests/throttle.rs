use serde_json::json;

use super::*;

const ONCE_WITHIN: &str = r#"
name: restart-crashloop
throttle:
  key: "{{ event.pod }}"
  once_within: 10m
"#;

const ONCE_AFTER: &str = r#"
name: burst
throttle:
  key: "{{ event.deployment }}"
  once_after: 1m
"#;

#[test]
fn once_within_fires_for_the_first_event_and_suppresses_the_rest_of_the_window() {
    let mut h = Harness::new(ONCE_WITHIN);
    let e = |id| event(id, json!({"pod": "api-1"}));

    let first = fired(h.hit(&e("1"), at(0)));
    assert_eq!(first.event.meta.id, "1");
    assert_eq!(first.info.key.as_deref(), Some("api-1"));
    assert_eq!(first.info.count, 1);
    assert_eq!(first.info.first_at, Some(at(0)));

    assert_eq!(
        h.hit(&e("2"), at(599)),
        Decision::Suppressed {
            key: "api-1".into(),
            until: at(600)
        }
    );
    // The window is half-open: at exactly 10 minutes the key may fire again.
    assert_eq!(fired(h.hit(&e("3"), at(600))).event.meta.id, "3");
}

#[test]
fn once_within_keeps_a_separate_window_per_key() {
    let mut h = Harness::new(ONCE_WITHIN);
    fired(h.hit(&event("1", json!({"pod": "a"})), at(0)));
    fired(h.hit(&event("2", json!({"pod": "b"})), at(1)));
    assert!(matches!(
        h.hit(&event("3", json!({"pod": "a"})), at(2)),
        Decision::Suppressed { .. }
    ));
    assert_eq!(h.state.len(), 2);
}

#[test]
fn once_within_ignores_events_whose_condition_did_not_hold() {
    let mut h = Harness::new(ONCE_WITHIN);
    assert_eq!(
        h.send(&event("1", json!({"pod": "a"})), false, at(0)),
        Decision::NoMatch
    );
    assert!(h.state.is_empty());
    // The non-matching event did not start a window.
    fired(h.hit(&event("2", json!({"pod": "a"})), at(1)));
}

#[test]
fn once_within_suppression_expires_on_tick_and_leaves_no_state() {
    let mut h = Harness::new(ONCE_WITHIN);
    fired(h.hit(&event("1", json!({"pod": "a"})), at(0)));
    assert_eq!(h.deadline(), Some(at(600)));
    assert!(h.tick(at(599)).is_empty());
    assert_eq!(h.state.len(), 1);
    assert!(h.tick(at(600)).is_empty(), "expiry is not a firing");
    assert!(h.state.is_empty());
    assert_eq!(h.deadline(), None);
}

#[test]
fn once_after_fires_once_per_burst_with_the_first_event_and_the_burst_size() {
    let mut h = Harness::new(ONCE_AFTER);
    let e = |id| event(id, json!({"deployment": "api"}));
    assert_eq!(
        h.hit(&e("1"), at(0)),
        Decision::Buffered {
            key: "api".into(),
            count: 1,
            due: at(60)
        }
    );
    h.hit(&e("2"), at(10));
    assert_eq!(
        h.hit(&e("3"), at(59)),
        Decision::Buffered {
            key: "api".into(),
            count: 3,
            due: at(60)
        }
    );
    assert_eq!(h.deadline(), Some(at(60)));
    assert!(h.tick(at(59)).is_empty());

    let firings = h.tick(at(60));
    assert_eq!(firings.len(), 1);
    assert_eq!(firings[0].event.meta.id, "1");
    assert_eq!(firings[0].info.count, 3);
    assert_eq!(firings[0].info.first_at, Some(at(0)));
    assert_eq!(firings[0].info.key.as_deref(), Some("api"));

    assert!(h.state.is_empty());
    assert!(h.tick(at(120)).is_empty(), "a burst fires only once");
    // The next event opens a new burst.
    assert!(matches!(
        h.hit(&e("4"), at(121)),
        Decision::Buffered { count: 1, .. }
    ));
}

#[test]
fn once_after_is_cancelled_when_every_contributing_alert_resolves() {
    let mut h = Harness::new(ONCE_AFTER);
    let p = json!({"deployment": "api"});
    h.hit(&alert("1", "fp-a", p.clone()), at(0));
    h.hit(&alert("2", "fp-b", p.clone()), at(5));
    h.hit(&alert("3", "fp-a", p.clone()), at(6));

    assert_eq!(h.resolve("fp-a"), 0, "fp-b still contributes");
    assert_eq!(h.resolve("fp-b"), 1);
    assert!(h.state.is_empty());
    assert!(h.tick(at(60)).is_empty());
}

#[test]
fn once_after_without_its_resolved_alerts_fires_with_the_earliest_live_trigger() {
    let mut h = Harness::new(ONCE_AFTER);
    let p = json!({"deployment": "api"});
    h.hit(&alert("1", "fp-a", p.clone()), at(0));
    h.hit(&alert("2", "fp-b", p.clone()), at(5));
    h.hit(&alert("3", "fp-a", p.clone()), at(6));
    h.hit(&alert("4", "fp-c", p.clone()), at(7));

    assert_eq!(h.resolve("fp-a"), 0);
    assert_eq!(h.resolve("fp-unknown"), 0);

    let firings = h.tick(at(60));
    assert_eq!(firings.len(), 1);
    assert_eq!(firings[0].event.meta.id, "2");
    assert_eq!(firings[0].info.count, 2);
    // The burst still opened when the first event arrived.
    assert_eq!(firings[0].info.first_at, Some(at(0)));
}

#[test]
fn once_after_counts_events_without_fingerprint_as_uncancellable() {
    let mut h = Harness::new(ONCE_AFTER);
    let p = json!({"deployment": "api"});
    h.hit(&alert("1", "fp-a", p.clone()), at(0));
    h.hit(&event("2", p.clone()), at(1));
    assert_eq!(h.resolve("fp-a"), 0);
    let firings = h.tick(at(60));
    assert_eq!(firings.len(), 1);
    assert_eq!(firings[0].event.meta.id, "2");
    assert_eq!(firings[0].info.count, 1);
}

#[test]
fn once_after_beyond_the_tracked_alert_bound_still_counts_but_cannot_cancel() {
    let mut h = Harness::new(ONCE_AFTER);
    h.limits.max_events_per_key = 1;
    let p = json!({"deployment": "api"});
    h.hit(&alert("1", "fp-a", p.clone()), at(0));
    h.hit(&alert("2", "fp-b", p.clone()), at(1));
    h.hit(&alert("3", "fp-c", p.clone()), at(2));
    // Only fp-a is tracked; fp-b's and fp-c's events are no longer attributable.
    assert_eq!(h.resolve("fp-b"), 0);
    assert_eq!(h.resolve("fp-a"), 0);
    let firings = h.tick(at(60));
    assert_eq!(firings.len(), 1);
    assert_eq!(firings[0].info.count, 2);
    assert_eq!(firings[0].event.meta.id, "2");
}

#[test]
fn once_after_burst_overdue_for_a_tick_takes_late_events_instead_of_losing_the_burst() {
    let mut h = Harness::new(ONCE_AFTER);
    let e = |id| event(id, json!({"deployment": "api"}));
    h.hit(&e("1"), at(0));
    assert!(matches!(
        h.hit(&e("2"), at(90)),
        Decision::Buffered { count: 2, .. }
    ));
    let firings = h.tick(at(90));
    assert_eq!(firings.len(), 1);
    assert_eq!(firings[0].info.count, 2);
    assert_eq!(firings[0].event.meta.id, "1");
}

#[test]
fn throttle_without_key_keeps_one_window_for_the_rule_and_no_match_key() {
    let mut h = Harness::new("name: r\nthrottle: {once_within: 1m}\n");
    let first = fired(h.hit(&event("1", json!({"pod": "a"})), at(0)));
    assert_eq!(first.info.key, None);
    assert_eq!(
        h.hit(&event("2", json!({"pod": "b"})), at(1)),
        Decision::Suppressed {
            key: String::new(),
            until: at(60)
        }
    );
}
