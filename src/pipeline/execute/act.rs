//! One planned action: claim it (or take over an unfinished earlier claim), pass the
//! guardrails, execute, and record its end.

use chrono::Utc;
use serde_json::{Value, json};

use super::super::unrecorded::{Done, Unrecorded};
use super::super::{Error, Pipeline};
use super::Source;
use crate::actions::Execution;
use crate::actions::guard::Guard;
use crate::actions::guard::circuit::{self, Announcer};
use crate::config::Config;
use crate::metrics;
use crate::rules::PlannedAction;
use crate::rules::action::ActionKind;
use crate::rules::ruleset::RuleGuard;
use crate::store::{Finish, Finished, NewOutcome, OutcomeRecord, OutcomeStatus};

impl Pipeline {
    /// Claims, executes and records one planned action.
    pub(in crate::pipeline) async fn act(
        &self,
        action: &PlannedAction,
        source: Option<&Source>,
    ) -> Result<usize, Error> {
        let key = action.idempotency_key.as_str();
        let context = || {
            format!(
                "recording action {} (`{}`) of rule `{}` for event `{}`",
                action.action_index,
                action.kind().as_str(),
                action.rule,
                action.event_id
            )
        };
        let Some(_guard) = self.in_flight.enter(key) else {
            return Err(Error::ClaimedElsewhere {
                idempotency_key: key.to_owned(),
                rule: action.rule.clone(),
                claimant: self.instance.clone(),
                since: Utc::now(),
                lease_secs: self.claim_lease.as_secs(),
            });
        };
        // What an earlier attempt of this process left unrecorded when the store failed.
        let earlier = self.unrecorded.take(key);
        if let Some(Unrecorded::Executed(done)) = earlier {
            return self.record_execution(action, source, done).await;
        }
        let target = action.action.target();
        let started_at = Utc::now();
        let mut details = json!({
            "params": action.action.params_json(),
            "action_index": action.action_index,
            "dry_run": action.dry_run,
            "group_key": action.group_key,
            "source": source,
            "claimant": self.instance,
        });
        if let Some(step) = &action.remediation {
            details["remediation"] = json!(step);
        }
        let claim = NewOutcome {
            event_id: &action.event_id,
            rule: &action.rule,
            action_kind: action.kind().as_str(),
            idempotency_key: key,
            status: OutcomeStatus::Started,
            attempts: 1,
            started_at,
            finished_at: None,
            target: target.as_deref(),
            error: None,
            details: &details,
        };
        let mut attempts = 1;
        let mut refuse_repeat = None;
        // A store error from here until the execution leaves nothing executed: remember that,
        // so the retry does not take this process's own claim for a crashed attempt.
        let not_executed = |err: crate::store::Error| {
            self.unrecorded.remember(key, Unrecorded::NotExecuted);
            Error::store(context())(err)
        };
        let claimed = self
            .store
            .insert_outcome(&claim)
            .await
            .map_err(not_executed)?;
        if !claimed {
            let existing = self.store.outcome_by_key(key).await.map_err(not_executed)?;
            let Some(existing) = existing else {
                // The row vanished between the insert and the read (someone pruned the table):
                // retrying claims it afresh.
                return Err(Error::Store {
                    context: context(),
                    source: Box::new(crate::store::Error::InvalidRow {
                        url: self.store.url().to_owned(),
                        message: format!("outcome `{key}` disappeared while being claimed"),
                    }),
                });
            };
            if existing.status.is_final() {
                return self.settle_existing(&existing, source, true).await;
            }
            let claimant = existing
                .details
                .get("claimant")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let stale = (started_at - existing.started_at)
                .to_std()
                .is_ok_and(|age| age >= self.claim_lease);
            if claimant != self.instance && !stale {
                return Err(Error::ClaimedElsewhere {
                    idempotency_key: key.to_owned(),
                    rule: action.rule.clone(),
                    claimant,
                    since: existing.started_at,
                    lease_secs: self.claim_lease.as_secs(),
                });
            }
            let won = self
                .store
                .take_over(key, existing.attempts, started_at, &details)
                .await
                .map_err(not_executed)?;
            if !won {
                return Err(Error::ClaimedElsewhere {
                    idempotency_key: key.to_owned(),
                    rule: action.rule.clone(),
                    claimant: "another instance (it took the claim over first)".to_owned(),
                    since: started_at,
                    lease_secs: self.claim_lease.as_secs(),
                });
            }
            attempts = existing.attempts + 1;
            // This process's own claim, and it knows nothing ran under it.
            let own_unexecuted =
                claimant == self.instance && matches!(earlier, Some(Unrecorded::NotExecuted));
            let harmless = action.dry_run
                || own_unexecuted
                || action.action.is_idempotent()
                || !self.executors.has_executor(action.kind());
            if !harmless {
                // The one kind a rule can declare safe to repeat: say how.
                let hint = if action.kind() == ActionKind::Webhook {
                    "; if the receiver drops repeated `Idempotency-Key` headers, set \
                     `idempotent_receiver: true` on the webhook so an interrupted call is sent \
                     again"
                } else {
                    ""
                };
                refuse_repeat = Some(format!(
                    "an earlier attempt (attempt {}, started {} by `{claimant}`) never recorded \
                     its end and may have taken effect; `{}` is not safe to repeat, so it was \
                     not executed again: check the target and act by hand if needed{hint}",
                    existing.attempts,
                    existing.started_at.to_rfc3339(),
                    action.kind().as_str()
                ));
            }
            tracing::warn!(
                rule = %action.rule,
                action = action.kind().as_str(),
                event_id = %action.event_id,
                idempotency_key = key,
                attempts,
                previous_claimant = %claimant,
                "taking over an unfinished earlier attempt"
            );
        }

        let (status, error, result) = if let Some(message) = refuse_repeat {
            (OutcomeStatus::Failed, Some(message), Value::Null)
        } else {
            // `log` needs no guard settings: skip the lookup on the cheapest, busiest kind.
            let rule_guard = (action.kind() != ActionKind::Log)
                .then(|| self.rules().get(&action.rule).map(|r| r.guard.clone()))
                .flatten()
                .unwrap_or_default();
            let guarded = self.guarded(action, target.as_deref(), &rule_guard, &mut details);
            let decided = tokio::select! {
                decided = guarded => decided,
                never = self.renew_while_running(key, attempts) => match never {},
            };
            match decided {
                Ok(decided) => decided,
                Err(err) => {
                    // Nothing ran: withdraw the claim so the retry does not take it for an
                    // attempt that may have taken effect (best effort; the store may be down,
                    // and then the memory says so).
                    self.unrecorded.remember(key, Unrecorded::NotExecuted);
                    if let Err(release) = self.store.release_claim(key, attempts).await {
                        tracing::warn!(idempotency_key = key, error = %release, "claim not withdrawn");
                    }
                    return Err(err);
                }
            }
        };
        details["result"] = result;
        let finished_at = Utc::now();
        let executed = matches!(status, OutcomeStatus::Succeeded | OutcomeStatus::Failed);
        metrics::global().action(
            action.kind().as_str(),
            status.as_str(),
            executed.then(|| (finished_at - started_at).to_std().unwrap_or_default()),
        );
        let done = Done {
            status,
            error,
            details,
            attempts,
            started_at,
            finished_at,
            target,
        };
        self.record_execution(action, source, done).await
    }

    /// Writes an execution's final row and publishes it. When the store fails, the execution
    /// is remembered, so the record's retry records it instead of executing again.
    async fn record_execution(
        &self,
        action: &PlannedAction,
        source: Option<&Source>,
        done: Done,
    ) -> Result<usize, Error> {
        let key = action.idempotency_key.as_str();
        let finished = self
            .store
            .finish_outcome(&Finish {
                idempotency_key: key,
                status: done.status,
                attempts: done.attempts,
                started_at: done.started_at,
                finished_at: done.finished_at,
                target: done.target.as_deref(),
                error: done.error.as_deref(),
                details: &done.details,
            })
            .await;
        if let Ok(Finished::LostClaim) = finished {
            // The lease passed while this attempt ran (a stall longer than the lease) and
            // another instance took the action over: its outcome stands, this one is dropped.
            tracing::warn!(
                rule = %action.rule,
                action = action.kind().as_str(),
                event_id = %action.event_id,
                idempotency_key = key,
                attempts = done.attempts,
                status = done.status.as_str(),
                "this attempt lost its claim to another instance while it ran; the other \
                 instance's outcome stands and this one is not recorded"
            );
            return Ok(0);
        }
        if let Err(err) = finished {
            self.unrecorded
                .remember(key, Unrecorded::Executed(done.clone()));
            return Err(Error::store(format!(
                "recording the end of action {} (`{}`) of rule `{}` for event `{}`, which was \
                 executed (recorded on the retry)",
                action.action_index,
                action.kind().as_str(),
                action.rule,
                action.event_id
            ))(err));
        }
        if done.status == OutcomeStatus::Failed {
            tracing::warn!(
                rule = %action.rule,
                action = action.kind().as_str(),
                event_id = %action.event_id,
                error = done.error.as_deref().unwrap_or_default(),
                "action failed"
            );
        }
        let row = OutcomeRecord {
            id: 0,
            event_id: action.event_id.clone(),
            rule: action.rule.clone(),
            action_kind: action.kind().as_str().to_owned(),
            idempotency_key: key.to_owned(),
            status: done.status,
            attempts: done.attempts,
            started_at: done.started_at,
            finished_at: Some(done.finished_at),
            target: done.target,
            error: done.error,
            details: done.details,
            published_at: None,
        };
        self.publish_final(&row, source).await?;
        Ok(1)
    }

    /// Renews the claim of a running attempt every third of the claim lease, for as long as it
    /// runs (the caller drops this future when the attempt ends). A renewal that fails is
    /// logged; the attempt goes on, and its final write is fenced if the claim was lost.
    async fn renew_while_running(&self, key: &str, attempts: i32) -> std::convert::Infallible {
        let every = self.claim_lease / 3;
        if every.is_zero() {
            // A zero lease (tests only: the configuration refuses it) renews nothing.
            return std::future::pending().await;
        }
        loop {
            tokio::time::sleep(every).await;
            match self.store.renew_claim(key, attempts, Utc::now()).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(
                    idempotency_key = key,
                    attempts,
                    "the claim of a running action was taken over by another instance"
                ),
                Err(err) => tracing::warn!(
                    idempotency_key = key,
                    error = %err,
                    "cannot renew the claim of a running action"
                ),
            }
        }
    }

    /// Uses these guardrail settings (`actions:`, and Reflex's own topics from `kafka:` and
    /// `consumer:`) instead of the defaults.
    pub fn with_guard(mut self, config: &Config) -> Self {
        self.guard = Guard::new(config, &self.store);
        self
    }

    /// The guardrails, in order, then the execution: the policies on where the action acts
    /// (namespaces, cluster-scoped kinds, Kafka topics), dry run (rule or global), the circuit
    /// breaker, and the execution itself in a slot, under the target's lock, within the
    /// timeout. Returns the status, error and executor details; `Err` only when the circuit
    /// breaker could not consult the store or announce (nothing ran).
    async fn guarded(
        &self,
        action: &PlannedAction,
        target: Option<&str>,
        rule_guard: &RuleGuard,
        details: &mut Value,
    ) -> Result<(OutcomeStatus, Option<String>, Value), Error> {
        if let Err(refused) = self.guard.check(action, rule_guard) {
            details["guard"] = json!({ "guard": refused.policy.as_str() });
            tracing::warn!(
                rule = %action.rule,
                action = action.kind().as_str(),
                event_id = %action.event_id,
                policy = refused.policy.as_str(),
                error = %refused.message,
                "action refused by a guard policy"
            );
            return Ok((
                OutcomeStatus::SuppressedByGuard,
                Some(refused.message),
                Value::Null,
            ));
        }
        if action.dry_run || self.guard.dry_run() {
            details["dry_run_by"] = json!(if action.dry_run {
                "rule"
            } else {
                "actions.dry_run"
            });
            return Ok((OutcomeStatus::SkippedDryRun, None, Value::Null));
        }
        if action.kind() == ActionKind::Log || !self.executors.has_executor(action.kind()) {
            return settle(self.executors.execute(action).await, action);
        }
        let lock = Guard::lock_target(action.kind(), target);
        let limits = self.guard.limits(action.kind(), rule_guard);
        if limits.per_rule.is_none() && limits.per_target.is_none() {
            return settle(
                self.guard.run(lock, self.executors.execute(action)).await,
                action,
            );
        }
        let announcer = Announcer {
            publisher: &self.publisher,
            topic: self
                .guard
                .announce_topic()
                .unwrap_or(self.publisher.outcomes_topic()),
            instance: &self.instance,
        };
        let open = circuit::check(
            &self.store,
            announcer,
            &action.rule,
            target,
            &limits,
            Utc::now(),
        )
        .await
        .map_err(|err| circuit_error(err, action))?;
        if let Some(open) = open {
            details["guard"] = open.details;
            tracing::warn!(
                rule = %action.rule,
                action = action.kind().as_str(),
                event_id = %action.event_id,
                error = %open.message,
                "action suppressed by the circuit breaker"
            );
            return Ok((
                OutcomeStatus::SuppressedByGuard,
                Some(open.message),
                Value::Null,
            ));
        }
        settle(
            self.guard.run(lock, self.executors.execute(action)).await,
            action,
        )
    }
}

/// An executor's result as an outcome's status, error and details; an unreachable service is
/// no outcome but the record's retryable error.
fn settle(
    execution: Execution,
    action: &PlannedAction,
) -> Result<(OutcomeStatus, Option<String>, Value), Error> {
    Ok(match execution {
        Execution::Succeeded(result) => (OutcomeStatus::Succeeded, None, result),
        Execution::Failed { error, details } => (OutcomeStatus::Failed, Some(error), details),
        Execution::NotImplemented(message) => {
            (OutcomeStatus::NotImplemented, Some(message), Value::Null)
        }
        Execution::Unreachable(message) => {
            return Err(Error::Unreachable {
                rule: action.rule.clone(),
                kind: action.kind().as_str(),
                action_index: action.action_index,
                event_id: action.event_id.clone(),
                message,
            });
        }
    })
}

/// A circuit check that failed, as the pipeline's retryable error.
fn circuit_error(err: circuit::Error, action: &PlannedAction) -> Error {
    let context = format!(
        "checking the circuit breaker of rule `{}` for action {} of event `{}`",
        action.rule, action.action_index, action.event_id
    );
    match err {
        circuit::Error::Store { source, .. } => Error::Store {
            context,
            source: Box::new(source),
        },
        circuit::Error::Publish { source, .. } => Error::Publish {
            context,
            source: Box::new(source),
        },
    }
}
