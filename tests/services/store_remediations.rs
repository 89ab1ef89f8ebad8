//! The closed-loop remediation tables (`remediations`, `alert_resolutions`, `quarantines`)
//! called directly on both databases: each statement is written once for SQLite and
//! PostgreSQL, so every scenario runs on both (`::on_postgres`, `::on_sqlite`) and expects the
//! same answers. Concurrent claims run on two connection pools, as two replicas would.

use std::collections::BTreeMap;

use reflex::store::{Inserted, NewRemediation, Phase, RemediationRow, Store};
use serde_json::{Value, json};

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

on_both_backends!(
    a_firing_is_created_once_and_a_second_one_on_the_same_open_target_is_busy,
    concurrent_firings_on_one_target_create_exactly_one_remediation,
    two_replicas_claiming_due_rows_concurrently_never_get_the_same_row,
    an_expired_lease_is_claimed_again_and_the_late_owners_save_is_refused,
    a_resolution_is_seen_whether_it_comes_before_or_after_the_row_and_wakes_it,
    a_refire_marks_and_wakes_only_the_open_remediation_of_its_target_or_group,
    a_quarantine_opens_once_reopens_in_place_and_is_released_by_target,
    the_loop_guard_counts_a_targets_remediations_created_within_the_window,
    retention_forgets_old_finished_remediations_and_unread_resolutions,
);

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

async fn a_firing_is_created_once_and_a_second_one_on_the_same_open_target_is_busy(db: Db) {
    let store = db.store().await;
    let target = "shop/Deployment/api";
    // Nested, Unicode and large numbers: the store keeps the document as it was given.
    let doc = json!({"step": 0, "checks": ["alert_resolved"], "note": "Ünïcødé ✓", "n": 9007199254740993u64});
    let first = NewRemediation {
        occurrence: Some("fp1/2026-01-01T00:00:00Z"),
        group_key: Some("shop/api"),
        ..new("ev1.restart", "restart", Some(target), &doc)
    };
    assert_eq!(insert(&store, &first).await, Inserted::Created);
    let created = row(&store, "ev1.restart").await;
    let expected = RemediationRow {
        id: "ev1.restart".into(),
        rule: "restart".into(),
        target: Some(target.into()),
        occurrence: Some("fp1/2026-01-01T00:00:00Z".into()),
        group_key: Some("shop/api".into()),
        phase: Phase::Acting,
        doc: doc.clone(),
        due_ms: Some(T + 60_000),
        refired_ms: None,
        resolved_ms: None,
        created_ms: T,
        updated_ms: T,
        lease_owner: Some(CREATOR.into()),
        lease_until_ms: Some(CREATOR_LEASE),
    };
    assert_eq!(created, expected);

    // A redelivery finds the first row, whatever else it says.
    let other_doc = json!({"step": 7});
    let again = new("ev1.restart", "restart", Some("elsewhere"), &other_doc);
    assert_eq!(
        insert(&store, &again).await,
        Inserted::Exists(expected.clone())
    );

    // Another event on the same target while the first is open: busy, nothing written.
    let second = new("ev2.restart", "restart", Some(target), &doc);
    for phase in [Phase::Acting, Phase::Verifying] {
        set_phase(&store, "ev1.restart", phase, Some(T + 60_000)).await;
        match insert(&store, &second).await {
            Inserted::Busy(holder) => {
                assert_eq!((holder.id.as_str(), holder.phase), ("ev1.restart", phase))
            }
            other => panic!("{phase}: expected Busy, got {other:?}"),
        }
        assert_eq!(store.remediation("ev2.restart").await.expect("read"), None);
    }
    // Another rule on the same target, and a rule without a target, are not in the way.
    assert_eq!(
        insert(&store, &new("ev2.scale", "scale", Some(target), &doc)).await,
        Inserted::Created
    );
    assert_eq!(
        insert(&store, &new("ev3.page", "restart", None, &doc)).await,
        Inserted::Created
    );
    assert_eq!(
        insert(&store, &new("ev4.page", "restart", None, &doc)).await,
        Inserted::Created
    );

    // Undoing (and done) no longer hold the target.
    set_phase(&store, "ev1.restart", Phase::Undoing, None).await;
    assert_eq!(
        store
            .open_remediation("restart", target)
            .await
            .expect("open"),
        None
    );
    assert_eq!(insert(&store, &second).await, Inserted::Created);
    set_phase(&store, "ev2.restart", Phase::Done, None).await;
    assert_eq!(
        insert(&store, &new("ev5.restart", "restart", Some(target), &doc)).await,
        Inserted::Created
    );
    let open = store
        .open_remediation("restart", target)
        .await
        .expect("open");
    assert_eq!(open.map(|r| r.id), Some("ev5.restart".to_owned()));

    close(db, &[&store]).await;
}

async fn concurrent_firings_on_one_target_create_exactly_one_remediation(db: Db) {
    let stores = [db.store().await, db.store().await];
    let doc = json!({});
    let ids: Vec<String> = (0..12).map(|i| format!("ev{i}.restart")).collect();
    // One task per firing, spread over two pools, so the inserts really overlap.
    let tasks: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let (store, id, doc) = (stores[i % 2].clone(), id.clone(), doc.clone());
            tokio::spawn(async move {
                store
                    .insert_remediation(&new(&id, "restart", Some("ns/Deployment/a"), &doc))
                    .await
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("task").expect("insert"));
    }
    let created: Vec<&String> = ids
        .iter()
        .zip(&results)
        .filter(|(_, r)| **r == Inserted::Created)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(created.len(), 1, "{results:?}");
    for result in &results {
        match result {
            Inserted::Created => {}
            Inserted::Busy(holder) => assert_eq!(&holder.id, created[0]),
            Inserted::Exists(row) => panic!("no id repeats, yet {row:?} exists"),
        }
    }
    let [a, b] = stores;
    close(db, &[&a, &b]).await;
}

async fn two_replicas_claiming_due_rows_concurrently_never_get_the_same_row(db: Db) {
    let (one, two) = (db.store().await, db.store().await);
    let doc = json!({"due": true});
    const DUE: usize = 60;
    for i in 0..DUE {
        let id = format!("due{i:02}");
        // Due at various past times; their creator's lease has already expired.
        let due = NewRemediation {
            due_ms: Some(T - (i as i64 % 7) * 1_000),
            lease_until_ms: T - 1,
            ..new(&id, "restart", None, &doc)
        };
        assert_eq!(insert(&one, &due).await, Inserted::Created);
    }
    // Not claimable: due later, no due time, done, or leased beyond now.
    let later = NewRemediation {
        due_ms: Some(T + 1),
        lease_until_ms: T - 1,
        ..new("later", "restart", None, &doc)
    };
    let never = NewRemediation {
        due_ms: None,
        lease_until_ms: T - 1,
        ..new("never", "restart", None, &doc)
    };
    let done = NewRemediation {
        phase: Phase::Done,
        lease_until_ms: T - 1,
        due_ms: Some(T - 5),
        ..new("done", "restart", None, &doc)
    };
    let leased = NewRemediation {
        due_ms: Some(T - 5),
        ..new("leased", "restart", None, &doc)
    };
    for row in [&later, &never, &done, &leased] {
        assert_eq!(insert(&one, row).await, Inserted::Created);
    }

    async fn drain(store: &Store, owner: &str) -> Vec<RemediationRow> {
        let mut all = Vec::new();
        loop {
            let batch = store
                .claim_due_remediations(owner, T, 10_000, 7)
                .await
                .expect("claim");
            assert!(batch.len() <= 7, "{} > limit", batch.len());
            assert!(
                batch.windows(2).all(|w| w[0].due_ms <= w[1].due_ms),
                "earliest first"
            );
            if batch.is_empty() {
                return all;
            }
            all.extend(batch);
            // Let the other replica's claims interleave with this one's.
            tokio::task::yield_now().await;
        }
    }
    let (by_one, by_two) = tokio::join!(drain(&one, "replica-1"), drain(&two, "replica-2"));

    let mut owners: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (rows, owner) in [(&by_one, "replica-1"), (&by_two, "replica-2")] {
        for row in rows {
            assert_eq!(row.lease_owner.as_deref(), Some(owner), "{row:?}");
            assert_eq!(row.lease_until_ms, Some(T + 10_000));
            owners.entry(row.id.clone()).or_default().push(owner);
        }
    }
    let twice: Vec<_> = owners.iter().filter(|(_, o)| o.len() > 1).collect();
    assert!(twice.is_empty(), "claimed by both: {twice:?}");
    let expected: Vec<String> = (0..DUE).map(|i| format!("due{i:02}")).collect();
    assert_eq!(owners.keys().cloned().collect::<Vec<_>>(), expected);
    // The stored leases are the claimers'.
    for (id, owner) in &owners {
        assert_eq!(row(&one, id).await.lease_owner.as_deref(), Some(owner[0]));
    }

    close(db, &[&one, &two]).await;
}

async fn an_expired_lease_is_claimed_again_and_the_late_owners_save_is_refused(db: Db) {
    let (one, two) = (db.store().await, db.store().await);
    let doc = json!({"step": 0});
    let due = NewRemediation {
        due_ms: Some(T),
        lease_until_ms: T,
        ..new("r1", "restart", Some("ns/Deployment/a"), &doc)
    };
    assert_eq!(insert(&one, &due).await, Inserted::Created);

    let claimed = one
        .claim_due_remediations("replica-1", T, 1_000, 10)
        .await
        .expect("claim");
    assert_eq!(
        claimed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["r1"]
    );
    // Held until T + 1000: another replica finds nothing before then.
    let early = two
        .claim_due_remediations("replica-2", T + 999, 1_000, 10)
        .await
        .expect("claim");
    assert_eq!(early, []);
    assert!(
        one.renew_remediation_lease("r1", "replica-1", T + 1_500)
            .await
            .expect("renew")
    );
    let early = two
        .claim_due_remediations("replica-2", T + 1_499, 1_000, 10)
        .await
        .expect("claim");
    assert_eq!(early, []);
    // replica-1 stalls past its lease: replica-2 takes the row over.
    let taken = two
        .claim_due_remediations("replica-2", T + 1_500, 1_000, 10)
        .await
        .expect("claim");
    assert_eq!(
        taken
            .iter()
            .map(|r| r.lease_owner.as_deref())
            .collect::<Vec<_>>(),
        [Some("replica-2")]
    );

    // The loser's late writes are refused and change nothing.
    let stale = json!({"step": 1, "by": "replica-1"});
    assert!(
        !one.renew_remediation_lease("r1", "replica-1", T + 9_000)
            .await
            .expect("renew")
    );
    let saved = one
        .save_remediation(
            "r1",
            "replica-1",
            Phase::Done,
            &stale,
            None,
            T + 1_600,
            None,
        )
        .await
        .expect("save");
    assert!(!saved, "replica-1 lost the lease");
    assert_eq!(row(&two, "r1").await.phase, Phase::Acting);

    // The owner saves, keeping its lease while it goes on…
    let verifying = json!({"step": 0, "verify": "pending"});
    let saved = two
        .save_remediation(
            "r1",
            "replica-2",
            Phase::Verifying,
            &verifying,
            Some(T + 60_000),
            T + 1_700,
            Some(T + 5_000),
        )
        .await
        .expect("save");
    assert!(saved);
    let kept = row(&two, "r1").await;
    assert_eq!(
        (
            kept.phase,
            &kept.doc,
            kept.due_ms,
            kept.updated_ms,
            kept.lease_owner.as_deref(),
            kept.lease_until_ms
        ),
        (
            Phase::Verifying,
            &verifying,
            Some(T + 60_000),
            T + 1_700,
            Some("replica-2"),
            Some(T + 5_000)
        )
    );
    assert_eq!(kept.created_ms, T, "a save does not move the creation time");
    // …then releases it: the row is free, and claimable again once due.
    let saved = two
        .save_remediation(
            "r1",
            "replica-2",
            Phase::Verifying,
            &verifying,
            Some(T + 60_000),
            T + 1_800,
            None,
        )
        .await
        .expect("save");
    assert!(saved);
    let released = row(&one, "r1").await;
    assert_eq!(
        (released.lease_owner, released.lease_until_ms),
        (None, None)
    );
    assert_eq!(
        one.claim_due_remediations("replica-1", T + 59_999, 1_000, 10)
            .await
            .expect("claim"),
        []
    );
    let again = one
        .claim_due_remediations("replica-1", T + 60_000, 1_000, 10)
        .await
        .expect("claim");
    assert_eq!(again.len(), 1);

    close(db, &[&one, &two]).await;
}

async fn a_resolution_is_seen_whether_it_comes_before_or_after_the_row_and_wakes_it(db: Db) {
    let store = db.store().await;
    let doc = json!({});
    // Resolved before the remediation exists (another partition was faster): nothing to wake,
    // but the row finds it when read.
    assert_eq!(
        store
            .signal_resolved("fp1/s1", T - 500)
            .await
            .expect("signal"),
        0
    );
    let early = NewRemediation {
        occurrence: Some("fp1/s1"),
        ..new("early", "restart", Some("ns/Deployment/a"), &doc)
    };
    assert_eq!(insert(&store, &early).await, Inserted::Created);
    assert_eq!(row(&store, "early").await.resolved_ms, Some(T - 500));
    // A duplicate resolution keeps the first time, and wakes the row now.
    assert_eq!(
        store
            .signal_resolved("fp1/s1", T + 10)
            .await
            .expect("signal"),
        1
    );
    let woken = row(&store, "early").await;
    assert_eq!(
        (woken.resolved_ms, woken.due_ms),
        (Some(T - 500), Some(T + 10))
    );

    // Resolved after: verifying without a due time, and undoing, rows are woken; a done one,
    // another occurrence's and a row already due earlier keep their due time.
    let rows = [
        ("verifying", Phase::Verifying, None, "fp2/s1"),
        ("undoing", Phase::Undoing, Some(T + 3_600_000), "fp2/s1"),
        ("overdue", Phase::Verifying, Some(T - 1_000), "fp2/s1"),
        ("finished", Phase::Done, Some(T + 5), "fp2/s1"),
        ("other", Phase::Verifying, Some(T + 60_000), "fp3/s1"),
    ];
    for (id, phase, due_ms, occurrence) in rows {
        let new = NewRemediation {
            phase,
            due_ms,
            occurrence: Some(occurrence),
            ..new(id, "verify", None, &doc)
        };
        assert_eq!(insert(&store, &new).await, Inserted::Created);
        assert_eq!(row(&store, id).await.resolved_ms, None);
    }
    assert_eq!(
        store
            .signal_resolved("fp2/s1", T + 20)
            .await
            .expect("signal"),
        3
    );
    let seen: Vec<(Option<i64>, Option<i64>)> = {
        let mut seen = Vec::new();
        for (id, ..) in rows {
            let r = row(&store, id).await;
            seen.push((r.due_ms, r.resolved_ms));
        }
        seen
    };
    assert_eq!(
        seen,
        [
            (Some(T + 20), Some(T + 20)),
            (Some(T + 20), Some(T + 20)),
            (Some(T - 1_000), Some(T + 20)),
            (Some(T + 5), Some(T + 20)),
            (Some(T + 60_000), None),
        ]
    );
    // History reads the resolution too.
    let listed = store
        .remediations(Some("verify"), None, 10)
        .await
        .expect("history");
    assert!(
        listed
            .iter()
            .filter(|r| r.occurrence.as_deref() == Some("fp2/s1"))
            .all(|r| r.resolved_ms == Some(T + 20))
    );

    close(db, &[&store]).await;
}

async fn a_refire_marks_and_wakes_only_the_open_remediation_of_its_target_or_group(db: Db) {
    let store = db.store().await;
    let doc = json!({});
    let target = "ns/Deployment/a";
    let rows = [
        NewRemediation {
            phase: Phase::Done,
            ..new("old", "restart", Some(target), &doc)
        },
        NewRemediation {
            phase: Phase::Verifying,
            group_key: Some("g1"),
            ..new("open", "restart", Some(target), &doc)
        },
        NewRemediation {
            phase: Phase::Verifying,
            ..new("other-rule", "scale", Some(target), &doc)
        },
        NewRemediation {
            phase: Phase::Verifying,
            group_key: Some("g1"),
            ..new("grouped", "page", None, &doc)
        },
        NewRemediation {
            phase: Phase::Undoing,
            group_key: Some("g1"),
            ..new("undoing", "page", None, &doc)
        },
    ];
    for new in &rows {
        assert_eq!(insert(&store, new).await, Inserted::Created);
    }
    let refired = |id: &'static str| {
        let store = store.clone();
        async move {
            let r = row(&store, id).await;
            (r.refired_ms, r.due_ms)
        }
    };

    assert_eq!(
        store
            .signal_refire("restart", Some(target), None, T + 100)
            .await
            .expect("refire"),
        1
    );
    assert_eq!(refired("open").await, (Some(T + 100), Some(T + 100)));
    // The latest refire is kept.
    assert_eq!(
        store
            .signal_refire("restart", Some(target), Some("g1"), T + 200)
            .await
            .expect("refire"),
        1
    );
    assert_eq!(refired("open").await, (Some(T + 200), Some(T + 100)));
    assert_eq!(refired("old").await, (None, Some(T + 60_000)));
    assert_eq!(refired("other-rule").await, (None, Some(T + 60_000)));
    assert_eq!(
        refired("grouped").await,
        (None, Some(T + 60_000)),
        "a target given matches by target"
    );

    // Without a target, the open remediation of the group key.
    assert_eq!(
        store
            .signal_refire("page", None, Some("g1"), T + 300)
            .await
            .expect("refire"),
        1
    );
    assert_eq!(refired("grouped").await, (Some(T + 300), Some(T + 300)));
    assert_eq!(refired("undoing").await, (None, Some(T + 60_000)));
    // Nothing open: the firing starts a remediation of its own.
    assert_eq!(
        store
            .signal_refire("page", None, Some("g2"), T)
            .await
            .expect("refire"),
        0
    );
    assert_eq!(
        store
            .signal_refire("page", None, None, T)
            .await
            .expect("refire"),
        0
    );
    assert_eq!(
        store
            .signal_refire("restart", Some("ns/Deployment/b"), None, T)
            .await
            .expect("refire"),
        0
    );

    close(db, &[&store]).await;
}

async fn a_quarantine_opens_once_reopens_in_place_and_is_released_by_target(db: Db) {
    let store = db.store().await;
    let target = "ns/Deployment/flappy";
    let hour = 3_600_000;
    assert_eq!(
        store.quarantine("restart", target).await.expect("read"),
        None
    );

    assert!(
        store
            .open_quarantine(
                "restart",
                target,
                T,
                T + hour,
                "3 remediations in 1h",
                Some("r3")
            )
            .await
            .expect("open")
    );
    // Another replica's attempt while it is active changes nothing.
    assert!(
        !store
            .open_quarantine("restart", target, T + 5, T + 2 * hour, "again", None)
            .await
            .expect("open")
    );
    let q = store
        .quarantine("restart", target)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(
        (
            q.since_ms,
            q.until_ms,
            q.reason.as_str(),
            q.remediation_id.as_deref(),
            q.announced
        ),
        (T, T + hour, "3 remediations in 1h", Some("r3"), false)
    );
    assert!(q.active(T + hour - 1) && !q.active(T + hour));
    store
        .mark_quarantine_announced("restart", target)
        .await
        .expect("announce");
    assert!(
        store
            .quarantine("restart", target)
            .await
            .expect("read")
            .expect("row")
            .announced
    );

    // A second rule on the same target, and the same rule elsewhere.
    assert!(
        store
            .open_quarantine("scale", target, T, T + hour, "loop", None)
            .await
            .expect("open")
    );
    assert!(
        store
            .open_quarantine("restart", "ns/Deployment/other", T, T + 10, "loop", None)
            .await
            .expect("open")
    );
    let active = |at| {
        let store = store.clone();
        async move {
            let rows = store.quarantines(Some(at)).await.expect("list");
            rows.into_iter()
                .map(|q| format!("{}@{}", q.rule, q.target))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        active(T + 1).await,
        [
            "restart@ns/Deployment/flappy",
            "restart@ns/Deployment/other",
            "scale@ns/Deployment/flappy"
        ]
    );
    // Expired on its own: inactive, and may be opened again.
    assert_eq!(
        active(T + 10).await,
        ["restart@ns/Deployment/flappy", "scale@ns/Deployment/flappy"]
    );
    assert!(
        store
            .open_quarantine(
                "restart",
                "ns/Deployment/other",
                T + 10,
                T + 20,
                "loop",
                None
            )
            .await
            .expect("open")
    );

    // Release of one rule on the target, then of every rule.
    let released = store
        .release_quarantines(target, Some("scale"), "alice", T + 100)
        .await
        .expect("release");
    assert_eq!(
        released.iter().map(|q| q.rule.as_str()).collect::<Vec<_>>(),
        ["scale"]
    );
    assert_eq!(
        (released[0].released_ms, released[0].released_by.as_deref()),
        (Some(T + 100), Some("alice"))
    );
    let released = store
        .release_quarantines(target, None, "bob", T + 200)
        .await
        .expect("release");
    assert_eq!(
        released.iter().map(|q| q.rule.as_str()).collect::<Vec<_>>(),
        ["restart"]
    );
    assert_eq!(
        store
            .release_quarantines(target, None, "bob", T + 300)
            .await
            .expect("release"),
        []
    );
    assert_eq!(active(T + 300).await, Vec::<String>::new());
    // Released rows stay readable until re-opened.
    let all = store.quarantines(None).await.expect("list");
    assert_eq!(all.len(), 3);
    let q = store
        .quarantine("restart", target)
        .await
        .expect("read")
        .expect("row");
    assert!(!q.active(T + 300));
    assert_eq!(
        (q.released_ms, q.released_by.as_deref()),
        (Some(T + 200), Some("bob"))
    );

    // Re-opened in place: release and announcement cleared, the new reason and times.
    assert!(
        store
            .open_quarantine(
                "restart",
                target,
                T + 400,
                T + 400 + hour,
                "recurred",
                Some("r9")
            )
            .await
            .expect("open")
    );
    let q = store
        .quarantine("restart", target)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(
        (
            q.since_ms,
            q.until_ms,
            q.reason.as_str(),
            q.remediation_id.as_deref()
        ),
        (T + 400, T + 400 + hour, "recurred", Some("r9"))
    );
    assert_eq!(
        (q.released_ms, q.released_by.as_deref(), q.announced),
        (None, None, false)
    );
    assert!(q.active(T + 400));

    close(db, &[&store]).await;
}

async fn the_loop_guard_counts_a_targets_remediations_created_within_the_window(db: Db) {
    let store = db.store().await;
    let doc = json!({});
    let target = "ns/Deployment/a";
    for (id, created, rule, on) in [
        ("r1", T - 100, "restart", target),
        ("r2", T - 50, "restart", target),
        ("r3", T, "restart", target),
        ("s1", T, "scale", target),
        ("o1", T, "restart", "ns/Deployment/b"),
    ] {
        // Finished ones count too: the guard counts how often the rule acted.
        let new = NewRemediation {
            phase: Phase::Done,
            now_ms: created,
            ..new(id, rule, Some(on), &doc)
        };
        assert_eq!(insert(&store, &new).await, Inserted::Created);
    }
    let count = |since| {
        let store = store.clone();
        async move {
            store
                .count_remediations("restart", target, since)
                .await
                .expect("count")
        }
    };
    assert_eq!(count(T - 100).await, 3);
    assert_eq!(count(T - 99).await, 2);
    assert_eq!(count(T - 50).await, 2);
    assert_eq!(count(T + 1).await, 0);
    // History: newest first, bounded.
    let listed = store
        .remediations(Some("restart"), Some(target), 2)
        .await
        .expect("history");
    assert_eq!(
        listed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["r3", "r2"]
    );
    let on_target = store
        .remediations(None, Some(target), 10)
        .await
        .expect("history");
    assert_eq!(on_target.len(), 4);
    assert_eq!(
        store
            .remediations(None, None, 100)
            .await
            .expect("history")
            .len(),
        5
    );

    close(db, &[&store]).await;
}

async fn retention_forgets_old_finished_remediations_and_unread_resolutions(db: Db) {
    let store = db.store().await;
    let doc = json!({});
    let old = T - 86_400_000;
    for (id, phase, updated, occurrence) in [
        ("old-done", Phase::Done, old, "fp-old/1"),
        ("new-done", Phase::Done, T, "fp-new/1"),
        ("old-undoing", Phase::Undoing, old, "fp-waiting/1"),
    ] {
        let new = NewRemediation {
            phase,
            now_ms: updated,
            occurrence: Some(occurrence),
            ..new(id, "restart", None, &doc)
        };
        assert_eq!(insert(&store, &new).await, Inserted::Created);
    }
    for (occurrence, at) in [
        ("fp-old/1", old),
        ("fp-waiting/1", old),
        ("fp-orphan/1", old),
        ("fp-new/1", T),
    ] {
        store.signal_resolved(occurrence, at).await.expect("signal");
    }

    // The old finished remediation, and the two old resolutions no unfinished one reads.
    assert_eq!(store.forget_remediations(T - 1).await.expect("forget"), 3);
    assert_eq!(store.remediation("old-done").await.expect("read"), None);
    assert_eq!(row(&store, "new-done").await.resolved_ms, Some(T));
    // The unfinished remediation still sees its alert resolved.
    assert_eq!(row(&store, "old-undoing").await.resolved_ms, Some(old));
    // A resolution forgotten arrives anew as a fresh one.
    assert_eq!(
        store
            .signal_resolved("fp-orphan/1", T)
            .await
            .expect("signal"),
        0
    );
    assert_eq!(store.forget_remediations(T - 1).await.expect("forget"), 0);

    close(db, &[&store]).await;
}
