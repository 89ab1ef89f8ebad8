//! Following remediations up: the timer's sweep leases due rows, judges them, records the
//! verdicts, runs escalation steps and undoes temporary changes.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::super::{Error, Pipeline};
use super::ms;
use crate::actions::kubernetes::{UndoPlan, Undone};
use crate::metrics::{self, RemediationLabels};
use crate::rules::Rule;
use crate::rules::remediation::{Effect, Observed, Progress, Stage};
use crate::store::OutcomeRecord;
use crate::store::OutcomeStatus;
use crate::store::remediations::RemediationRow;

/// Remediations one batch of a sweep takes; another replica's sweep takes others meanwhile.
const DUE_PER_SWEEP: i64 = 16;

/// Batches one sweep takes at most; the rest wait for the next sweep (a second later), so a
/// backlog never holds up the stateful timers the same tick fires.
const BATCHES_PER_SWEEP: usize = 8;

/// `action_kind` of a verdict outcome.
const VERIFY_KIND: &str = "verify";

fn from_ms(at: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_millis(at)
}

impl Pipeline {
    /// Follows up every due remediation this process can lease; returns the outcomes recorded.
    pub(in crate::pipeline) async fn follow_up(&self, now: DateTime<Utc>) -> Result<usize, Error> {
        let mut count = 0;
        // A full batch means more are due (a backlog after an outage, or many remediations of
        // a removed rule to close): take a few more batches now rather than one per second.
        for _ in 0..BATCHES_PER_SWEEP {
            let rows = self
                .store
                .claim_due_remediations(&self.instance, ms(now), self.lease_ms(), DUE_PER_SWEEP)
                .await
                .map_err(Error::store("claiming due remediations"))?;
            let full = rows.len() as i64 == DUE_PER_SWEEP;
            for row in rows {
                count += self.follow(row).await?;
            }
            if !full {
                break;
            }
        }
        Ok(count)
    }

    /// Moves one leased remediation as far as it can go now, then saves it.
    async fn follow(&self, row: RemediationRow) -> Result<usize, Error> {
        let rules = self.rules();
        let mut progress: Progress = match serde_json::from_value(row.doc.clone()) {
            Ok(progress) => progress,
            Err(err) => {
                tracing::error!(
                    remediation = %row.id,
                    rule = %row.rule,
                    error = %err,
                    "a remediation's state cannot be read (written by another version?); it \
                     is closed without further follow-up"
                );
                return self.close_unreadable(&row).await;
            }
        };
        let Some(rule) = rules.get(&row.rule) else {
            tracing::warn!(
                remediation = %row.id,
                rule = %row.rule,
                "the rule of a remediation is gone from the rule set; it is closed"
            );
            progress.stage = Stage::Done;
            self.save(&progress, Utc::now(), None).await?;
            return Ok(0);
        };
        let mut count = 0;
        let mut postpone = None;
        // Each pass ends a step or stops: bounded by the number of steps.
        for _ in 0..=rule.remediation.as_ref().map_or(0, |p| p.steps()) {
            let now = Utc::now();
            match progress.stage {
                Stage::Acting => {
                    let (actions, failures) = progress.plan_step(rule, progress.step);
                    if progress.step > 0 {
                        for failure in &failures {
                            count += self.record_failure(failure, None).await?;
                        }
                        count += self.act_all(&actions, None).await?;
                    }
                    // Step 0 ran in the record's handling; its outcomes say how it ended once
                    // that (or the record's redelivery) is done.
                    match self.step_outcomes(&actions, !failures.is_empty()).await? {
                        Some((end, undo)) => {
                            let planned: Vec<_> = actions.iter().map(|a| &a.action).collect();
                            progress.acted(rule, end, &planned, undo, now);
                        }
                        None => {
                            postpone = Some(ms(now) + self.lease_ms());
                            break;
                        }
                    }
                }
                Stage::Verifying | Stage::Undoing => {
                    let observed = self.observe(&row, &progress).await;
                    let mut again = false;
                    for effect in progress.judge(rule, &observed, now) {
                        match effect {
                            Effect::Verified { step, took, checks } => {
                                count += self
                                    .verdict(&progress, step, took, Ok(checks), None)
                                    .await?;
                            }
                            Effect::Ineffective {
                                step,
                                took,
                                reasons,
                                escalating_to,
                            } => {
                                count += self
                                    .verdict(&progress, step, took, Err(reasons), escalating_to)
                                    .await?;
                            }
                            Effect::RunStep(_) => again = true,
                            Effect::Undo(plans) => {
                                count += self.undo(rule, &progress, plans).await?
                            }
                        }
                    }
                    if !again {
                        break;
                    }
                }
                Stage::Done => break,
            }
        }
        self.save(&progress, Utc::now(), postpone).await?;
        Ok(count)
    }

    /// What is known now: whether the alert occurrence resolved, whether the rule fired again,
    /// and the object of a Kubernetes check as read now.
    async fn observe(&self, row: &RemediationRow, progress: &Progress) -> Observed {
        let object = match (&progress.object, progress.stage) {
            (Some(target), Stage::Verifying) => Some(match &self.executors.kubernetes {
                Some(kube) => kube.get_object(target).await.map_err(|e| e.to_string()),
                None => Err("the Kubernetes executor is off (`actions.kubernetes: false`)".into()),
            }),
            _ => None,
        };
        Observed {
            resolved_at: row.resolved_ms.and_then(from_ms),
            refired_at: row.refired_ms.and_then(from_ms),
            object,
        }
    }

    /// Records a step's verdict: `verified` (`Ok(checks)`) or `ineffective` (`Err(reasons)`).
    async fn verdict(
        &self,
        progress: &Progress,
        step: usize,
        took: Duration,
        checks: Result<Vec<String>, Vec<String>>,
        escalating_to: Option<usize>,
    ) -> Result<usize, Error> {
        let (status, lines, error) = match checks {
            Ok(checks) => (OutcomeStatus::Verified, checks, None),
            Err(reasons) => {
                let next = match escalating_to {
                    Some(next) => format!("; escalating to step {next}"),
                    None => "; no step left to escalate to".to_owned(),
                };
                let error = format!("{}{next}", reasons.join("; "));
                (OutcomeStatus::Ineffective, reasons, Some(error))
            }
        };
        let labels = RemediationLabels {
            rule: progress.rule.clone(),
            result: status.as_str().to_owned(),
        };
        metrics::global()
            .remediation_results
            .get_or_create(&labels)
            .inc();
        metrics::global()
            .verification
            .get_or_create(&labels)
            .observe(took.num_milliseconds().max(0) as f64 / 1000.0);
        tracing::info!(
            remediation = %progress.id,
            rule = %progress.rule,
            step,
            result = status.as_str(),
            took_ms = took.num_milliseconds(),
            "remediation step judged"
        );
        let details = json!({
            "checks": lines,
            "took_ms": took.num_milliseconds(),
            "escalating_to": escalating_to,
        });
        let key = format!("{}.{step}.verify", progress.id);
        let row =
            self.remediation_outcome(progress, step, key, VERIFY_KIND, status, error, details);
        self.record_once(&row, None, false).await
    }

    /// Undoes the changes of step 0 that can be undone, one outcome each.
    async fn undo(
        &self,
        rule: &Rule,
        progress: &Progress,
        plans: Vec<Value>,
    ) -> Result<usize, Error> {
        let mut count = 0;
        for (index, plan) in plans.into_iter().enumerate() {
            let key = format!("{}.undo.{index}", progress.id);
            let plan: UndoPlan = match serde_json::from_value(plan) {
                Ok(plan) => plan,
                Err(err) => {
                    let row = self.remediation_outcome(
                        progress,
                        0,
                        key,
                        "none",
                        OutcomeStatus::UndoSkipped,
                        Some(format!("the recorded change cannot be read: {err}")),
                        Value::Null,
                    );
                    count += self.record_once(&row, None, false).await?;
                    continue;
                }
            };
            let result = if rule.dry_run || self.guard.dry_run() {
                Ok(Undone::Skipped {
                    reason: "dry run: nothing is undone".to_owned(),
                })
            } else {
                match &self.executors.kubernetes {
                    Some(kube) => {
                        let undone = kube.undo(&plan).await;
                        let cause = crate::actions::kubernetes::events::Cause {
                            rule: &progress.rule,
                            trigger: crate::actions::kubernetes::events::Trigger::Remediation(
                                &progress.id,
                            ),
                            outcome: &key,
                        };
                        kube.report_undo(&cause, &plan, undone.as_ref()).await;
                        undone.map_err(|e| e.to_string())
                    }
                    None => Err("the Kubernetes executor is off".to_owned()),
                }
            };
            let (status, error, detail) = match result {
                Ok(Undone::Restored(change)) => (
                    OutcomeStatus::Undone,
                    None,
                    serde_json::to_value(change).unwrap_or(Value::Null),
                ),
                Ok(Undone::Skipped { reason }) => {
                    (OutcomeStatus::UndoSkipped, Some(reason), Value::Null)
                }
                Err(err) => (
                    OutcomeStatus::UndoSkipped,
                    Some(format!("could not undo: {err}")),
                    Value::Null,
                ),
            };
            metrics::global()
                .remediation_results
                .get_or_create(&RemediationLabels {
                    rule: progress.rule.clone(),
                    result: status.as_str().to_owned(),
                })
                .inc();
            let details = json!({ "undo": plan.describe(), "plan": plan, "result": detail });
            let mut row = self.remediation_outcome(
                progress,
                0,
                key,
                plan.kind.as_str(),
                status,
                error,
                details,
            );
            row.target = Some(crate::rules::remediation::object::describe_target(
                &plan.target,
            ));
            count += self.record_once(&row, None, false).await?;
        }
        Ok(count)
    }

    /// An outcome of remediation `progress` at `step` that executed nothing by itself.
    #[expect(clippy::too_many_arguments, reason = "one outcome's fields")]
    fn remediation_outcome(
        &self,
        progress: &Progress,
        step: usize,
        key: String,
        kind: &str,
        status: OutcomeStatus,
        error: Option<String>,
        mut details: Value,
    ) -> OutcomeRecord {
        let now = Utc::now();
        if !details.is_object() {
            details = json!({});
        }
        details["remediation"] = json!({ "id": progress.id, "step": step });
        details["claimant"] = json!(self.instance);
        OutcomeRecord {
            id: 0,
            event_id: progress.event.meta.id.clone(),
            rule: progress.rule.clone(),
            action_kind: kind.to_owned(),
            idempotency_key: key,
            status,
            attempts: 0,
            started_at: now,
            finished_at: Some(now),
            target: progress.target.clone(),
            error,
            details,
            published_at: None,
        }
    }

    /// Closes a row whose state cannot be read, keeping the document as it was.
    async fn close_unreadable(&self, row: &RemediationRow) -> Result<usize, Error> {
        self.store
            .save_remediation(
                &row.id,
                &self.instance,
                crate::store::remediations::Phase::Done,
                &row.doc,
                None,
                ms(Utc::now()),
                None,
            )
            .await
            .map(|_| 0)
            .map_err(Error::store(format!("closing remediation `{}`", row.id)))
    }
}
