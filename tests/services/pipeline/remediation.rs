//! Alertmanager's real payload in, a real Deployment restarted through the real kube-apiserver,
//! the outcome recorded — and a redelivery of the same record restarts nothing.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::DeleteParams;
use reflex::actions::Executors;
use reflex::actions::kubernetes::KubeExecutor;
use reflex::config::PipelineConfig;
use reflex::pipeline::Handled;
use reflex::store::OutcomeStatus;

use super::harness::*;
use super::support;

fn restarted_at(d: &Deployment) -> Option<String> {
    d.spec
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get("kubectl.kubernetes.io/restartedAt")
        .cloned()
}

#[tokio::test]
async fn a_crash_loop_alert_restarts_the_real_deployment_once_even_when_redelivered() {
    let (client, namespace, namespaces, deployments) = checkout_namespace("remedy").await;

    let kafka = Kafka::new().await;
    let db = Db::sqlite().await;
    let store = db.store().await;
    let rule = support::unique_name("restart");
    let rules = rules(&format!(
        r#"rules:
  - name: {rule}
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
    // The real sample, aimed at this test's namespace.
    let sample = include_str!("../../data/events/alertmanager-webhook.json").replace(
        "\"namespace\": \"shop\"",
        &format!("\"namespace\": \"{namespace}\""),
    );
    let record = Record::json(&kafka.source, 0, &sample);

    assert_eq!(
        handle(&pipeline, &record).await.expect("handled"),
        Handled::Outcomes(1),
        "one firing alert, one restart; the resolved alert in the same notification acts not"
    );
    let done = rows(&store, &rule, Some(OutcomeStatus::Succeeded)).await;
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(
        done[0].target.as_deref(),
        Some(format!("deployment/{namespace}/checkout").as_str())
    );
    let first = restarted_at(&deployments.get("checkout").await.expect("get"))
        .expect("the restart annotation is set on the pod template");

    // Kafka redelivers the same record (a crash before the offset was committed).
    handle(&pipeline, &record).await.expect("handled again");
    let again = restarted_at(&deployments.get("checkout").await.expect("get"));
    assert_eq!(again.as_deref(), Some(first.as_str()), "no second restart");
    assert_eq!(
        rows(&store, &rule, Some(OutcomeStatus::Succeeded))
            .await
            .len(),
        1
    );
    assert_eq!(
        rows(&store, &rule, Some(OutcomeStatus::Duplicate))
            .await
            .len(),
        1
    );

    namespaces
        .delete(&namespace, &DeleteParams::default())
        .await
        .expect("delete namespace");
    db.cleanup().await;
}
