//! The closed loop a firing would follow, for `reflex replay --explain`: what is verified and
//! within how long, the escalation steps rendered from the event (as the driver renders them,
//! with [`Progress::plan_step`]), the loop guard and the undo. Pure: nothing is executed or
//! stored.

use serde::Serialize;

use crate::rules::PlannedAction;
use crate::rules::duration::format as duration;
use crate::rules::engine::{Fired, RuleFailure};
use crate::rules::remediation::object::describe_target;
use crate::rules::remediation::progress::Progress;
use crate::rules::remediation::{Plan, Verify, object_of, remediation_id};
use crate::rules::ruleset::Rule;
use crate::rules::template::RenderContext;

/// The closed loop of one firing.
#[derive(Debug, Clone, Serialize)]
pub struct Chain {
    /// The rule.
    pub rule: String,
    /// The remediation id the firing would get (`reflex history --remediation ID`).
    pub id: String,
    /// The object it is about (the loop guard counts and quarantines per target).
    pub target: Option<String>,
    /// Step 0 (the rule's `actions`) and the escalation steps, in order.
    pub steps: Vec<StepView>,
    /// `loop_guard`, in words (`None`: off).
    pub loop_guard: Option<String>,
    /// `undo`, in words.
    pub undo: Option<String>,
    /// Why nothing would be followed up although the loop is declared.
    pub note: Option<String>,
}

/// One step as it would run.
#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    /// 0: the rule's `actions`; 1..: `escalate`.
    pub step: usize,
    /// Its actions, rendered from the triggering event.
    pub actions: Vec<PlannedAction>,
    /// Actions whose templates fail on this event.
    pub failures: Vec<RuleFailure>,
    /// What makes it worked, in words (`None`: nothing is verified; the step ends the loop).
    pub verify: Option<String>,
}

/// The chain of `fired` under `rule`; `None` when the rule has no closed loop.
pub fn chain(rule: &Rule, fired: &Fired) -> Option<Chain> {
    let plan = rule.remediation.as_ref()?;
    let event = &fired.firing.event;
    let id = remediation_id(&event.meta.id, &rule.name);
    let mut progress = Progress::new(
        id.clone(),
        rule,
        event.clone(),
        fired.firing.info.clone(),
        None,
        event.meta.timestamp,
    );
    let steps: Vec<StepView> = (0..plan.steps())
        .map(|step| {
            let (actions, failures) = progress.plan_step(rule, step);
            let verify = plan
                .verify_of(step)
                .map(|v| verify_text(v, rule, &progress, &actions));
            StepView {
                step,
                actions,
                failures,
                verify,
            }
        })
        .collect();
    // The driver's target: the first object a Kubernetes action names, else the first target.
    let first = &steps[0].actions;
    progress.target = first
        .iter()
        .find_map(|a| object_of(&a.action).map(|t| describe_target(&t)))
        .or_else(|| first.iter().find_map(|a| a.action.target()));
    let note = rule.dry_run.then(|| {
        "dry run: the actions are recorded, not executed, so the remediation ends `not_acted` \
         and nothing is verified"
            .to_owned()
    });
    Some(Chain {
        rule: rule.name.clone(),
        id,
        target: progress.target,
        steps,
        loop_guard: loop_guard_text(plan),
        undo: undo_text(plan),
        note,
    })
}

/// `alert_resolved, kubernetes rollout_complete on deployment/shop/web, no_refire within 10m`.
fn verify_text(
    verify: &Verify,
    rule: &Rule,
    progress: &Progress,
    actions: &[PlannedAction],
) -> String {
    let mut checks = Vec::new();
    if verify.alert_resolved {
        checks.push("alert_resolved".to_owned());
    }
    if let Some(check) = &verify.kubernetes {
        let object = match &check.target {
            Some(target) => {
                let ctx = RenderContext::new(&progress.event, &rule.name, Some(&progress.info));
                target
                    .render(&ctx)
                    .map(|t| describe_target(&t))
                    .unwrap_or_else(|err| format!("<target does not render: {err}>"))
            }
            None => actions
                .iter()
                .find_map(|a| object_of(&a.action).map(|t| describe_target(&t)))
                .unwrap_or_else(|| "<no object>".to_owned()),
        };
        let mut what = Vec::new();
        if let Some(readiness) = check.readiness {
            what.push(readiness.as_str().to_owned());
        }
        if let Some(when) = &check.when {
            what.push(format!("`{when}`"));
        }
        checks.push(format!("kubernetes {} on {object}", what.join(" and ")));
    }
    if verify.no_refire {
        checks.push("no_refire".to_owned());
    }
    format!("{} within {}", checks.join(", "), duration(verify.within))
}

fn loop_guard_text(plan: &Plan) -> Option<String> {
    let guard = plan.loop_guard.as_ref()?;
    let mut text = format!(
        "{} per {} per target, then quarantine {}",
        guard.max,
        duration(guard.within),
        duration(guard.quarantine)
    );
    if guard.notify.is_some() {
        text.push_str(" and notify");
    }
    Some(text)
}

fn undo_text(plan: &Plan) -> Option<String> {
    let undo = plan.undo?;
    let mut when = Vec::new();
    if undo.on_resolve {
        when.push("on resolve".to_owned());
    }
    if let Some(after) = undo.after {
        when.push(format!("after {}", duration(after)));
    }
    Some(when.join(" or "))
}

/// `rollback deployment/shop/web`, `webhook https://pager.example/page`, `log`.
fn action_text(action: &PlannedAction) -> String {
    let kind = action.kind().as_str();
    match action.action.target() {
        Some(target) => {
            let target = target
                .strip_prefix(&format!("{kind}/"))
                .unwrap_or(&target)
                .to_owned();
            format!("{kind} {target}")
        }
        None => kind.to_owned(),
    }
}

fn step_text(step: &StepView) -> String {
    let mut parts: Vec<String> = step.actions.iter().map(action_text).collect();
    parts.extend(step.failures.iter().map(|f| format!("✗ {}", f.message)));
    let mut text = format!("step {} {}", step.step, parts.join(", "));
    if let Some(verify) = &step.verify {
        text.push_str(&format!(" (verify: {verify})"));
    }
    text
}

impl Chain {
    /// The chain as indented lines for the text report.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "closed loop of {} on {} (remediation {}):",
            self.rule,
            self.target.as_deref().unwrap_or("-"),
            self.id
        )];
        if let Some(note) = &self.note {
            lines.push(format!("  {note}"));
        }
        lines.push(match &self.steps[0].verify {
            Some(verify) => format!("  then verify: {verify}"),
            None => "  then: nothing to verify; the remediation completes when the actions \
                     succeed"
                .to_owned(),
        });
        if self.steps[0].verify.is_some() {
            let escalation: Vec<String> = self.steps[1..].iter().map(step_text).collect();
            lines.push(if escalation.is_empty() {
                "  if ineffective: the remediation ends ineffective (no `escalate`)".to_owned()
            } else {
                format!("  if ineffective: {}", escalation.join(" → "))
            });
        }
        lines.push(format!(
            "  loop guard: {}",
            self.loop_guard.as_deref().unwrap_or("off")
        ));
        if let Some(undo) = &self.undo {
            lines.push(format!("  undo: {undo}"));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Engine;
    use std::sync::Arc;

    const RULES: &str = r#"
rules:
  - name: restart-crashlooping
    select: {formats: [alertmanager]}
    when: 'labels.alertname == "KubePodCrashLooping"'
    actions:
      - restart: {target: {namespace: "{{ event.labels.namespace }}", name: "{{ event.labels.deployment }}"}}
    verify:
      within: 10m
      alert_resolved: true
      kubernetes: {condition: rollout_complete}
    escalate:
      - actions:
          - rollback: {target: {namespace: "{{ event.labels.namespace }}", name: "{{ event.labels.deployment }}"}}
        verify: {within: 5m, alert_resolved: true}
      - actions:
          - webhook: {url: "https://pager.example/page", body: {summary: "{{ event.labels.deployment }}"}}
    loop_guard: {max: 2, within: 30m, quarantine: 12h}
"#;

    fn alert() -> crate::event::Event {
        let payload = serde_json::json!({
            "version": "4", "status": "firing", "receiver": "reflex",
            "groupKey": "g", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://am",
            "alerts": [{
                "status": "firing", "fingerprint": "f1",
                "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                "labels": {"alertname": "KubePodCrashLooping", "namespace": "shop", "deployment": "checkout"},
                "annotations": {}
            }]
        });
        let bytes = serde_json::to_vec(&payload).expect("JSON");
        let record = crate::event::decode::RawRecord {
            topic: "alerts",
            partition: 0,
            offset: 1,
            key: None,
            headers: Vec::new(),
            payload: Some(&bytes),
            timestamp: None,
        };
        crate::event::decode::decode(
            &record,
            crate::event::decode::Decoding::Alertmanager,
            &Default::default(),
        )
        .expect("an alert")
        .remove(0)
    }

    #[test]
    fn a_firing_rule_with_a_closed_loop_explains_verify_escalation_guard_in_order() {
        let rules = Arc::new(
            crate::rules::load_sources(&[("r.yaml".into(), RULES.to_owned())]).expect("valid"),
        );
        let event = alert();
        let mut engine = Engine::new(Arc::clone(&rules));
        let eval = engine.process(&event, event.meta.timestamp);
        let fired = eval.fired.first().expect("the rule fired");
        let rule = rules.get(&fired.rule).expect("the rule");
        let chain = chain(rule, fired).expect("a closed loop");
        assert_eq!(chain.target.as_deref(), Some("deployment/shop/checkout"));
        assert_eq!(chain.steps.len(), 3);
        assert_eq!(
            chain.lines(),
            [
                format!(
                    "closed loop of restart-crashlooping on deployment/shop/checkout \
                     (remediation {}):",
                    chain.id
                ),
                "  then verify: alert_resolved, kubernetes rollout_complete on \
                 deployment/shop/checkout within 10m"
                    .to_owned(),
                "  if ineffective: step 1 rollback deployment/shop/checkout (verify: alert_resolved \
                 within 5m) → step 2 webhook https://pager.example/page"
                    .to_owned(),
                "  loop guard: 2 per 30m per target, then quarantine 12h".to_owned(),
            ]
        );
        // The escalation actions carry the keys the driver gives them.
        let step1 = &chain.steps[1].actions[0];
        assert_eq!(
            step1.remediation.as_ref().map(|r| (r.id.as_str(), r.step)),
            Some((chain.id.as_str(), 1))
        );
        assert_eq!(
            step1.idempotency_key,
            crate::rules::remediation::step_key(&chain.id, 1, 0)
        );
    }
}
