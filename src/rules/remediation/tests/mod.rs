//! The pure remediation state machine (`progress.rs`) driven by hand: verification, escalation,
//! refires, the Kubernetes check, undo, escalation rendering; its compile errors
//! (`compile.rs`) and a property test over any sequence of observations (`props.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::object::{describe_target, object_of};
use super::progress::occurrence;
use super::*;
use crate::event::Event;
use crate::event::decode::{Decoding, decode_json};
use crate::rules::engine::{Engine, PlannedAction, idempotency_key};
use crate::rules::ruleset::{Rule, RuleSet};
use crate::rules::state::MatchInfo;

mod compile;
mod props;

/// The rules every test here draws from.
const RULES: &str = r#"rules:
  - name: restart-then-rollback-then-page
    select: {formats: [alertmanager]}
    actions:
      - restart: {target: {namespace: "{{ event.labels.namespace }}", name: "{{ event.labels.deployment }}"}}
    verify: {within: 10m, alert_resolved: true}
    escalate:
      - actions:
          - rollback: {target: {namespace: "{{ event.labels.namespace }}", name: "{{ event.labels.deployment }}"}}
        verify: {within: 5m, alert_resolved: true}
      - actions:
          - webhook: {url: "http://127.0.0.1:9/page", body: {text: "{{ event.labels.deployment }} still crashes"}}
  - name: restart-then-rollback
    select: {formats: [alertmanager]}
    actions:
      - restart: {target: {namespace: shop, name: web}}
    verify: {within: 10m, alert_resolved: true}
    escalate:
      - actions: [{rollback: {target: {namespace: shop, name: web}}}]
        verify: {within: 5m, alert_resolved: true}
  - name: scale-unless-refired
    select: {formats: [json]}
    actions: [{scale: {target: {namespace: shop, name: web}, change: "+1", max: 10}}]
    verify: {within: 10m, no_refire: true}
  - name: scale-until-ready
    select: {formats: [json]}
    actions: [{scale: {target: {namespace: shop, name: web}, replicas: 3}}]
    verify:
      within: 2m
      every: 10s
      kubernetes: {when: 'status.readyReplicas >= 3'}
  - name: page-until-api-ready
    select: {formats: [json]}
    actions: [{webhook: {url: "http://127.0.0.1:9/page", body: {}}}]
    verify:
      within: 2m
      kubernetes:
        target: {namespace: "{{ event.ns }}", name: api}
        when: 'status.readyReplicas >= 1'
  - name: scale-up-until-resolved
    select: {formats: [alertmanager]}
    actions: [{scale: {target: {namespace: shop, name: web}, replicas: 5}}]
    verify: {within: 10m, alert_resolved: true}
    undo: {on_resolve: true, after: 2h}
  - name: scale-up-for-an-hour
    select: {formats: [alertmanager]}
    actions: [{scale: {target: {namespace: shop, name: web}, replicas: 5}}]
    undo: {after: 1h}
  - name: restart-unverified
    select: {formats: [alertmanager]}
    actions: [{restart: {target: {namespace: shop, name: web}}}]
  - name: escalate-to-a-missing-field
    select: {formats: [alertmanager]}
    actions: [{restart: {target: {namespace: shop, name: web}}}]
    verify: {within: 1m, alert_resolved: true}
    escalate:
      - actions: [{webhook: {url: "http://127.0.0.1:9/page", body_text: "{{ event.labels.nowhere }}"}}]
"#;

fn t0() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().expect("RFC 3339")
}

fn at(minutes: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(minutes)
}

fn rule_set() -> Arc<RuleSet> {
    let sources = [("r.yaml".into(), RULES.to_owned())];
    Arc::new(crate::rules::load_sources(&sources).unwrap_or_else(|e| panic!("{e}")))
}

/// An Alertmanager alert for deployment `shop/web` that started at `t0`, firing or resolved.
fn alert(status: &str) -> Event {
    let value = json!({
        "version": "4", "status": status, "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {},
        "alerts": [{
            "status": status,
            "labels": {"alertname": "CrashLoop", "namespace": "shop", "deployment": "web"},
            "annotations": {},
            "startsAt": "2026-01-01T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "f00d"
        }]
    });
    decode(value, Decoding::Alertmanager)
}

fn decode(value: Value, decoding: Decoding) -> Event {
    decode_json(
        value,
        "t",
        0,
        0,
        None,
        &BTreeMap::new(),
        Some(t0()),
        decoding,
    )
    .expect("decodes")
    .remove(0)
}

fn json_event(value: Value) -> Event {
    decode(value, Decoding::Json)
}

/// One rule of [`RULES`] and the remediations it starts.
struct Fixture {
    rules: Arc<RuleSet>,
    name: &'static str,
}

impl Fixture {
    fn new(name: &'static str) -> Fixture {
        Fixture {
            rules: rule_set(),
            name,
        }
    }

    fn rule(&self) -> &Rule {
        self.rules.get(self.name).expect("the rule exists")
    }

    /// The rule fires on `event` at `now` (its step 0 planned by the real engine), and the step
    /// ends as `end` with `undo` recorded.
    fn start(&self, event: Event, end: StepEnd, undo: Vec<Value>) -> (Progress, Vec<Effect>) {
        let mut engine = Engine::new(Arc::clone(&self.rules));
        let planned: Vec<PlannedAction> = engine
            .process(&event, t0())
            .planned
            .into_iter()
            .filter(|p| p.rule == self.name)
            .collect();
        assert!(!planned.is_empty(), "{} fires", self.name);
        let actions: Vec<&crate::rules::action::Action> =
            planned.iter().map(|p| &p.action).collect();
        let target = actions
            .iter()
            .find_map(|a| object_of(a))
            .map(|t| describe_target(&t));
        let id = remediation_id(&event.meta.id, self.name);
        let mut progress =
            Progress::new(id, self.rule(), event, MatchInfo::default(), target, t0());
        let effects = progress.acted(self.rule(), end, &actions, undo, t0());
        (progress, effects)
    }

    /// Runs escalation step `step` (rendered by `plan_step`), ending as `end` at `now`.
    fn run_step(&self, p: &mut Progress, step: usize, end: StepEnd, now: DateTime<Utc>) {
        let (planned, failures) = p.plan_step(self.rule(), step);
        assert!(failures.is_empty(), "{failures:?}");
        let actions: Vec<_> = planned.iter().map(|p| &p.action).collect();
        let effects = p.acted(self.rule(), end, &actions, Vec::new(), now);
        assert!(effects.is_empty() || end == StepEnd::Failed, "{effects:?}");
    }
}

fn resolved(minutes: i64) -> Observed {
    Observed {
        resolved_at: Some(at(minutes)),
        ..Observed::default()
    }
}

fn refired(minutes: i64) -> Observed {
    Observed {
        refired_at: Some(at(minutes)),
        ..Observed::default()
    }
}

fn object(read: Result<Option<Value>, &str>) -> Observed {
    Observed {
        object: Some(read.map_err(str::to_owned)),
        ..Observed::default()
    }
}

#[test]
fn an_alert_resolved_before_the_deadline_verifies_the_step() {
    let f = Fixture::new("restart-then-rollback-then-page");
    let (mut p, effects) = f.start(alert("firing"), StepEnd::Succeeded, Vec::new());
    assert!(effects.is_empty());
    // A first look at once (the alert may have resolved while the actions ran), then the
    // deadline.
    assert_eq!(
        (p.stage, p.deadline, p.due()),
        (Stage::Verifying, Some(at(10)), Some(at(0)))
    );
    assert_eq!(p.target.as_deref(), Some("deployment/shop/web"));

    assert!(p.judge(f.rule(), &Observed::default(), at(3)).is_empty());
    assert_eq!(p.waiting_for, ["the alert has not resolved"]);
    assert_eq!(p.stage, Stage::Verifying);

    let effects = p.judge(f.rule(), &resolved(4), at(4));
    assert_eq!(
        effects,
        [Effect::Verified {
            step: 0,
            took: Duration::minutes(4),
            checks: vec!["the alert resolved".to_owned()],
        }]
    );
    assert_eq!(
        (p.stage, p.ending, p.due()),
        (Stage::Done, Some(Ending::Verified), None)
    );
    assert_eq!(p.steps[0].result, "verified");
    assert_eq!(p.steps[0].judged_at, Some(at(4)));
}

#[test]
fn an_alert_still_firing_at_the_deadline_escalates_step_by_step() {
    let f = Fixture::new("restart-then-rollback-then-page");
    let (mut p, _) = f.start(alert("firing"), StepEnd::Succeeded, Vec::new());
    let effects = p.judge(f.rule(), &Observed::default(), at(10));
    assert_eq!(
        effects,
        [
            Effect::Ineffective {
                step: 0,
                took: Duration::minutes(10),
                reasons: vec!["the alert has not resolved".to_owned()],
                escalating_to: Some(1),
            },
            Effect::RunStep(1),
        ]
    );
    assert_eq!((p.stage, p.step, p.due()), (Stage::Acting, 1, None));

    f.run_step(&mut p, 1, StepEnd::Succeeded, at(10));
    assert_eq!((p.stage, p.deadline), (Stage::Verifying, Some(at(15))));
    let effects = p.judge(f.rule(), &Observed::default(), at(15));
    assert!(matches!(
        effects[..],
        [
            Effect::Ineffective {
                step: 1,
                escalating_to: Some(2),
                ..
            },
            Effect::RunStep(2)
        ]
    ));

    // The page has nothing to verify: the remediation is complete once it is sent.
    f.run_step(&mut p, 2, StepEnd::Succeeded, at(15));
    assert_eq!((p.stage, p.ending), (Stage::Done, Some(Ending::Completed)));
    let results: Vec<_> = p
        .steps
        .iter()
        .map(|s| (s.step, s.result.as_str()))
        .collect();
    assert_eq!(
        results,
        [(0, "ineffective"), (1, "ineffective"), (2, "succeeded")]
    );
}

#[test]
fn an_ineffective_last_step_ends_the_remediation_ineffective() {
    let f = Fixture::new("restart-then-rollback");
    let (mut p, _) = f.start(alert("firing"), StepEnd::Succeeded, Vec::new());
    p.judge(f.rule(), &Observed::default(), at(10));
    f.run_step(&mut p, 1, StepEnd::Succeeded, at(10));
    assert!(p.judge(f.rule(), &Observed::default(), at(14)).is_empty());
    let effects = p.judge(f.rule(), &Observed::default(), at(15));
    assert!(matches!(
        effects[..],
        [Effect::Ineffective {
            step: 1,
            escalating_to: None,
            ..
        }]
    ));
    assert_eq!(
        (p.stage, p.ending, p.due()),
        (Stage::Done, Some(Ending::Ineffective), None)
    );
}

#[test]
fn a_failed_step_escalates_at_once_and_a_failed_last_step_ends_failed() {
    let f = Fixture::new("restart-then-rollback");
    let (mut p, effects) = f.start(alert("firing"), StepEnd::Failed, Vec::new());
    assert_eq!(effects, [Effect::RunStep(1)]);
    assert_eq!(p.steps[0].result, "failed");
    f.run_step(&mut p, 1, StepEnd::Failed, at(0));
    assert_eq!((p.stage, p.ending), (Stage::Done, Some(Ending::Failed)));
}

#[test]
fn a_step_that_executed_nothing_ends_not_acted() {
    let f = Fixture::new("restart-then-rollback");
    let (p, effects) = f.start(alert("firing"), StepEnd::NotActed, Vec::new());
    assert!(effects.is_empty());
    assert_eq!(
        (p.stage, p.ending, p.due()),
        (Stage::Done, Some(Ending::NotActed), None)
    );
}

#[test]
fn a_rule_without_verify_completes_when_its_actions_succeed() {
    let f = Fixture::new("restart-unverified");
    assert!(
        f.rule().remediation.is_some(),
        "a Kubernetes action has a loop guard"
    );
    let (p, effects) = f.start(alert("firing"), StepEnd::Succeeded, Vec::new());
    assert!(effects.is_empty());
    assert_eq!((p.stage, p.ending), (Stage::Done, Some(Ending::Completed)));
}

#[test]
fn a_refire_within_the_window_is_ineffective_at_once_and_none_verifies_at_the_deadline() {
    let f = Fixture::new("scale-unless-refired");
    let event = || json_event(json!({"kind": "busy"}));

    let (mut p, _) = f.start(event(), StepEnd::Succeeded, Vec::new());
    assert!(
        p.judge(f.rule(), &refired(-1), at(1)).is_empty(),
        "a refire before the step is old news"
    );
    let effects = p.judge(f.rule(), &refired(2), at(2));
    assert_eq!(
        effects,
        [Effect::Ineffective {
            step: 0,
            took: Duration::minutes(2),
            reasons: vec!["the rule fired again for the target".to_owned()],
            escalating_to: None,
        }]
    );
    assert_eq!(p.ending, Some(Ending::Ineffective));

    let (mut p, _) = f.start(event(), StepEnd::Succeeded, Vec::new());
    assert!(p.judge(f.rule(), &Observed::default(), at(5)).is_empty());
    assert_eq!(p.waiting_for, ["the window for a refire is not over"]);
    assert_eq!(p.due(), Some(at(10)));
    let effects = p.judge(f.rule(), &Observed::default(), at(10));
    assert!(
        matches!(&effects[..], [Effect::Verified { checks, .. }] if checks == &["the rule did not fire again"])
    );
}

#[test]
fn a_refire_fails_an_alert_verification_too() {
    let f = Fixture::new("restart-then-rollback");
    let (mut p, _) = f.start(alert("firing"), StepEnd::Succeeded, Vec::new());
    let effects = p.judge(f.rule(), &refired(1), at(1));
    assert!(matches!(
        &effects[..],
        [Effect::Ineffective { step: 0, reasons, escalating_to: Some(1), .. }, Effect::RunStep(1)]
            if reasons.contains(&"the rule fired again for the target".to_owned())
    ));
}

#[test]
fn a_kubernetes_when_is_read_every_interval_until_it_holds() {
    let f = Fixture::new("scale-until-ready");
    let (mut p, _) = f.start(
        json_event(json!({"kind": "busy"})),
        StepEnd::Succeeded,
        Vec::new(),
    );
    let web = p
        .object
        .clone()
        .expect("the scale target is the object read");
    assert_eq!(describe_target(&web), "deployment/shop/web");
    assert_eq!(p.due(), Some(at(0)), "read at once");

    let tick = |s: i64| t0() + Duration::seconds(s);
    assert!(p.judge(f.rule(), &object(Ok(None)), tick(0)).is_empty());
    assert_eq!(p.waiting_for, ["deployment/shop/web does not exist"]);
    assert_eq!(p.due(), Some(tick(10)));

    let one_ready = json!({"kind": "Deployment", "status": {"readyReplicas": 1}});
    assert!(
        p.judge(f.rule(), &object(Ok(Some(one_ready.clone()))), tick(10))
            .is_empty()
    );
    assert_eq!(p.waiting_for, ["deployment/shop/web: `when` does not hold"]);

    assert!(
        p.judge(f.rule(), &object(Err("forbidden")), tick(20))
            .is_empty()
    );
    assert_eq!(
        p.waiting_for,
        ["deployment/shop/web could not be read: forbidden"]
    );

    // The last read is never scheduled past the deadline.
    assert!(
        p.judge(f.rule(), &object(Ok(Some(one_ready))), tick(115))
            .is_empty()
    );
    assert_eq!(p.due(), Some(tick(120)));

    let ready = json!({"kind": "Deployment", "status": {"readyReplicas": 3}});
    let effects = p.judge(f.rule(), &object(Ok(Some(ready))), tick(118));
    assert!(
        matches!(&effects[..], [Effect::Verified { checks, .. }] if checks == &["deployment/shop/web: `when` holds"])
    );
}

#[test]
fn a_kubernetes_check_with_a_target_reads_that_object_rendered_from_the_event() {
    let f = Fixture::new("page-until-api-ready");
    let (mut p, _) = f.start(
        json_event(json!({"ns": "payments"})),
        StepEnd::Succeeded,
        Vec::new(),
    );
    let api = p.object.clone().expect("the check's target");
    assert_eq!(describe_target(&api), "deployment/payments/api");
    assert_eq!(p.target, None, "a webhook names no object");
    let effects = p.judge(f.rule(), &object(Ok(None)), at(2));
    assert!(
        matches!(&effects[..], [Effect::Ineffective { reasons, .. }] if reasons == &["deployment/payments/api does not exist"])
    );
}

#[test]
fn undo_runs_when_the_alert_resolves() {
    let f = Fixture::new("scale-up-until-resolved");
    let found = json!({"replicas": 2});
    let (mut p, _) = f.start(alert("firing"), StepEnd::Succeeded, vec![found.clone()]);
    assert_eq!(p.undo_due, Some(at(120)));
    assert_eq!(
        p.due(),
        Some(at(0)),
        "the first look at the verification comes first"
    );
    let effects = p.judge(f.rule(), &resolved(3), at(3));
    assert!(
        matches!(&effects[..], [Effect::Undo(plans), Effect::Verified { .. }] if plans == std::slice::from_ref(&found))
    );
    assert_eq!(
        (p.stage, p.ending, p.due()),
        (Stage::Done, Some(Ending::Verified), None)
    );
}

#[test]
fn undo_runs_after_its_delay_and_waits_in_undoing_until_then() {
    let f = Fixture::new("scale-up-for-an-hour");
    let found = json!({"replicas": 2});
    let (mut p, _) = f.start(alert("firing"), StepEnd::Succeeded, vec![found.clone()]);
    assert_eq!(
        (p.stage, p.ending),
        (Stage::Undoing, Some(Ending::Completed))
    );
    assert_eq!(p.due(), Some(at(60)));
    assert!(
        p.judge(f.rule(), &resolved(5), at(5)).is_empty(),
        "not on resolve"
    );
    assert!(p.judge(f.rule(), &Observed::default(), at(59)).is_empty());
    assert_eq!(
        p.judge(f.rule(), &Observed::default(), at(60)),
        [Effect::Undo(vec![found])]
    );
    assert_eq!((p.stage, p.due()), (Stage::Done, None));
    assert!(
        p.judge(f.rule(), &resolved(61), at(61)).is_empty(),
        "undone once"
    );
}

#[test]
fn nothing_is_undone_when_no_reversible_change_was_made() {
    let f = Fixture::new("scale-up-for-an-hour");
    let (p, _) = f.start(alert("firing"), StepEnd::Failed, Vec::new());
    assert_eq!(
        (p.stage, p.ending, p.due()),
        (Stage::Done, Some(Ending::Failed), None)
    );
}

#[test]
fn escalation_actions_render_from_the_stored_event_with_stable_keys() {
    let f = Fixture::new("restart-then-rollback-then-page");
    let event = alert("firing");
    let event_id = event.meta.id.clone();
    let (p, _) = f.start(event, StepEnd::Succeeded, Vec::new());
    assert_eq!(
        p.id,
        remediation_id(&event_id, f.name),
        "derived, not random"
    );
    assert_ne!(p.id, remediation_id(&event_id, "restart-then-rollback"));

    let (rollback, failures) = p.plan_step(f.rule(), 1);
    assert!(failures.is_empty());
    let [action] = &rollback[..] else {
        panic!("one rollback: {rollback:?}")
    };
    assert_eq!(action.kind().as_str(), "rollback");
    assert_eq!(action.action.params_json()["target"]["name"], "web");
    assert_eq!(action.event_id, event_id);
    assert_eq!(action.idempotency_key, step_key(&p.id, 1, 0));
    assert_eq!(
        action.remediation,
        Some(StepRef {
            id: p.id.clone(),
            step: 1
        })
    );
    assert_eq!(
        p.plan_step(f.rule(), 1).0,
        rollback,
        "asking again plans the same keys"
    );
    assert_ne!(
        action.idempotency_key,
        idempotency_key(&event_id, f.name, 0),
        "not step 0's key"
    );

    let (page, _) = p.plan_step(f.rule(), 2);
    assert_eq!(
        page[0].action.params_json()["body"]["text"],
        "web still crashes"
    );
    assert_ne!(page[0].idempotency_key, action.idempotency_key);

    let (own, _) = p.plan_step(f.rule(), 0);
    assert_eq!(
        own[0].idempotency_key,
        crate::rules::engine::idempotency_key(&p.event.meta.id, &p.rule, 0),
        "step 0 is the rule's own actions, under the keys the engine gave them"
    );
    assert!(p.plan_step(f.rule(), 3).0.is_empty(), "no such step");
}

#[test]
fn an_escalation_action_that_cannot_render_is_a_failure_naming_the_step() {
    let f = Fixture::new("escalate-to-a-missing-field");
    let (p, _) = f.start(alert("firing"), StepEnd::Succeeded, Vec::new());
    let (planned, failures) = p.plan_step(f.rule(), 1);
    assert!(planned.is_empty());
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].message.starts_with("escalation step 1: "),
        "{}",
        failures[0].message
    );
    assert_eq!(failures[0].idempotency_key, Some(step_key(&p.id, 1, 0)));
}

#[test]
fn the_firing_and_the_resolved_alert_share_one_occurrence() {
    let firing = occurrence(&alert("firing")).expect("an alert");
    assert_eq!(Some(firing.clone()), occurrence(&alert("resolved")));
    assert_eq!(firing, "f00d/2026-01-01T00:00:00Z");
    assert_eq!(occurrence(&json_event(json!({"a": 1}))), None);
}
