//! Verify: a restart whose Deployment rolls out and whose alert resolves ends `verified` —
//! and not before both hold.

use chrono::Utc;
use reflex::pipeline::Handled;
use reflex::store::{OutcomeStatus, Phase};
use serde_json::json;

use super::{Bench, restarted_at, rollout_complete, summary};

/// Restart, then verified when the alert resolved and the rollout completed (read every
/// second) within two minutes.
const RESTART_VERIFIED: &str = r#"rules:
  - name: "@RULE"
    select: {formats: [alertmanager], types: ["@ALERT"]}
    actions:
      - restart: @TARGET
    verify:
      within: 2m
      every: 1s
      alert_resolved: true
      kubernetes: {condition: rollout_complete}
"#;

#[tokio::test]
async fn a_restart_that_rolls_out_and_whose_alert_resolves_ends_verified() {
    let bench = Bench::new("verified", RESTART_VERIFIED).await;
    let before = bench
        .deployment("checkout", 1, "registry.example.org/shop/checkout:1.0.0")
        .await;
    assert_eq!(restarted_at(&before), None);

    // The new pods will not become ready until the kubelet comes back: the rollout stalls.
    bench.kubelet.pause().await;
    let starts = Utc::now();
    assert_eq!(
        bench.fire("a1", starts, "checkout").await,
        Handled::Outcomes(1)
    );
    let restart = bench.outcomes_of(OutcomeStatus::Succeeded).await;
    assert_eq!(restart.len(), 1, "{:#?}", summary(&bench.outcomes().await));
    assert_eq!(restart[0].action_kind, "restart");
    let id = restart[0].details["remediation"]["id"]
        .as_str()
        .expect("the restart names its remediation")
        .to_owned();
    assert_eq!(restart[0].details["remediation"]["step"], 0);
    let restarted = bench.deployments().get("checkout").await.expect("get");
    assert!(
        restarted_at(&restarted).is_some(),
        "the pod template was restarted"
    );

    // The alert resolves while the rollout is stuck: one check of two holds, no verdict.
    bench.resolve("a1", starts, "checkout").await;
    bench.pipeline.tick(Utc::now()).await.expect("tick");
    let row = bench
        .store
        .remediation(&id)
        .await
        .expect("read")
        .expect("the remediation exists");
    assert_eq!(row.phase, Phase::Verifying, "{row:#?}");
    let waiting: Vec<String> =
        serde_json::from_value(row.doc["waiting_for"].clone()).expect("waiting_for");
    assert_eq!(waiting.len(), 1, "only the rollout is missing: {waiting:?}");
    assert!(waiting[0].contains("rollout_complete"), "{waiting:?}");
    assert!(
        bench.outcomes_of(OutcomeStatus::Verified).await.is_empty(),
        "not verified while the rollout is incomplete"
    );

    // The kubelet reports the new pod ready: the rollout completes, the step is verified.
    bench.kubelet.resume();
    let verified = bench
        .until("the restart verified", || async {
            let found = bench.outcomes_of(OutcomeStatus::Verified).await;
            (!found.is_empty()).then_some(found)
        })
        .await;
    assert_eq!(verified.len(), 1, "{:#?}", summary(&bench.outcomes().await));
    let verdict = &verified[0];
    assert_eq!(verdict.idempotency_key, format!("{id}.0.verify"));
    assert_eq!(verdict.details["remediation"], json!({"id": id, "step": 0}));
    assert_eq!(
        verdict.target.as_deref(),
        Some(bench.target("checkout").as_str())
    );
    let took = verdict.details["took_ms"]
        .as_i64()
        .expect("details.took_ms");
    assert!(took >= 0, "{took}");
    let checks = verdict.details["checks"].to_string();
    assert!(
        checks.contains("the alert resolved") && checks.contains("rollout_complete"),
        "{checks}"
    );
    let rolled = bench.deployments().get("checkout").await.expect("get");
    assert!(rollout_complete(&rolled), "{:?}", rolled.status);
    assert_eq!(restarted_at(&rolled), restarted_at(&restarted));
    let row = bench
        .store
        .remediation(&id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(row.phase, Phase::Done);
    assert_eq!(row.doc["ending"], "verified");
    assert!(
        bench
            .outcomes_of(OutcomeStatus::Ineffective)
            .await
            .is_empty()
    );

    // The verdict went out on the outcomes topic, with how long it took.
    let published = bench
        .published(|seen| {
            seen.iter()
                .any(|m| m["type"] == "dev.reflex.outcome.verified")
        })
        .await;
    let message = published
        .iter()
        .find(|m| m["type"] == "dev.reflex.outcome.verified")
        .expect("verified record");
    assert_eq!(message["id"], format!("{id}.0.verify.verified"));
    assert_eq!(message["subject"], bench.target("checkout"));
    assert_eq!(message["data"]["details"]["took_ms"], took);
    assert_eq!(message["data"]["details"]["remediation"]["id"], id.as_str());
    bench.cleanup().await;
}
