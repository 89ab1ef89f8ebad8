use serde_json::json;

use super::*;

/// Rule condition (the trigger) is evaluated by the engine; tests pass `main_matched` directly.
const DEPLOY_MUST_FINISH: &str = r#"
name: deploy-stuck
absence:
  key: "{{ event.deployment }}"
  within: 10m
  expect:
    name: finished
    condition: {path: phase, equals: finished}
"#;

fn started(id: &str, deployment: &str) -> Event {
    event(id, json!({"deployment": deployment, "phase": "started"}))
}

fn finished(id: &str, deployment: &str) -> Event {
    event(id, json!({"deployment": deployment, "phase": "finished"}))
}

#[test]
fn absence_fires_at_the_deadline_with_the_arming_event() {
    let mut h = Harness::new(DEPLOY_MUST_FINISH);
    assert_eq!(
        h.hit(&started("1", "api"), at(0)),
        Decision::Armed {
            key: "api".into(),
            deadline: at(600),
            triggers: 1
        }
    );
    assert_eq!(h.deadline(), Some(at(600)));
    assert!(h.tick(at(599)).is_empty());

    let firings = h.tick(at(600));
    assert_eq!(firings.len(), 1);
    assert_eq!(firings[0].event.meta.id, "1");
    assert_eq!(firings[0].info.key.as_deref(), Some("api"));
    assert_eq!(firings[0].info.count, 1);
    assert_eq!(firings[0].info.first_at, Some(at(0)));
    assert!(h.state.is_empty());
    assert!(h.tick(at(1200)).is_empty(), "an absence fires once");
}

#[test]
fn expected_event_in_time_disarms_the_key() {
    let mut h = Harness::new(DEPLOY_MUST_FINISH);
    h.hit(&started("1", "api"), at(0));
    // The expected event does not satisfy the trigger condition.
    assert_eq!(
        h.send(&finished("2", "api"), false, at(599)),
        Decision::Disarmed { key: "api".into() }
    );
    assert!(h.state.is_empty());
    assert!(h.tick(at(600)).is_empty());
}

#[test]
fn rearming_counts_the_trigger_but_does_not_move_the_deadline() {
    let mut h = Harness::new(DEPLOY_MUST_FINISH);
    h.hit(&started("1", "api"), at(0));
    assert_eq!(
        h.hit(&started("2", "api"), at(300)),
        Decision::Armed {
            key: "api".into(),
            deadline: at(600),
            triggers: 2
        }
    );
    let firings = h.tick(at(600));
    assert_eq!(firings.len(), 1);
    assert_eq!(firings[0].event.meta.id, "1");
    assert_eq!(firings[0].info.count, 2);
}

#[test]
fn expected_event_for_another_key_does_not_disarm() {
    let mut h = Harness::new(DEPLOY_MUST_FINISH);
    h.hit(&started("1", "api"), at(0));
    assert_eq!(
        h.send(&finished("2", "web"), false, at(10)),
        Decision::NotArmed { key: "web".into() }
    );
    assert_eq!(h.tick(at(600)).len(), 1);
}

#[test]
fn expected_event_after_the_deadline_is_late_and_the_absence_still_fires() {
    let mut h = Harness::new(DEPLOY_MUST_FINISH);
    h.hit(&started("1", "api"), at(0));
    assert_eq!(
        h.send(&finished("2", "api"), false, at(600)),
        Decision::Late {
            key: "api".into(),
            deadline: at(600)
        }
    );
    assert_eq!(h.tick(at(601)).len(), 1);
}

#[test]
fn an_event_satisfying_both_trigger_and_expect_never_arms() {
    let mut h = Harness::new(DEPLOY_MUST_FINISH);
    assert_eq!(
        h.hit(&finished("1", "api"), at(0)),
        Decision::NotArmed { key: "api".into() }
    );
    assert!(h.state.is_empty());
}

#[test]
fn events_that_neither_trigger_nor_satisfy_expect_are_no_match() {
    let mut h = Harness::new(DEPLOY_MUST_FINISH);
    assert_eq!(
        h.send(&started("1", "api"), false, at(0)),
        Decision::NoMatch
    );
    assert!(h.state.is_empty());
}

#[test]
fn absences_of_several_keys_fire_in_deadline_order() {
    let mut h = Harness::new(DEPLOY_MUST_FINISH);
    h.hit(&started("1", "web"), at(5));
    h.hit(&started("2", "api"), at(0));
    assert_eq!(h.deadline(), Some(at(600)));
    let ids: Vec<String> = h
        .tick(at(700))
        .into_iter()
        .map(|f| f.event.meta.id)
        .collect();
    assert_eq!(ids, ["2", "1"]);
}
