//! One remediation's state machine, pure: it is told how a step's actions ended and what was
//! observed (the alert resolved, the rule fired again, the object as read), and answers with
//! [`Effect`]s for the driver to carry out (record `verified`/`ineffective`, run the next step,
//! undo) and the time it next wants to be looked at ([`Progress::due`]). The pipeline keeps it in
//! the store between looks; `reflex test` keeps it in memory.
//!
//! ```text
//! acting ──step ended──▶ verifying ──all checks hold──▶ done (verified)   [or undoing]
//!    ▲                      │ deadline passed / refired
//!    └──next step exists────┤
//!                           └──no next step──▶ done (ineffective)
//! ```

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::object::{check_object, describe_target, object_holds};
use super::plan::{Plan, Verify};
use crate::event::{Event, Format};
use crate::rules::action::Action;
use crate::rules::action::kubernetes::TargetParams;
use crate::rules::engine::{PlannedAction, RuleFailure, idempotency_key};
use crate::rules::ruleset::Rule;
use crate::rules::state::MatchInfo;
use crate::rules::template::RenderContext;

/// Where a remediation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// A step's actions are running.
    Acting,
    /// Waiting for the step's checks.
    Verifying,
    /// Verification is over; a reversible change waits to be undone.
    Undoing,
    /// Nothing left to do.
    Done,
}

/// How a remediation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// A step's checks held.
    Verified,
    /// The last step's checks did not hold in time.
    Ineffective,
    /// The last step's actions failed.
    Failed,
    /// The actions ran and nothing was to be verified.
    Completed,
    /// Nothing was executed (dry run, refused by a guard, no executor).
    NotActed,
}

impl Ending {
    /// The name in outcomes, metrics and `reflex history`.
    pub fn as_str(self) -> &'static str {
        match self {
            Ending::Verified => "verified",
            Ending::Ineffective => "ineffective",
            Ending::Failed => "failed",
            Ending::Completed => "completed",
            Ending::NotActed => "not_acted",
        }
    }
}

/// How a step's actions ended, summed over them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepEnd {
    /// Every executed action succeeded (and at least one was executed).
    Succeeded,
    /// At least one action failed for good.
    Failed,
    /// None was executed.
    NotActed,
}

/// One step as it went, for the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    /// The step.
    pub step: usize,
    /// When its actions ended.
    pub acted_at: DateTime<Utc>,
    /// `succeeded`, `failed`, `not_acted`, then `verified` or `ineffective`.
    pub result: String,
    /// When the result was known.
    pub judged_at: Option<DateTime<Utc>>,
}

/// What was observed since the last look.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// When the triggering alert occurrence resolved, if it did.
    pub resolved_at: Option<DateTime<Utc>>,
    /// When the rule last fired again for the same target.
    pub refired_at: Option<DateTime<Utc>>,
    /// The object of the Kubernetes check as read now: `Ok(None)` when it does not exist,
    /// `Err` when it could not be read. `None`: not read (no such check).
    pub object: Option<Result<Option<Value>, String>>,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// The step's checks held: record `verified`.
    Verified {
        /// The step.
        step: usize,
        /// From the end of its actions to now.
        took: Duration,
        /// The checks that held.
        checks: Vec<String>,
    },
    /// The step's checks did not hold: record `ineffective`.
    Ineffective {
        /// The step.
        step: usize,
        /// From the end of its actions to now.
        took: Duration,
        /// Why, one line per check.
        reasons: Vec<String>,
        /// The step run next, if any.
        escalating_to: Option<usize>,
    },
    /// Run this step's actions (render them with [`Progress::plan_step`]), then call
    /// [`Progress::acted`].
    RunStep(usize),
    /// Undo these changes (opaque plans recorded by [`Progress::acted`]).
    Undo(Vec<Value>),
}

/// The state of one remediation (serialized into the store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The remediation id (derived from the triggering event and rule).
    pub id: String,
    /// The rule.
    pub rule: String,
    /// The target of the rule's first action that has one, e.g. `deployment/shop/web`.
    pub target: Option<String>,
    /// The triggering alert occurrence (`fingerprint/startsAt`), if an alert triggered it.
    pub occurrence: Option<String>,
    /// The triggering event (later steps render their templates from it).
    pub event: Event,
    /// What templates see as `match`.
    pub info: MatchInfo,
    /// When it started.
    pub created: DateTime<Utc>,
    /// Where it stands.
    pub stage: Stage,
    /// The current step (0: the rule's `actions`).
    pub step: usize,
    /// When the current step's actions ended (the verification window starts there).
    pub step_ended: Option<DateTime<Utc>>,
    /// When the current step's verification gives up.
    pub deadline: Option<DateTime<Utc>>,
    /// When the Kubernetes condition is read next.
    pub next_check: Option<DateTime<Utc>>,
    /// The object the Kubernetes condition is read on.
    pub object: Option<TargetParams>,
    /// What the last look found missing.
    pub waiting_for: Vec<String>,
    /// Changes to undo (opaque to this module).
    pub undo: Vec<Value>,
    /// When they are undone at the latest.
    pub undo_due: Option<DateTime<Utc>>,
    /// They are undone as soon as the alert resolves.
    pub undo_on_resolve: bool,
    /// How it ended.
    pub ending: Option<Ending>,
    /// The steps so far.
    pub steps: Vec<StepLog>,
}

/// The remediation id of `rule`'s firing for `event_id`: deterministic, so a redelivered record
/// finds the remediation it started.
pub fn remediation_id(event_id: &str, rule: &str) -> String {
    idempotency_key(event_id, &format!("\0remediation\0{rule}"), 0)
}

/// The alert occurrence of an Alertmanager event: its id without the status, so the firing and
/// the resolved notification of one occurrence (same fingerprint and `startsAt`) share it.
pub fn occurrence(event: &Event) -> Option<String> {
    if event.meta.format != Format::Alertmanager {
        return None;
    }
    let (occurrence, _status) = event.meta.id.rsplit_once('/')?;
    Some(occurrence.to_owned())
}

impl Progress {
    /// A remediation starting with step 0 of `rule` fired by `event`.
    pub fn new(
        id: String,
        rule: &Rule,
        event: Event,
        info: MatchInfo,
        target: Option<String>,
        now: DateTime<Utc>,
    ) -> Progress {
        Progress {
            id,
            rule: rule.name.clone(),
            target,
            occurrence: occurrence(&event),
            event,
            info,
            created: now,
            stage: Stage::Acting,
            step: 0,
            step_ended: None,
            deadline: None,
            next_check: None,
            object: None,
            waiting_for: Vec::new(),
            undo: Vec::new(),
            undo_due: None,
            undo_on_resolve: false,
            ending: None,
            steps: Vec::new(),
        }
    }

    /// The next time [`Progress::judge`] has something to do; `None` when only a signal (the
    /// alert resolving) or nothing at all can move it.
    pub fn due(&self) -> Option<DateTime<Utc>> {
        let verify = match self.stage {
            Stage::Verifying => match (self.next_check, self.deadline) {
                (Some(check), Some(deadline)) => Some(check.min(deadline)),
                (check, deadline) => check.or(deadline),
            },
            _ => None,
        };
        let undo = (!self.undo.is_empty()).then_some(self.undo_due).flatten();
        match (verify, undo) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Renders the actions of step `step` from the triggering event. Step 0 (the rule's
    /// `actions`) gets the keys the engine gave them when the rule fired; an escalation step's
    /// keys derive from the remediation and step, so a step runs once however often it is asked.
    pub fn plan_step(&self, rule: &Rule, step: usize) -> (Vec<PlannedAction>, Vec<RuleFailure>) {
        let mut planned = Vec::new();
        let mut failures = Vec::new();
        let actions = match step {
            0 => Some(&rule.actions),
            n => rule
                .remediation
                .as_ref()
                .and_then(|p| p.escalate.get(n - 1))
                .map(|s| &s.actions),
        };
        let Some(actions) = actions else {
            return (planned, failures);
        };
        let ctx = RenderContext::new(&self.event, &rule.name, Some(&self.info));
        for (index, action) in actions.iter().enumerate() {
            let key = match step {
                0 => idempotency_key(&self.event.meta.id, &rule.name, index),
                _ => step_key(&self.id, step, index),
            };
            match action.render(&ctx) {
                Ok(rendered) => planned.push(PlannedAction {
                    rule: rule.name.clone(),
                    action_index: index,
                    action: rendered,
                    idempotency_key: key,
                    event_id: self.event.meta.id.clone(),
                    dry_run: rule.dry_run,
                    group_key: self.info.key.clone(),
                    remediation: Some(StepRef {
                        id: self.id.clone(),
                        step,
                    }),
                }),
                Err(err) => failures.push(RuleFailure {
                    rule: rule.name.clone(),
                    action_index: Some(index),
                    kind: Some(action.kind),
                    event_id: self.event.meta.id.clone(),
                    idempotency_key: Some(key),
                    message: format!("escalation step {step}: {err}"),
                }),
            }
        }
        (planned, failures)
    }

    /// The step's actions ended as `end` (`planned`: the step's rendered actions, whose first
    /// Kubernetes object is the default object to check; `undo`: the changes its executed
    /// actions can undo). Enters verification, escalates, or ends.
    pub fn acted(
        &mut self,
        rule: &Rule,
        end: StepEnd,
        planned: &[&Action],
        undo: Vec<Value>,
        now: DateTime<Utc>,
    ) -> Vec<Effect> {
        let Some(plan) = rule.remediation.as_ref() else {
            self.finish(Ending::Completed);
            return Vec::new();
        };
        self.steps.push(StepLog {
            step: self.step,
            acted_at: now,
            result: match end {
                StepEnd::Succeeded => "succeeded",
                StepEnd::Failed => "failed",
                StepEnd::NotActed => "not_acted",
            }
            .to_owned(),
            judged_at: None,
        });
        self.step_ended = Some(now);
        if self.step == 0
            && !undo.is_empty()
            && let Some(spec) = plan.undo
        {
            self.undo = undo;
            self.undo_due = spec.after.map(|after| now + after);
            self.undo_on_resolve = spec.on_resolve;
        }
        match end {
            StepEnd::NotActed => {
                self.finish(Ending::NotActed);
                Vec::new()
            }
            StepEnd::Failed => self.escalate(plan, Ending::Failed),
            StepEnd::Succeeded => match plan.verify_of(self.step) {
                Some(verify) => {
                    self.stage = Stage::Verifying;
                    self.deadline = Some(now + verify.within);
                    self.object = match &verify.kubernetes {
                        Some(check) => check_object(check, rule, self, planned),
                        None => None,
                    };
                    // A first look at once: the alert may have resolved while the actions ran.
                    self.next_check = Some(now);
                    self.waiting_for.clear();
                    Vec::new()
                }
                None => {
                    self.finish(Ending::Completed);
                    Vec::new()
                }
            },
        }
    }

    /// Looks at the remediation at `now` with what was `observed`: undoes what is due, judges
    /// the checks of a verifying step.
    pub fn judge(&mut self, rule: &Rule, observed: &Observed, now: DateTime<Utc>) -> Vec<Effect> {
        let mut effects = Vec::new();
        let resolved = observed.resolved_at.is_some();
        if !self.undo.is_empty()
            && (self.undo_due.is_some_and(|due| due <= now) || (self.undo_on_resolve && resolved))
        {
            effects.push(Effect::Undo(std::mem::take(&mut self.undo)));
            self.undo_due = None;
            if self.stage == Stage::Undoing {
                self.stage = Stage::Done;
            }
        }
        let Some(plan) = rule.remediation.as_ref() else {
            return effects;
        };
        if self.stage != Stage::Verifying {
            return effects;
        }
        let Some(verify) = plan.verify_of(self.step) else {
            self.finish(Ending::Completed);
            return effects;
        };
        let started = self.step_ended.unwrap_or(self.created);
        let deadline = self.deadline.unwrap_or(started + verify.within);
        let took = now - started;
        let checks = self.checks(verify, observed, started, now >= deadline);
        let refired = checks.iter().any(|c| c.refired);
        let missing: Vec<String> = checks
            .iter()
            .filter(|c| !c.holds)
            .map(|c| c.text.clone())
            .collect();
        if missing.is_empty() {
            self.log_judgement("verified", now);
            effects.push(Effect::Verified {
                step: self.step,
                took,
                checks: checks.into_iter().map(|c| c.text).collect(),
            });
            self.finish(Ending::Verified);
        } else if refired || now >= deadline {
            self.log_judgement("ineffective", now);
            let step = self.step;
            let next = self.escalate(plan, Ending::Ineffective);
            let escalating_to = next.iter().find_map(|e| match e {
                Effect::RunStep(s) => Some(*s),
                _ => None,
            });
            effects.push(Effect::Ineffective {
                step,
                took,
                reasons: missing,
                escalating_to,
            });
            effects.extend(next);
        } else {
            self.waiting_for = missing;
            self.next_check = verify
                .kubernetes
                .as_ref()
                .map(|_| (now + verify.every).min(deadline));
        }
        effects
    }

    /// Moves to the next step, or ends with `ending` when there is none.
    fn escalate(&mut self, plan: &Plan, ending: Ending) -> Vec<Effect> {
        if self.step + 1 < plan.steps() {
            self.step += 1;
            self.stage = Stage::Acting;
            self.step_ended = None;
            self.deadline = None;
            self.next_check = None;
            self.object = None;
            vec![Effect::RunStep(self.step)]
        } else {
            self.finish(ending);
            Vec::new()
        }
    }

    fn finish(&mut self, ending: Ending) {
        self.ending = Some(ending);
        self.deadline = None;
        self.next_check = None;
        self.stage = if self.undo.is_empty() {
            Stage::Done
        } else {
            Stage::Undoing
        };
    }

    fn log_judgement(&mut self, result: &str, now: DateTime<Utc>) {
        if let Some(log) = self.steps.iter_mut().rev().find(|l| l.step == self.step) {
            log.result = result.to_owned();
            log.judged_at = Some(now);
        }
    }

    /// Every check of `verify`, held or not, each with a line saying so.
    fn checks(
        &self,
        verify: &Verify,
        observed: &Observed,
        started: DateTime<Utc>,
        window_over: bool,
    ) -> Vec<Check> {
        let mut checks = Vec::new();
        if verify.alert_resolved {
            let holds = observed.resolved_at.is_some();
            checks.push(Check {
                holds,
                refired: false,
                text: if holds {
                    "the alert resolved".to_owned()
                } else {
                    "the alert has not resolved".to_owned()
                },
            });
        }
        if let Some(check) = &verify.kubernetes {
            let object = self
                .object
                .as_ref()
                .map(describe_target)
                .unwrap_or_else(|| "the object".to_owned());
            let (holds, text) = match &observed.object {
                Some(Ok(Some(value))) => object_holds(check, value, &object),
                Some(Ok(None)) => (false, format!("{object} does not exist")),
                Some(Err(err)) => (false, format!("{object} could not be read: {err}")),
                None => (false, format!("{object} was not read yet")),
            };
            checks.push(Check {
                holds,
                refired: false,
                text,
            });
        }
        let refired = observed.refired_at.is_some_and(|at| at >= started);
        if verify.no_refire || refired {
            // A refire fails any verification: the trigger came back while the step was being
            // judged. `no_refire` alone holds only once the window is over.
            checks.push(Check {
                holds: !refired && (window_over || !verify.no_refire),
                refired,
                text: if refired {
                    "the rule fired again for the target".to_owned()
                } else if window_over {
                    "the rule did not fire again".to_owned()
                } else {
                    "the window for a refire is not over".to_owned()
                },
            });
        }
        checks
    }
}

/// One verification check as judged.
struct Check {
    holds: bool,
    refired: bool,
    text: String,
}

/// Which step of which remediation a planned action belongs to (recorded in its outcome).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRef {
    /// The remediation id.
    pub id: String,
    /// The step (0: the rule's `actions`).
    pub step: usize,
}

/// The idempotency key of action `index` of escalation step `step` of remediation `id`.
pub fn step_key(id: &str, step: usize, index: usize) -> String {
    idempotency_key(id, &format!("\0step\0{step}"), index)
}
