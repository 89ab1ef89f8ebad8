//! The loop guard's `quarantines`: targets a rule stopped acting on because its remediations
//! kept "working" and the trigger kept coming back. One row per (rule, target), re-opened in
//! place; active while not released and not expired, so every replica and a restarted process
//! agree on it.

use super::super::dispatch::dispatch;
use super::super::{Result, Store};

/// The columns of a [`QuarantineRow`], decoded by name.
macro_rules! quarantine_columns {
    () => {
        "rule, target, since_ms, until_ms, reason, remediation_id, released_ms, released_by, \
         announced"
    };
}

/// One row of `quarantines`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct QuarantineRow {
    /// The rule that stopped acting.
    pub rule: String,
    /// The object it stopped acting on.
    pub target: String,
    /// When it was (last) opened.
    pub since_ms: i64,
    /// When it expires on its own.
    pub until_ms: i64,
    /// Why, for operators.
    pub reason: String,
    /// The remediation whose recurrence tripped the guard.
    pub remediation_id: Option<String>,
    /// When an operator released it, if one did.
    pub released_ms: Option<i64>,
    /// Who released it.
    pub released_by: Option<String>,
    /// Whether the `quarantined` announcement went out.
    pub announced: bool,
}

impl QuarantineRow {
    /// Whether the rule must leave the target alone at `now_ms`: not released and not expired.
    pub fn active(&self, now_ms: i64) -> bool {
        self.released_ms.is_none() && self.until_ms > now_ms
    }
}

const BY_KEY: &str = concat!(
    "SELECT ",
    quarantine_columns!(),
    " FROM quarantines WHERE rule = $1 AND target = $2"
);

/// `$1` rule … `$6` remediation id. Re-opens an inactive row in place (clearing its release
/// and announcement); an active one (as of `$3`, the new since) is left as it is, and the
/// statement then changes no row, which is how the caller learns it.
const OPEN: &str = "INSERT INTO quarantines (rule, target, since_ms, until_ms, reason, \
     remediation_id) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (rule, target) DO UPDATE SET \
     since_ms = excluded.since_ms, until_ms = excluded.until_ms, reason = excluded.reason, \
     remediation_id = excluded.remediation_id, released_ms = NULL, released_by = NULL, \
     announced = FALSE \
     WHERE quarantines.released_ms IS NOT NULL OR quarantines.until_ms <= excluded.since_ms";

const ANNOUNCED: &str = "UPDATE quarantines SET announced = TRUE WHERE rule = $1 AND target = $2";

/// `$1` target, `$2` rule (NULL: every rule), `$3` by, `$4` now. `CAST($2 AS TEXT)` gives
/// PostgreSQL the parameter's type, which `$2 IS NULL` alone does not.
const RELEASE: &str = concat!(
    "UPDATE quarantines SET released_ms = $4, released_by = $3 WHERE target = $1 \
     AND (CAST($2 AS TEXT) IS NULL OR rule = $2) AND released_ms IS NULL AND until_ms > $4 \
     RETURNING ",
    quarantine_columns!()
);

/// `$1` now (NULL: every row, active or not).
const LIST: &str = concat!(
    "SELECT ",
    quarantine_columns!(),
    " FROM quarantines WHERE CAST($1 AS BIGINT) IS NULL \
     OR (released_ms IS NULL AND until_ms > $1) ORDER BY rule, target"
);

impl Store {
    /// The quarantine of `rule` on `target`, active or not, if one was ever opened.
    pub async fn quarantine(&self, rule: &str, target: &str) -> Result<Option<QuarantineRow>> {
        dispatch!(self, "read quarantine", |db| {
            sqlx::query_as(BY_KEY)
                .bind(rule)
                .bind(target)
                .fetch_optional(db)
                .await
        })
    }

    /// Quarantines `target` for `rule` from `since_ms` until `until_ms`, creating the row or
    /// re-opening it in place. Returns `false` when a quarantine was active at `since_ms`
    /// already: then nothing changes (so, of several replicas, exactly one opens it and
    /// announces it).
    pub async fn open_quarantine(
        &self,
        rule: &str,
        target: &str,
        since_ms: i64,
        until_ms: i64,
        reason: &str,
        remediation_id: Option<&str>,
    ) -> Result<bool> {
        let opened = dispatch!(self, "open quarantine", |db| {
            sqlx::query(OPEN)
                .bind(rule)
                .bind(target)
                .bind(since_ms)
                .bind(until_ms)
                .bind(reason)
                .bind(remediation_id)
                .execute(db)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(opened == 1)
    }

    /// Records that the quarantine of `rule` on `target` was announced.
    pub async fn mark_quarantine_announced(&self, rule: &str, target: &str) -> Result<()> {
        dispatch!(self, "mark quarantine announced", |db| {
            sqlx::query(ANNOUNCED)
                .bind(rule)
                .bind(target)
                .execute(db)
                .await
                .map(drop)
        })
    }

    /// Releases the quarantines active at `now_ms` on `target` (of `rule` only, when given),
    /// recording `by` as who did; returns the released rows, by rule.
    pub async fn release_quarantines(
        &self,
        target: &str,
        rule: Option<&str>,
        by: &str,
        now_ms: i64,
    ) -> Result<Vec<QuarantineRow>> {
        let mut rows: Vec<QuarantineRow> = dispatch!(self, "release quarantines", |db| {
            sqlx::query_as(RELEASE)
                .bind(target)
                .bind(rule)
                .bind(by)
                .bind(now_ms)
                .fetch_all(db)
                .await
        })?;
        // RETURNING gives no order.
        rows.sort_by(|a, b| a.rule.cmp(&b.rule));
        Ok(rows)
    }

    /// Every quarantine by (rule, target); with `Some(now_ms)` only those active then.
    pub async fn quarantines(&self, active_at_ms: Option<i64>) -> Result<Vec<QuarantineRow>> {
        dispatch!(self, "list quarantines", |db| {
            sqlx::query_as(LIST).bind(active_at_ms).fetch_all(db).await
        })
    }
}
