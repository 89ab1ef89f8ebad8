//! Dead letters must always be accepted, or the record's partition retries it forever: a copy
//! the dead-letter topic refuses as too large is sent again, cut to the fallback size, with
//! headers saying what was cut and where the original is.

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::Message;
use reflex::config::{PipelineConfig, TopicsConfig};
use reflex::event::decode::DecodeLimits;
use reflex::outcome::topic::{
    FALLBACK_BUDGET_BYTES, HEADER_ORIGINAL_BYTES, HEADER_TRUNCATED, producer_max_message_bytes,
};
use reflex::pipeline::{Handled, Pipeline};

use super::harness::*;
use crate::support;

#[tokio::test]
async fn a_dead_letter_the_topic_refuses_as_too_large_is_sent_cut_to_the_fallback_size() {
    let kafka = Kafka::new().await;
    let db = Db::sqlite().await;
    let store = db.store().await;
    // A dead-letter topic that takes less than the producer sends: 200,000 bytes per batch.
    let dead_letters = support::unique_name("small-dead-letters");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap)
        .create()
        .expect("admin client");
    let topic = NewTopic::new(&dead_letters, 1, TopicReplication::Fixed(1))
        .set("max.message.bytes", "200000");
    let created = admin
        .create_topics(
            &[topic],
            &AdminOptions::new().operation_timeout(Some(OP_TIMEOUT)),
        )
        .await
        .expect("create_topics request");
    for result in created {
        result.unwrap_or_else(|(topic, err)| panic!("creating topic {topic}: {err}"));
    }
    let topics = TopicsConfig {
        dead_letters: dead_letters.clone(),
        ..kafka.topics.clone()
    };
    // The producer `reflex run` builds: its limit admits a copy of any record within the
    // decode limit, so only the broker refuses the large one.
    let max = producer_max_message_bytes(DecodeLimits::DEFAULT_MAX_PAYLOAD_BYTES);
    let producer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap)
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "30000")
        .set("message.max.bytes", max.to_string())
        .create()
        .expect("producer");
    let rules =
        rules("rules:\n  - name: anything\n    actions:\n      - log:\n          message: never\n");
    let pipeline = Pipeline::new(
        rules,
        store.clone(),
        producer,
        &topics,
        &PipelineConfig::default(),
    )
    .await
    .expect("pipeline");

    let fits = Record::json(&kafka.source, 1, &"x".repeat(150_000));
    let mut refused = Record::json(&kafka.source, 2, &"y".repeat(500_000));
    refused.key = Some(b"k-2".to_vec());
    refused
        .headers
        .push(("trace-id".to_owned(), b"abc".to_vec()));
    for record in [&fits, &refused] {
        assert_eq!(
            handle(&pipeline, record)
                .await
                .expect("dead-lettered, not retried"),
            Handled::DeadLettered
        );
    }

    // The producer is still usable after the broker's refusal (idempotence is not broken).
    let valid = Record::json(&kafka.source, 3, r#"{"type":"after"}"#);
    assert!(matches!(
        handle(&pipeline, &valid).await.expect("handled"),
        Handled::Outcomes(1)
    ));

    let letters = kafka.read_all(&dead_letters, 2).await;
    assert_eq!(letters[0].payload(), fits.payload.as_deref(), "whole copy");
    assert!(!headers(&letters[0]).contains_key(HEADER_TRUNCATED));
    let cut = headers(&letters[1]);
    assert_eq!(cut[HEADER_TRUNCATED], "value", "{cut:?}");
    assert_eq!(cut[HEADER_ORIGINAL_BYTES], "500000");
    assert_eq!(cut["reflex-dlq-reason"], "not_json");
    assert_eq!(cut["reflex-source-topic"], kafka.source);
    assert_eq!(cut["reflex-source-offset"], "2");
    assert_eq!(cut["trace-id"], "abc", "the record's headers kept");
    assert_eq!(letters[1].key(), Some(&b"k-2"[..]));
    let value = letters[1].payload().expect("a value");
    assert!(
        value.len() > FALLBACK_BUDGET_BYTES / 2 && value.len() < FALLBACK_BUDGET_BYTES,
        "{} bytes kept",
        value.len()
    );
    assert!(
        refused
            .payload
            .as_deref()
            .expect("payload")
            .starts_with(value),
        "a prefix of the original value"
    );
    store.close().await;
    db.cleanup().await;
}
