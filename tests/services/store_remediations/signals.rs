//! What wakes a remediation (its alert resolving, its rule refiring) and what retention forgets.

use serde_json::json;

use super::*;

on_both_backends!(
    a_resolution_is_seen_whether_it_comes_before_or_after_the_row_and_wakes_it,
    a_refire_marks_and_wakes_only_the_open_remediation_of_its_target_or_group,
    retention_forgets_old_finished_remediations_and_unread_resolutions,
);

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
