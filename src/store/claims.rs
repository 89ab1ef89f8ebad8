//! The claim lifecycle of an outcome row: taken over after a failed attempt, finished with
//! its final status, marked published once its record reached the outcomes topic. The claim
//! itself is [`Store::insert_outcome`] of a `started` row (see [`crate::pipeline`]).

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::dispatch::dispatch;
use super::{Error, NewOutcome, OutcomeStatus, Result, Store};

/// What a redelivery does to an existing `duplicate` row: take the latest sighting's times and
/// details and wait to be published again. Guarded on the status so that it can never touch
/// an action's own row.
const REFRESH_DUPLICATE: &str = "DO UPDATE SET started_at = excluded.started_at, \
     finished_at = excluded.finished_at, details = excluded.details, published_at = NULL \
     WHERE outcomes.status = 'duplicate'";

/// The final state of a claimed action, written over its `started` row.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish<'a> {
    /// The claimed key.
    pub idempotency_key: &'a str,
    /// The final status.
    pub status: OutcomeStatus,
    /// Attempts made, this one included.
    pub attempts: i32,
    /// When this attempt started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: DateTime<Utc>,
    /// What was acted on.
    pub target: Option<&'a str>,
    /// The error, if it failed.
    pub error: Option<&'a str>,
    /// Rendered parameters and executor details.
    pub details: &'a serde_json::Value,
}

impl Store {
    /// Records the `duplicate` row of a redelivered action, or refreshes it when an earlier
    /// redelivery (or a retry of this one, e.g. while Kafka is down) already recorded it: the
    /// store holds one row per duplicated action however often its record comes back.
    pub async fn record_duplicate(&self, duplicate: &NewOutcome<'_>) -> Result<()> {
        debug_assert_eq!(duplicate.status, OutcomeStatus::Duplicate);
        self.insert_outcome_or(duplicate, REFRESH_DUPLICATE)
            .await
            .map(drop)
    }

    /// Withdraws a `started` claim whose action certainly did not run (a guardrail could not
    /// be checked), so the retry claims it afresh instead of treating it as an attempt that
    /// may have taken effect. Matches the caller's attempt count; returns whether it was
    /// removed.
    pub async fn release_claim(&self, idempotency_key: &str, attempts: i32) -> Result<bool> {
        let removed = dispatch!(self, "release claim", |db| {
            sqlx::query(
                "DELETE FROM outcomes WHERE idempotency_key = $1 AND status = 'started' \
                 AND attempts = $2",
            )
            .bind(idempotency_key)
            .bind(attempts)
            .execute(db)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(removed == 1)
    }

    /// Takes over a `started` row left by an attempt that did not finish (a crash, or a
    /// replica that lost its partition), writing the new attempt's start time and details.
    /// The update is a compare-and-set on the attempt count the caller read, so of several
    /// processes racing for the same row exactly one wins; returns whether this caller did.
    pub async fn take_over(
        &self,
        idempotency_key: &str,
        seen_attempts: i32,
        started_at: DateTime<Utc>,
        details: &serde_json::Value,
    ) -> Result<bool> {
        let affected = dispatch!(self, "take over outcome", |db| {
            sqlx::query(
                "UPDATE outcomes SET attempts = attempts + 1, started_at = $1, details = $2 \
                 WHERE idempotency_key = $3 AND status = 'started' AND attempts = $4",
            )
            .bind(started_at)
            .bind(Json(details))
            .bind(idempotency_key)
            .bind(seen_attempts)
            .execute(db)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(affected == 1)
    }

    /// Writes the final status of a claimed action over its `started` row.
    pub async fn finish_outcome(&self, finish: &Finish<'_>) -> Result<()> {
        let affected = dispatch!(self, "finish outcome", |db| {
            sqlx::query(
                "UPDATE outcomes SET status = $1, attempts = $2, started_at = $3, \
                 finished_at = $4, target = $5, error = $6, details = $7 \
                 WHERE idempotency_key = $8",
            )
            .bind(finish.status.as_str())
            .bind(finish.attempts)
            .bind(finish.started_at)
            .bind(finish.finished_at)
            .bind(finish.target)
            .bind(finish.error)
            .bind(Json(finish.details))
            .bind(finish.idempotency_key)
            .execute(db)
            .await
            .map(|r| r.rows_affected())
        })?;
        if affected == 1 {
            Ok(())
        } else {
            Err(Error::InvalidRow {
                url: self.url().to_owned(),
                message: format!(
                    "no outcome row with idempotency key `{}` to finish (deleted meanwhile?)",
                    finish.idempotency_key
                ),
            })
        }
    }

    /// Notes that an outcome's record reached the outcomes topic.
    pub async fn mark_published(&self, idempotency_key: &str, at: DateTime<Utc>) -> Result<()> {
        dispatch!(self, "mark outcome published", |db| {
            sqlx::query("UPDATE outcomes SET published_at = $1 WHERE idempotency_key = $2")
                .bind(at)
                .bind(idempotency_key)
                .execute(db)
                .await
                .map(drop)
        })
    }
}
