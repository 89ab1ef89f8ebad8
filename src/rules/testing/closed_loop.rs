//! The closed loop in a rule test: every firing of a rule that has a remediation plan
//! (`Rule.remediation`) is followed through the same pure state machine the pipeline keeps in
//! the store ([`Progress`]), here in memory. Actions are assumed to succeed; Alertmanager
//! `resolved` events resolve their occurrence; the objects the test gives (`objects:`) are what
//! a Kubernetes check reads; the loop guard counts this case's remediations.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::event::Event;
use crate::rules::action::ActionKind;
use crate::rules::action::kubernetes::TargetParams;
use crate::rules::engine::{Evaluation, PlannedAction, RuleFailure, idempotency_key};
use crate::rules::remediation::object::{describe_target, object_of};
use crate::rules::remediation::progress::occurrence;
use crate::rules::remediation::{
    Effect, Ending, Observed, Progress, Stage, StepEnd, remediation_id,
};
use crate::rules::ruleset::{Rule, RuleSet};
use crate::rules::state::MatchInfo;
use crate::rules::template::RenderContext;

/// How a remediation (or a firing the loop guard refused) turned out, as a test expects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RemediationResult {
    /// A step's checks held.
    Verified,
    /// The last step's checks did not hold in time (or the rule fired again meanwhile).
    Ineffective,
    /// The last step's actions failed (in a test: an action could not render).
    Failed,
    /// The actions ran and nothing was to be verified.
    Completed,
    /// Nothing was executed (a dry-run rule).
    NotActed,
    /// The loop guard refused the firing: the target is quarantined, nothing was planned.
    Quarantined,
    /// The reversible changes of step 0 were undone (an entry of its own, after the
    /// remediation's result).
    Undone,
    /// Still acting or verifying when the case ended: advance the clock past the deadline.
    Pending,
}

impl RemediationResult {
    /// The name in test files.
    pub fn as_str(self) -> &'static str {
        match self {
            RemediationResult::Verified => "verified",
            RemediationResult::Ineffective => "ineffective",
            RemediationResult::Failed => "failed",
            RemediationResult::Completed => "completed",
            RemediationResult::NotActed => "not_acted",
            RemediationResult::Quarantined => "quarantined",
            RemediationResult::Undone => "undone",
            RemediationResult::Pending => "pending",
        }
    }
}

impl From<Ending> for RemediationResult {
    fn from(ending: Ending) -> Self {
        match ending {
            Ending::Verified => RemediationResult::Verified,
            Ending::Ineffective => RemediationResult::Ineffective,
            Ending::Failed => RemediationResult::Failed,
            Ending::Completed => RemediationResult::Completed,
            Ending::NotActed => RemediationResult::NotActed,
        }
    }
}

/// One planned action and the remediation step it belongs to (0: the rule's `actions`;
/// `None`: a loop guard's `notify`).
#[derive(Debug, Clone)]
pub struct Planned {
    /// The action.
    pub action: PlannedAction,
    /// Its step.
    pub step: Option<usize>,
}

/// One result, in the order results became known.
#[derive(Debug, Clone, Serialize)]
pub struct Judged {
    /// The rule.
    pub rule: String,
    /// The result.
    pub result: RemediationResult,
    /// The step it ended at (`None` for `quarantined`).
    pub step: Option<usize>,
    /// The object the rule acts on (`kind/namespace/name`), else its group key.
    pub target: Option<String>,
    /// When it became known.
    #[serde(skip)]
    pub at: DateTime<Utc>,
    /// Why: the checks as judged, or the quarantine.
    #[serde(skip)]
    pub why: String,
}

/// Everything a case produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Planned actions, in order.
    pub planned: Vec<Planned>,
    /// Rule failures.
    pub failures: Vec<RuleFailure>,
    /// Remediation results, in the order they became known.
    pub remediations: Vec<Judged>,
}

/// One simulated remediation.
#[derive(Debug)]
struct Remediation {
    progress: Progress,
    /// (rule, target or group key): the loop guard and refires go by it.
    key: String,
    /// When the rule last fired again for the key while this one was open.
    refired_at: Option<DateTime<Utc>>,
    /// The last judgement's lines.
    why: String,
    reported: bool,
}

/// The remediations of one test case.
#[derive(Debug)]
pub struct ClosedLoop {
    rules: Arc<RuleSet>,
    /// Every event of the case by id: a firing names its event by id only.
    events: HashMap<String, Event>,
    remediations: Vec<Remediation>,
    /// (rule, key) → quarantined until.
    quarantines: BTreeMap<(String, String), DateTime<Utc>>,
    /// Alert occurrence → when it resolved.
    resolved: HashMap<String, DateTime<Utc>>,
    /// (kind, namespace, name) → the object as the API server would return it.
    objects: BTreeMap<(String, String, String), Value>,
}

/// The actions of one firing of a rule: one event, one rule.
struct Firing {
    rule: String,
    event_id: String,
    planned: Vec<PlannedAction>,
    failures: Vec<RuleFailure>,
    /// What the engine's firing carried to templates (`match.*`), as the pipeline stores it.
    info: Option<MatchInfo>,
}

impl ClosedLoop {
    /// No remediation yet.
    pub fn new(rules: Arc<RuleSet>) -> ClosedLoop {
        ClosedLoop {
            rules,
            events: HashMap::new(),
            remediations: Vec::new(),
            quarantines: BTreeMap::new(),
            resolved: HashMap::new(),
            objects: BTreeMap::new(),
        }
    }

    /// Sets (or replaces) an object a Kubernetes check may read.
    pub fn set_object(&mut self, object: &Value) -> Result<(), String> {
        let text = |path: &str| object.pointer(path).and_then(Value::as_str);
        let (Some(kind), Some(name)) = (text("/kind"), text("/metadata/name")) else {
            return Err(
                "an object in `objects` needs `kind` and `metadata.name` (and \
                 `metadata.namespace` unless cluster-scoped), as the API server returns it"
                    .to_owned(),
            );
        };
        let namespace = text("/metadata/namespace").unwrap_or_default();
        let key = (kind.to_owned(), namespace.to_owned(), name.to_owned());
        self.objects.insert(key, object.clone());
        Ok(())
    }

    /// An event arrived: remember it, and when it resolves an alert occurrence, look at the
    /// remediations it triggered at once (the pipeline makes them due now).
    pub fn arrived(&mut self, event: &Event, now: DateTime<Utc>, out: &mut Outcome) {
        self.events.insert(event.meta.id.clone(), event.clone());
        if event.alert_status() != Some("resolved") {
            return;
        }
        let Some(resolved) = occurrence(event) else {
            return;
        };
        self.resolved.entry(resolved.clone()).or_insert(now);
        for i in 0..self.remediations.len() {
            let p = &self.remediations[i].progress;
            if p.stage != Stage::Done && p.occurrence.as_deref() == Some(resolved.as_str()) {
                self.look(i, now, out);
            }
        }
    }

    /// The earliest time a remediation wants to be looked at.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.remediations
            .iter()
            .filter_map(|r| r.progress.due())
            .min()
    }

    /// Looks at every remediation due at or before `now`.
    pub fn look_due(&mut self, now: DateTime<Utc>, out: &mut Outcome) {
        for i in 0..self.remediations.len() {
            if self.remediations[i]
                .progress
                .due()
                .is_some_and(|due| due <= now)
            {
                self.look(i, now, out);
            }
        }
    }

    /// Takes what the engine planned at `now`: actions of rules without a plan pass; a firing
    /// of a rule with one starts a remediation, refires an open one, or is quarantined.
    pub fn admit(&mut self, eval: Evaluation, now: DateTime<Utc>, out: &mut Outcome) {
        let mut firings: Vec<Firing> = Vec::new();
        let mut other_failures = Vec::new();
        for fired in eval.fired {
            let i = firing_of(&mut firings, &fired.rule, &fired.firing.event.meta.id);
            firings[i].info = Some(fired.firing.info);
        }
        for p in eval.planned {
            let i = firing_of(&mut firings, &p.rule, &p.event_id);
            firings[i].planned.push(p);
        }
        for f in eval.failures {
            if f.action_index.is_some() {
                let i = firing_of(&mut firings, &f.rule, &f.event_id);
                firings[i].failures.push(f);
            } else {
                other_failures.push(f);
            }
        }
        for firing in firings {
            self.fire(firing, now, out);
        }
        out.failures.extend(other_failures);
    }

    /// Results of the remediations still open when the case ends.
    pub fn finish(&mut self, now: DateTime<Utc>, out: &mut Outcome) {
        for r in self.remediations.iter_mut().filter(|r| !r.reported) {
            r.reported = true;
            out.remediations.push(Judged {
                rule: r.progress.rule.clone(),
                result: RemediationResult::Pending,
                step: Some(r.progress.step),
                target: target_of(&r.key),
                at: now,
                why: r.progress.waiting_for.join("; "),
            });
        }
    }

    fn fire(&mut self, firing: Firing, now: DateTime<Utc>, out: &mut Outcome) {
        let rules = Arc::clone(&self.rules);
        let event = self.events.get(&firing.event_id).cloned();
        let (Some(rule), Some(event)) = (rules.get(&firing.rule), event) else {
            return pass(firing, out);
        };
        if rule.remediation.is_none() {
            return pass(firing, out);
        }
        out.failures.extend(firing.failures.iter().cloned());
        let target = firing
            .planned
            .iter()
            .find_map(|p| object_of(&p.action))
            .map(|t| describe_target(&t));
        let group_key = firing.planned.first().and_then(|p| p.group_key.clone());
        let info = firing.info.clone().unwrap_or_else(|| MatchInfo {
            key: group_key.clone(),
            count: 1,
            ..MatchInfo::default()
        });
        let key = target.clone().or(group_key).unwrap_or_default();
        if let Some(open) = self.remediations.iter().position(|r| {
            r.progress.rule == rule.name
                && r.key == key
                && matches!(r.progress.stage, Stage::Acting | Stage::Verifying)
        }) {
            // A refire: the pipeline records it `suppressed_by_guard` and executes nothing.
            self.remediations[open].refired_at = Some(now);
            return self.look(open, now, out);
        }
        if let Some(why) = self.quarantine(rule, &key, &event, &info, now, out) {
            out.remediations.push(Judged {
                rule: rule.name.clone(),
                result: RemediationResult::Quarantined,
                step: None,
                target: target_of(&key),
                at: now,
                why,
            });
            return;
        }
        let id = remediation_id(&firing.event_id, &rule.name);
        let mut progress = Progress::new(id, rule, event, info, target, now);
        let end = step_end(rule, &firing.planned, &firing.failures);
        let undo = if end == StepEnd::Succeeded {
            undo_plans(&firing.planned)
        } else {
            Vec::new()
        };
        let actions: Vec<_> = firing.planned.iter().map(|p| &p.action).collect();
        let effects = progress.acted(rule, end, &actions, undo, now);
        out.planned
            .extend(firing.planned.into_iter().map(|action| Planned {
                action,
                step: Some(0),
            }));
        self.remediations.push(Remediation {
            progress,
            key,
            refired_at: None,
            why: String::new(),
            reported: false,
        });
        self.handle(self.remediations.len() - 1, effects, now, out);
    }

    /// The loop guard: `Some(why)` when the firing must not act (a quarantine holds, or this
    /// firing starts one and announces it through `notify`).
    fn quarantine(
        &mut self,
        rule: &Rule,
        key: &str,
        event: &Event,
        info: &MatchInfo,
        now: DateTime<Utc>,
        out: &mut Outcome,
    ) -> Option<String> {
        let guard = rule.remediation.as_ref()?.loop_guard.as_ref()?;
        let slot = (rule.name.clone(), key.to_owned());
        if let Some(until) = self.quarantines.get(&slot).filter(|until| now < **until) {
            return Some(format!("quarantined until {until}"));
        }
        // As the pipeline counts: since the window began, or since an earlier quarantine
        // ended, whichever is later.
        let since = self
            .quarantines
            .get(&slot)
            .map_or(now - guard.within, |ended| (*ended).max(now - guard.within));
        let recent = self
            .remediations
            .iter()
            .filter(|r| r.progress.rule == rule.name && r.key == key)
            .filter(|r| r.progress.created >= since)
            .count();
        if recent < guard.max as usize {
            return None;
        }
        let until = now + guard.quarantine;
        self.quarantines.insert(slot, until);
        if let Some(notify) = &guard.notify {
            let ctx = RenderContext::new(event, &rule.name, Some(info));
            let key = idempotency_key(&event.meta.id, &format!("\0quarantine\0{}", rule.name), 0);
            match notify.render(&ctx) {
                Ok(action) => out.planned.push(Planned {
                    action: PlannedAction {
                        rule: rule.name.clone(),
                        action_index: 0,
                        action,
                        idempotency_key: key,
                        event_id: event.meta.id.clone(),
                        dry_run: rule.dry_run,
                        group_key: info.key.clone(),
                        remediation: None,
                    },
                    step: None,
                }),
                Err(err) => out.failures.push(RuleFailure {
                    rule: rule.name.clone(),
                    action_index: None,
                    kind: Some(ActionKind::Webhook),
                    event_id: event.meta.id.clone(),
                    idempotency_key: Some(key),
                    message: format!("loop_guard.notify: {err}"),
                }),
            }
        }
        Some(format!(
            "{recent} remediations within {}: quarantined until {until}",
            crate::rules::duration::format(guard.within)
        ))
    }

    /// Judges remediation `i` at `now` with what the case shows of the world.
    fn look(&mut self, i: usize, now: DateTime<Utc>, out: &mut Outcome) {
        let rules = Arc::clone(&self.rules);
        let r = &self.remediations[i];
        let Some(rule) = rules.get(&r.progress.rule) else {
            return;
        };
        let observed = Observed {
            resolved_at: (r.progress.occurrence.as_ref())
                .and_then(|o| self.resolved.get(o).copied()),
            refired_at: r.refired_at,
            object: r
                .progress
                .object
                .as_ref()
                .map(|t| Ok(self.objects.get(&object_key(t)).cloned())),
        };
        let effects = self.remediations[i].progress.judge(rule, &observed, now);
        self.handle(i, effects, now, out);
    }

    /// Carries out what the state machine asked for: runs escalation steps (assumed to
    /// succeed), records the result once the remediation ends, then its undo.
    fn handle(&mut self, i: usize, effects: Vec<Effect>, now: DateTime<Utc>, out: &mut Outcome) {
        let rules = Arc::clone(&self.rules);
        let Some(rule) = rules.get(&self.remediations[i].progress.rule) else {
            return;
        };
        let mut undone = Vec::new();
        for effect in effects {
            let r = &mut self.remediations[i];
            match effect {
                Effect::RunStep(step) => {
                    let (planned, failures) = r.progress.plan_step(rule, step);
                    let end = step_end(rule, &planned, &failures);
                    let actions: Vec<_> = planned.iter().map(|p| &p.action).collect();
                    let more = r.progress.acted(rule, end, &actions, Vec::new(), now);
                    out.failures.extend(failures);
                    out.planned
                        .extend(planned.into_iter().map(|action| Planned {
                            action,
                            step: Some(step),
                        }));
                    self.handle(i, more, now, out);
                }
                Effect::Undo(plans) => undone.push(Judged {
                    rule: rule.name.clone(),
                    result: RemediationResult::Undone,
                    step: Some(0),
                    target: target_of(&r.key),
                    at: now,
                    why: format!("{} change(s) undone", plans.len()),
                }),
                Effect::Verified { checks: lines, .. }
                | Effect::Ineffective { reasons: lines, .. } => r.why = lines.join("; "),
            }
        }
        let r = &mut self.remediations[i];
        if let Some(ending) = r.progress.ending.filter(|_| !r.reported) {
            r.reported = true;
            out.remediations.push(Judged {
                rule: rule.name.clone(),
                result: ending.into(),
                step: Some(r.progress.step),
                target: target_of(&r.key),
                at: now,
                why: r.why.clone(),
            });
        }
        out.remediations.extend(undone);
    }
}

/// The index of the firing of `rule` for `event_id`, added when new (order of first sight).
fn firing_of(firings: &mut Vec<Firing>, rule: &str, event_id: &str) -> usize {
    if let Some(i) = firings
        .iter()
        .position(|f| f.rule == rule && f.event_id == event_id)
    {
        return i;
    }
    firings.push(Firing {
        rule: rule.to_owned(),
        event_id: event_id.to_owned(),
        planned: Vec::new(),
        failures: Vec::new(),
        info: None,
    });
    firings.len() - 1
}

/// Actions of a rule without a plan go out as they are (step 0).
fn pass(firing: Firing, out: &mut Outcome) {
    out.failures.extend(firing.failures);
    out.planned
        .extend(firing.planned.into_iter().map(|action| Planned {
            action,
            step: Some(0),
        }));
}

/// How a step ends in a test: every action is assumed to succeed, one that could not render
/// fails it, a dry-run rule executes nothing.
fn step_end(rule: &Rule, planned: &[PlannedAction], failures: &[RuleFailure]) -> StepEnd {
    if !failures.is_empty() {
        StepEnd::Failed
    } else if planned.is_empty() || rule.dry_run {
        StepEnd::NotActed
    } else {
        StepEnd::Succeeded
    }
}

/// What step 0 changed reversibly, as the pipeline would record it (opaque to the state
/// machine; a test only counts them).
fn undo_plans(planned: &[PlannedAction]) -> Vec<Value> {
    planned
        .iter()
        .filter(|p| {
            matches!(
                p.kind(),
                ActionKind::Scale | ActionKind::Cordon | ActionKind::Label | ActionKind::Annotate
            )
        })
        .map(|p| json!({"kind": p.kind().as_str(), "params": p.action.params_json()}))
        .collect()
}

fn object_key(t: &TargetParams) -> (String, String, String) {
    let namespace = t.namespace.clone().unwrap_or_default();
    (t.kind.clone(), namespace, t.name.clone())
}

fn target_of(key: &str) -> Option<String> {
    (!key.is_empty()).then(|| key.to_owned())
}
