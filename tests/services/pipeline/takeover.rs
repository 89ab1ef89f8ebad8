//! Claims left by a process that died mid-action, taken over by the next claimant: a webhook
//! whose receiver deduplicates on `Idempotency-Key` and a Kafka publish are sent again and
//! succeed; any other webhook is recorded `failed` (it may have taken effect) and not re-sent.

use rdkafka::ClientConfig;
use rdkafka::message::Message;
use reflex::actions::Executors;
use reflex::actions::kafka::{DEFAULT_ACK_TIMEOUT, KafkaExecutor};
use reflex::actions::webhook::{WebhookConfig, WebhookExecutor};
use reflex::config::PipelineConfig;
use reflex::pipeline::Handled;
use reflex::store::OutcomeStatus;

use super::harness::*;
use super::receiver::Receiver;
use crate::support;

/// Webhook and Kafka executors against the test's receiver and broker.
fn executors(kafka: &Kafka) -> Executors {
    support::install_crypto_provider();
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &kafka.bootstrap);
    Executors {
        kubernetes: None,
        webhook: Some(WebhookExecutor::new(WebhookConfig::default()).expect("webhook executor")),
        kafka: Some(KafkaExecutor::new(&client, DEFAULT_ACK_TIMEOUT).expect("kafka executor")),
    }
}

async fn interrupted_actions_are_retried_when_their_receiver_deduplicates(db: Db) {
    let kafka = Kafka::new().await;
    let store = db.store().await;
    let receiver = Receiver::start().await;
    let token = support::unique_name("takeover");
    let rule = format!("takeover-{token}");
    let published = format!("{token}.published");
    support::create_topic(&kafka.bootstrap, &published, 1).await;
    let hook = |path: &str, idempotent: bool| {
        format!(
            "      - webhook:\n          url: \"http://{}/{path}\"\n          \
             idempotent_receiver: {idempotent}\n          body: {{event: \"{{{{ meta.id }}}}\"}}\n",
            receiver.addr
        )
    };
    let rules = rules(&format!(
        "rules:\n  - name: {rule}\n    actions:\n{}{}      - kafka:\n          \
         topic: {published}\n          value: {{event: \"{{{{ meta.id }}}}\"}}\n",
        hook("deduplicating", true),
        hook("plain", false),
    ));
    let pipeline = pipeline(&rules, &store, &kafka, &PipelineConfig::default())
        .await
        .with_executors(executors(&kafka));
    let record = Record::json(
        &kafka.source,
        5,
        include_str!("../../data/events/plain.json"),
    );

    // A replica claimed all three actions two hours ago and died before recording an end.
    let age = chrono::Duration::hours(2);
    let mut keys = Vec::new();
    for (index, kind) in ["webhook", "webhook", "kafka"].into_iter().enumerate() {
        keys.push(leave_claim(&store, &record, &rule, index, kind, age, "crashed-replica").await);
    }
    assert_eq!(
        handle(&pipeline, &record).await.expect("taken over"),
        Handled::Outcomes(3)
    );

    let row = |key: &str| {
        let store = store.clone();
        let key = key.to_owned();
        async move {
            let row = store
                .outcome_by_key(&key)
                .await
                .expect("read")
                .expect("row");
            assert_eq!(
                row.attempts, 2,
                "the taking-over attempt finished it: {row:#?}"
            );
            assert!(row.published_at.is_some(), "{row:#?}");
            row
        }
    };
    // The deduplicating receiver got the call again, with the action's key.
    let deduplicating = row(&keys[0]).await;
    assert_eq!(
        deduplicating.status,
        OutcomeStatus::Succeeded,
        "{deduplicating:#?}"
    );
    assert_eq!(receiver.calls_with_key(&keys[0]), 1);
    // The other one may have been called by the dead replica: not again.
    let plain = row(&keys[1]).await;
    assert_eq!(plain.status, OutcomeStatus::Failed, "{plain:#?}");
    let error = plain.error.as_deref().unwrap_or_default();
    assert!(error.contains("may have taken effect"), "{error}");
    assert!(error.contains("idempotent_receiver: true"), "{error}");
    assert_eq!(receiver.calls_with_key(&keys[1]), 0);
    assert_eq!(receiver.calls().len(), 1, "{:?}", receiver.calls());
    // The publish was repeated, carrying the key to deduplicate on.
    let publish = row(&keys[2]).await;
    assert_eq!(publish.status, OutcomeStatus::Succeeded, "{publish:#?}");
    let records = kafka.read_all(&published, 1).await;
    assert_eq!(headers(&records[0])["idempotency-key"], keys[2]);
    assert!(records[0].payload().is_some());
    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn an_interrupted_idempotent_webhook_and_kafka_publish_are_retried_on_postgres() {
    interrupted_actions_are_retried_when_their_receiver_deduplicates(Db::postgres().await).await;
}

#[tokio::test]
async fn an_interrupted_idempotent_webhook_and_kafka_publish_are_retried_on_sqlite() {
    interrupted_actions_are_retried_when_their_receiver_deduplicates(Db::sqlite().await).await;
}
