//! Claims of idempotency keys: stale and fresh claims, replicas racing.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Utc;
use reflex::config::PipelineConfig;
use reflex::event::decode::RawRecord;
use reflex::outcome::store::{NewOutcome, OutcomeStatus};
use reflex::pipeline::{Error, Handled, Pipeline};
use serde_json::json;

use crate::harness::*;
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
    let fresh = Record::json(&kafka.source, 10, include_str!("../data/events/plain.json"));
    let stale = Record::json(&kafka.source, 11, include_str!("../data/events/plain.json"));
    // Another replica claimed both actions; one claim is recent, the other two hours old.
    for (record, age_minutes) in [(&fresh, 0), (&stale, 120)] {
        let event_id = format!("{}/0/{}", record.topic, record.offset);
        let key = reflex::rules::engine::idempotency_key(&event_id, &rule, 0);
        let claim = NewOutcome {
            event_id: &event_id,
            rule: &rule,
            action_kind: "log",
            idempotency_key: &key,
            status: OutcomeStatus::Started,
            attempts: 1,
            started_at: Utc::now() - chrono::Duration::minutes(age_minutes),
            finished_at: None,
            target: None,
            error: None,
            details: &json!({ "claimant": "other-replica" }),
        };
        assert!(store.insert_outcome(&claim).await.expect("claim"));
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
                include_str!("../data/events/plain.json"),
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
