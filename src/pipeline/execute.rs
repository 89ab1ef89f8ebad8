//! Claiming, executing and recording one planned action; recording rule failures, duplicates
//! and `no_match` outcomes. The protocol is described in the module docs of [`super`].

use std::collections::HashSet;
use std::sync::Mutex;

use chrono::Utc;
use serde::Serialize;
use serde_json::{Value, json};

use super::unrecorded::{Done, Unrecorded};
use super::{Error, Pipeline};
use crate::actions::guard::Guard;
use crate::actions::guard::circuit::{self, Announcer};
use crate::actions::Execution;
use crate::config::Config;
use crate::metrics;
use crate::outcome::record::OutcomeMessage;
use crate::outcome::store::{Finish, NewOutcome, OutcomeRecord, OutcomeStatus};
use crate::outcome::topic::ActionDeadLetter;
use crate::rules::action::ActionKind;
use crate::rules::engine::{Verdict, idempotency_key};
use crate::rules::ruleset::RuleGuard;
use crate::rules::{Evaluation, PlannedAction, RuleFailure, Throttled};

/// `action_kind` of outcomes that concern no action (`no_match`, rule-level failures).
const NO_KIND: &str = "none";

/// Where the record behind an outcome sits in Kafka (absent for timer firings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct Source {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// One outcome to produce.
#[derive(Debug)]
pub(super) enum Work {
    Action {
        action: PlannedAction,
        source: Option<Source>,
    },
    Failure {
        failure: RuleFailure,
        source: Option<Source>,
    },
    NoMatch {
        event_id: String,
        source: Source,
    },
    Throttled {
        throttled: Throttled,
        source: Option<Source>,
    },
}

/// Appends the outcomes an evaluation calls for: planned actions, then failures.
pub(super) fn collect(work: &mut Vec<Work>, evaluation: Evaluation, source: Option<&Source>) {
    for action in evaluation.planned {
        work.push(Work::Action {
            action,
            source: source.cloned(),
        });
    }
    for failure in evaluation.failures {
        work.push(Work::Failure {
            failure,
            source: source.cloned(),
        });
    }
    for throttled in evaluation.throttled {
        work.push(Work::Throttled {
            throttled,
            source: source.cloned(),
        });
    }
}

/// True when no rule fired, held, or failed for the event (a traced evaluation).
pub(super) fn matched_nothing(evaluation: &Evaluation) -> bool {
    evaluation.planned.is_empty()
        && evaluation.failures.is_empty()
        && evaluation.trace.iter().all(|t| {
            matches!(
                t.verdict,
                Verdict::Disabled
                    | Verdict::Stopped { .. }
                    | Verdict::NotSelected(_)
                    | Verdict::ConditionFalse
            )
        })
}

/// A key for an outcome that is not an action's, derived from the event like action keys (so
/// a redelivery derives the same one) and unable to collide with them (action keys hash a rule
/// name, which cannot contain a NUL byte, where these hash the tag after one).
fn derived_key(event_id: &str, tag: &str) -> String {
    idempotency_key(event_id, &format!("\0{tag}"), 0)
}

/// Keys this process is executing right now; a `started` row of this instance whose key is
/// not here was left by a failed attempt and may be taken over at once.
#[derive(Debug, Default)]
pub(super) struct InFlight(Mutex<HashSet<String>>);

/// Removes its key from the in-flight set when dropped.
struct InFlightGuard<'a> {
    set: &'a InFlight,
    key: String,
}

impl InFlight {
    /// Registers `key`; `None` if it is already in flight here.
    fn enter(&self, key: &str) -> Option<InFlightGuard<'_>> {
        let mut set = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        set.insert(key.to_owned()).then(|| InFlightGuard {
            set: self,
            key: key.to_owned(),
        })
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        let mut set = self.set.0.lock().unwrap_or_else(|p| p.into_inner());
        set.remove(&self.key);
    }
}

impl Pipeline {
    /// Produces every outcome of `work`, in order; returns how many were recorded.
    pub(super) async fn run(&self, work: Vec<Work>) -> Result<usize, Error> {
        let mut count = 0;
        for item in work {
            count += match item {
                Work::Action { action, source } => self.act(&action, source.as_ref()).await?,
                Work::Failure { failure, source } => {
                    self.record_failure(&failure, source.as_ref()).await?
                }
                Work::NoMatch { event_id, source } => {
                    self.record_no_match(&event_id, &source).await?
                }
                Work::Throttled { throttled, source } if self.record_throttled => {
                    self.record_throttled(&throttled, source.as_ref()).await?
                }
                Work::Throttled { .. } => 0,
            };
        }
        Ok(count)
    }

    /// Claims, executes and records one planned action.
    async fn act(&self, action: &PlannedAction, source: Option<&Source>) -> Result<usize, Error> {
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
        let not_executed = |err: crate::outcome::store::Error| {
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
                    source: Box::new(crate::outcome::store::Error::InvalidRow {
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
            match self
                .guarded(action, target.as_deref(), &rule_guard, &mut details)
                .await
            {
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

    /// Uses these guardrail settings (`actions:`, and Reflex's own topics from `kafka:` and
    /// `consumer:`) instead of the defaults.
    pub fn with_guard(mut self, config: &Config) -> Self {
        self.guard = Guard::new(config, &self.store);
        self
    }

    /// The guardrails, in order, then the execution: the policies on where the action acts
    /// (namespaces, cluster-scoped kinds, Kafka topics), dry run (rule or global), the circuit
    /// breaker, and the execution itself in a slot, under the target's lock, within the timeout. Returns the status, error and executor details; `Err` only
    /// when the circuit breaker could not consult the store or announce (nothing ran).
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

    /// Publishes a final row; an action that failed for good (executed, attempts > 0) is
    /// first dead-lettered with a reference to its source record.
    async fn publish_final(
        &self,
        row: &OutcomeRecord,
        source: Option<&Source>,
    ) -> Result<(), Error> {
        if row.status == OutcomeStatus::Failed && row.attempts > 0 && row.action_kind != NO_KIND {
            let error = row.error.as_deref().unwrap_or_default();
            let letter = ActionDeadLetter {
                rule: &row.rule,
                action_kind: &row.action_kind,
                event_id: &row.event_id,
                idempotency_key: &row.idempotency_key,
                target: row.target.as_deref(),
                attempts: row.attempts,
                error,
                source: source.map(|s| (s.topic.as_str(), s.partition, s.offset)),
            };
            self.publisher
                .dead_letter_action(&letter)
                .await
                .map_err(Error::publish(format!(
                    "dead-lettering the failed action `{}` of rule `{}`",
                    row.idempotency_key, row.rule
                )))?;
            tracing::warn!(
                rule = %row.rule,
                action = %row.action_kind,
                event_id = %row.event_id,
                dead_letters = self.publisher.dead_letter_topic(),
                "failed action dead-lettered"
            );
        }
        self.publish(row).await
    }

    /// A final row exists under an outcome's key. If it was never published, publish it now —
    /// unless another instance finished it within the claim lease: that instance is most
    /// likely publishing it this very moment, so this caller retries later
    /// ([`Error::ClaimedElsewhere`]) instead of publishing a second copy. If it was published,
    /// this is a redelivery: record a `duplicate` when `duplicates`, else nothing.
    async fn settle_existing(
        &self,
        existing: &OutcomeRecord,
        source: Option<&Source>,
        duplicates: bool,
    ) -> Result<usize, Error> {
        if existing.published_at.is_none() {
            let claimant = existing
                .details
                .get("claimant")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let finished = existing.finished_at.unwrap_or(existing.started_at);
            // A negative age (clocks of two replicas disagree) counts as recent.
            let recent = (Utc::now() - finished)
                .to_std()
                .map_or(true, |age| age < self.claim_lease);
            if !claimant.is_empty() && claimant != self.instance && recent {
                return Err(Error::ClaimedElsewhere {
                    idempotency_key: existing.idempotency_key.clone(),
                    rule: existing.rule.clone(),
                    claimant: claimant.to_owned(),
                    since: finished,
                    lease_secs: self.claim_lease.as_secs(),
                });
            }
            self.publish_final(existing, source).await?;
            return Ok(1);
        }
        if !duplicates {
            return Ok(0);
        }
        // One stable key per duplicated action: a record retried while its duplicate cannot be
        // published (Kafka down) refreshes this row instead of adding one per retry.
        let key = format!("{}.duplicate", existing.idempotency_key);
        let now = Utc::now();
        let details = json!({
            "duplicate_of": existing.idempotency_key,
            "original_status": existing.status.as_str(),
            "source": source,
            "claimant": self.instance,
        });
        let row = OutcomeRecord {
            id: 0,
            event_id: existing.event_id.clone(),
            rule: existing.rule.clone(),
            action_kind: existing.action_kind.clone(),
            idempotency_key: key,
            status: OutcomeStatus::Duplicate,
            attempts: 0,
            started_at: now,
            finished_at: Some(now),
            target: existing.target.clone(),
            error: None,
            details,
            published_at: None,
        };
        tracing::debug!(
            rule = %row.rule,
            event_id = %row.event_id,
            duplicate_of = %existing.idempotency_key,
            "redelivered action not executed again"
        );
        self.store
            .record_duplicate(&new_outcome(&row))
            .await
            .map_err(Error::store(format!(
                "recording the duplicate of outcome `{}` of rule `{}`",
                existing.idempotency_key, row.rule
            )))?;
        self.publish(&row).await?;
        metrics::global().action(&row.action_kind, row.status.as_str(), None);
        Ok(1)
    }

    /// A rule (or one of its actions) could not be planned: a `failed` outcome.
    async fn record_failure(
        &self,
        failure: &RuleFailure,
        source: Option<&Source>,
    ) -> Result<usize, Error> {
        tracing::warn!(
            rule = %failure.rule,
            event_id = %failure.event_id,
            error = %failure.message,
            "rule failed for an event"
        );
        let key = failure.idempotency_key.clone().unwrap_or_else(|| {
            derived_key(
                &failure.event_id,
                &format!("rule-failure\0{}", failure.rule),
            )
        });
        let now = Utc::now();
        let row = OutcomeRecord {
            id: 0,
            event_id: failure.event_id.clone(),
            rule: failure.rule.clone(),
            action_kind: failure
                .kind
                .map_or(NO_KIND, |kind| kind.as_str())
                .to_owned(),
            idempotency_key: key,
            status: OutcomeStatus::Failed,
            attempts: 0,
            started_at: now,
            finished_at: Some(now),
            target: None,
            error: Some(failure.message.clone()),
            details: json!({
                "action_index": failure.action_index,
                "source": source,
                "claimant": self.instance,
            }),
            published_at: None,
        };
        metrics::global().action(&row.action_kind, OutcomeStatus::Failed.as_str(), None);
        self.record_once(&row, source, true).await
    }

    /// A throttle suppressed a firing: a `throttled` outcome (only when enabled), keyed by the
    /// event and rule so a redelivery records nothing new.
    async fn record_throttled(
        &self,
        throttled: &Throttled,
        source: Option<&Source>,
    ) -> Result<usize, Error> {
        let now = Utc::now();
        let row = OutcomeRecord {
            id: 0,
            event_id: throttled.event_id.clone(),
            rule: throttled.rule.clone(),
            action_kind: NO_KIND.to_owned(),
            idempotency_key: derived_key(
                &throttled.event_id,
                &format!("throttled\0{}", throttled.rule),
            ),
            status: OutcomeStatus::Throttled,
            attempts: 0,
            started_at: now,
            finished_at: Some(now),
            target: None,
            error: None,
            details: json!({
                "throttle_key": throttled.key,
                "quiet_until": throttled.until.to_rfc3339(),
                "source": source,
                "claimant": self.instance,
            }),
            published_at: None,
        };
        let recorded = self.record_once(&row, source, false).await?;
        if recorded > 0 {
            metrics::global().action(NO_KIND, OutcomeStatus::Throttled.as_str(), None);
        }
        Ok(recorded)
    }

    /// The event matched no rule: a `no_match` outcome (only when enabled).
    async fn record_no_match(&self, event_id: &str, source: &Source) -> Result<usize, Error> {
        let now = Utc::now();
        let row = OutcomeRecord {
            id: 0,
            event_id: event_id.to_owned(),
            rule: String::new(),
            action_kind: NO_KIND.to_owned(),
            idempotency_key: derived_key(event_id, "no-match"),
            status: OutcomeStatus::NoMatch,
            attempts: 0,
            started_at: now,
            finished_at: Some(now),
            target: None,
            error: None,
            details: json!({ "source": source, "claimant": self.instance }),
            published_at: None,
        };
        // A redelivered non-matching event is not worth a duplicate row.
        self.record_once(&row, Some(source), false).await
    }

    /// Inserts a final row under its deterministic key and publishes it; when the key exists
    /// (a redelivery), settles the existing row instead (a duplicate only if `duplicates`).
    async fn record_once(
        &self,
        row: &OutcomeRecord,
        source: Option<&Source>,
        duplicates: bool,
    ) -> Result<usize, Error> {
        if self.insert_final(row).await? {
            self.publish(row).await?;
            return Ok(1);
        }
        let existing = self
            .store
            .outcome_by_key(&row.idempotency_key)
            .await
            .map_err(Error::store(format!(
                "reading outcome `{}` of event `{}`",
                row.idempotency_key, row.event_id
            )))?;
        match existing {
            Some(existing) if existing.status.is_final() => {
                self.settle_existing(&existing, source, duplicates).await
            }
            // A `started` row under a failure's key: an action of the same key is executing
            // (rendering failed now but succeeded before); its own outcome will be recorded.
            _ => Ok(0),
        }
    }

    /// Inserts a row that is final from the start; false if its key exists.
    async fn insert_final(&self, row: &OutcomeRecord) -> Result<bool, Error> {
        self.store
            .insert_outcome(&new_outcome(row))
            .await
            .map_err(Error::store(format!(
                "recording the {} outcome of rule `{}` for event `{}`",
                row.status, row.rule, row.event_id
            )))
    }

    /// Publishes a final row's outcome record and marks the row published.
    async fn publish(&self, row: &OutcomeRecord) -> Result<(), Error> {
        let message = OutcomeMessage::from_row(row);
        let context = || {
            format!(
                "publishing the {} outcome `{}` of rule `{}`",
                row.status, row.idempotency_key, row.rule
            )
        };
        self.publisher
            .publish_outcome(&message)
            .await
            .map_err(Error::publish(context()))?;
        self.store
            .mark_published(&row.idempotency_key, Utc::now())
            .await
            .map_err(Error::store(context()))
    }
}

/// The row to insert for a final outcome.
fn new_outcome(row: &OutcomeRecord) -> NewOutcome<'_> {
    NewOutcome {
        event_id: &row.event_id,
        rule: &row.rule,
        action_kind: &row.action_kind,
        idempotency_key: &row.idempotency_key,
        status: row.status,
        attempts: row.attempts,
        started_at: row.started_at,
        finished_at: row.finished_at,
        target: row.target.as_deref(),
        error: row.error.as_deref(),
        details: &row.details,
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
