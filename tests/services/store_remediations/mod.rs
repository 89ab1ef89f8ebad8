//! The closed-loop remediation tables (`remediations`, `alert_resolutions`, `quarantines`)
//! called directly on both databases: each statement is written once for SQLite and
//! PostgreSQL, so every scenario runs on both (`::on_postgres`, `::on_sqlite`) and expects the
//! same answers. Concurrent claims run on two connection pools, as two replicas would.

use reflex::store::{Inserted, NewRemediation, Phase, RemediationRow, Store};
use serde_json::Value;

use super::pipeline::harness::Db;

/// A fixed "now" (Unix ms): each scenario has its own database, so fixed times cannot collide.
const T: i64 = 1_900_000_000_000;
/// The creator's lease in [`new`].
const CREATOR: &str = "creator";
const CREATOR_LEASE: i64 = T + 30_000;

/// Runs `scenario(db)` once per backend, as `<scenario>::on_postgres` and `::on_sqlite`.
macro_rules! on_both_backends {
    ($($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn on_postgres() {
                super::$scenario(super::Db::postgres().await).await;
            }

            #[tokio::test]
            async fn on_sqlite() {
                super::$scenario(super::Db::sqlite().await).await;
            }
        }
    )+};
}

// After the macro, which they use.
mod leases;
mod quarantines;
mod rows;
mod signals;

async fn close(db: Db, stores: &[&Store]) {
    for store in stores {
        store.close().await;
    }
    db.cleanup().await;
}

/// A remediation of `rule` on `target`, acting, created at [`T`] and leased to [`CREATOR`].
fn new<'a>(
    id: &'a str,
    rule: &'a str,
    target: Option<&'a str>,
    doc: &'a Value,
) -> NewRemediation<'a> {
    NewRemediation {
        id,
        rule,
        target,
        occurrence: None,
        group_key: None,
        phase: Phase::Acting,
        doc,
        due_ms: Some(T + 60_000),
        now_ms: T,
        lease_owner: CREATOR,
        lease_until_ms: CREATOR_LEASE,
    }
}

async fn insert(store: &Store, new: &NewRemediation<'_>) -> Inserted {
    store
        .insert_remediation(new)
        .await
        .expect("insert remediation")
}

async fn row(store: &Store, id: &str) -> RemediationRow {
    store
        .remediation(id)
        .await
        .expect("read remediation")
        .unwrap_or_else(|| panic!("remediation {id} exists"))
}

/// Moves `id` (still leased to [`CREATOR`]) to `phase`, keeping the lease.
async fn set_phase(store: &Store, id: &str, phase: Phase, due_ms: Option<i64>) {
    let doc = row(store, id).await.doc;
    let saved = store
        .save_remediation(id, CREATOR, phase, &doc, due_ms, T, Some(CREATOR_LEASE))
        .await
        .expect("save");
    assert!(saved, "{CREATOR} holds {id}");
}
