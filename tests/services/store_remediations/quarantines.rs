//! The loop guard's quarantines: opened once, re-opened in place, released by target.

use reflex::store::QuarantineRow;

use super::*;

on_both_backends!(a_quarantine_opens_once_reopens_in_place_and_is_released_by_target,);

/// A quarantine as the loop guard opens it: `rule` on `target` over `[since, until)`.
struct Quarantine<'a> {
    rule: &'a str,
    target: &'a str,
    since: i64,
    until: i64,
    reason: &'a str,
    remediation: Option<&'a str>,
}

impl Quarantine<'_> {
    /// Opens it; `true` when this call did.
    async fn open(&self, store: &Store) -> bool {
        store
            .open_quarantine(
                self.rule,
                self.target,
                self.since,
                self.until,
                self.reason,
                self.remediation,
            )
            .await
            .expect("open quarantine")
    }

    /// Its row, as stored now.
    async fn read(&self, store: &Store) -> QuarantineRow {
        let row = store
            .quarantine(self.rule, self.target)
            .await
            .expect("read quarantine");
        row.unwrap_or_else(|| panic!("{}@{} was quarantined", self.rule, self.target))
    }
}

/// The quarantines active at `at`, as `rule@target`.
async fn active(store: &Store, at: i64) -> Vec<String> {
    let rows = store.quarantines(Some(at)).await.expect("list");
    rows.into_iter()
        .map(|q| format!("{}@{}", q.rule, q.target))
        .collect()
}

async fn a_quarantine_opens_once_reopens_in_place_and_is_released_by_target(db: Db) {
    let store = db.store().await;
    let target = "ns/Deployment/flappy";
    let hour = 3_600_000;
    assert_eq!(
        store.quarantine("restart", target).await.expect("read"),
        None
    );

    let first = Quarantine {
        rule: "restart",
        target,
        since: T,
        until: T + hour,
        reason: "3 remediations in 1h",
        remediation: Some("r3"),
    };
    assert!(first.open(&store).await);
    // Another replica's attempt while it is active changes nothing.
    let meanwhile = Quarantine {
        since: T + 5,
        until: T + 2 * hour,
        reason: "again",
        remediation: None,
        ..first
    };
    assert!(!meanwhile.open(&store).await);
    let q = first.read(&store).await;
    let expected = QuarantineRow {
        rule: "restart".into(),
        target: target.into(),
        since_ms: T,
        until_ms: T + hour,
        reason: "3 remediations in 1h".into(),
        remediation_id: Some("r3".into()),
        released_ms: None,
        released_by: None,
        announced: false,
    };
    assert_eq!(q, expected);
    assert!(q.active(T + hour - 1) && !q.active(T + hour));
    let announced = store.mark_quarantine_announced("restart", target);
    announced.await.expect("announce");
    assert!(first.read(&store).await.announced);

    // A second rule on the same target, and the same rule elsewhere (for 10 ms).
    assert!(
        Quarantine {
            rule: "scale",
            ..first
        }
        .open(&store)
        .await
    );
    let other = Quarantine {
        target: "ns/Deployment/other",
        until: T + 10,
        ..first
    };
    assert!(other.open(&store).await);
    assert_eq!(
        active(&store, T + 1).await,
        [
            "restart@ns/Deployment/flappy",
            "restart@ns/Deployment/other",
            "scale@ns/Deployment/flappy"
        ]
    );
    // Expired on its own: inactive, and may be opened again.
    assert_eq!(
        active(&store, T + 10).await,
        ["restart@ns/Deployment/flappy", "scale@ns/Deployment/flappy"]
    );
    assert!(
        Quarantine {
            since: T + 10,
            until: T + 20,
            ..other
        }
        .open(&store)
        .await
    );

    // Release of one rule on the target, then of every rule.
    let released = store.release_quarantines(target, Some("scale"), "alice", T + 100);
    let released = released.await.expect("release");
    assert_eq!(
        released.iter().map(|q| q.rule.as_str()).collect::<Vec<_>>(),
        ["scale"]
    );
    assert_eq!(
        (released[0].released_ms, released[0].released_by.as_deref()),
        (Some(T + 100), Some("alice"))
    );
    let released = store.release_quarantines(target, None, "bob", T + 200);
    let released = released.await.expect("release");
    assert_eq!(
        released.iter().map(|q| q.rule.as_str()).collect::<Vec<_>>(),
        ["restart"]
    );
    let again = store.release_quarantines(target, None, "bob", T + 300);
    assert_eq!(again.await.expect("release"), []);
    assert_eq!(active(&store, T + 300).await, [""; 0]);
    // Released rows stay readable until re-opened.
    assert_eq!(store.quarantines(None).await.expect("list").len(), 3);
    let q = first.read(&store).await;
    assert!(!q.active(T + 300));
    assert_eq!(
        (q.released_ms, q.released_by.as_deref()),
        (Some(T + 200), Some("bob"))
    );

    // Re-opened in place: release and announcement cleared, the new reason and times.
    let reopened = Quarantine {
        since: T + 400,
        until: T + 400 + hour,
        reason: "recurred",
        remediation: Some("r9"),
        ..first
    };
    assert!(reopened.open(&store).await);
    let expected = QuarantineRow {
        since_ms: T + 400,
        until_ms: T + 400 + hour,
        reason: "recurred".into(),
        remediation_id: Some("r9".into()),
        ..expected
    };
    assert_eq!(reopened.read(&store).await, expected);

    close(db, &[&store]).await;
}
