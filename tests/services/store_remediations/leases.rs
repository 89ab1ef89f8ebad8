//! Following remediations up: due rows claimed by one replica at a time, saves fenced on the
//! lease.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;

on_both_backends!(
    two_replicas_claiming_due_rows_concurrently_never_get_the_same_row,
    an_expired_lease_is_claimed_again_and_the_late_owners_save_is_refused,
);

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

/// What `owner` claims at `now_ms` (a 1 s lease, at most 10 rows), as `id@lease owner`.
async fn claim(store: &Store, owner: &str, now_ms: i64) -> Vec<String> {
    let rows = store
        .claim_due_remediations(owner, now_ms, 1_000, 10)
        .await
        .expect("claim");
    rows.into_iter()
        .map(|r| format!("{}@{}", r.id, r.lease_owner.unwrap_or_default()))
        .collect()
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

    assert_eq!(claim(&one, "replica-1", T).await, ["r1@replica-1"]);
    // Held until T + 1000, then renewed until T + 1500: another replica finds nothing before.
    assert_eq!(claim(&two, "replica-2", T + 999).await, [""; 0]);
    let renewed = one.renew_remediation_lease("r1", "replica-1", T + 1_500);
    assert!(renewed.await.expect("renew"));
    assert_eq!(claim(&two, "replica-2", T + 1_499).await, [""; 0]);
    // replica-1 stalls past its lease: replica-2 takes the row over.
    assert_eq!(claim(&two, "replica-2", T + 1_500).await, ["r1@replica-2"]);

    // The loser's late writes are refused and change nothing.
    let renewed = one.renew_remediation_lease("r1", "replica-1", T + 9_000);
    assert!(!renewed.await.expect("renew"));
    let stale = json!({"step": 1, "by": "replica-1"});
    let saved = one.save_remediation(
        "r1",
        "replica-1",
        Phase::Done,
        &stale,
        None,
        T + 1_600,
        None,
    );
    assert!(!saved.await.expect("save"), "replica-1 lost the lease");
    assert_eq!(row(&two, "r1").await.phase, Phase::Acting);

    // The owner saves, keeping its lease while it goes on…
    let doc = json!({"step": 0, "verify": "pending"});
    let due = Some(T + 60_000);
    let save_verifying = |now_ms, keep_lease_until| {
        two.save_remediation(
            "r1",
            "replica-2",
            Phase::Verifying,
            &doc,
            due,
            now_ms,
            keep_lease_until,
        )
    };
    assert!(
        save_verifying(T + 1_700, Some(T + 5_000))
            .await
            .expect("save")
    );
    let kept = row(&two, "r1").await;
    let expected = RemediationRow {
        phase: Phase::Verifying,
        doc: doc.clone(),
        due_ms: due,
        updated_ms: T + 1_700,
        lease_owner: Some("replica-2".into()),
        lease_until_ms: Some(T + 5_000),
        ..kept.clone()
    };
    assert_eq!(kept, expected);
    assert_eq!(kept.created_ms, T, "a save does not move the creation time");
    // …then releases it: the row is free, and claimable again once due.
    assert!(save_verifying(T + 1_800, None).await.expect("save"));
    let released = row(&one, "r1").await;
    assert_eq!(
        (released.lease_owner, released.lease_until_ms),
        (None, None)
    );
    assert_eq!(claim(&one, "replica-1", T + 59_999).await, [""; 0]);
    assert_eq!(claim(&one, "replica-1", T + 60_000).await, ["r1@replica-1"]);

    close(db, &[&one, &two]).await;
}
