//! The store's statements on both databases, called directly: each statement is written once
//! for SQLite and PostgreSQL, so each test here runs the same calls on both and expects the
//! same answers. (The pipeline tests cover the same statements through `Pipeline::handle`.)

use chrono::{Duration, Utc};
use std::collections::BTreeSet;

use reflex::rules::StateKey;
use reflex::store::{
    Announcement, Applied, Finish, Finished, KeyWrite, NewOutcome, OutcomeStatus, Store,
};
use serde_json::json;

use super::harness::Db;

async fn close(db: Db, store: Store) {
    store.close().await;
    db.cleanup().await;
}

/// The keys of `rule` as a second connection sees them.
async fn keys(store: &Store, rule: &str) -> Vec<String> {
    let rows = store.load_rule_keys(rule).await.expect("load keys");
    rows.into_iter().map(|(key, _)| key).collect()
}

fn state_key(rule: &str, key: &str) -> StateKey {
    StateKey {
        rule: rule.to_owned(),
        key: key.to_owned(),
    }
}

fn put(rule: &str, key: &str, fired: u64, due: chrono::DateTime<Utc>) -> KeyWrite {
    KeyWrite::Put {
        key: state_key(rule, key),
        state: Some(json!({ "fired": fired })),
        applied: Applied::from([("events/0".to_owned(), 7)]),
        due: Some(due),
    }
}

/// A decision's writes take effect at commit, all together, and not at all if the lease is
/// dropped; what was written reads back through the next lock.
async fn a_key_lease_takes_effect_at_commit_and_not_at_all_otherwise(db: Db) {
    let store = db.store().await;
    let reader = db.store().await;
    let rule = crate::support::unique_name("lease");
    let keys_ab = BTreeSet::from([state_key(&rule, "a"), state_key(&rule, "b")]);
    let later = Utc::now() + Duration::minutes(5);
    let writes = vec![put(&rule, "a", 1, later), put(&rule, "b", 2, later)];

    let (mut lease, rows) = store.lock_keys(&keys_ab, Utc::now()).await.expect("lock");
    assert!(
        rows.iter().all(|row| row.state.is_none() && !row.existed),
        "{rows:?}"
    );
    lease.write(writes.clone()).await.expect("write");
    assert!(
        keys(&reader, &rule).await.is_empty(),
        "nothing is visible before the commit"
    );
    drop(lease);
    assert!(
        keys(&reader, &rule).await.is_empty(),
        "a dropped lease keeps nothing"
    );

    let (mut lease, _) = store.lock_keys(&keys_ab, Utc::now()).await.expect("lock");
    lease.write(writes).await.expect("write");
    lease.commit(&store).await.expect("commit");
    assert_eq!(keys(&reader, &rule).await, ["a", "b"]);

    let (mut lease, rows) = reader.lock_keys(&keys_ab, Utc::now()).await.expect("lock");
    assert_eq!(rows[0].state, Some(json!({"fired": 1})));
    assert_eq!(rows[0].applied, Applied::from([("events/0".to_owned(), 7)]));
    assert!(rows[0].existed);
    lease
        .write(vec![KeyWrite::Delete(state_key(&rule, "a"))])
        .await
        .expect("delete");
    lease.commit(&reader).await.expect("commit");
    assert_eq!(keys(&store, &rule).await, ["b"]);

    // Due keys come back once their time has come, earliest first.
    let (lease, due) = store
        .due_keys(later + Duration::seconds(1), 1000)
        .await
        .expect("due");
    assert!(
        due.iter().any(|row| row.key == state_key(&rule, "b")),
        "{due:?}"
    );
    drop(lease);
    let (lease, due) = store.due_keys(Utc::now(), 1000).await.expect("due");
    assert!(
        due.iter().all(|row| row.key.rule != rule),
        "not due yet: {due:?}"
    );
    drop(lease);
    reader.close().await;
    close(db, store).await;
}

#[tokio::test]
async fn a_key_lease_on_postgres_takes_effect_at_commit_and_not_at_all_otherwise() {
    a_key_lease_takes_effect_at_commit_and_not_at_all_otherwise(Db::postgres().await).await;
}

#[tokio::test]
async fn a_key_lease_on_sqlite_takes_effect_at_commit_and_not_at_all_otherwise() {
    a_key_lease_takes_effect_at_commit_and_not_at_all_otherwise(Db::sqlite().await).await;
}

/// On PostgreSQL a key is held by one process at a time: a second lock on it waits until the
/// first commits and then reads what the first wrote; the timer sweep skips a held key instead
/// of waiting for it.
#[tokio::test]
async fn a_key_locked_by_one_replica_waits_for_it_and_is_skipped_by_another_replicas_sweep() {
    let db = Db::postgres().await;
    let (first, second) = (db.store().await, db.store().await);
    let rule = crate::support::unique_name("owner");
    let key = BTreeSet::from([state_key(&rule, "k")]);
    let past = Utc::now() - Duration::seconds(1);
    // A due key.
    let (mut lease, _) = first.lock_keys(&key, Utc::now()).await.expect("lock");
    lease
        .write(vec![put(&rule, "k", 1, past)])
        .await
        .expect("write");
    lease.commit(&first).await.expect("commit");

    let (mut held, rows) = first.lock_keys(&key, Utc::now()).await.expect("lock");
    assert_eq!(rows[0].state, Some(json!({"fired": 1})));
    let (sweep, due) = second.due_keys(Utc::now(), 1000).await.expect("sweep");
    assert!(
        due.iter().all(|row| row.key.rule != rule),
        "a held key is skipped by the other replica's sweep: {due:?}"
    );
    drop(sweep);
    let waiting = tokio::spawn({
        let (second, key) = (second.clone(), key.clone());
        async move {
            let (lease, rows) = second.lock_keys(&key, Utc::now()).await.expect("lock");
            drop(lease);
            rows
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the second lock waits while the first holds the key"
    );
    held.write(vec![put(&rule, "k", 2, past)])
        .await
        .expect("write");
    held.commit(&first).await.expect("commit");
    let rows = waiting.await.expect("joined");
    assert_eq!(
        rows[0].state,
        Some(json!({"fired": 2})),
        "the second decision reads the first one's state"
    );
    second.close().await;
    close(db, first).await;
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

/// Claims are fenced: once another instance took a claim over (its lease passed while the first
/// attempt still ran), the first attempt can neither renew it nor write its end over the
/// taker's final status.
async fn a_late_finisher_cannot_overwrite_the_takers_final_status(db: Db) {
    let store = db.store().await;
    let key = crate::support::unique_name("fenced");
    let started_at = Utc::now() - Duration::minutes(5);
    let details = json!({});
    let claim = NewOutcome {
        event_id: "evt",
        rule: "fencing",
        action_kind: "restart",
        idempotency_key: &key,
        status: OutcomeStatus::Started,
        attempts: 1,
        started_at,
        finished_at: None,
        target: None,
        error: None,
        details: &details,
    };
    assert!(store.insert_outcome(&claim).await.expect("claim"));
    assert!(
        store.renew_claim(&key, 1, Utc::now()).await.expect("renew"),
        "the claimant renews its own claim"
    );
    // The lease passed: another instance takes the claim over and finishes first.
    assert!(
        store
            .take_over(&key, 1, Utc::now(), &details)
            .await
            .expect("take over")
    );
    let finish = |status, attempts| Finish {
        idempotency_key: &key,
        status,
        attempts,
        started_at,
        finished_at: Utc::now(),
        target: Some("deployment/shop/a"),
        error: None,
        details: &details,
    };
    assert!(
        !store.renew_claim(&key, 1, Utc::now()).await.expect("renew"),
        "the first attempt's claim is gone"
    );
    assert_eq!(
        store
            .finish_outcome(&finish(OutcomeStatus::Succeeded, 2))
            .await
            .expect("taker finishes"),
        Finished::Recorded
    );
    assert_eq!(
        store
            .finish_outcome(&finish(OutcomeStatus::Failed, 1))
            .await
            .expect("late finisher"),
        Finished::LostClaim,
        "the late finisher is fenced off"
    );
    assert_eq!(
        store
            .finish_outcome(&finish(OutcomeStatus::Failed, 2))
            .await
            .expect("a second end of the same attempt"),
        Finished::LostClaim,
        "a final row is never rewritten"
    );
    let row = store
        .outcome_by_key(&key)
        .await
        .expect("read")
        .expect("row");
    assert_eq!((row.status, row.attempts), (OutcomeStatus::Succeeded, 2));
    close(db, store).await;
}

#[tokio::test]
async fn a_late_finisher_on_postgres_cannot_overwrite_the_takers_final_status() {
    a_late_finisher_cannot_overwrite_the_takers_final_status(Db::postgres().await).await;
}

#[tokio::test]
async fn a_late_finisher_on_sqlite_cannot_overwrite_the_takers_final_status() {
    a_late_finisher_cannot_overwrite_the_takers_final_status(Db::sqlite().await).await;
}
