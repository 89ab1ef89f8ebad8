//! `mode: shadow`: a shadow rule next to a live one on the same alert. The live rule's restart
//! reaches the real API server; the shadow rule's scale is recorded `shadow` (store and
//! outcomes topic) and never reaches the executor, nor the claims or the circuit breaker.

use kube::api::DeleteParams;
use reflex::actions::Executors;
use reflex::actions::kubernetes::KubeExecutor;
use reflex::config::PipelineConfig;
use reflex::pipeline::Handled;
use reflex::store::OutcomeStatus;

use super::harness::*;
use super::support;

#[tokio::test]
async fn a_shadow_rule_is_recorded_next_to_a_live_one_and_never_executed() {
    let (client, namespace, namespaces, deployments) = checkout_namespace("shadow").await;

    let kafka = Kafka::new().await;
    let db = Db::sqlite().await;
    let store = db.store().await;
    let live = support::unique_name("live");
    let shadow = support::unique_name("shadow");
    let rules = rules(&format!(
        r#"rules:
  - name: {shadow}
    mode: shadow
    priority: 10
    select: {{formats: [alertmanager], types: [KubePodCrashLooping]}}
    when: 'exists(labels.deployment)'
    guard: {{max_per_target: 1, window: 1h}}
    actions:
      - scale:
          target:
            namespace: "{{{{ event.labels.namespace }}}}"
            name: "{{{{ event.labels.deployment }}}}"
          replicas: 5
  - name: {live}
    select: {{formats: [alertmanager], types: [KubePodCrashLooping]}}
    when: 'exists(labels.deployment)'
    actions:
      - restart:
          target:
            namespace: "{{{{ event.labels.namespace }}}}"
            name: "{{{{ event.labels.deployment }}}}"
"#
    ));
    let pipeline = pipeline(&rules, &store, &kafka, &PipelineConfig::default())
        .await
        .with_executors(Executors {
            kubernetes: Some(KubeExecutor::new(client.clone())),
            ..Executors::default()
        });
    let sample = include_str!("../../data/events/alertmanager-webhook.json").replace(
        "\"namespace\": \"shop\"",
        &format!("\"namespace\": \"{namespace}\""),
    );
    let record = Record::json(&kafka.source, 0, &sample);
    assert_eq!(
        handle(&pipeline, &record).await.expect("handled"),
        Handled::Outcomes(2),
        "one live restart and one shadow scale"
    );
    // A second alert occurrence: the shadow rule's `max_per_target: 1` would refuse a live
    // action now, but shadow actions never count towards the circuit breaker nor meet it.
    let later = sample.replace("2026-11-20T10:12:31.000Z", "2026-11-20T11:12:31.000Z");
    assert_ne!(later, sample, "the sample has a startsAt to change");
    handle(&pipeline, &Record::json(&kafka.source, 1, &later))
        .await
        .expect("handled");

    let deployment = deployments.get("checkout").await.expect("get");
    assert_eq!(
        deployment.spec.replicas,
        Some(1),
        "the shadow scale never reached the API server"
    );
    assert_eq!(
        rows(&store, &live, Some(OutcomeStatus::Succeeded))
            .await
            .len(),
        2,
        "the live rule acted on both occurrences"
    );
    let recorded = rows(&store, &shadow, None).await;
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    for row in &recorded {
        assert_eq!(row.status, OutcomeStatus::Shadow, "{row:?}");
        assert_eq!(row.attempts, 0, "nothing was attempted: {row:?}");
        assert_eq!(row.details["params"]["replicas"], 5);
        assert_eq!(
            row.target.as_deref(),
            Some(format!("deployment/{namespace}/checkout").as_str())
        );
    }
    // On the outcomes topic too: two restarts and two shadow records.
    let published = kafka.read_all(&kafka.topics.outcomes, 4).await;
    let shadow_types: Vec<_> = published
        .iter()
        .map(json_of)
        .filter(|m| m["data"]["rule"] == shadow.as_str())
        .map(|m| m["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        shadow_types,
        ["dev.reflex.outcome.shadow", "dev.reflex.outcome.shadow"]
    );

    // A redelivery records nothing new for the shadow rule.
    handle(&pipeline, &record).await.expect("handled again");
    assert_eq!(rows(&store, &shadow, None).await.len(), 2);

    namespaces
        .delete(&namespace, &DeleteParams::default())
        .await
        .expect("delete namespace");
    db.cleanup().await;
}
