//! The rule engine through its public API: loading, ordering, `stop`, the index, idempotency keys,
//! render failures, alert lifecycle and state persistence. Pure: no services needed.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use reflex::event::Event;
use reflex::event::decode::{Decoding, decode_json};
use reflex::rules::engine::{Verdict, idempotency_key};
use reflex::rules::{Engine, EngineState, LoadError, PlannedAction, RuleSet, load_sources};
use serde_json::{Value, json};

fn rules(yaml: &str) -> Arc<RuleSet> {
    match load_sources(&[("test.yaml".into(), yaml.to_string())]) {
        Ok(r) => Arc::new(r),
        Err(LoadError::Invalid(p)) => panic!("invalid rules: {p:#?}"),
        Err(e) => panic!("{e}"),
    }
}

/// The `message` parameter of a planned action, as its outcome records it.
fn message(planned: &PlannedAction) -> Value {
    planned.action.params_json()["message"].clone()
}

fn t0() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().expect("timestamp")
}

fn event(topic: &str, offset: i64, payload: Value) -> Event {
    decode_json(
        payload,
        topic,
        0,
        offset,
        None,
        &BTreeMap::new(),
        Some(t0()),
        Decoding::Auto,
    )
    .expect("decodes")
    .remove(0)
}

fn alert(status: &str, fingerprint: &str, labels: Value) -> Value {
    json!({
        "version": "4", "status": status, "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "alerts": [{"status": status, "labels": labels, "annotations": {},
                    "startsAt": "2026-01-01T00:00:00Z",
                    "endsAt": if status == "resolved" { "2026-01-01T00:01:00Z" } else { "0001-01-01T00:00:00Z" },
                    "fingerprint": fingerprint}]
    })
}

const TWO_RULES: &str = r#"
rules:
  - name: low
    priority: 1
    when: 'kind == "a"'
    actions: [{log: {message: "low {{ event.n }}"}}]
  - name: high
    priority: 10
    when: 'kind == "a"'
    actions:
      - log: {message: "high {{ event.n }}"}
      - log: {message: "second"}
"#;

#[test]
fn higher_priority_rules_plan_first_and_actions_keep_their_order() {
    let mut engine = Engine::new(rules(TWO_RULES));
    let out = engine.process(&event("t", 1, json!({"kind": "a", "n": 7})), t0());
    let got: Vec<(&str, usize, Value)> = out
        .planned
        .iter()
        .map(|p| (p.rule.as_str(), p.action_index, message(p)))
        .collect();
    assert_eq!(
        got,
        vec![
            ("high", 0, json!("high 7")),
            ("high", 1, json!("second")),
            ("low", 0, json!("low 7"))
        ]
    );
}

#[test]
fn a_stop_rule_that_matches_hides_the_event_from_lower_rules() {
    let yaml = TWO_RULES.replace("    priority: 10\n", "    priority: 10\n    stop: true\n");
    let mut engine = Engine::new(rules(&yaml));
    let out = engine.process_traced(&event("t", 1, json!({"kind": "a", "n": 1})), t0());
    assert_eq!(out.planned.len(), 2);
    assert!(out.planned.iter().all(|p| p.rule == "high"));
    let low = out.trace.iter().find(|t| t.rule == "low").expect("traced");
    assert_eq!(low.verdict, Verdict::Stopped { by: "high".into() });
}

#[test]
fn idempotency_keys_are_deterministic_per_event_rule_and_action() {
    let mut a = Engine::new(rules(TWO_RULES));
    let mut b = Engine::new(rules(TWO_RULES));
    let ev = event("t", 5, json!({"kind": "a", "n": 1}));
    let first = a.process(&ev, t0()).planned;
    let again = b.process(&ev, t0() + Duration::hours(1)).planned;
    let keys = |v: &[reflex::rules::PlannedAction]| {
        v.iter()
            .map(|p| p.idempotency_key.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&first), keys(&again), "redelivery plans the same keys");
    assert_eq!(
        first[0].idempotency_key,
        idempotency_key(&ev.meta.id, "high", 0)
    );
    let unique: std::collections::HashSet<_> = keys(&first).into_iter().collect();
    assert_eq!(unique.len(), 3, "each action has its own key");
    let other = a
        .process(&event("t", 6, json!({"kind": "a", "n": 1})), t0())
        .planned;
    assert_ne!(
        other[0].idempotency_key, first[0].idempotency_key,
        "another event, another key"
    );
}

#[test]
fn an_action_that_cannot_render_fails_alone_and_the_others_still_run() {
    let yaml = r#"
rules:
  - name: r
    actions:
      - log: {message: "{{ event.missing.field }}"}
      - log: {message: "fine"}
"#;
    let mut engine = Engine::new(rules(yaml));
    let out = engine.process(&event("t", 1, json!({"x": 1})), t0());
    assert_eq!(out.planned.len(), 1);
    assert_eq!(out.planned[0].action_index, 1);
    assert_eq!(out.failures.len(), 1);
    assert_eq!(out.failures[0].action_index, Some(0));
    assert!(
        out.failures[0].message.contains("missing"),
        "{}",
        out.failures[0].message
    );
    assert!(out.failures[0].idempotency_key.is_some());
}

#[test]
fn disabled_rules_never_fire_and_dry_run_rules_mark_their_actions() {
    let yaml = r#"
rules:
  - name: off
    enabled: false
    actions: [{log: {message: x}}]
  - name: rehearsal
    dry_run: true
    actions: [{log: {message: x}}]
"#;
    let mut engine = Engine::new(rules(yaml));
    let out = engine.process(&event("t", 1, json!({})), t0());
    assert_eq!(out.planned.len(), 1);
    assert_eq!(out.planned[0].rule, "rehearsal");
    assert!(out.planned[0].dry_run);
}

/// The index must never change what fires: with many rules, the indexed path and the
/// full traced scan give the same planned actions for every event.
#[test]
fn indexed_evaluation_plans_exactly_what_a_full_scan_plans() {
    let mut yaml = String::from("rules:\n");
    for i in 0..200 {
        let cond = match i % 5 {
            0 => format!("labels.alertname == \"A{}\"", i % 17),
            1 => format!(
                "labels.alertname in [\"A{}\", \"A{}\"] and value > 0.5",
                i % 17,
                (i + 3) % 17
            ),
            2 => format!(
                "@topic == \"t{}\" and labels.severity == \"critical\"",
                i % 3
            ),
            3 => format!("labels.alertname =~ \"^A{}\"", i % 17),
            _ => format!("labels.code == {}", i % 4),
        };
        let topics = if i % 7 == 0 {
            "[t1]"
        } else if i % 7 == 1 {
            "[\"t*\"]"
        } else {
            "[]"
        };
        yaml.push_str(&format!(
            "  - name: r{i}\n    select: {{topics: {topics}}}\n    when: '{cond}'\n    actions: [{{log: {{message: x}}}}]\n"
        ));
    }
    let set = rules(&yaml);
    let mut indexed = Engine::new(Arc::clone(&set));
    let mut scanned = Engine::new(set);
    let mut fired = 0;
    for n in 0..300i64 {
        let payload = json!({
            "labels": {"alertname": format!("A{}", n % 19), "severity": if n % 2 == 0 { "critical" } else { "info" }},
            "value": (n % 10) as f64 / 10.0,
            "code": n % 5,
        });
        let ev = event(&format!("t{}", n % 4), n, payload);
        let a: Vec<String> = indexed
            .process(&ev, t0())
            .planned
            .into_iter()
            .map(|p| p.rule)
            .collect();
        let b: Vec<String> = scanned
            .process_traced(&ev, t0())
            .planned
            .into_iter()
            .map(|p| p.rule)
            .collect();
        assert_eq!(a, b, "event {n}");
        fired += a.len();
    }
    assert!(
        fired > 300,
        "the comparison must cover many firings, got {fired}"
    );
}

#[test]
fn a_resolved_alert_cancels_a_pending_burst_and_never_fires_a_firing_only_rule() {
    let yaml = r#"
rules:
  - name: after-burst
    select: {formats: [alertmanager]}
    throttle: {key: "{{ event.labels.pod }}", once_after: 5m}
    actions: [{log: {message: "{{ match.count }}"}}]
"#;
    let mut engine = Engine::new(rules(yaml));
    let firing = event(
        "alerts",
        1,
        alert("firing", "f1", json!({"alertname": "X", "pod": "p"})),
    );
    let resolved = event(
        "alerts",
        2,
        alert("resolved", "f1", json!({"alertname": "X", "pod": "p"})),
    );
    assert!(engine.process(&firing, t0()).planned.is_empty());
    assert!(engine.next_deadline().is_some());
    let out = engine.process(&resolved, t0() + Duration::minutes(1));
    assert!(
        out.planned.is_empty(),
        "resolved never fires a firing-only rule"
    );
    assert_eq!(out.cancelled, 1);
    let due = engine.tick(t0() + Duration::minutes(10));
    assert!(due.planned.is_empty(), "the cancelled burst does not fire");
}

#[test]
fn state_saved_and_restored_keeps_a_throttle_closed_across_a_restart() {
    let yaml = r#"
rules:
  - name: throttled
    throttle: {key: "{{ event.k }}", once_within: 10m}
    actions: [{log: {message: x}}]
  - name: stateless
    actions: [{log: {message: y}}]
"#;
    let set = rules(yaml);
    let mut before = Engine::new(Arc::clone(&set));
    assert_eq!(
        before
            .process(&event("t", 1, json!({"k": "a"})), t0())
            .planned
            .len(),
        2
    );
    let saved = serde_json::to_string(before.state()).expect("state serializes");
    assert!(
        !saved.contains("\"stateless\""),
        "stateless rules keep no state: {saved}"
    );
    let restored: EngineState = serde_json::from_str(&saved).expect("state deserializes");
    let mut after = Engine::with_state(set, restored);
    let out = after.process(
        &event("t", 2, json!({"k": "a"})),
        t0() + Duration::minutes(5),
    );
    let fired: Vec<&str> = out.planned.iter().map(|p| p.rule.as_str()).collect();
    assert_eq!(
        fired,
        vec!["stateless"],
        "the throttle is still closed after the restart"
    );
    let out = after.process(
        &event("t", 3, json!({"k": "b"})),
        t0() + Duration::minutes(5),
    );
    assert_eq!(out.planned.len(), 2, "other keys are independent");
}

#[test]
fn state_of_rules_removed_by_a_reload_is_dropped() {
    let old = rules(
        "rules:\n  - name: gone\n    throttle: {once_within: 1h}\n    actions: [{log: {message: x}}]\n",
    );
    let mut engine = Engine::new(old);
    engine.process(&event("t", 1, json!({})), t0());
    assert_eq!(engine.state().rules.len(), 1);
    engine.replace_rules(rules(
        "rules:\n  - name: new\n    actions: [{log: {message: x}}]\n",
    ));
    assert!(engine.state().rules.is_empty());
}

#[test]
fn templates_may_test_for_a_missing_field_but_never_print_one() {
    let yaml = r#"
rules:
  - name: r
    actions:
      - log: {message: "{% if event.team %}team {{ event.team }}{% else %}no team{% endif %}"}
      - log: {message: "{{ event.team }}"}
"#;
    let mut engine = Engine::new(rules(yaml));
    let out = engine.process(&event("t", 1, json!({})), t0());
    assert_eq!(out.planned.len(), 1);
    assert_eq!(message(&out.planned[0]), "no team");
    assert_eq!(
        out.failures.len(),
        1,
        "printing the missing field is an error, not an empty string"
    );
    let out = engine.process(&event("t", 2, json!({"team": "sre"})), t0());
    assert_eq!(message(&out.planned[0]), "team sre");
    assert_eq!(message(&out.planned[1]), "sre");
}

/// The absence rule's condition describes the arming event; the disarming event does not satisfy
/// it, so the index must not hide that event from the rule.
#[test]
fn an_absence_rule_indexed_by_nothing_but_its_selector_is_disarmed_by_the_expected_event() {
    let yaml = r#"
rules:
  - name: pipeline-stuck
    select: {topics: [ci]}
    when: 'status == "started"'
    absence:
      key: "{{ event.run }}"
      expect: {name: finished, when: 'status in ["succeeded", "failed"]'}
      within: 30m
    actions: [{log: {message: "run {{ event.run }} never finished"}}]
"#;
    let mut engine = Engine::new(rules(yaml));
    engine.process(
        &event("ci", 1, json!({"status": "started", "run": 1})),
        t0(),
    );
    engine.process(
        &event("ci", 2, json!({"status": "started", "run": 2})),
        t0(),
    );
    engine.process(
        &event("ci", 3, json!({"status": "succeeded", "run": 1})),
        t0() + Duration::minutes(10),
    );
    let fired = engine.tick(t0() + Duration::minutes(31));
    let messages: Vec<Value> = fired.planned.iter().map(message).collect();
    assert_eq!(
        messages,
        vec![json!("run 2 never finished")],
        "run 1 finished, run 2 did not"
    );
}

/// A rule indexed by `status == "firing"` is not a candidate for the resolved alert, yet the
/// resolved alert must still cancel the burst its firing opened.
#[test]
fn a_resolved_alert_cancels_bursts_even_in_rules_its_condition_does_not_match() {
    let yaml = r#"
rules:
  - name: after-burst
    select: {formats: [alertmanager], alert_status: any}
    when: 'status == "firing"'
    throttle: {key: "{{ event.labels.pod }}", once_after: 5m}
    actions: [{log: {message: x}}]
"#;
    let mut engine = Engine::new(rules(yaml));
    engine.process(
        &event(
            "alerts",
            1,
            alert("firing", "f9", json!({"alertname": "X", "pod": "p"})),
        ),
        t0(),
    );
    let out = engine.process(
        &event(
            "alerts",
            2,
            alert("resolved", "f9", json!({"alertname": "X", "pod": "p"})),
        ),
        t0() + Duration::minutes(1),
    );
    assert_eq!(out.cancelled, 1);
    assert!(engine.tick(t0() + Duration::minutes(10)).planned.is_empty());
}
