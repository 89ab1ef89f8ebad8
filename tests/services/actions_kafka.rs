//! The Kafka executor against the real broker (`scripts/services up`): records published with
//! key, headers and CloudEvents attributes are read back exactly; refusals are permanent; a
//! topic chosen by event data cannot reach Reflex's own topics through the pipeline. Each test
//! uses its own topics; every wait is bounded.
//!
//! Run: `scripts/services up && eval "$(scripts/services env)" && cargo test --features services --test services actions_kafka::`

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use reflex::actions::kafka::{Error, KafkaExecutor, PublishResult};
use reflex::rules::action::{CloudEventParams, KafkaAction};
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

/// A consumer reading `topic`/`partition` from `offset` (no group membership: assigned
/// directly).
fn reader_at(bootstrap: &str, topic: &str, partition: i32, offset: Offset) -> StreamConsumer {
    let consumer: StreamConsumer = config(bootstrap)
        .set("group.id", support::unique_name("actions-kafka-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, offset)
        .expect("assignment");
    consumer.assign(&assignment).expect("assign");
    consumer
}

/// Reads the record at `result`'s partition and offset.
async fn read_back(bootstrap: &str, result: &PublishResult) -> OwnedMessage {
    let offset = Offset::Offset(result.offset);
    let consumer = reader_at(bootstrap, &result.topic, result.partition, offset);
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
    let params = KafkaAction {
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
    let params: KafkaAction = serde_json::from_value(json!({
        "topic": topic, "key": null, "value": [1, "two", {"three": 3}],
        "headers": {"origin": "reflex"}, "cloudevent": null,
    }))
    .expect("parameters");

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
    let params: KafkaAction = serde_json::from_value(json!({
        "topic": "__consumer_offsets", "key": null, "value": {"forged": true},
        "headers": {}, "cloudevent": null,
    }))
    .expect("parameters");

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
    let params: KafkaAction = serde_json::from_value(json!({
        "topic": "no spaces/allowed", "key": null, "value": 1, "headers": {}, "cloudevent": null,
    }))
    .expect("parameters");

    let err = executor(&bootstrap)
        .execute(&params, "illegal/0/evt-1")
        .await
        .expect_err("illegal name");

    assert!(matches!(err, Error::InvalidParams(_)), "{err:?}");
    assert!(err.to_string().contains("no spaces/allowed"), "{err}");
    assert!(!err.retryable());
}

/// How long no further record may arrive after the expected ones (a record published by
/// mistake would be there already: everything was acknowledged before reading).
const QUIET_PERIOD: Duration = Duration::from_secs(2);

/// Reads the `count` records of `topic` (one partition, from its start) and checks that no
/// other follows.
async fn read_exactly(bootstrap: &str, topic: &str, count: usize) -> Vec<OwnedMessage> {
    let consumer = reader_at(bootstrap, topic, 0, Offset::Beginning);
    let mut read = Vec::new();
    while read.len() < count {
        let message = tokio::time::timeout(KAFKA_OP_TIMEOUT, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of {count} records on {topic}", read.len()))
            .expect("consume");
        read.push(message.detach());
    }
    if let Ok(Ok(extra)) = tokio::time::timeout(QUIET_PERIOD, consumer.recv()).await {
        panic!(
            "more than {count} records on {topic}: {:?}",
            extra.payload().map(String::from_utf8_lossy)
        );
    }
    read
}

#[tokio::test]
async fn an_event_chosen_topic_cannot_reach_reflex_own_topics_through_the_pipeline() {
    use reflex::actions::Executors;
    use reflex::config::{Config, PipelineConfig, TopicsConfig};
    use reflex::event::decode::RawRecord;
    use reflex::pipeline::Pipeline;
    use reflex::store::{OutcomeStatus, Store};

    let bootstrap = support::require_kafka().await;
    let name = support::unique_name("loop");
    let topics = TopicsConfig {
        events: vec![format!("{name}.events")],
        outcomes: format!("{name}.outcomes"),
        dead_letters: format!("{name}.dead-letters"),
        group_id: name.clone(),
    };
    for topic in ["events", "outcomes", "dead-letters", "notify"] {
        create_topic(&bootstrap, &format!("{name}.{topic}")).await;
    }
    // A topic chosen wholly by the event does not even load.
    let free = "rules:\n  - name: free\n    actions:\n      - kafka: {topic: \"{{ event.to }}\", value: x}\n";
    let problems = reflex::rules::load_sources(&[("free.yaml".into(), free.to_owned())])
        .expect_err("a free topic template is refused at load");
    assert!(format!("{problems:?}").contains("event data must not choose the topic"));
    // The prefix is literal; the event picks the rest, and aims at Reflex's own topics.
    let rule = format!(
        "rules:\n  - name: forward\n    actions:\n      - kafka:\n          \
         topic: \"{name}.{{{{ event.to }}}}\"\n          value: {{forged: \"{{{{ event.to }}}}\"}}\n"
    );
    let rules = reflex::rules::load_sources(&[("forward.yaml".into(), rule)]).expect("rules");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("a.db").display()))
        .await
        .expect("store");
    let producer = config(&bootstrap)
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    let mut full = Config::default();
    full.kafka.topics = topics.clone();
    let pipeline = Pipeline::new(
        std::sync::Arc::new(rules),
        store.clone(),
        producer,
        &topics,
        &PipelineConfig::default(),
    )
    .await
    .expect("pipeline")
    .with_executors(Executors {
        kafka: Some(executor(&bootstrap)),
        ..Executors::default()
    })
    .with_guard(&full);

    let targets = ["outcomes", "events", "dead-letters", "notify"];
    for (offset, to) in (0..).zip(targets) {
        let payload = format!(r#"{{"to": "{to}"}}"#);
        let record = RawRecord {
            topic: &topics.events[0],
            partition: 0,
            offset,
            key: None,
            headers: Vec::new(),
            payload: Some(payload.as_bytes()),
            timestamp: Some(chrono::Utc::now()),
        };
        tokio::time::timeout(KAFKA_OP_TIMEOUT, pipeline.handle(&record))
            .await
            .expect("handled in time")
            .expect("handled");
    }

    let history = store
        .history(&reflex::store::history::HistoryFilter {
            rule: Some("forward".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("history");
    let refused: Vec<_> = history
        .iter()
        .filter(|r| r.status == OutcomeStatus::SuppressedByGuard)
        .collect();
    assert_eq!(refused.len(), 3, "{history:?}");
    for row in &refused {
        assert_eq!(row.details["guard"]["guard"], "kafka_topic", "{row:?}");
        let error = row.error.as_deref().unwrap_or_default();
        assert!(error.contains("is Reflex's own"), "{error}");
        assert!(error.contains("actions.kafka_allowed_topics"), "{error}");
    }
    // Only outcome records reached the outcomes topic; the forged value went to `notify` alone.
    let outcomes = read_exactly(&bootstrap, &topics.outcomes, 4).await;
    for message in &outcomes {
        let record: serde_json::Value =
            serde_json::from_slice(message.payload().expect("payload")).expect("JSON");
        let kind = record["type"].as_str().unwrap_or_default();
        assert!(kind.starts_with("dev.reflex.outcome."), "{record}");
    }
    read_exactly(&bootstrap, &topics.events[0], 0).await;
    read_exactly(&bootstrap, &topics.dead_letters, 0).await;
    let notified = read_exactly(&bootstrap, &format!("{name}.notify"), 1).await;
    assert_eq!(
        notified[0].payload(),
        Some(br#"{"forged":"notify"}"#.as_slice())
    );
}
