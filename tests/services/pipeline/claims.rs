//! Claims of idempotency keys: stale and fresh claims, replicas racing.

use std::collections::BTreeSet;
use std::sync::Arc;

use reflex::config::PipelineConfig;
use reflex::event::decode::RawRecord;
use reflex::pipeline::{Error, Handled, Pipeline};
use reflex::store::OutcomeStatus;

use super::harness::*;
use crate::support;

async fn claims_are_taken_over_only_when_stale(db: Db) {
    let kafka = Kafka::new().await;
    let store = db.store().await;
    let token = support::unique_name("claim");
    let rule = format!("claimed-{token}");
    let rules = rules(&format!(
        "rules:\n  - name: {rule}\n    actions:\n      - log:\n          message: \"{token}\"\n"
    ));
    let config = PipelineConfig {
        claim_lease_secs: 60,
        ..PipelineConfig::default()
    };
    let pipeline = pipeline(&rules, &store, &kafka, &config).await;
    let fresh = Record::json(
        &kafka.source,
        10,
        include_str!("../../data/events/plain.json"),
    );
    let stale = Record::json(
        &kafka.source,
        11,
        include_str!("../../data/events/plain.json"),
    );
    // Another replica claimed both actions; one claim is recent, the other two hours old.
    for (record, age_minutes) in [(&fresh, 0), (&stale, 120)] {
        let age = chrono::Duration::minutes(age_minutes);
        leave_claim(&store, record, &rule, 0, "log", age, "other-replica").await;
    }

    let err = handle(&pipeline, &fresh)
        .await
        .expect_err("claimed elsewhere");
    assert!(matches!(err, Error::ClaimedElsewhere { .. }), "{err}");
    assert!(err.to_string().contains("other-replica"), "{err}");
    assert_eq!(executions(&token), 0);

    assert_eq!(
        handle(&pipeline, &stale).await.expect("taken over"),
        Handled::Outcomes(1)
    );
    let done = rows(&store, &rule, Some(OutcomeStatus::Succeeded)).await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].attempts, 2, "the second attempt finished it");
    assert_eq!(executions(&token), 1);
    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_stale_claim_is_taken_over_and_a_fresh_one_is_respected_on_postgres() {
    claims_are_taken_over_only_when_stale(Db::postgres().await).await;
}

#[tokio::test]
async fn a_stale_claim_is_taken_over_and_a_fresh_one_is_respected_on_sqlite() {
    claims_are_taken_over_only_when_stale(Db::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_racing_for_the_same_records_execute_each_action_once_on_postgres() {
    let kafka = Kafka::new().await;
    let db = Db::postgres().await;
    let store = db.store().await;
    let token = support::unique_name("race");
    let rule = format!("race-{token}");
    let rules = rules(&format!(
        "rules:\n  - name: {rule}\n    actions:\n      - log:\n          message: \"{token} offset={{{{ meta.offset }}}}.\"\n"
    ));
    let config = PipelineConfig::default();
    // Two replicas: separate pipelines (and connection pools) on one database.
    let replica_a = Arc::new(pipeline(&rules, &db.store().await, &kafka, &config).await);
    let replica_b = Arc::new(pipeline(&rules, &db.store().await, &kafka, &config).await);
    const RECORDS: i64 = 20;
    let mut tasks = Vec::new();
    for offset in 0..RECORDS {
        for replica in [&replica_a, &replica_b] {
            let replica = Arc::clone(replica);
            let record = Record::json(
                &kafka.source,
                offset,
                include_str!("../../data/events/plain.json"),
            );
            tasks.push(tokio::spawn(async move { handle(&replica, &record).await }));
        }
    }
    let mut ok: i64 = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(Handled::Outcomes(1)) => ok += 1,
            // The loser arrived while the winner was executing: it retries later.
            Err(Error::ClaimedElsewhere { .. }) => {}
            other => panic!("unexpected result {other:?}"),
        }
    }
    assert!(
        ok >= RECORDS,
        "every record handled by at least one replica ({ok})"
    );
    for offset in 0..RECORDS {
        assert_eq!(
            executions(&format!("{token} offset={offset}.")),
            1,
            "record {offset} executed exactly once"
        );
    }
    assert_eq!(
        rows(&store, &rule, Some(OutcomeStatus::Succeeded))
            .await
            .len(),
        RECORDS as usize
    );
    let duplicates = (ok - RECORDS) as usize;
    assert_eq!(
        rows(&store, &rule, Some(OutcomeStatus::Duplicate))
            .await
            .len(),
        duplicates,
        "every other successful handling was a duplicate"
    );
    // Each outcome reached the topic once: no replica published another's outcome.
    let published = kafka
        .read_all(&kafka.topics.outcomes, RECORDS as usize + duplicates)
        .await;
    let ids: BTreeSet<String> = published
        .iter()
        .map(|m| json_of(m)["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(
        ids.len(),
        published.len(),
        "no outcome record published twice"
    );
    assert_eq!(
        rows(&store, &rule, Some(OutcomeStatus::Started))
            .await
            .len(),
        0,
        "no claim left behind"
    );
    store.close().await;
    db.cleanup().await;
}

/// Partition workers share one pipeline across tasks: it and its futures must be `Send`.
#[allow(dead_code)]
fn the_pipeline_can_be_shared_across_tasks(pipeline: Arc<Pipeline>, record: RawRecord<'static>) {
    fn send<T: Send>(_: &T) {}
    fn shareable<T: Send + Sync>() {}
    shareable::<Pipeline>();
    let handle = async move { pipeline.handle(&record).await };
    send(&handle);
}

/// A pipeline over `store` whose producer points at a port nothing listens on: every
/// publication fails (after a short delivery timeout), like during a Kafka outage.
async fn pipeline_without_kafka(
    rules: &Arc<reflex::rules::RuleSet>,
    store: &reflex::store::Store,
    kafka: &Kafka,
) -> Pipeline {
    let dead = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", "127.0.0.1:1")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "300")
        .create()
        .expect("producer");
    Pipeline::new(
        Arc::clone(rules),
        store.clone(),
        dead,
        &kafka.topics,
        &PipelineConfig::default(),
    )
    .await
    .expect("pipeline")
}

async fn retries_during_an_outage_keep_one_duplicate_row(db: Db) {
    let kafka = Kafka::new().await;
    let store = db.store().await;
    let token = support::unique_name("outage");
    let rule = format!("outage-{token}");
    let rules = rules(&format!(
        "rules:\n  - name: {rule}\n    actions:\n      - log:\n          message: \"{token}\"\n"
    ));
    let record = Record::json(
        &kafka.source,
        3,
        include_str!("../../data/events/plain.json"),
    );
    let healthy = pipeline(&rules, &store, &kafka, &PipelineConfig::default()).await;
    assert_eq!(
        handle(&healthy, &record).await.expect("first delivery"),
        Handled::Outcomes(1)
    );

    // The record comes back while Kafka is down: the consumer retries it again and again, and
    // every retry finds the action published and fails to publish the duplicate outcome.
    let cut_off = pipeline_without_kafka(&rules, &store, &kafka).await;
    for _ in 0..5 {
        let err = handle(&cut_off, &record).await.expect_err("Kafka is down");
        assert!(matches!(err, Error::Publish { .. }), "{err}");
    }
    let duplicates = rows(&store, &rule, Some(OutcomeStatus::Duplicate)).await;
    assert_eq!(
        duplicates.len(),
        1,
        "one row per duplicate: {duplicates:#?}"
    );
    assert!(duplicates[0].published_at.is_none());

    // Kafka is back: the retry publishes the duplicate, still in that one row.
    assert_eq!(
        handle(&healthy, &record).await.expect("after the outage"),
        Handled::Outcomes(1)
    );
    let duplicates = rows(&store, &rule, Some(OutcomeStatus::Duplicate)).await;
    assert_eq!(duplicates.len(), 1, "{duplicates:#?}");
    assert!(duplicates[0].published_at.is_some());
    assert_eq!(executions(&token), 1, "the action ran once");
    assert_eq!(
        rows(&store, &rule, None).await.len(),
        2,
        "the original and one duplicate"
    );
    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn retries_during_a_kafka_outage_keep_one_duplicate_row_on_postgres() {
    retries_during_an_outage_keep_one_duplicate_row(Db::postgres().await).await;
}

#[tokio::test]
async fn retries_during_a_kafka_outage_keep_one_duplicate_row_on_sqlite() {
    retries_during_an_outage_keep_one_duplicate_row(Db::sqlite().await).await;
}
