use serde_json::json;

use super::*;

pub(super) const OOM_THEN_BACKOFF: &str = r#"
name: oom-then-backoff
correlate:
  key: "{{ event.pod }}"
  within: 5m
  all:
    - name: oom
      condition: {path: reason, equals: OOMKilled}
    - name: backoff
      when: 'reason == "BackOff"'
"#;

fn k8s(id: &str, pod: &str, reason: &str) -> Event {
    event(id, json!({"pod": pod, "reason": reason}))
}

#[test]
fn correlation_fires_when_every_step_is_seen_within_the_window() {
    let mut h = Harness::new(OOM_THEN_BACKOFF);
    assert_eq!(
        h.hit(&k8s("1", "api-1", "OOMKilled"), at(0)),
        Decision::Waiting {
            key: "api-1".into(),
            seen: vec!["oom".into()],
            missing: vec!["backoff".into()],
            expires: at(300)
        }
    );
    let firing = fired(h.hit(&k8s("2", "api-1", "BackOff"), at(120)));
    assert_eq!(firing.event.meta.id, "2", "the completing event triggers");
    assert_eq!(firing.info.key.as_deref(), Some("api-1"));
    assert_eq!(firing.info.count, 2);
    assert_eq!(firing.info.first_at, Some(at(0)));
    assert_eq!(
        firing.info.events,
        BTreeMap::from([
            (
                "oom".to_owned(),
                json!({"pod": "api-1", "reason": "OOMKilled"})
            ),
            (
                "backoff".to_owned(),
                json!({"pod": "api-1", "reason": "BackOff"})
            ),
        ])
    );
    assert!(h.state.is_empty(), "the key resets after firing");
}

#[test]
fn correlation_steps_may_arrive_in_any_order() {
    let mut h = Harness::new(OOM_THEN_BACKOFF);
    h.hit(&k8s("1", "api-1", "BackOff"), at(0));
    let firing = fired(h.hit(&k8s("2", "api-1", "OOMKilled"), at(1)));
    assert_eq!(firing.event.meta.id, "2");
}

#[test]
fn correlation_steps_older_than_the_window_no_longer_count() {
    let mut h = Harness::new(OOM_THEN_BACKOFF);
    h.hit(&k8s("1", "api-1", "OOMKilled"), at(0));
    assert_eq!(
        h.hit(&k8s("2", "api-1", "BackOff"), at(300)),
        Decision::Waiting {
            key: "api-1".into(),
            seen: vec!["backoff".into()],
            missing: vec!["oom".into()],
            expires: at(600)
        }
    );
}

#[test]
fn correlation_keeps_the_latest_event_of_each_step() {
    let mut h = Harness::new(OOM_THEN_BACKOFF);
    h.hit(&k8s("1", "api-1", "OOMKilled"), at(0));
    h.hit(
        &event("2", json!({"pod": "api-1", "reason": "OOMKilled", "n": 2})),
        at(240),
    );
    // 6 minutes after the first OOM, but 2 minutes after the second.
    let firing = fired(h.hit(&k8s("3", "api-1", "BackOff"), at(360)));
    assert_eq!(firing.info.first_at, Some(at(240)));
    assert_eq!(firing.info.events["oom"]["n"], json!(2));
}

#[test]
fn correlation_does_not_join_events_with_different_keys() {
    let mut h = Harness::new(OOM_THEN_BACKOFF);
    h.hit(&k8s("1", "api-1", "OOMKilled"), at(0));
    assert!(matches!(
        h.hit(&k8s("2", "api-2", "BackOff"), at(1)),
        Decision::Waiting { .. }
    ));
    assert_eq!(h.state.len(), 2);
}

#[test]
fn events_matching_no_step_are_no_match_and_keep_no_state() {
    let mut h = Harness::new(OOM_THEN_BACKOFF);
    assert_eq!(
        h.hit(&k8s("1", "api-1", "Pulled"), at(0)),
        Decision::NoMatch
    );
    assert!(h.state.is_empty());
}

#[test]
fn the_rules_own_condition_filters_every_correlation_step() {
    let mut h = Harness::new(OOM_THEN_BACKOFF);
    assert_eq!(
        h.send(&k8s("1", "api-1", "OOMKilled"), false, at(0)),
        Decision::NoMatch
    );
    assert!(h.state.is_empty());
}

#[test]
fn one_event_can_satisfy_several_steps() {
    let mut h = Harness::new(
        r#"
name: both
correlate:
  key: "{{ event.pod }}"
  within: 1m
  all:
    - name: crit
      condition: {path: severity, equals: critical}
    - name: oom
      condition: {path: reason, equals: OOMKilled}
"#,
    );
    let firing = fired(h.hit(
        &event(
            "1",
            json!({"pod": "a", "severity": "critical", "reason": "OOMKilled"}),
        ),
        at(0),
    ));
    assert_eq!(firing.info.events.len(), 2);
}

#[test]
fn partial_correlations_expire_on_tick() {
    let mut h = Harness::new(OOM_THEN_BACKOFF);
    h.hit(&k8s("1", "api-1", "OOMKilled"), at(0));
    assert_eq!(h.deadline(), Some(at(300)));
    assert!(h.tick(at(299)).is_empty());
    assert_eq!(h.state.len(), 1);
    assert!(h.tick(at(300)).is_empty());
    assert!(h.state.is_empty());
}
