//! The audit store's side of the circuit breaker: counting executions in a window and keeping
//! open circuits in the `circuits` table, so every replica and a restarted process agree.
//!
//! SQLite keeps timestamps as RFC 3339 text of varying precision, so its queries compare them
//! through `julianday()`; PostgreSQL compares `TIMESTAMPTZ` values directly.

use chrono::{DateTime, Utc};

use super::store::{Result, Store};

/// Statuses of rows whose action was (or is being) carried out: what the limits count.
/// Dry runs, suppressed, throttled, duplicate and not-implemented outcomes changed nothing.
const EXECUTED: &str = "('started', 'succeeded', 'failed')";

/// One row of `circuits`.
#[derive(Debug, Clone, PartialEq)]
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

type RawCircuit = (
    String,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
    i64,
    i64,
    bool,
    bool,
);

fn from_raw(raw: RawCircuit) -> CircuitRow {
    let (rule, target, opened_at, open_until, executions, trips, announced_open, closed) = raw;
    CircuitRow {
        rule,
        target,
        opened_at,
        open_until,
        executions,
        trips,
        announced_open,
        announced_closed: closed,
    }
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
        match self {
            Store::Sqlite { pool, .. } => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM outcomes WHERE rule = ? AND (? IS NULL OR target = ?) \
                 AND julianday(started_at) >= julianday(?) AND attempts > 0 \
                 AND action_kind <> 'log' AND status IN {EXECUTED}"
                )))
                .bind(rule)
                .bind(target)
                .bind(target)
                .bind(since)
                .fetch_one(pool)
                .await
            }
            Store::Postgres { pool, .. } => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM outcomes WHERE rule = $1 \
                 AND ($2::text IS NULL OR target = $2) AND started_at >= $3 AND attempts > 0 \
                 AND action_kind <> 'log' AND status IN {EXECUTED}"
                )))
                .bind(rule)
                .bind(target)
                .bind(since)
                .fetch_one(pool)
                .await
            }
        }
        .map_err(self.query_err("count executions"))
    }

    /// The circuit of `rule` on `target` (`""`: rule-wide), open or not, if it ever opened.
    pub async fn circuit(&self, rule: &str, target: &str) -> Result<Option<CircuitRow>> {
        const COLUMNS: &str = "rule, target, opened_at, open_until, \
             CAST(executions AS BIGINT), CAST(trips AS BIGINT), announced_open, closed_announced";
        let raw: Option<RawCircuit> = match self {
            Store::Sqlite { pool, .. } => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM circuits WHERE rule = ? AND target = ?"
                )))
                .bind(rule)
                .bind(target)
                .fetch_optional(pool)
                .await
            }
            Store::Postgres { pool, .. } => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM circuits WHERE rule = $1 AND target = $2"
                )))
                .bind(rule)
                .bind(target)
                .fetch_optional(pool)
                .await
            }
        }
        .map_err(self.query_err("read circuit"))?;
        Ok(raw.map(from_raw))
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
        match self {
            Store::Sqlite { pool, .. } => sqlx::query(
                "INSERT INTO circuits (rule, target, opened_at, open_until, executions) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (rule, target) DO UPDATE SET \
                 opened_at = excluded.opened_at, open_until = excluded.open_until, \
                 executions = excluded.executions, trips = circuits.trips + 1, \
                 announced_open = 0, closed_announced = 0 \
                 WHERE julianday(circuits.open_until) <= julianday(excluded.opened_at)",
            )
            .bind(rule)
            .bind(target)
            .bind(now)
            .bind(open_until)
            .bind(executions)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
            Store::Postgres { pool, .. } => sqlx::query(
                "INSERT INTO circuits (rule, target, opened_at, open_until, executions) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (rule, target) DO UPDATE SET \
                 opened_at = excluded.opened_at, open_until = excluded.open_until, \
                 executions = excluded.executions, trips = circuits.trips + 1, \
                 announced_open = FALSE, closed_announced = FALSE \
                 WHERE circuits.open_until <= excluded.opened_at",
            )
            .bind(rule)
            .bind(target)
            .bind(now)
            .bind(open_until)
            .bind(i32::try_from(executions).unwrap_or(i32::MAX))
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
        }
        .map(|rows| rows == 1)
        .map_err(self.query_err("open circuit"))
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
        match self {
            Store::Sqlite { pool, .. } => sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE circuits SET {column} = 1 WHERE rule = ? AND target = ? \
                 AND opened_at = ? AND {column} = 0"
            )))
            .bind(rule)
            .bind(target)
            .bind(opened_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
            Store::Postgres { pool, .. } => sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE circuits SET {column} = TRUE WHERE rule = $1 AND target = $2 \
                 AND opened_at = $3 AND NOT {column}"
            )))
            .bind(rule)
            .bind(target)
            .bind(opened_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
        }
        .map(|rows| rows == 1)
        .map_err(self.query_err("mark circuit announcement"))
    }
}
