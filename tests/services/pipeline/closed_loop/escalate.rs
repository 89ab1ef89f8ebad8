//! Escalation: a restart whose alert keeps firing ends `ineffective`, the rule's next step
//! rolls the Deployment back to a real earlier ReplicaSet revision, and the step after that
//! pages a real HTTP receiver — one remediation id through every step.

use std::collections::BTreeSet;

use chrono::Utc;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use reflex::pipeline::Handled;
use reflex::store::Phase;
use serde_json::json;

use super::{Bench, restarted_at, rollout_complete, summary};

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
fn revision(d: &Deployment) -> u64 {
    d.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("deployment.kubernetes.io/revision"))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn image(d: &Deployment) -> String {
    d.spec.template.spec.as_ref().expect("pod spec").containers[0]
        .image
        .clone()
        .expect("image")
}

/// The images of the Deployment's two releases, oldest first.
const RELEASES: [&str; 2] = [
    "registry.example.org/shop/checkout:1.0.0",
    "registry.example.org/shop/checkout:1.1.0",
];

/// Deployment `checkout` at revision 1 (the first release), then revision 2 (a new image),
/// rolled out.
async fn two_releases(bench: &Bench) {
    bench.deployment("checkout", 1, RELEASES[0]).await;
    let next = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "checkout", "image": RELEASES[1]}
    ]}}}});
    bench
        .deployments()
        .patch(
            "checkout",
            &PatchParams::default(),
            &Patch::Strategic(&next),
        )
        .await
        .expect("set the new image");
    let current = bench
        .until("revision 2 rolled out", || async {
            let d = bench.deployments().get("checkout").await.ok()?;
            (revision(&d) == 2 && rollout_complete(&d)).then_some(d)
        })
        .await;
    assert_eq!(image(&current), RELEASES[1]);
}

#[tokio::test]
async fn an_ineffective_restart_escalates_to_a_real_rollback_then_pages() {
    let bench = Bench::new("escalate", RESTART_ROLLBACK_PAGE).await;
    two_releases(&bench).await;

    let starts = Utc::now();
    assert_eq!(
        bench.fire("b1", starts, "checkout").await,
        Handled::Outcomes(1)
    );
    // The alert never resolves. The restart (revision 3) is judged ineffective after 3 s, the
    // rollback runs, is judged ineffective, and the page goes out.
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

    // The rollback was real: the restart made revision 3 (the current release, restarted);
    // the rollback skipped revision 2 (the same release without the restart stamp) and put
    // revision 1's pod template back as revision 4, reusing revision 1's ReplicaSet.
    let rollback = &outcomes[2].details["result"]["detail"];
    assert_eq!(rollback["from_revision"], 3, "{rollback}");
    let to = rollback["to_revision"].as_u64().expect("to_revision");
    assert_eq!(to, 1, "{rollback}");
    let now = bench
        .until("the rollback rolled out", || async {
            let d = bench.deployments().get("checkout").await.ok()?;
            (revision(&d) == 4).then_some(d)
        })
        .await;
    assert_eq!(image(&now), RELEASES[to as usize - 1]);
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
    let left: BTreeSet<String> = [1, 2, 3, 4]
        .into_iter()
        .filter(|r| *r != to)
        .map(|r| r.to_string())
        .collect();
    assert_eq!(
        revisions, left,
        "revision {to}'s ReplicaSet became revision 4"
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

/// The shipped `restart-crashlooping-deployment` rule escalates a restart that did not help to
/// a rollback meant to "undo the last release". The restart itself made a revision, so the
/// previous revision is the same release without the restart stamp: the rollback must skip it
/// and put the release before the current one back.
#[tokio::test]
async fn the_rollback_after_an_ineffective_restart_returns_to_the_release_before_the_current_one() {
    let bench = Bench::new("release", RESTART_ROLLBACK_PAGE).await;
    two_releases(&bench).await;
    assert_eq!(
        bench.fire("r1", Utc::now(), "checkout").await,
        Handled::Outcomes(1)
    );
    let rollback = bench
        .until("the rollback", || async {
            bench
                .outcomes()
                .await
                .into_iter()
                .find(|o| o.action_kind == "rollback")
        })
        .await;
    let now = bench
        .until("the rollback rolled out", || async {
            let d = bench.deployments().get("checkout").await.ok()?;
            (revision(&d) == 4).then_some(d)
        })
        .await;
    assert_eq!(
        image(&now),
        RELEASES[0],
        "the rollback put the crash-looping release back (its pre-restart template): {}",
        rollback.details["result"]
    );
    bench.cleanup().await;
}
