//! What wakes a remediation before its deadline: its alert resolving (`alert_resolutions`) and
//! its rule firing again on the same target while it is open (`refired_ms`). A signal only
//! records the fact and makes the row due now; the sweep that claims the row decides what the
//! fact means for it.

use super::super::dispatch::dispatch;
use super::super::{Result, Store};
use super::open_phases;

/// `$1` occurrence, `$2` now. A later duplicate of the resolution keeps the first time.
const RESOLVE: &str = "INSERT INTO alert_resolutions (occurrence, resolved_ms) VALUES ($1, $2) \
     ON CONFLICT (occurrence) DO NOTHING";

/// Makes a row due at `$2` unless it is due earlier already (a NULL due compares as unknown,
/// so it takes `$2`). `undoing` rows wait for the resolution too (undo on resolve).
const WAKE_RESOLVED: &str = "UPDATE remediations \
     SET due_ms = CASE WHEN due_ms < $2 THEN due_ms ELSE $2 END \
     WHERE occurrence = $1 AND phase IN ('acting', 'verifying', 'undoing')";

/// `$1` rule, `$2` target, `$3` group key, `$4` now: the open remediation of (rule, target)
/// when a target is given, else of (rule, group key). `CAST($n AS TEXT)` gives PostgreSQL the
/// parameter's type, which `$n IS NULL` alone does not.
const REFIRE: &str = concat!(
    "UPDATE remediations SET refired_ms = $4, \
     due_ms = CASE WHEN due_ms < $4 THEN due_ms ELSE $4 END \
     WHERE rule = $1 AND phase IN ",
    open_phases!(),
    " AND ((CAST($2 AS TEXT) IS NOT NULL AND target = $2) \
     OR (CAST($2 AS TEXT) IS NULL AND group_key = $3))"
);

impl Store {
    /// Records that the alert occurrence `occurrence` resolved at `now_ms` (the first
    /// resolution seen stays) and makes its open or undoing remediations due now; returns how
    /// many remediations were woken. A resolution that arrives before its remediation exists
    /// is found by that remediation when it is read ([`super::RemediationRow::resolved_ms`]).
    pub async fn signal_resolved(&self, occurrence: &str, now_ms: i64) -> Result<u64> {
        // One transaction: a resolution is never recorded without waking its remediations.
        let mut tx = self.begin().await?;
        let woken = dispatch!(&mut tx, "signal alert resolved", |db| {
            sqlx::query(RESOLVE)
                .bind(occurrence)
                .bind(now_ms)
                .execute(&mut *db)
                .await?;
            sqlx::query(WAKE_RESOLVED)
                .bind(occurrence)
                .bind(now_ms)
                .execute(&mut *db)
                .await
                .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(woken)
    }

    /// Records that `rule` fired again at `now_ms` on the target of its open remediation
    /// (`target` given) or on its group key (`target` `None`), and makes that remediation due
    /// now; returns the rows touched (0: nothing open, the firing starts a remediation of its
    /// own).
    pub async fn signal_refire(
        &self,
        rule: &str,
        target: Option<&str>,
        group_key: Option<&str>,
        now_ms: i64,
    ) -> Result<u64> {
        dispatch!(self, "signal refire", |db| {
            sqlx::query(REFIRE)
                .bind(rule)
                .bind(target)
                .bind(group_key)
                .bind(now_ms)
                .execute(db)
                .await
                .map(|r| r.rows_affected())
        })
    }
}
