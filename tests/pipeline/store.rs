//! The store's statements on both databases, called directly: each statement is written once
//! for SQLite and PostgreSQL, so each test here runs the same calls on both and expects the
//! same answers. (The pipeline tests cover the same statements through `Pipeline::handle`.)

use chrono::{Duration, Utc};
use reflex::store::{Announcement, NewOutcome, OutcomeStatus, RuleKeysWrite, Store};
use serde_json::{Value, json};

use crate::harness::Db;

async fn close(db: Db, store: Store) {
    store.close().await;
    db.cleanup().await;
}

/// The keys of `rule` as a second connection sees them.
async fn keys(store: &Store, rule: &str) -> Vec<String> {
    let rows = store.load_rule_keys(rule).await.expect("load keys");
    rows.into_iter().map(|(key, _)| key).collect()
}

async fn a_transaction_takes_effect_at_commit_and_not_at_all_otherwise(db: Db) {
    let store = db.store().await;
    let reader = db.store().await;
    let rule = crate::support::unique_name("tx");
    let upserts = [
        ("a".to_owned(), json!({"fired": 1})),
        ("b".to_owned(), json!({"fired": 2})),
    ];
    let scalars = json!({"evictions": 3});
    let write = RuleKeysWrite {
        rule: &rule,
        upserts: &upserts,
        deletes: &[],
        scalars: Some(&scalars),
        updated_at: Utc::now(),
    };

    let mut tx = store.begin().await.expect("begin");
    assert_eq!(tx.backend(), store.backend());
    tx.save_rule_keys(&write)
        .await
        .expect("write in the transaction");
    assert!(
        keys(&reader, &rule).await.is_empty(),
        "nothing is visible before the commit"
    );
    tx.rollback().await.expect("rollback");
    assert!(
        keys(&reader, &rule).await.is_empty(),
        "a rollback keeps nothing"
    );
    assert_eq!(reader.load_rule_state(&rule).await.expect("load"), None);

    let mut dropped = store.begin().await.expect("begin");
    dropped.save_rule_keys(&write).await.expect("write");
    drop(dropped);
    assert!(
        keys(&reader, &rule).await.is_empty(),
        "a dropped transaction keeps nothing"
    );

    let mut tx = store.begin().await.expect("begin");
    tx.save_rule_keys(&write).await.expect("write");
    tx.commit().await.expect("commit");
    assert_eq!(keys(&reader, &rule).await, ["a", "b"]);
    assert_eq!(
        reader.load_rule_state(&rule).await.expect("load"),
        Some(scalars.clone())
    );

    // A delete matches the state it names only: `a` was rewritten, `b` is removed.
    let stale: [(String, Value); 2] = [
        ("a".to_owned(), json!({"fired": 0})),
        ("b".to_owned(), json!({"fired": 2})),
    ];
    store
        .save_rule_keys(&RuleKeysWrite {
            deletes: &stale,
            upserts: &[],
            scalars: None,
            ..write
        })
        .await
        .expect("delete");
    assert_eq!(keys(&reader, &rule).await, ["a"]);
    reader.close().await;
    close(db, store).await;
}

#[tokio::test]
async fn a_transaction_on_postgres_takes_effect_at_commit_and_not_at_all_otherwise() {
    a_transaction_takes_effect_at_commit_and_not_at_all_otherwise(Db::postgres().await).await;
}

#[tokio::test]
async fn a_transaction_on_sqlite_takes_effect_at_commit_and_not_at_all_otherwise() {
    a_transaction_takes_effect_at_commit_and_not_at_all_otherwise(Db::sqlite().await).await;
}

async fn circuits_count_open_and_announce_alike(db: Db) {
    let store = db.store().await;
    let rule = crate::support::unique_name("circuit");
    let now = Utc::now();
    let details = json!({});
    let rows = [
        ("k1", "restart", Some("deployment/shop/a"), now),
        ("k2", "restart", Some("deployment/shop/b"), now),
        // Not counted: a `log` changes nothing, and a row older than the window.
        ("k3", "log", Some("deployment/shop/a"), now),
        (
            "k4",
            "restart",
            Some("deployment/shop/a"),
            now - Duration::hours(2),
        ),
    ];
    for (key, kind, target, started_at) in rows {
        let key = format!("{rule}-{key}");
        let outcome = NewOutcome {
            event_id: "evt",
            rule: &rule,
            action_kind: kind,
            idempotency_key: &key,
            status: OutcomeStatus::Succeeded,
            attempts: 1,
            started_at,
            finished_at: Some(started_at),
            target,
            error: None,
            details: &details,
        };
        assert!(store.insert_outcome(&outcome).await.expect("insert"));
    }
    let since = now - Duration::hours(1);
    let count = |target| store.count_executions(&rule, target, since);
    assert_eq!(count(None).await.expect("count"), 2, "rule-wide");
    assert_eq!(count(Some("deployment/shop/a")).await.expect("count"), 1);
    assert_eq!(count(Some("deployment/shop/c")).await.expect("count"), 0);

    let until = now + Duration::minutes(5);
    let target = "deployment/shop/a";
    assert!(
        store
            .open_circuit(&rule, target, now, until, 2)
            .await
            .expect("open")
    );
    assert!(
        !store
            .open_circuit(&rule, target, now + Duration::minutes(1), until, 3)
            .await
            .expect("open again"),
        "an open circuit is not opened twice"
    );
    let row = store
        .circuit(&rule, target)
        .await
        .expect("read")
        .expect("row");
    assert_eq!((row.trips, row.executions), (1, 2));
    assert!(!row.announced_open && !row.announced_closed);
    let opened_at = row.opened_at;
    let announce = |which| store.mark_announced(&rule, target, opened_at, which);
    assert!(announce(Announcement::Opened).await.expect("mark"));
    assert!(!announce(Announcement::Opened).await.expect("mark"), "once");
    assert!(announce(Announcement::Closed).await.expect("mark"));

    let later = until + Duration::seconds(1);
    assert!(
        store
            .open_circuit(&rule, target, later, later + Duration::minutes(5), 4)
            .await
            .expect("reopen"),
        "an expired circuit opens again"
    );
    let row = store
        .circuit(&rule, target)
        .await
        .expect("read")
        .expect("row");
    assert_eq!((row.trips, row.executions), (2, 4));
    assert!(!row.announced_open && !row.announced_closed, "flags reset");
    assert_eq!(store.circuit(&rule, "").await.expect("read"), None);
    close(db, store).await;
}

#[tokio::test]
async fn circuits_on_postgres_count_open_and_announce_like_on_sqlite() {
    circuits_count_open_and_announce_alike(Db::postgres().await).await;
}

#[tokio::test]
async fn circuits_on_sqlite_count_open_and_announce_like_on_postgres() {
    circuits_count_open_and_announce_alike(Db::sqlite().await).await;
}
