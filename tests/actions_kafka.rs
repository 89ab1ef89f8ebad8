//! The Kafka executor against the real broker (`scripts/services up`): records published with
//! key, headers and CloudEvents attributes are read back exactly; refusals are permanent. Each
//! test uses its own topic; every wait is bounded.
//!
//! Run: `scripts/services up && eval "$(scripts/services env)" && cargo test --test actions_kafka`

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use reflex::actions::kafka::{Error, KafkaExecutor, PublishResult};
use reflex::rules::action::{CloudEventParams, KafkaParams};
use serde_json::json;

/// Bound on each Kafka operation here (topic creation, an acknowledgement, reading a record):
/// generous for a loaded CI machine, short enough that a stopped broker fails in seconds.
const KAFKA_OP_TIMEOUT: Duration = Duration::from_secs(20);

fn config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

async fn create_topic(bootstrap: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> =
        config(bootstrap).create().expect("admin client");
    let options = AdminOptions::new().operation_timeout(Some(KAFKA_OP_TIMEOUT));
    let created = tokio::time::timeout(
        KAFKA_OP_TIMEOUT,
        admin.create_topics(
            &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
            &options,
        ),
    )
    .await
    .expect("topic creation answered in time")
    .expect("create_topics request");
    assert!(created[0].is_ok(), "creating {topic}: {:?}", created[0]);
}

/// Reads the record at `result`'s partition and offset (no consumer group: assigned directly).
async fn read_back(bootstrap: &str, result: &PublishResult) -> OwnedMessage {
    let consumer: StreamConsumer = config(bootstrap)
        .set("group.id", support::unique_name("actions-kafka-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(
            &result.topic,
            result.partition,
            Offset::Offset(result.offset),
        )
        .expect("assignment");
    consumer.assign(&assignment).expect("assign");
    let message = tokio::time::timeout(KAFKA_OP_TIMEOUT, consumer.recv())
        .await
        .unwrap_or_else(|_| panic!("no record at {result:?} within {KAFKA_OP_TIMEOUT:?}"))
        .expect("consume");
    message.detach()
}

fn headers(message: &OwnedMessage) -> BTreeMap<String, String> {
    message
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    let value = String::from_utf8_lossy(h.value.unwrap_or_default());
                    (h.key.to_owned(), value.into_owned())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn executor(bootstrap: &str) -> KafkaExecutor {
    KafkaExecutor::new(&config(bootstrap), KAFKA_OP_TIMEOUT).expect("executor")
}

#[tokio::test]
async fn a_cloudevent_is_published_with_key_and_headers_and_read_back_exactly() {
    let bootstrap = support::require_kafka().await;
    let topic = support::unique_name("actions-kafka-ce");
    create_topic(&bootstrap, &topic).await;
    let value = json!({
        "action": "scale",
        "target": {"namespace": "shop", "name": "checkout"},
        "replicas": 5,
        "note": "quote \" and unicode é✓",
    });
    let params = KafkaParams {
        topic: topic.clone(),
        key: Some("shop/checkout".into()),
        value: value.clone(),
        headers: BTreeMap::from([("team".to_owned(), "sre".to_owned())]),
        cloudevent: Some(CloudEventParams {
            event_type: "io.reflex.remediation.requested".into(),
            source: "/reflex/scale-on-latency".into(),
            subject: Some("deployment/shop/checkout".into()),
        }),
    };
    let params = serde_json::to_value(&params).expect("params");
    let executor = executor(&bootstrap);
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);

    let first = executor
        .execute(&params, "scale-on-latency/0/evt-9")
        .await
        .expect("published");
    // The same action published again (a redelivered event) keeps its CloudEvent id.
    let second = executor
        .execute(&params, "scale-on-latency/0/evt-9")
        .await
        .expect("published again");

    assert_eq!(first.topic, topic);
    assert_eq!(
        first.cloudevent_id.as_deref(),
        Some("scale-on-latency/0/evt-9")
    );
    assert_eq!(
        (second.partition, second.offset),
        (first.partition, first.offset + 1)
    );
    let message = read_back(&bootstrap, &first).await;
    assert_eq!(message.key(), Some("shop/checkout".as_bytes()));
    let received: serde_json::Value =
        serde_json::from_slice(message.payload().expect("payload")).expect("JSON value");
    assert_eq!(received, value);
    let headers = headers(&message);
    assert_eq!(headers["team"], "sre");
    assert_eq!(headers["ce_specversion"], "1.0");
    assert_eq!(headers["ce_id"], "scale-on-latency/0/evt-9");
    assert_eq!(headers["ce_type"], "io.reflex.remediation.requested");
    assert_eq!(headers["ce_source"], "/reflex/scale-on-latency");
    assert_eq!(headers["ce_subject"], "deployment/shop/checkout");
    assert_eq!(headers["content-type"], "application/json");
    let time = chrono::DateTime::parse_from_rfc3339(&headers["ce_time"]).expect("RFC 3339");
    assert!(time >= before && time <= chrono::Utc::now(), "{time}");

    let again = read_back(&bootstrap, &second).await;
    assert_eq!(self::headers(&again)["ce_id"], "scale-on-latency/0/evt-9");
}

#[tokio::test]
async fn a_plain_record_carries_the_rule_headers_and_the_idempotency_key() {
    let bootstrap = support::require_kafka().await;
    let topic = support::unique_name("actions-kafka-plain");
    create_topic(&bootstrap, &topic).await;
    let params = json!({
        "topic": topic, "key": null, "value": [1, "two", {"three": 3}],
        "headers": {"origin": "reflex"}, "cloudevent": null,
    });

    let result = executor(&bootstrap)
        .execute(&params, "plain/0/evt-1")
        .await
        .expect("published");

    assert_eq!(result.cloudevent_id, None);
    let message = read_back(&bootstrap, &result).await;
    assert_eq!(message.key(), None);
    assert_eq!(
        message.payload(),
        Some(br#"[1,"two",{"three":3}]"#.as_slice())
    );
    // The key lets consumers drop the repeat a redelivery or a taken-over attempt publishes.
    assert_eq!(
        headers(&message),
        BTreeMap::from([
            ("idempotency-key".to_owned(), "plain/0/evt-1".to_owned()),
            ("origin".to_owned(), "reflex".to_owned())
        ])
    );
}

#[tokio::test]
async fn a_topic_the_broker_refuses_fails_permanently() {
    let bootstrap = support::require_kafka().await;
    // A legal name, but an internal topic: brokers refuse appends from clients.
    let params = json!({
        "topic": "__consumer_offsets", "key": null, "value": {"forged": true},
        "headers": {}, "cloudevent": null,
    });

    let err = tokio::time::timeout(
        KAFKA_OP_TIMEOUT + Duration::from_secs(10),
        executor(&bootstrap).execute(&params, "refused/0/evt-1"),
    )
    .await
    .expect("the executor's own bound holds")
    .expect_err("the broker refuses");

    match &err {
        Error::Publish { source, .. } => assert_eq!(
            source.rdkafka_error_code(),
            Some(RDKafkaErrorCode::InvalidTopic),
            "{err:?}"
        ),
        other => panic!("expected a publish error, got {other:?}"),
    }
    assert!(!err.retryable(), "{err:?}");
}

#[tokio::test]
async fn an_illegal_topic_name_is_refused_before_reaching_the_broker() {
    let bootstrap = support::kafka_bootstrap();
    let params = json!({
        "topic": "no spaces/allowed", "key": null, "value": 1, "headers": {}, "cloudevent": null,
    });

    let err = executor(&bootstrap)
        .execute(&params, "illegal/0/evt-1")
        .await
        .expect_err("illegal name");

    assert!(matches!(err, Error::InvalidParams(_)), "{err:?}");
    assert!(err.to_string().contains("no spaces/allowed"), "{err}");
    assert!(!err.retryable());
}
