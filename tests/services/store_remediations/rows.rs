//! Creating remediations: once per id, one open per (rule, target), counted and listed.

use serde_json::json;

use super::*;

on_both_backends!(
    a_firing_is_created_once_and_a_second_one_on_the_same_open_target_is_busy,
    concurrent_firings_on_one_target_create_exactly_one_remediation,
    the_loop_guard_counts_a_targets_remediations_created_within_the_window,
);

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
