//! The audit store's side of the circuit breaker: counting executions in a window and keeping
//! open circuits in the `circuits` table, so every replica and a restarted process agree.
//!
//! Timestamps are compared through [`super::Backend::time`] (SQLite keeps them as text).

use chrono::{DateTime, Utc};

use super::dispatch::dispatch;
use super::{Result, Store};

/// Statuses of rows whose action was (or is being) carried out: what the limits count.
/// Dry runs, suppressed, throttled, duplicate and not-implemented outcomes changed nothing.
const EXECUTED: &str = "('started', 'succeeded', 'failed')";

/// One row of `circuits` (decoded by column name).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CircuitRow {
    /// The rule.
    pub rule: String,
    /// The object, or empty for the rule-wide circuit.
    pub target: String,
    /// When it last opened.
    pub opened_at: DateTime<Utc>,
    /// When it closes (or closed).
    pub open_until: DateTime<Utc>,
    /// Executions counted when it opened.
    pub executions: i64,
    /// Times it opened.
    pub trips: i64,
    /// Whether the `opened` announcement was published.
    pub announced_open: bool,
    /// Whether the `closed` announcement was published.
    pub announced_closed: bool,
}

/// Which announcement flag to set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announcement {
    /// `dev.reflex.circuit.opened`.
    Opened,
    /// `dev.reflex.circuit.closed`.
    Closed,
}

impl Store {
    /// Actions of `rule` (on `target`, when given) carried out or in progress, started at or
    /// after `since`. `log` actions are not counted: they change nothing.
    pub async fn count_executions(
        &self,
        rule: &str,
        target: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<i64> {
        // `CAST($2 AS TEXT)` gives PostgreSQL the parameter's type, which `$2 IS NULL` alone
        // does not; SQLite reads it as the same NULL test.
        let sql = format!(
            "SELECT COUNT(*) FROM outcomes WHERE rule = $1 \
             AND (CAST($2 AS TEXT) IS NULL OR target = $2) AND {} >= {} AND attempts > 0 \
             AND action_kind <> 'log' AND status IN {EXECUTED}",
            self.backend().time("started_at"),
            self.backend().time("$3"),
        );
        dispatch!(self, "count executions", |db| {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(rule)
                .bind(target)
                .bind(since)
                .fetch_one(db)
                .await
        })
    }

    /// The circuit of `rule` on `target` (`""`: rule-wide), open or not, if it ever opened.
    pub async fn circuit(&self, rule: &str, target: &str) -> Result<Option<CircuitRow>> {
        dispatch!(self, "read circuit", |db| {
            // The counts are 32-bit on PostgreSQL, read as 64-bit on both.
            sqlx::query_as(
                "SELECT rule, target, opened_at, open_until, \
                 CAST(executions AS BIGINT) AS executions, CAST(trips AS BIGINT) AS trips, \
                 announced_open, closed_announced AS announced_closed \
                 FROM circuits WHERE rule = $1 AND target = $2",
            )
            .bind(rule)
            .bind(target)
            .fetch_optional(db)
            .await
        })
    }

    /// Opens the circuit until `open_until` unless it is open at `now` already. Returns whether
    /// this call opened it (exactly one caller does, on any number of replicas).
    pub async fn open_circuit(
        &self,
        rule: &str,
        target: &str,
        now: DateTime<Utc>,
        open_until: DateTime<Utc>,
        executions: i64,
    ) -> Result<bool> {
        // SQLite has no boolean type: it stores FALSE as 0, which its reads decode as false.
        let sql = format!(
            "INSERT INTO circuits (rule, target, opened_at, open_until, executions) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (rule, target) DO UPDATE SET \
             opened_at = excluded.opened_at, open_until = excluded.open_until, \
             executions = excluded.executions, trips = circuits.trips + 1, \
             announced_open = FALSE, closed_announced = FALSE \
             WHERE {} <= {}",
            self.backend().time("circuits.open_until"),
            self.backend().time("excluded.opened_at"),
        );
        // The column is a 32-bit INTEGER on PostgreSQL; a count past it saturates.
        let executions = i32::try_from(executions).unwrap_or(i32::MAX);
        let opened = dispatch!(self, "open circuit", |db| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(rule)
                .bind(target)
                .bind(now)
                .bind(open_until)
                .bind(executions)
                .execute(db)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(opened == 1)
    }

    /// Marks an announcement of the circuit opened at `opened_at` as published. Returns
    /// whether this call set it (so concurrent callers publish the `closed` event once).
    pub async fn mark_announced(
        &self,
        rule: &str,
        target: &str,
        opened_at: DateTime<Utc>,
        which: Announcement,
    ) -> Result<bool> {
        let column = match which {
            Announcement::Opened => "announced_open",
            Announcement::Closed => "closed_announced",
        };
        let sql = format!(
            "UPDATE circuits SET {column} = TRUE WHERE rule = $1 AND target = $2 \
             AND opened_at = $3 AND NOT {column}"
        );
        let marked = dispatch!(self, "mark circuit announcement", |db| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(rule)
                .bind(target)
                .bind(opened_at)
                .execute(db)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(marked == 1)
    }
}
