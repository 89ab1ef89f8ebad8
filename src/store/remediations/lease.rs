//! The lease on a remediation: the sweep claims due rows for one replica
//! ([`Store::claim_due_remediations`]), which renews its lease while it works and saves fenced
//! on it ([`Store::save_remediation`]). A replica that lost the lease (killed, or paused past
//! it) finds its late save refused instead of overwriting the survivor's work.

use serde_json::Value;
use sqlx::types::Json;

use super::super::dispatch::dispatch;
use super::super::{Backend, Result, Store};
use super::{Phase, Read, RemediationRow, columns};

/// The claim of due rows (`$1` owner, `$2` now, `$3` lease until, `$4` limit), with `$lock`
/// after the candidate subquery. The outer conditions repeat the inner ones: a row another
/// claim changed after this statement's snapshot is re-checked against its new version.
macro_rules! claim {
    ($lock:literal) => {
        concat!(
            "UPDATE remediations SET lease_owner = $1, lease_until_ms = $3 \
             WHERE id IN (SELECT id FROM remediations WHERE due_ms <= $2 AND phase <> 'done' \
             AND (lease_until_ms IS NULL OR lease_until_ms <= $2) ORDER BY due_ms, id LIMIT $4",
            $lock,
            ") AND due_ms <= $2 AND phase <> 'done' \
             AND (lease_until_ms IS NULL OR lease_until_ms <= $2) RETURNING ",
            columns!()
        )
    };
}

/// The claim per backend. PostgreSQL: concurrent sweeps of several replicas skip the rows
/// another one is claiming instead of waiting and then claiming nothing. SQLite: one writer at
/// a time, so the statement is atomic as it is (and `FOR UPDATE` does not exist there).
pub(super) fn claim_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => claim!(" FOR UPDATE SKIP LOCKED"),
        Backend::Sqlite => claim!(""),
    }
}

/// `$1` id, `$2` owner, `$3` phase, `$4` doc, `$5` due, `$6` now, `$7` kept lease end (NULL:
/// release the lease).
const SAVE: &str = "UPDATE remediations SET phase = $3, doc = $4, due_ms = $5, updated_ms = $6, \
     lease_owner = CASE WHEN CAST($7 AS BIGINT) IS NULL THEN NULL ELSE lease_owner END, \
     lease_until_ms = $7 WHERE id = $1 AND lease_owner = $2";

const RENEW: &str =
    "UPDATE remediations SET lease_until_ms = $3 WHERE id = $1 AND lease_owner = $2";

impl Store {
    /// Claims up to `limit` rows with `due_ms <= now_ms`, not done, whose lease is free or
    /// expired: leases them to `owner` until `now_ms + lease_ms` and returns them, earliest due
    /// first. Rows another replica is claiming at the same time are skipped, never returned to
    /// both.
    pub async fn claim_due_remediations(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<RemediationRow>> {
        let sql = claim_sql(self.backend());
        let reads: Vec<Read> = dispatch!(self, "claim due remediations", |db| {
            sqlx::query_as(sql)
                .bind(owner)
                .bind(now_ms)
                .bind(now_ms.saturating_add(lease_ms))
                .bind(limit.max(0))
                .fetch_all(db)
                .await
        })?;
        // RETURNING gives no order.
        let mut rows = self.remediation_rows(reads)?;
        rows.sort_by(|a, b| (a.due_ms, &a.id).cmp(&(b.due_ms, &b.id)));
        Ok(rows)
    }

    /// Saves a remediation's new phase, document and due time, fenced: only while `owner` holds
    /// its lease. Releases the lease, or keeps it until `keep_lease_until` when given (the
    /// owner goes on with the row). Returns `false` when the lease was lost (another replica
    /// took the row over): nothing was written.
    #[allow(clippy::too_many_arguments)] // the row's fields, named as in the table
    pub async fn save_remediation(
        &self,
        id: &str,
        owner: &str,
        phase: Phase,
        doc: &Value,
        due_ms: Option<i64>,
        now_ms: i64,
        keep_lease_until: Option<i64>,
    ) -> Result<bool> {
        let saved = dispatch!(self, "save remediation", |db| {
            sqlx::query(SAVE)
                .bind(id)
                .bind(owner)
                .bind(phase.as_str())
                .bind(Json(doc))
                .bind(due_ms)
                .bind(now_ms)
                .bind(keep_lease_until)
                .execute(db)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(saved == 1)
    }

    /// Extends `owner`'s lease on `id` until `until_ms`; `false` when it was lost.
    pub async fn renew_remediation_lease(
        &self,
        id: &str,
        owner: &str,
        until_ms: i64,
    ) -> Result<bool> {
        let renewed = dispatch!(self, "renew remediation lease", |db| {
            sqlx::query(RENEW)
                .bind(id)
                .bind(owner)
                .bind(until_ms)
                .execute(db)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(renewed == 1)
    }
}
