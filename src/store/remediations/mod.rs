//! Closed-loop remediation (issue #13), the store's side: the `remediations` table (one row per
//! firing of a remediating rule, its pure state as an opaque JSON document), the
//! `alert_resolutions` signals that wake it ([`signals`]) and the loop guard's `quarantines`
//! ([`quarantines`]).
//!
//! Exactly one replica follows a remediation up at a time ([`lease`]): the sweep claims due rows
//! by setting a lease in one statement (`FOR UPDATE SKIP LOCKED` on PostgreSQL, SQLite's single
//! writer elsewhere), and the save after processing is fenced on the lease owner, so a replica
//! that lost its lease (killed, paused past it) cannot overwrite the survivor's work. Every timestamp is Unix milliseconds, so the
//! statements are the same on both databases except for that lock.

pub mod lease;
pub mod quarantines;
pub mod signals;

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;

use super::dispatch::dispatch;
use super::{Error, Result, Store};

pub use quarantines::QuarantineRow;

/// The columns of a [`RemediationRow`], as [`Read`] decodes them by name. `resolved_ms` comes
/// from `alert_resolutions` (at most one row per occurrence, its primary key), as a scalar
/// subquery rather than a join so the same list serves `RETURNING` on both databases.
macro_rules! columns {
    () => {
        "id, rule, target, occurrence, group_key, phase, doc, due_ms, refired_ms, \
         (SELECT r.resolved_ms FROM alert_resolutions r \
          WHERE r.occurrence = remediations.occurrence) AS resolved_ms, \
         created_ms, updated_ms, lease_owner, lease_until_ms"
    };
}
pub(crate) use columns;

/// The phases that hold a (rule, target): the predicate of the unique index
/// `remediations_open_target` (a query must spell it alike for PostgreSQL to use the index).
macro_rules! open_phases {
    () => {
        "('acting', 'verifying')"
    };
}
pub(crate) use open_phases;

/// Where a remediation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// A step's actions are running.
    Acting,
    /// Waiting for the step's verification (alert resolved, condition held, no refire).
    Verifying,
    /// Waiting to revert a temporary fix (on resolve or after a TTL).
    Undoing,
    /// Finished; kept as history until retention forgets it.
    Done,
}

impl Phase {
    /// Every phase, in life order.
    pub const ALL: [Phase; 4] = [Phase::Acting, Phase::Verifying, Phase::Undoing, Phase::Done];

    /// The name stored in the `phase` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Acting => "acting",
            Phase::Verifying => "verifying",
            Phase::Undoing => "undoing",
            Phase::Done => "done",
        }
    }

    /// Whether the remediation holds its (rule, target): at most one open remediation per
    /// (rule, target) exists, and a firing meanwhile is a refire of it.
    pub fn is_open(self) -> bool {
        matches!(self, Phase::Acting | Phase::Verifying)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Phase {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|phase| phase.as_str() == s)
            .ok_or_else(|| {
                let valid: Vec<&str> = Self::ALL.iter().map(|p| p.as_str()).collect();
                format!(
                    "unknown remediation phase `{s}`; valid: {}",
                    valid.join(", ")
                )
            })
    }
}

/// One remediation as the store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemediationRow {
    /// Derived from (event id, rule).
    pub id: String,
    /// The rule that fired.
    pub rule: String,
    /// The object acted on, if the rule has a Kubernetes target.
    pub target: Option<String>,
    /// The triggering alert occurrence (`fingerprint/startsAt`).
    pub occurrence: Option<String>,
    /// The rule's group key.
    pub group_key: Option<String>,
    /// Where it is.
    pub phase: Phase,
    /// The pure state machine's document.
    pub doc: Value,
    /// When the sweep is to look at it next.
    pub due_ms: Option<i64>,
    /// The latest refire seen while it was open.
    pub refired_ms: Option<i64>,
    /// When its occurrence was first seen resolved (`alert_resolutions`), whether that came
    /// before or after the row.
    pub resolved_ms: Option<i64>,
    /// When it was created.
    pub created_ms: i64,
    /// When it was last saved.
    pub updated_ms: i64,
    /// The replica holding its lease.
    pub lease_owner: Option<String>,
    /// Until when that lease holds.
    pub lease_until_ms: Option<i64>,
}

/// A remediation to create, leased to its creator (which goes on to run its first step).
#[derive(Debug, Clone, PartialEq)]
pub struct NewRemediation<'a> {
    /// Derived from (event id, rule): a redelivery finds the first row.
    pub id: &'a str,
    /// The rule that fired.
    pub rule: &'a str,
    /// The object acted on.
    pub target: Option<&'a str>,
    /// The triggering alert occurrence.
    pub occurrence: Option<&'a str>,
    /// The rule's group key.
    pub group_key: Option<&'a str>,
    /// The first phase (normally [`Phase::Acting`]).
    pub phase: Phase,
    /// The state machine's document.
    pub doc: &'a Value,
    /// When the sweep is to look at it (a crashed creator's row is picked up from then on).
    pub due_ms: Option<i64>,
    /// Now.
    pub now_ms: i64,
    /// The creating replica.
    pub lease_owner: &'a str,
    /// Until when the creator holds it.
    pub lease_until_ms: i64,
}

/// What [`Store::insert_remediation`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    /// The row is new (and leased to its creator).
    Created,
    /// A row with the same id exists (a redelivery): nothing was written.
    Exists(RemediationRow),
    /// Another open remediation holds (rule, target): nothing was written; the firing is a
    /// refire of that one.
    Busy(RemediationRow),
}

/// A row as the drivers decode it (`columns!`, by name), before its phase is parsed.
#[derive(sqlx::FromRow)]
pub(super) struct Read {
    id: String,
    rule: String,
    target: Option<String>,
    occurrence: Option<String>,
    group_key: Option<String>,
    phase: String,
    doc: Json<Value>,
    due_ms: Option<i64>,
    refired_ms: Option<i64>,
    resolved_ms: Option<i64>,
    created_ms: i64,
    updated_ms: i64,
    lease_owner: Option<String>,
    lease_until_ms: Option<i64>,
}

impl Read {
    /// The row of the store at `url`; fails on a phase this version does not know.
    fn into_row(self, url: &str) -> Result<RemediationRow> {
        let phase = self.phase.parse().map_err(|message| Error::InvalidRow {
            url: url.to_owned(),
            message: format!("remediation `{}`: {message}", self.id),
        })?;
        Ok(RemediationRow {
            id: self.id,
            rule: self.rule,
            target: self.target,
            occurrence: self.occurrence,
            group_key: self.group_key,
            phase,
            doc: self.doc.0,
            due_ms: self.due_ms,
            refired_ms: self.refired_ms,
            resolved_ms: self.resolved_ms,
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
            lease_owner: self.lease_owner,
            lease_until_ms: self.lease_until_ms,
        })
    }
}

/// How often [`Store::insert_remediation`] retries when its insert conflicted but the row in the
/// way was gone when read (finished or forgotten in between). Each retry means another process
/// made progress, so a few suffice; past them the caller sees an error and the event is retried.
const INSERT_ATTEMPTS: usize = 4;

/// `$1` id … `$10` lease owner, `$11` lease until. `ON CONFLICT DO NOTHING` without a target
/// covers both the primary key (a redelivery) and the open-target index (a busy target).
const INSERT: &str = "INSERT INTO remediations (id, rule, target, occurrence, group_key, phase, \
     doc, due_ms, created_ms, updated_ms, lease_owner, lease_until_ms) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11) ON CONFLICT DO NOTHING";

const BY_ID: &str = concat!("SELECT ", columns!(), " FROM remediations WHERE id = $1");

const OPEN: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM remediations WHERE rule = $1 AND target = $2 AND phase IN ",
    open_phases!()
);

const COUNT: &str = "SELECT COUNT(*) FROM remediations WHERE rule = $1 AND target = $2 \
     AND created_ms >= $3";

/// `CAST($n AS TEXT)` gives PostgreSQL the parameter's type, which `$n IS NULL` alone does
/// not; SQLite reads it as the same NULL test.
const HISTORY: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM remediations WHERE (CAST($1 AS TEXT) IS NULL OR rule = $1) \
     AND (CAST($2 AS TEXT) IS NULL OR target = $2) ORDER BY created_ms DESC, id DESC LIMIT $3"
);

const FORGET_REMEDIATIONS: &str =
    "DELETE FROM remediations WHERE phase = 'done' AND updated_ms < $1";

/// A resolution still read by a remediation that is not done stays, however old: forgetting it
/// would make that remediation see its alert as unresolved.
const FORGET_RESOLUTIONS: &str = "DELETE FROM alert_resolutions WHERE resolved_ms < $1 \
     AND NOT EXISTS (SELECT 1 FROM remediations m \
     WHERE m.occurrence = alert_resolutions.occurrence AND m.phase <> 'done')";

impl Store {
    /// Decodes rows as read.
    pub(super) fn remediation_rows(&self, reads: Vec<Read>) -> Result<Vec<RemediationRow>> {
        reads.into_iter().map(|r| r.into_row(self.url())).collect()
    }

    /// Creates a remediation, unless its id exists (a redelivery) or another open remediation
    /// holds its (rule, target); says which.
    pub async fn insert_remediation(&self, new: &NewRemediation<'_>) -> Result<Inserted> {
        for _ in 0..INSERT_ATTEMPTS {
            let inserted = dispatch!(self, "insert remediation", |db| {
                sqlx::query(INSERT)
                    .bind(new.id)
                    .bind(new.rule)
                    .bind(new.target)
                    .bind(new.occurrence)
                    .bind(new.group_key)
                    .bind(new.phase.as_str())
                    .bind(Json(new.doc))
                    .bind(new.due_ms)
                    .bind(new.now_ms)
                    .bind(new.lease_owner)
                    .bind(new.lease_until_ms)
                    .execute(db)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            if inserted == 1 {
                return Ok(Inserted::Created);
            }
            if let Some(row) = self.remediation(new.id).await? {
                return Ok(Inserted::Exists(row));
            }
            if let Some(target) = new.target
                && let Some(row) = self.open_remediation(new.rule, target).await?
            {
                return Ok(Inserted::Busy(row));
            }
            // The row in the way finished (or was forgotten) between the two statements.
        }
        Err(Error::InvalidRow {
            url: self.url().to_owned(),
            message: format!(
                "remediation `{}` of rule `{}` conflicted {INSERT_ATTEMPTS} times with rows \
                 that were gone when read; the event is retried",
                new.id, new.rule
            ),
        })
    }

    /// The remediation `id`, if it exists.
    pub async fn remediation(&self, id: &str) -> Result<Option<RemediationRow>> {
        let read: Option<Read> = dispatch!(self, "read remediation", |db| {
            sqlx::query_as(BY_ID).bind(id).fetch_optional(db).await
        })?;
        read.map(|r| r.into_row(self.url())).transpose()
    }

    /// The open (acting or verifying) remediation of `rule` on `target`, if any.
    pub async fn open_remediation(
        &self,
        rule: &str,
        target: &str,
    ) -> Result<Option<RemediationRow>> {
        let read: Option<Read> = dispatch!(self, "read open remediation", |db| {
            sqlx::query_as(OPEN)
                .bind(rule)
                .bind(target)
                .fetch_optional(db)
                .await
        })?;
        read.map(|r| r.into_row(self.url())).transpose()
    }

    /// Remediations of `rule` on `target` created at or after `since_ms`, whatever their phase
    /// (the loop guard's count).
    pub async fn count_remediations(&self, rule: &str, target: &str, since_ms: i64) -> Result<i64> {
        dispatch!(self, "count remediations", |db| {
            sqlx::query_scalar(COUNT)
                .bind(rule)
                .bind(target)
                .bind(since_ms)
                .fetch_one(db)
                .await
        })
    }

    /// History: remediations of `rule` and/or on `target` (each `None`: any), newest first, at
    /// most `limit`. One remediation by id is [`Store::remediation`].
    pub async fn remediations(
        &self,
        rule: Option<&str>,
        target: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RemediationRow>> {
        let reads: Vec<Read> = dispatch!(self, "list remediations", |db| {
            sqlx::query_as(HISTORY)
                .bind(rule)
                .bind(target)
                .bind(limit.max(0))
                .fetch_all(db)
                .await
        })?;
        self.remediation_rows(reads)
    }

    /// Retention: deletes `done` remediations last saved before `before_ms`, and alert
    /// resolutions seen before it that no unfinished remediation reads; returns the rows
    /// deleted (both tables).
    pub async fn forget_remediations(&self, before_ms: i64) -> Result<u64> {
        let mut deleted = 0;
        // Remediations first: their resolutions become forgettable with them.
        for (operation, sql) in [
            ("forget remediations", FORGET_REMEDIATIONS),
            ("forget alert resolutions", FORGET_RESOLUTIONS),
        ] {
            deleted += dispatch!(self, operation, |db| {
                sqlx::query(sql)
                    .bind(before_ms)
                    .execute(db)
                    .await
                    .map(|r| r.rows_affected())
            })?;
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests;
