//! The `outcomes` table: one row per action Reflex decided to carry out (or not), keyed by its
//! idempotency key. Inserting a `started` row is the claim (see [`super::claims`]).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::dispatch::dispatch;
use super::{Error, Result, Store};

/// Where an action's execution stands. Every status but `started` is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutcomeStatus {
    /// The idempotency key is claimed and the action is executing (or the process died while
    /// it ran: a redelivery then decides whether to execute again, see [`crate::pipeline`]).
    Started,
    /// Executed, and the target accepted it.
    Succeeded,
    /// Could not be planned (a template failed to render) or executing failed for good.
    Failed,
    /// The rule is in dry-run mode: recorded, not executed.
    SkippedDryRun,
    /// A redelivered event planned an action whose idempotency key already has a final
    /// outcome; it was not executed again. One row per duplicated action, keyed
    /// `<original key>.duplicate`, refreshed by every later redelivery or retry.
    Duplicate,
    /// No executor exists yet for this action kind; nothing was executed.
    NotImplemented,
    /// The event matched no rule (recorded only when `pipeline.record_no_match` is on).
    NoMatch,
    /// A guardrail refused the action (namespace policy or open circuit breaker); the error
    /// names the guard and the setting that would allow it. Nothing was executed.
    SuppressedByGuard,
    /// The rule's `throttle.once_within` suppressed this firing (recorded only when
    /// `pipeline.record_throttled` is on).
    Throttled,
    /// A remediation step's checks held in time (`verify`); details name the checks and how
    /// long it took.
    Verified,
    /// A remediation step's checks did not hold in time; details say which and whether the
    /// rule escalates.
    Ineffective,
    /// The loop guard stopped acting on the target: the rule remediated it too often. Nothing
    /// was executed; `reflex release` lifts it.
    Quarantined,
    /// A reversible change Reflex made was undone (the alert resolved, or its time was up).
    Undone,
    /// A reversible change was not undone: the object changed since Reflex changed it (or
    /// cannot be read); the error says why.
    UndoSkipped,
    /// A rule in `mode: shadow` planned this action: recorded, never claimed, guarded or
    /// executed.
    Shadow,
}

impl OutcomeStatus {
    /// Every status, in a stable order (CLI help, tests).
    pub const ALL: [OutcomeStatus; 15] = [
        OutcomeStatus::Started,
        OutcomeStatus::Succeeded,
        OutcomeStatus::Failed,
        OutcomeStatus::SkippedDryRun,
        OutcomeStatus::Duplicate,
        OutcomeStatus::NotImplemented,
        OutcomeStatus::NoMatch,
        OutcomeStatus::SuppressedByGuard,
        OutcomeStatus::Throttled,
        OutcomeStatus::Verified,
        OutcomeStatus::Ineffective,
        OutcomeStatus::Quarantined,
        OutcomeStatus::Undone,
        OutcomeStatus::UndoSkipped,
        OutcomeStatus::Shadow,
    ];

    /// The value stored in the `status` column and used in outcome record types.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::SkippedDryRun => "skipped_dry_run",
            Self::Duplicate => "duplicate",
            Self::NotImplemented => "not_implemented",
            Self::NoMatch => "no_match",
            Self::SuppressedByGuard => "suppressed_by_guard",
            Self::Throttled => "throttled",
            Self::Verified => "verified",
            Self::Ineffective => "ineffective",
            Self::Quarantined => "quarantined",
            Self::Undone => "undone",
            Self::UndoSkipped => "undo_skipped",
            Self::Shadow => "shadow",
        }
    }

    /// True for every status except [`OutcomeStatus::Started`].
    pub fn is_final(self) -> bool {
        self != Self::Started
    }
}

impl std::fmt::Display for OutcomeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OutcomeStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                let valid: Vec<&str> = Self::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown outcome status `{s}`; valid: {}", valid.join(", "))
            })
    }
}

/// An outcome to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOutcome<'a> {
    /// The event that triggered the action.
    pub event_id: &'a str,
    /// The rule that planned it.
    pub rule: &'a str,
    /// The action kind, e.g. `restart`.
    pub action_kind: &'a str,
    /// Unique per (event, rule, action); a second insert with the same key is ignored.
    pub idempotency_key: &'a str,
    /// Current status.
    pub status: OutcomeStatus,
    /// Attempts made so far.
    pub attempts: i32,
    /// When execution started.
    pub started_at: DateTime<Utc>,
    /// When it finished, if it has.
    pub finished_at: Option<DateTime<Utc>>,
    /// What was acted on, e.g. `deployment/shop/checkout`.
    pub target: Option<&'a str>,
    /// The last error, if any.
    pub error: Option<&'a str>,
    /// Anything else worth keeping (rendered parameters, HTTP status...).
    pub details: &'a serde_json::Value,
}

/// A recorded outcome, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeRecord {
    /// Row id, increasing with insertion order.
    pub id: i64,
    /// The event that triggered the action.
    pub event_id: String,
    /// The rule that planned it.
    pub rule: String,
    /// The action kind.
    pub action_kind: String,
    /// The idempotency key.
    pub idempotency_key: String,
    /// Status.
    pub status: OutcomeStatus,
    /// Attempts made.
    pub attempts: i32,
    /// When execution started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// What was acted on.
    pub target: Option<String>,
    /// The last error.
    pub error: Option<String>,
    /// Extra details.
    pub details: serde_json::Value,
    /// When the outcome record reached the outcomes topic; `None` while it has not.
    pub published_at: Option<DateTime<Utc>>,
}

/// The columns of an `outcomes` row, as [`OutcomeRow`] reads them.
pub(crate) const OUTCOME_COLUMNS: &str = "id, event_id, rule, action_kind, idempotency_key, \
     status, attempts, started_at, finished_at, target, error, details, published_at";

/// An `outcomes` row as the drivers decode it ([`OUTCOME_COLUMNS`], by name), before its
/// status is parsed.
#[derive(sqlx::FromRow)]
pub(crate) struct OutcomeRow {
    id: i64,
    event_id: String,
    rule: String,
    action_kind: String,
    idempotency_key: String,
    status: String,
    attempts: i32,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    target: Option<String>,
    error: Option<String>,
    details: Json<serde_json::Value>,
    published_at: Option<DateTime<Utc>>,
}

impl OutcomeRow {
    /// The record of this row of the store at `url`; fails on a status this version does not
    /// know.
    pub(crate) fn into_record(self, url: &str) -> Result<OutcomeRecord> {
        let status = self.status.parse().map_err(|message| Error::InvalidRow {
            url: url.to_owned(),
            message,
        })?;
        Ok(OutcomeRecord {
            id: self.id,
            event_id: self.event_id,
            rule: self.rule,
            action_kind: self.action_kind,
            idempotency_key: self.idempotency_key,
            status,
            attempts: self.attempts,
            started_at: self.started_at,
            finished_at: self.finished_at,
            target: self.target,
            error: self.error,
            details: self.details.0,
            published_at: self.published_at,
        })
    }
}

impl Store {
    /// Records an outcome unless one with the same idempotency key exists. Returns whether a
    /// row was inserted (false means: this action was already recorded, do not repeat it).
    pub async fn insert_outcome(&self, outcome: &NewOutcome<'_>) -> Result<bool> {
        Ok(self.insert_outcome_or(outcome, "DO NOTHING").await? == 1)
    }

    /// Inserts an outcome row; `on_conflict` says what happens when its key exists (`DO
    /// NOTHING`, or a `DO UPDATE` in the syntax both dialects share). Returns the rows affected.
    pub(crate) async fn insert_outcome_or(
        &self,
        outcome: &NewOutcome<'_>,
        on_conflict: &str,
    ) -> Result<u64> {
        let sql = format!(
            "INSERT INTO outcomes (event_id, rule, action_kind, idempotency_key, status, \
             attempts, started_at, finished_at, target, error, details) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (idempotency_key) {on_conflict}"
        );
        dispatch!(self, "insert outcome", |db| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(outcome.event_id)
                .bind(outcome.rule)
                .bind(outcome.action_kind)
                .bind(outcome.idempotency_key)
                .bind(outcome.status.as_str())
                .bind(outcome.attempts)
                .bind(outcome.started_at)
                .bind(outcome.finished_at)
                .bind(outcome.target)
                .bind(outcome.error)
                .bind(Json(outcome.details))
                .execute(db)
                .await
                .map(|r| r.rows_affected())
        })
    }

    /// Reads the outcome recorded under an idempotency key.
    pub async fn outcome_by_key(&self, idempotency_key: &str) -> Result<Option<OutcomeRecord>> {
        let sql = format!("SELECT {OUTCOME_COLUMNS} FROM outcomes WHERE idempotency_key = $1");
        let row: Option<OutcomeRow> = dispatch!(self, "read outcome", |db| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(idempotency_key)
                .fetch_optional(db)
                .await
        })?;
        row.map(|row| row.into_record(self.url())).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_column_value() {
        for status in OutcomeStatus::ALL {
            assert_eq!(status.as_str().parse::<OutcomeStatus>(), Ok(status));
        }
        let err = "done".parse::<OutcomeStatus>().expect_err("unknown");
        assert!(err.contains("skipped_dry_run"), "{err}");
        assert!(!OutcomeStatus::Started.is_final());
        assert!(OutcomeStatus::Duplicate.is_final());
    }
}
