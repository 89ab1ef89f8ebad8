//! Final outcomes that need no execution (rule failures, `throttled`, `no_match`,
//! duplicates of redelivered actions) and the publication of every final row.

use chrono::Utc;
use serde_json::{Value, json};

use super::super::{Error, Pipeline};
use super::{NO_KIND, Source, derived_key};
use crate::metrics;
use crate::outcome::record::OutcomeMessage;
use crate::outcome::topic::ActionDeadLetter;
use crate::rules::{PlannedAction, RuleFailure, Throttled};
use crate::store::{NewOutcome, OutcomeRecord, OutcomeStatus};

impl Pipeline {
    /// Publishes a final row; an action that failed for good (executed, attempts > 0) is
    /// first dead-lettered with a reference to its source record.
    pub(super) async fn publish_final(
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
    pub(super) async fn settle_existing(
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
    pub(in crate::pipeline) async fn record_failure(
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
    pub(super) async fn record_throttled(
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

    /// A shadow rule planned an action: a `shadow` outcome with its rendered parameters, keyed
    /// apart from the action's own key (so promoting the rule never finds its key taken).
    /// Nothing is claimed, guarded or executed.
    pub(super) async fn record_shadow(
        &self,
        action: &PlannedAction,
        source: Option<&Source>,
    ) -> Result<usize, Error> {
        let now = Utc::now();
        let row = OutcomeRecord {
            id: 0,
            event_id: action.event_id.clone(),
            rule: action.rule.clone(),
            action_kind: action.kind().as_str().to_owned(),
            idempotency_key: format!("{}.shadow", action.idempotency_key),
            status: OutcomeStatus::Shadow,
            attempts: 0,
            started_at: now,
            finished_at: Some(now),
            target: action.action.target(),
            error: None,
            details: json!({
                "params": action.action.params_json(),
                "action_index": action.action_index,
                "group_key": action.group_key,
                "source": source,
                "claimant": self.instance,
            }),
            published_at: None,
        };
        let recorded = self.record_once(&row, source, false).await?;
        if recorded > 0 {
            metrics::global().action(&row.action_kind, OutcomeStatus::Shadow.as_str(), None);
        }
        Ok(recorded)
    }

    /// The event matched no rule: a `no_match` outcome (only when enabled).
    pub(super) async fn record_no_match(
        &self,
        event_id: &str,
        source: &Source,
    ) -> Result<usize, Error> {
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
    pub(in crate::pipeline) async fn record_once(
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
