//! Whatever is observed, in whatever order, a remediation never panics and is over by the time
//! every step's window has run out.

use proptest::prelude::*;
use serde_json::json;

use super::*;

/// Every kind of check, three steps, and an undo that outlives them.
const CLOSED_LOOP: &str = r#"rules:
  - name: everything
    select: {formats: [alertmanager]}
    actions: [{scale: {target: {namespace: shop, name: web}, replicas: 5}}]
    verify:
      within: 10m
      alert_resolved: true
      kubernetes: {when: 'status.readyReplicas >= 5'}
    escalate:
      - actions: [{rollback: {target: {namespace: shop, name: web}}}]
        verify: {within: 5m, no_refire: true}
      - actions: [{webhook: {url: "http://127.0.0.1:9/page", body: {}}}]
        verify: {within: 3m, alert_resolved: true, every: 1s, kubernetes: {target: {namespace: shop, name: web}, when: 'status.readyReplicas >= 5'}}
    undo: {on_resolve: true, after: 30m}
"#;

/// Longest a remediation of [`CLOSED_LOOP`] can still verify from any moment: every window.
const ALL_WINDOWS: i64 = 10 + 5 + 3;
/// Its undo delay.
const UNDO_AFTER: i64 = 30;

#[derive(Debug, Clone)]
enum Op {
    /// Time passes (seconds).
    Advance(i64),
    /// The alert resolves.
    Resolve,
    /// The rule fires again for the target.
    Refire,
    /// The object now reads as ready or not.
    Object(bool),
    /// The object is gone.
    Deleted,
    /// The object cannot be read.
    Unreadable,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0i64..900).prop_map(Op::Advance),
        1 => Just(Op::Resolve),
        1 => Just(Op::Refire),
        1 => any::<bool>().prop_map(Op::Object),
        1 => Just(Op::Deleted),
        1 => Just(Op::Unreadable),
    ]
}

fn step_end() -> impl Strategy<Value = StepEnd> {
    prop_oneof![
        Just(StepEnd::Succeeded),
        Just(StepEnd::Failed),
        Just(StepEnd::NotActed)
    ]
}

/// Drives one remediation the way the pipeline does: judged when due or signalled, escalation
/// steps run at once and end as `ends` says.
struct Driver {
    rule: Rule,
    progress: Progress,
    observed: Observed,
    ends: Vec<StepEnd>,
    endings: usize,
}

impl Driver {
    fn handle(&mut self, effects: Vec<Effect>, now: DateTime<Utc>) {
        for effect in effects {
            self.check_invariants();
            match effect {
                Effect::RunStep(step) => {
                    assert_eq!(step, self.progress.step);
                    let (planned, failures) = self.progress.plan_step(&self.rule, step);
                    assert!(failures.is_empty(), "{failures:?}");
                    let actions: Vec<_> = planned.iter().map(|p| &p.action).collect();
                    let end = self.ends.get(step).copied().unwrap_or(StepEnd::Succeeded);
                    let more = self
                        .progress
                        .acted(&self.rule, end, &actions, Vec::new(), now);
                    self.handle(more, now);
                }
                Effect::Verified { took, .. } | Effect::Ineffective { took, .. } => {
                    assert!(took >= Duration::zero(), "{took}");
                    self.endings += 1;
                }
                Effect::Undo(plans) => assert!(!plans.is_empty()),
            }
        }
        self.check_invariants();
    }

    fn check_invariants(&self) {
        let p = &self.progress;
        if p.stage == Stage::Verifying {
            let deadline = p.deadline.expect("a verifying step has a deadline");
            assert!(p.due().is_some_and(|due| due <= deadline), "{p:?}");
        }
        assert_eq!(
            p.ending.is_some(),
            matches!(p.stage, Stage::Undoing | Stage::Done),
            "{p:?}"
        );
        assert!(p.step < 3, "{p:?}");
    }

    /// Judges whenever it is due, up to `until`.
    fn run_until(&mut self, until: DateTime<Utc>) {
        // Polls every second at most during the 3 minutes of the last step, every 5 s before.
        for _ in 0..2_000 {
            match self.progress.due() {
                Some(due) if due <= until => {
                    let effects = self.progress.judge(&self.rule, &self.observed, due);
                    self.handle(effects, due);
                }
                _ => return,
            }
        }
        panic!("still due after 2000 looks: {:?}", self.progress);
    }

    fn signal(&mut self, now: DateTime<Utc>) {
        let effects = self.progress.judge(&self.rule, &self.observed, now);
        self.handle(effects, now);
    }
}

proptest! {
    #[test]
    fn any_observations_end_the_remediation_by_the_last_deadline(
        ops in proptest::collection::vec(op(), 0..40),
        ends in proptest::collection::vec(step_end(), 3),
    ) {
        let sources = [("r.yaml".into(), CLOSED_LOOP.to_owned())];
        let rules = crate::rules::load_sources(&sources).expect("valid");
        let rule = rules.get("everything").expect("the rule").clone();
        let event = alert("firing");
        let planned = Engine::new(Arc::new(rules)).process(&event, t0()).planned;
        let actions: Vec<_> = planned.iter().map(|p| &p.action).collect();
        let id = remediation_id(&event.meta.id, &rule.name);
        let mut progress = Progress::new(id, &rule, event, MatchInfo::default(), None, t0());
        let undo = if ends[0] == StepEnd::Succeeded { vec![json!({"replicas": 2})] } else { Vec::new() };
        let effects = progress.acted(&rule, ends[0], &actions, undo, t0());
        let mut d = Driver { rule, progress, observed: Observed::default(), ends, endings: 0 };
        d.handle(effects, t0());

        let mut now = t0();
        for op in ops {
            match op {
                Op::Advance(seconds) => {
                    now += Duration::seconds(seconds);
                    d.run_until(now);
                }
                Op::Resolve => {
                    d.observed.resolved_at.get_or_insert(now);
                    d.signal(now);
                }
                Op::Refire => {
                    d.observed.refired_at = Some(now);
                    d.signal(now);
                }
                Op::Object(ready) => {
                    let replicas = if ready { 5 } else { 1 };
                    let object = json!({"kind": "Deployment", "status": {"readyReplicas": replicas}});
                    d.observed.object = Some(Ok(Some(object)));
                }
                Op::Deleted => d.observed.object = Some(Ok(None)),
                Op::Unreadable => d.observed.object = Some(Err("connection refused".to_owned())),
            }
        }

        d.run_until(now + Duration::minutes(ALL_WINDOWS));
        prop_assert!(d.progress.ending.is_some(), "not over: {:?}", d.progress);
        prop_assert!(d.endings <= 3, "judged {} times", d.endings);
        d.run_until(now + Duration::minutes(ALL_WINDOWS + UNDO_AFTER));
        prop_assert_eq!(d.progress.stage, Stage::Done);
        prop_assert!(d.progress.undo.is_empty());
        prop_assert_eq!(d.progress.due(), None);
    }
}
