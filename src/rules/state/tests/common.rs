use serde_json::json;

use super::*;
use crate::rules::state::{MAX_KEY_LEN, StateError};

fn contains(messages: &[String], needle: &str) -> bool {
    messages.iter().any(|m| m.contains(needle))
}

#[test]
fn a_rule_without_stateful_block_is_stateless_and_fires_on_every_match() {
    let mut h = Harness::new("name: plain\n");
    assert!(h.behaviour.is_stateless());
    let firing = fired(h.hit(&event("1", json!({})), at(0)));
    assert_eq!(firing.info.count, 1);
    assert_eq!(firing.info.key, None);
    assert_eq!(
        h.send(&event("2", json!({})), false, at(1)),
        Decision::NoMatch
    );
    assert!(h.state.is_empty());
    assert_eq!(h.deadline(), None);
}

#[test]
fn two_stateful_blocks_are_rejected() {
    let messages = compile_errors(
        r#"
name: both
throttle: {once_within: 5m}
threshold: {count: 3, within: 5m}
"#,
    );
    assert!(
        contains(&messages, "`throttle` and `threshold`"),
        "{messages:?}"
    );
    assert!(contains(&messages, "at most one"), "{messages:?}");
}

#[test]
fn zero_count_is_rejected() {
    let messages = compile_errors("name: r\nthreshold: {count: 0, within: 5m}\n");
    assert!(contains(&messages, "between 1 and"), "{messages:?}");
}

#[test]
fn count_above_the_bound_is_rejected() {
    let messages = compile_errors("name: r\nthreshold: {count: 1000000, within: 5m}\n");
    assert!(
        contains(&messages, "`threshold.count` is 1000000"),
        "{messages:?}"
    );
}

#[test]
fn a_bad_duration_is_rejected_with_its_location() {
    let rule = parse_rule("name: r\nthrottle:\n  once_within: 10x\n");
    let mut diags = Diagnostics::new();
    assert!(Behaviour::compile(&rule, &mut diags).is_none());
    let items = diags.into_vec();
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(items[0].message.contains("unknown unit `x`"));
    assert_eq!(items[0].line, 3);
}

#[test]
fn a_zero_window_is_rejected() {
    let messages = compile_errors("name: r\nthrottle: {once_after: 0s}\n");
    assert!(
        contains(&messages, "`throttle.once_after` must be longer than zero"),
        "{messages:?}"
    );
}

#[test]
fn throttle_needs_exactly_one_mode() {
    let neither = compile_errors("name: r\nthrottle: {key: x}\n");
    assert!(contains(&neither, "needs `once_within` or `once_after`"));
    let both = compile_errors("name: r\nthrottle: {once_within: 1m, once_after: 1m}\n");
    assert!(contains(&both, "both `once_within` and `once_after`"));
}

#[test]
fn correlation_problems_are_all_reported_together() {
    let messages = compile_errors(
        r#"
name: r
correlate:
  key: "{{ event.pod }}"
  within: 0s
  all:
    - name: a
      condition: {path: reason, equals: X}
    - name: a
      condition: {path: reason, equals: Y}
    - name: no-condition
"#,
    );
    assert!(
        contains(&messages, "must be longer than zero"),
        "{messages:?}"
    );
    assert!(
        contains(&messages, "duplicate correlation step name `a`"),
        "{messages:?}"
    );
    assert!(contains(&messages, "not an identifier"), "{messages:?}");
    assert!(
        contains(&messages, "neither `when` nor `condition`"),
        "{messages:?}"
    );
}

#[test]
fn correlation_needs_at_least_two_steps() {
    let messages = compile_errors(
        r#"
name: r
correlate:
  key: "{{ event.pod }}"
  within: 1m
  all:
    - name: only
      condition: {path: reason, equals: X}
"#,
    );
    assert!(contains(&messages, "has 1 step(s)"), "{messages:?}");
}

#[test]
fn key_templates_cannot_use_match() {
    let messages = compile_errors("name: r\nthrottle: {key: '{{ match.key }}', once_within: 1m}\n");
    assert!(
        contains(&messages, "unknown variable `match`"),
        "{messages:?}"
    );
}

#[test]
fn absence_expect_needs_a_condition() {
    let messages = compile_errors(
        r#"
name: r
absence:
  key: "{{ event.pod }}"
  within: 1m
  expect: {name: done}
"#,
    );
    assert!(
        contains(&messages, "neither `when` nor `condition`"),
        "{messages:?}"
    );
}

#[test]
fn a_key_template_that_fails_to_render_is_an_error_not_a_panic() {
    let mut h = Harness::new("name: r\nthrottle: {key: '{{ event.pod }}', once_within: 1m}\n");
    let err = h
        .behaviour
        .on_event(
            &mut h.state,
            &event("1", json!({"node": "n"})),
            true,
            at(0),
            &h.limits,
        )
        .expect_err("`event.pod` is missing");
    assert!(
        matches!(&err, StateError::KeyRender { rule, .. } if rule == "r"),
        "{err:?}"
    );
    assert!(h.state.is_empty());
}

#[test]
fn a_key_longer_than_the_bound_is_an_error() {
    let mut h =
        Harness::new("name: r\nthreshold: {key: '{{ event.blob }}', count: 2, within: 1m}\n");
    let blob = "x".repeat(MAX_KEY_LEN + 1);
    let err = h
        .behaviour
        .on_event(
            &mut h.state,
            &event("1", json!({"blob": blob})),
            true,
            at(0),
            &h.limits,
        )
        .expect_err("key too long");
    assert_eq!(
        err,
        StateError::KeyTooLong {
            rule: "r".into(),
            len: MAX_KEY_LEN + 1
        }
    );
}

#[test]
fn keys_beyond_max_keys_evict_the_least_recently_updated_and_are_counted() {
    let mut h = Harness::new("name: r\nthrottle: {key: '{{ event.pod }}', once_within: 1h}\n");
    h.limits.max_keys = 2;
    let pod = |id: &str, p: &str| event(id, json!({"pod": p}));
    fired(h.hit(&pod("1", "a"), at(0)));
    fired(h.hit(&pod("2", "b"), at(1)));
    // Touching `a` makes `b` the least recently updated key.
    assert!(matches!(
        h.hit(&pod("3", "a"), at(2)),
        Decision::Suppressed { .. }
    ));
    fired(h.hit(&pod("4", "c"), at(3)));
    assert_eq!(h.state.evictions, 1);
    assert_eq!(h.state.len(), 2);
    assert_eq!(h.state.keys().collect::<Vec<_>>(), ["a", "c"]);
    // `b` lost its suppression with its state, so it fires again.
    fired(h.hit(&pod("5", "b"), at(4)));
    assert_eq!(h.state.evictions, 2);
}

#[test]
fn state_left_by_a_different_kind_of_block_is_dropped() {
    let mut threshold = Harness::new("name: r\nthreshold: {count: 5, within: 1h}\n");
    threshold.hit(&event("1", json!({})), at(0));
    let mut throttle = Harness::new("name: r\nthrottle: {once_within: 1h}\n");
    throttle.state = threshold.state.clone();
    fired(throttle.hit(&event("2", json!({})), at(1)));

    let mut absence = Harness::new(
        "name: r\nabsence: {key: x, within: 1m, expect: {name: e, condition: {path: done, exists: true}}}\n",
    );
    absence.state = threshold.state;
    assert!(absence.tick(at(3600)).is_empty());
    assert!(absence.state.is_empty());
}

/// Runs `steps` (event, main_matched, now) and ticks, split in two halves; the second half runs
/// once on the original state and once on a serialized-and-restored copy. Both must agree.
fn assert_restored_state_continues_identically(yaml: &str, steps: &[(Event, bool, i64)]) {
    let mut original = Harness::new(yaml);
    let (first, second) = steps.split_at(steps.len() / 2);
    for (e, matched, now) in first {
        original.send(e, *matched, at(*now));
    }
    let json = serde_json::to_string(&original.state).expect("state serializes");
    let mut restored = Harness::new(yaml);
    restored.state = serde_json::from_str(&json).expect("state deserializes");
    assert_eq!(
        serde_json::to_value(&restored.state).expect("serializes"),
        serde_json::to_value(&original.state).expect("serializes"),
        "round trip changes nothing"
    );
    assert_eq!(restored.deadline(), original.deadline());
    for (e, matched, now) in second {
        let a = original.send(e, *matched, at(*now));
        let b = restored.send(e, *matched, at(*now));
        assert_eq!(a, b);
        assert_eq!(original.tick(at(*now)), restored.tick(at(*now)));
    }
    let end = at(steps.last().map_or(0, |s| s.2) + 86_400);
    assert_eq!(original.tick(end), restored.tick(end));
    assert_eq!(original.state.evictions, restored.state.evictions);
}

#[test]
fn serialized_state_restores_and_continues_with_the_same_results() {
    let pod = |id: &str, p: &str, reason: &str| event(id, json!({"pod": p, "reason": reason}));
    let fp = |id: &str, f: &str| alert(id, f, json!({"pod": "a", "reason": "x"}));

    assert_restored_state_continues_identically(
        "name: r\nthrottle: {key: '{{ event.pod }}', once_within: 1m}\n",
        &[
            (pod("1", "a", "x"), true, 0),
            (pod("2", "b", "x"), true, 10),
            (pod("3", "a", "x"), true, 20),
            (pod("4", "b", "x"), true, 70),
        ],
    );
    assert_restored_state_continues_identically(
        "name: r\nthrottle: {key: '{{ event.pod }}', once_after: 1m}\n",
        &[
            (fp("1", "f1"), true, 0),
            (fp("2", "f2"), true, 10),
            (fp("3", "f1"), true, 30),
            (fp("4", "f3"), true, 90),
        ],
    );
    assert_restored_state_continues_identically(
        "name: r\nthreshold: {key: '{{ event.pod }}', count: 3, within: 1m}\n",
        &[
            (pod("1", "a", "x"), true, 0),
            (pod("2", "a", "x"), true, 10),
            (pod("3", "b", "x"), true, 20),
            (pod("4", "a", "x"), true, 30),
        ],
    );
    assert_restored_state_continues_identically(
        r#"
name: r
correlate:
  key: "{{ event.pod }}"
  within: 1m
  all:
    - {name: oom, condition: {path: reason, equals: OOMKilled}}
    - {name: backoff, condition: {path: reason, equals: BackOff}}
"#,
        &[
            (pod("1", "a", "OOMKilled"), true, 0),
            (pod("2", "b", "BackOff"), true, 10),
            (pod("3", "a", "BackOff"), true, 20),
            (pod("4", "b", "OOMKilled"), true, 80),
        ],
    );
    assert_restored_state_continues_identically(
        r#"
name: r
absence:
  key: "{{ event.pod }}"
  within: 1m
  expect: {name: done, condition: {path: reason, equals: Done}}
"#,
        &[
            (pod("1", "a", "Start"), true, 0),
            (pod("2", "b", "Start"), true, 10),
            (pod("3", "a", "Done"), false, 20),
            (pod("4", "b", "Start"), true, 30),
        ],
    );
}

#[test]
fn restored_once_after_state_still_fires_after_resolution() {
    let yaml = "name: r\nthrottle: {once_after: 1m}\n";
    let mut h = Harness::new(yaml);
    h.hit(&alert("1", "f1", json!({})), at(0));
    h.hit(&alert("2", "f2", json!({})), at(1));
    let json = serde_json::to_string(&h.state).expect("serializes");
    let mut restored = Harness::new(yaml);
    restored.state = serde_json::from_str(&json).expect("deserializes");
    assert_eq!(restored.resolve("f1"), 0);
    let firings = restored.tick(at(60));
    assert_eq!(firings.len(), 1);
    assert_eq!(firings[0].event.meta.id, "2");
    assert_eq!(firings[0].info.count, 1);
}

#[test]
fn next_deadline_is_the_earliest_across_keys() {
    let mut h = Harness::new("name: r\nthrottle: {key: '{{ event.pod }}', once_within: 1m}\n");
    fired(h.hit(&event("1", json!({"pod": "a"})), at(30)));
    fired(h.hit(&event("2", json!({"pod": "b"})), at(10)));
    assert_eq!(h.deadline(), Some(at(70)));
}

#[test]
fn decisions_explain_themselves_in_words() {
    let text = Decision::Counting {
        key: "n1".into(),
        seen: 2,
        needed: 3,
    }
    .to_string();
    assert!(text.contains("n1") && text.contains("2 of 3"), "{text}");
}

#[test]
fn behaviours_and_state_can_be_shared_across_threads() {
    fn shareable<T: Clone + std::fmt::Debug + Send + Sync>() {}
    shareable::<Behaviour>();
    shareable::<RuleState>();
}
