//! Undo on resolve: a scale-up is a temporary fix; when the alert resolves, Reflex scales the
//! Deployment back to the replicas it found — unless someone else changed them since, which is
//! left alone and recorded `undo_skipped` with why.

use chrono::Utc;
use kube::api::{Patch, PatchParams};
use reflex::pipeline::Handled;
use reflex::store::{OutcomeRecord, OutcomeStatus, Phase};
use serde_json::json;

use super::{Bench, summary};

/// Scale the alerting Deployment to 3 while the alert fires.
const SCALE_UNTIL_RESOLVED: &str = r#"rules:
  - name: "@RULE"
    select: {formats: [alertmanager], types: ["@ALERT"]}
    actions:
      - scale:
          target: @OBJECT
          replicas: 3
    undo: {on_resolve: true}
"#;

impl Bench {
    /// `spec.replicas` of Deployment `name` now.
    async fn replicas(&self, name: &str) -> i32 {
        let d = self.deployments().get(name).await.expect("get");
        d.spec.replicas.expect("spec.replicas")
    }

    /// Waits for the outcome of `status` on Deployment `name`.
    async fn undo_outcome(&self, status: OutcomeStatus, name: &str) -> OutcomeRecord {
        let target = self.target(name);
        self.until(&format!("{} on {target}", status.as_str()), || async {
            self.outcomes_of(status)
                .await
                .into_iter()
                .find(|o| o.target.as_deref() == Some(target.as_str()))
        })
        .await
    }
}

#[tokio::test]
async fn a_scale_up_is_undone_on_resolve_unless_someone_else_changed_the_replicas_since() {
    let bench = Bench::new("undo", SCALE_UNTIL_RESOLVED).await;
    for name in ["web", "api"] {
        bench
            .deployment(name, 1, "registry.example.org/shop/web:1.0.0")
            .await;
    }

    // web: scaled up while the alert fires, scaled back when it resolves.
    let starts = Utc::now();
    assert_eq!(bench.fire("u1", starts, "web").await, Handled::Outcomes(1));
    assert_eq!(bench.replicas("web").await, 3);
    bench.resolve("u1", starts, "web").await;
    let undone = bench.undo_outcome(OutcomeStatus::Undone, "web").await;
    assert_eq!(
        bench.replicas("web").await,
        1,
        "back to the replicas Reflex found"
    );
    assert_eq!(undone.details["remediation"]["step"], 0);
    assert!(undone.error.is_none(), "{:?}", undone.error);

    // api: scaled up, then someone else scales it to 5 before the alert resolves.
    let starts = Utc::now();
    assert_eq!(bench.fire("u2", starts, "api").await, Handled::Outcomes(1));
    assert_eq!(bench.replicas("api").await, 3);
    bench
        .deployments()
        .patch(
            "api",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .expect("someone else scales api");
    bench.resolve("u2", starts, "api").await;
    let skipped = bench.undo_outcome(OutcomeStatus::UndoSkipped, "api").await;
    assert_eq!(
        bench.replicas("api").await,
        5,
        "someone else's change stays"
    );
    let reason = skipped.error.as_deref().expect("undo_skipped says why");
    assert!(
        reason.contains('5'),
        "the reason names what it found: {reason}"
    );

    let outcomes = bench.outcomes().await;
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| o.status == OutcomeStatus::Undone)
            .count(),
        1,
        "{:#?}",
        summary(&outcomes)
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| o.status == OutcomeStatus::UndoSkipped)
            .count(),
        1,
        "{:#?}",
        summary(&outcomes)
    );
    let remediations = bench.remediations().await;
    assert_eq!(remediations.len(), 2);
    assert!(
        remediations.iter().all(|r| r.phase == Phase::Done),
        "{remediations:#?}"
    );
    let published = bench
        .published(|seen| {
            let has = |t: &str| seen.iter().any(|m| m["type"] == t);
            has("dev.reflex.outcome.undone") && has("dev.reflex.outcome.undo_skipped")
        })
        .await;
    let skipped_record = published
        .iter()
        .find(|m| m["type"] == "dev.reflex.outcome.undo_skipped")
        .expect("undo_skipped record");
    assert_eq!(skipped_record["subject"], bench.target("api"));
    assert_eq!(skipped_record["data"]["error"], reason);
    bench.cleanup().await;
}
