//! Closed-loop remediation, the driver: the pure state machine
//! ([`crate::rules::remediation::Progress`]) kept in the store's `remediations` table, one row
//! per firing of a rule with a closed loop.
//!
//! - A firing ([`Pipeline::remediate`]) passes the loop guard (an active quarantine, or too many
//!   remediations of the target within the window, records `quarantined` and runs nothing),
//!   inserts its row (phase `acting`, leased to this process; a second open remediation of the
//!   same rule and target is refused by a unique index: that firing is a refire of the first
//!   and runs nothing), runs its actions, and saves what the state machine makes of them
//!   (`verifying`, or the next step due now).
//! - Every process's timer sweeps due rows ([`Pipeline::follow_up`], `sweep.rs`): it leases
//!   them (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so one replica takes each), reads the object
//!   of a Kubernetes check, judges, records `verified`/`ineffective`, runs the next step or an
//!   undo, and saves the row fenced on its lease. A replica that dies leaves its rows to the
//!   others once their lease passes.
//! - Signals wake rows early: an Alertmanager `resolved` notification (`signal_resolved`), a
//!   refire of the rule on the target (`signal_refire`).
//!
//! Outcomes of this module (`verified`, `ineffective`, `quarantined`, `undone`,
//! `undo_skipped`) carry `remediation: {id, step}` in their details, like the steps' actions,
//! so `reflex history --remediation ID` reads one story.

mod guard;
mod sweep;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::execute::Source;
use super::{Error, Pipeline};
use crate::rules::PlannedAction;
use crate::rules::Throttled;
use crate::rules::engine::Fired;
use crate::rules::remediation::object::describe_target;
use crate::rules::remediation::progress::{Progress, Stage, StepEnd, StepRef};
use crate::rules::remediation::{object_of, remediation_id};
use crate::store::remediations::{Inserted, NewRemediation, Phase};
use crate::store::{OutcomeRecord, OutcomeStatus};

/// Milliseconds since the Unix epoch, the unit of the remediation tables.
fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// The store phase of a stage.
fn phase(stage: Stage) -> Phase {
    match stage {
        Stage::Acting => Phase::Acting,
        Stage::Verifying => Phase::Verifying,
        Stage::Undoing => Phase::Undoing,
        Stage::Done => Phase::Done,
    }
}

/// The target a remediation is about: the first object a Kubernetes action names, else the
/// first action target of any kind.
fn remediation_target(actions: &[PlannedAction]) -> Option<String> {
    actions
        .iter()
        .find_map(|a| object_of(&a.action).map(|t| describe_target(&t)))
        .or_else(|| actions.iter().find_map(|a| a.action.target()))
}

impl Pipeline {
    /// Step 0 of a closed-loop firing (see the module docs); returns the outcomes recorded.
    pub(super) async fn remediate(
        &self,
        fired: &Fired,
        mut actions: Vec<PlannedAction>,
        render_failed: bool,
        source: Option<&Source>,
    ) -> Result<usize, Error> {
        let rules = self.rules();
        let Some(rule) = rules.get(&fired.rule) else {
            return Ok(0);
        };
        let event_id = fired.firing.event.meta.id.clone();
        let id = remediation_id(&event_id, &rule.name);
        for action in &mut actions {
            action.remediation = Some(StepRef {
                id: id.clone(),
                step: 0,
            });
        }
        let target = remediation_target(&actions);
        let now = Utc::now();
        let context = || format!("remediation `{id}` of rule `{}`", rule.name);
        let existing = self
            .store
            .remediation(&id)
            .await
            .map_err(Error::store(context()))?;
        if existing.is_some() {
            // A redelivery: the actions settle as duplicates (or finish an interrupted
            // attempt); the sweep completes the row from their outcomes.
            return self.act_all(&actions, source).await;
        }
        if let Some(target) = &target
            && let Some(recorded) = self
                .loop_guard(rule, &fired.firing, &id, target, source, now)
                .await?
        {
            return Ok(recorded);
        }
        let mut progress = Progress::new(
            id.clone(),
            rule,
            fired.firing.event.clone(),
            fired.firing.info.clone(),
            target.clone(),
            now,
        );
        let lease_until = ms(now) + self.lease_ms();
        let doc = serde_json::to_value(&progress).map_err(|e| state_error(&id, e))?;
        let inserted = self
            .store
            .insert_remediation(&NewRemediation {
                id: &id,
                rule: &rule.name,
                target: target.as_deref(),
                occurrence: progress.occurrence.as_deref(),
                group_key: fired.firing.info.key.as_deref(),
                phase: Phase::Acting,
                doc: &doc,
                due_ms: Some(lease_until),
                now_ms: ms(now),
                lease_owner: &self.instance,
                lease_until_ms: lease_until,
            })
            .await
            .map_err(Error::store(context()))?;
        match inserted {
            Inserted::Created => {}
            Inserted::Exists(_) => return self.act_all(&actions, source).await,
            Inserted::Busy(open) => {
                return self.refire(rule, &open.id, &actions, source, now).await;
            }
        }
        let mut count = self.act_all(&actions, source).await?;
        let (end, undo) = self.step_end(&actions, render_failed).await?;
        let planned: Vec<_> = actions.iter().map(|a| &a.action).collect();
        let effects = progress.acted(rule, end, &planned, undo, Utc::now());
        // Escalation after a failed step 0 runs in the sweep (due at once); nothing else can
        // follow `acted` directly.
        debug_assert!(
            effects
                .iter()
                .all(|e| matches!(e, crate::rules::remediation::Effect::RunStep(_)))
        );
        count += self.save(&progress, Utc::now(), None).await?;
        Ok(count)
    }

    /// Claims, executes and records each action in turn.
    async fn act_all(
        &self,
        actions: &[PlannedAction],
        source: Option<&Source>,
    ) -> Result<usize, Error> {
        let mut count = 0;
        for action in actions {
            count += self.act(action, source).await?;
        }
        Ok(count)
    }

    /// How a step's actions ended, read back from their outcome rows (so a redelivery or a
    /// sweep judges them the same way), and the changes they made that can be undone.
    /// `None` while one of them has no final outcome yet.
    async fn step_outcomes(
        &self,
        actions: &[PlannedAction],
        render_failed: bool,
    ) -> Result<Option<(StepEnd, Vec<Value>)>, Error> {
        let mut succeeded = false;
        let mut failed = render_failed;
        let mut undo = Vec::new();
        for action in actions {
            let row = self
                .store
                .outcome_by_key(&action.idempotency_key)
                .await
                .map_err(Error::store(format!(
                    "reading the outcome of action {} of rule `{}`",
                    action.action_index, action.rule
                )))?;
            let Some(row) = row.filter(|r| r.status.is_final()) else {
                return Ok(None);
            };
            match row.status {
                OutcomeStatus::Succeeded => {
                    succeeded = true;
                    if let Some(plan) = crate::actions::kubernetes::UndoPlan::from_execution(
                        &action.action,
                        &row.details["result"],
                    ) {
                        undo.push(serde_json::to_value(plan).unwrap_or(Value::Null));
                    }
                }
                OutcomeStatus::Failed => failed = true,
                _ => {}
            }
        }
        let end = if failed {
            StepEnd::Failed
        } else if succeeded {
            StepEnd::Succeeded
        } else {
            StepEnd::NotActed
        };
        Ok(Some((end, undo)))
    }

    /// [`Self::step_outcomes`] right after the actions ran: every one has a final row (a row
    /// still `started` belongs to another process's attempt, so this is a retry later).
    async fn step_end(
        &self,
        actions: &[PlannedAction],
        render_failed: bool,
    ) -> Result<(StepEnd, Vec<Value>), Error> {
        match self.step_outcomes(actions, render_failed).await? {
            Some(end) => Ok(end),
            None => Err(Error::ClaimedElsewhere {
                idempotency_key: actions
                    .first()
                    .map(|a| a.idempotency_key.clone())
                    .unwrap_or_default(),
                rule: actions.first().map(|a| a.rule.clone()).unwrap_or_default(),
                claimant: "another instance".to_owned(),
                since: Utc::now(),
                lease_secs: self.claim_lease.as_secs(),
            }),
        }
    }

    /// Writes the remediation back, fenced on this process's lease, due when it next needs a
    /// look: `postpone` when given (a step whose outcomes are not all in), at once when a step
    /// is to run, else when its state machine says.
    async fn save(
        &self,
        progress: &Progress,
        now: DateTime<Utc>,
        postpone: Option<i64>,
    ) -> Result<usize, Error> {
        let doc = serde_json::to_value(progress).map_err(|e| state_error(&progress.id, e))?;
        let due = match (postpone, progress.stage) {
            (Some(at), _) => Some(at),
            (None, Stage::Acting) => Some(ms(now)),
            (None, _) => progress.due().map(ms),
        };
        let saved = self
            .store
            .save_remediation(
                &progress.id,
                &self.instance,
                phase(progress.stage),
                &doc,
                due,
                ms(now),
                None,
            )
            .await
            .map_err(Error::store(format!(
                "saving remediation `{}` of rule `{}`",
                progress.id, progress.rule
            )))?;
        if !saved {
            tracing::warn!(
                remediation = %progress.id,
                rule = %progress.rule,
                "the lease on a remediation passed while this process worked on it; another \
                 instance follows it up"
            );
        }
        Ok(0)
    }

    /// A firing on a target whose remediation by the same rule is still open: nothing runs;
    /// the open remediation learns that its trigger came back.
    async fn refire(
        &self,
        rule: &crate::rules::Rule,
        open: &str,
        actions: &[PlannedAction],
        source: Option<&Source>,
        now: DateTime<Utc>,
    ) -> Result<usize, Error> {
        self.store
            .signal_refire(
                &rule.name,
                remediation_target(actions).as_deref(),
                None,
                ms(now),
            )
            .await
            .map_err(Error::store(format!(
                "signalling a refire to remediation `{open}`"
            )))?;
        let mut count = 0;
        for action in actions {
            let row = self.remediation_row(
                action,
                OutcomeStatus::SuppressedByGuard,
                Some(format!(
                    "remediation `{open}` of this rule on {} is still open; this firing is \
                     counted as its trigger coming back and nothing was executed",
                    action.action.target().unwrap_or_default()
                )),
                json!({ "guard": "remediation_in_progress", "open_remediation": open }),
                source,
            );
            count += self.record_once(&row, source, false).await?;
        }
        Ok(count)
    }

    /// A throttled firing of a closed-loop rule by another event than the remediation's own
    /// trigger is its trigger coming back: the open remediation of the same group key learns
    /// it.
    pub(super) async fn refired(&self, throttled: &Throttled) -> Result<(), Error> {
        let has_plan = self
            .rules()
            .get(&throttled.rule)
            .is_some_and(|r| r.remediation.is_some());
        if !has_plan {
            return Ok(());
        }
        // The trigger itself again (Alertmanager repeats a notification while the alert
        // fires): not a refire, the step is still being judged.
        let own = remediation_id(&throttled.event_id, &throttled.rule);
        let repeat = self
            .store
            .remediation(&own)
            .await
            .map_err(Error::store(format!("reading remediation `{own}`")))?;
        if repeat.is_some() {
            return Ok(());
        }
        self.store
            .signal_refire(&throttled.rule, None, Some(&throttled.key), ms(Utc::now()))
            .await
            .map(drop)
            .map_err(Error::store(format!(
                "signalling a refire of rule `{}` for key `{}`",
                throttled.rule, throttled.key
            )))
    }

    /// Wakes the remediations of an alert occurrence that resolved (`handle` calls this for
    /// every Alertmanager `resolved` event while a rule has a closed loop).
    pub(super) async fn resolved(&self, event: &crate::event::Event) -> Result<(), Error> {
        let Some(occurrence) = crate::rules::remediation::progress::occurrence(event) else {
            return Ok(());
        };
        self.store
            .signal_resolved(&occurrence, ms(Utc::now()))
            .await
            .map(drop)
            .map_err(Error::store(format!(
                "recording that alert occurrence `{occurrence}` resolved"
            )))
    }

    /// An outcome row of this module for `action` (not executed), keyed after the action.
    fn remediation_row(
        &self,
        action: &PlannedAction,
        status: OutcomeStatus,
        error: Option<String>,
        mut details: Value,
        source: Option<&Source>,
    ) -> OutcomeRecord {
        let now = Utc::now();
        details["source"] = json!(source);
        details["claimant"] = json!(self.instance);
        details["remediation"] = json!(action.remediation);
        details["params"] = action.action.params_json();
        OutcomeRecord {
            id: 0,
            event_id: action.event_id.clone(),
            rule: action.rule.clone(),
            action_kind: action.kind().as_str().to_owned(),
            idempotency_key: format!("{}.{}", action.idempotency_key, status.as_str()),
            status,
            attempts: 0,
            started_at: now,
            finished_at: Some(now),
            target: action.action.target(),
            error,
            details,
            published_at: None,
        }
    }

    /// How long a remediation row stays leased to the process working on it: the claim lease,
    /// which outlasts any one action (the configuration checks that).
    fn lease_ms(&self) -> i64 {
        i64::try_from(self.claim_lease.as_millis()).unwrap_or(i64::MAX / 2)
    }
}

/// A remediation state that cannot be (de)serialized: a bug or a row of another version.
fn state_error(id: &str, err: serde_json::Error) -> Error {
    Error::State {
        rule: format!("(remediation `{id}`)"),
        source: err,
    }
}
