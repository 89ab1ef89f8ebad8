//! Verify and escalate: a restart whose Deployment rolls out and whose alert resolves ends
//! `verified`; one whose alert stays firing ends `ineffective`, rolls the Deployment back to a
//! real earlier ReplicaSet revision, and pages a real HTTP receiver — one remediation id
//! through every step.

use std::collections::BTreeSet;

use chrono::Utc;
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
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

/// Restart; when the alert is still firing 3 s later, roll back; when it still fires 3 s after
/// that, page.
const RESTART_ROLLBACK_PAGE: &str = r#"rules:
  - name: "@RULE"
    select: {formats: [alertmanager], types: ["@ALERT"]}
    actions:
      - restart: @TARGET
    verify: {within: 3s, alert_resolved: true}
    escalate:
      - actions:
          - rollback: @TARGET
        verify: {within: 3s, alert_resolved: true}
      - actions:
          - webhook:
              url: "http://@HOOK/page"
              body:
                summary: "{{ event.labels.deployment }} still crash-looping after restart and rollback"
"#;

/// The revision the Deployment controller gave Deployment `name` (0 before it numbered it).
fn revision(d: &k8s_openapi::api::apps::v1::Deployment) -> u64 {
    d.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("deployment.kubernetes.io/revision"))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn image(d: &k8s_openapi::api::apps::v1::Deployment) -> String {
    d.spec.template.spec.as_ref().expect("pod spec").containers[0]
        .image
        .clone()
        .expect("image")
}

#[tokio::test]
async fn an_ineffective_restart_escalates_to_a_real_rollback_then_pages() {
    let bench = Bench::new("escalate", RESTART_ROLLBACK_PAGE).await;
    bench
        .deployment("checkout", 1, "registry.example.org/shop/checkout:1.0.0")
        .await;
    // A second revision: a new image, rolled out.
    let image_2 = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "checkout", "image": "registry.example.org/shop/checkout:1.1.0"}
    ]}}}});
    bench
        .deployments()
        .patch(
            "checkout",
            &PatchParams::default(),
            &Patch::Strategic(&image_2),
        )
        .await
        .expect("set the new image");
    let v2 = bench
        .until("revision 2 rolled out", || async {
            let d = bench.deployments().get("checkout").await.ok()?;
            (revision(&d) == 2 && rollout_complete(&d)).then_some(d)
        })
        .await;
    assert_eq!(image(&v2), "registry.example.org/shop/checkout:1.1.0");

    let starts = Utc::now();
    assert_eq!(
        bench.fire("b1", starts, "checkout").await,
        Handled::Outcomes(1)
    );
    // The alert never resolves. The restart (revision 3) is judged ineffective after 3 s, the
    // rollback to revision 2's template runs, is judged ineffective, and the page goes out.
    let page = bench
        .until("the page", || async {
            let calls = bench.receiver.calls();
            (!calls.is_empty()).then_some(calls)
        })
        .await;
    assert_eq!(page.len(), 1, "{page:?}");
    assert_eq!(page[0].path, "/page");
    let id = bench
        .until("the remediation done", || async {
            let all = bench.remediations().await;
            let row = all.first()?;
            (row.phase == Phase::Done).then(|| row.id.clone())
        })
        .await;
    assert_eq!(bench.remediations().await.len(), 1);

    let outcomes = bench.outcomes().await;
    let story: Vec<(String, String, u64)> = outcomes
        .iter()
        .map(|o| {
            (
                o.status.as_str().to_owned(),
                o.action_kind.clone(),
                o.details["remediation"]["step"].as_u64().expect("step"),
            )
        })
        .collect();
    let expected = [
        ("succeeded", "restart", 0),
        ("ineffective", "verify", 0),
        ("succeeded", "rollback", 1),
        ("ineffective", "verify", 1),
        ("succeeded", "webhook", 2),
    ]
    .map(|(s, k, n)| (s.to_owned(), k.to_owned(), n));
    assert_eq!(story, expected, "{:#?}", summary(&outcomes));
    let ids: BTreeSet<&str> = outcomes
        .iter()
        .map(|o| o.details["remediation"]["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, BTreeSet::from([id.as_str()]), "one story, one id");
    assert_eq!(outcomes[1].details["escalating_to"], 1);
    assert_eq!(outcomes[3].details["escalating_to"], 2);
    assert!(
        outcomes[1]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("has not resolved")),
        "{:?}",
        outcomes[1].error
    );
    assert_eq!(
        page[0].idempotency_key.as_deref(),
        Some(outcomes[4].idempotency_key.as_str()),
        "the page carries its action's key"
    );

    // The rollback was real: the restart made revision 3, the rollback put revision 2's pod
    // template back (the new image, without the restart annotation) as revision 4, reusing
    // revision 2's ReplicaSet.
    let rollback = &outcomes[2].details["result"]["detail"];
    assert_eq!(rollback["from_revision"], 3, "{rollback}");
    assert_eq!(rollback["to_revision"], 2, "{rollback}");
    let now = bench
        .until("the rollback rolled out", || async {
            let d = bench.deployments().get("checkout").await.ok()?;
            (revision(&d) == 4).then_some(d)
        })
        .await;
    assert_eq!(image(&now), "registry.example.org/shop/checkout:1.1.0");
    assert_eq!(
        restarted_at(&now),
        None,
        "the restart's template was rolled back"
    );
    let sets: Api<ReplicaSet> = Api::namespaced(bench.client.clone(), &bench.namespace);
    let revisions: BTreeSet<String> = sets
        .list(&ListParams::default())
        .await
        .expect("list ReplicaSets")
        .into_iter()
        .filter_map(|rs| {
            rs.metadata
                .annotations?
                .get("deployment.kubernetes.io/revision")
                .cloned()
        })
        .collect();
    assert_eq!(
        revisions,
        ["1", "3", "4"].map(str::to_owned).into(),
        "revision 2's ReplicaSet became revision 4"
    );

    // The whole story is on the outcomes topic, in order, under one remediation id.
    let published = bench
        .published(|seen| {
            seen.iter()
                .filter(|m| m["data"]["details"]["remediation"]["id"] == id.as_str())
                .count()
                >= expected.len()
        })
        .await;
    let types: Vec<&str> = published
        .iter()
        .filter(|m| m["data"]["details"]["remediation"]["id"] == id.as_str())
        .map(|m| m["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        [
            "dev.reflex.outcome.succeeded",
            "dev.reflex.outcome.ineffective",
            "dev.reflex.outcome.succeeded",
            "dev.reflex.outcome.ineffective",
            "dev.reflex.outcome.succeeded",
        ]
    );
    bench.cleanup().await;
}
