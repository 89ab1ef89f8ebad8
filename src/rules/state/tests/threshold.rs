use serde_json::json;

use super::*;

const THREE_IN_FIVE_MINUTES: &str = r#"
name: flapping
threshold:
  key: "{{ event.node }}"
  count: 3
  within: 5m
"#;

fn on(node: &str, id: &str) -> Event {
    event(id, json!({"node": node}))
}

#[test]
fn threshold_fires_when_the_window_holds_count_events_and_then_resets() {
    let mut h = Harness::new(THREE_IN_FIVE_MINUTES);
    assert_eq!(
        h.hit(&on("n1", "1"), at(0)),
        Decision::Counting {
            key: "n1".into(),
            seen: 1,
            needed: 3
        }
    );
    h.hit(&on("n1", "2"), at(60));
    let firing = fired(h.hit(&on("n1", "3"), at(120)));
    assert_eq!(firing.event.meta.id, "3", "the completing event triggers");
    assert_eq!(firing.info.count, 3);
    assert_eq!(firing.info.first_at, Some(at(0)));
    assert_eq!(firing.info.key.as_deref(), Some("n1"));
    assert!(h.state.is_empty());

    // The next firing needs three new events.
    assert!(matches!(
        h.hit(&on("n1", "4"), at(121)),
        Decision::Counting { seen: 1, .. }
    ));
}

#[test]
fn threshold_window_slides_so_old_events_stop_counting() {
    let mut h = Harness::new(THREE_IN_FIVE_MINUTES);
    h.hit(&on("n1", "1"), at(0));
    h.hit(&on("n1", "2"), at(240));
    // At 300 s the first event is exactly one window old and no longer counts.
    assert_eq!(
        h.hit(&on("n1", "3"), at(300)),
        Decision::Counting {
            key: "n1".into(),
            seen: 2,
            needed: 3
        }
    );
    let firing = fired(h.hit(&on("n1", "4"), at(301)));
    assert_eq!(firing.info.first_at, Some(at(240)));
}

#[test]
fn threshold_counts_each_key_separately() {
    let mut h = Harness::new(THREE_IN_FIVE_MINUTES);
    h.hit(&on("n1", "1"), at(0));
    h.hit(&on("n2", "2"), at(1));
    assert!(matches!(
        h.hit(&on("n1", "3"), at(2)),
        Decision::Counting { seen: 2, .. }
    ));
    assert!(matches!(
        h.hit(&on("n2", "4"), at(3)),
        Decision::Counting { seen: 2, .. }
    ));
}

#[test]
fn threshold_ignores_events_whose_condition_did_not_hold() {
    let mut h = Harness::new(THREE_IN_FIVE_MINUTES);
    h.hit(&on("n1", "1"), at(0));
    h.hit(&on("n1", "2"), at(1));
    assert_eq!(h.send(&on("n1", "3"), false, at(2)), Decision::NoMatch);
    // Only the events whose condition held count: the fourth event is the third hit.
    let firing = fired(h.hit(&on("n1", "4"), at(3)));
    assert_eq!(firing.event.meta.id, "4");
    assert_eq!(firing.info.count, 3);
}

#[test]
fn threshold_entries_expire_on_tick_after_the_window() {
    let mut h = Harness::new(THREE_IN_FIVE_MINUTES);
    h.hit(&on("n1", "1"), at(0));
    h.hit(&on("n1", "2"), at(100));
    assert_eq!(h.deadline(), Some(at(300)));
    assert!(h.tick(at(300)).is_empty());
    // The second event is still in the window; the deadline moves to when it leaves.
    assert_eq!(h.state.len(), 1);
    assert_eq!(h.deadline(), Some(at(400)));
    assert!(h.tick(at(400)).is_empty());
    assert!(h.state.is_empty());
}

#[test]
fn resolved_alert_removes_its_events_from_the_threshold_count() {
    let mut h = Harness::new(THREE_IN_FIVE_MINUTES);
    let p = json!({"node": "n1"});
    h.hit(&alert("1", "fp-a", p.clone()), at(0));
    h.hit(&alert("2", "fp-b", p.clone()), at(1));
    assert_eq!(h.resolve("fp-a"), 0, "fp-b's event remains");
    // Without the resolved alert's event this is the second event, not the third (a firing).
    assert_eq!(
        h.hit(&alert("3", "fp-c", p.clone()), at(3)),
        Decision::Counting {
            key: "n1".into(),
            seen: 2,
            needed: 3
        }
    );
    // The window now starts at fp-b's event.
    assert_eq!(h.deadline(), Some(at(301)));
}

#[test]
fn resolving_every_counted_alert_cancels_the_pending_threshold() {
    let mut h = Harness::new(THREE_IN_FIVE_MINUTES);
    let p = json!({"node": "n1"});
    h.hit(&alert("1", "fp-a", p.clone()), at(0));
    h.hit(&alert("2", "fp-a", p.clone()), at(1));
    assert_eq!(h.resolve("fp-a"), 1);
    assert!(h.state.is_empty());
    assert_eq!(h.deadline(), None);
}

#[test]
fn threshold_of_one_fires_on_every_matching_event() {
    let mut h = Harness::new("name: r\nthreshold: {count: 1, within: 1m}\n");
    for (i, now) in [at(0), at(1), at(2)].into_iter().enumerate() {
        let firing = fired(h.hit(&on("n1", &i.to_string()), now));
        assert_eq!(firing.info.count, 1);
        assert_eq!(firing.info.key, None);
    }
    assert!(h.state.is_empty());
}
