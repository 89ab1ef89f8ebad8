//! The pipeline against the real services: records in through `Pipeline::handle`, outcomes in
//! the audit store (SQLite and PostgreSQL) and on the outcomes topic, poison records on the
//! dead-letter topic. Nothing is mocked; each test has its own topics and its own database.
//!
//! Run: `scripts/services up && eval "$(scripts/services env)" && cargo test --features services --test services pipeline::`

use crate::support;

mod claims;
mod closed_loop;
mod dead_letters;
pub(super) mod harness;
mod history;
mod receiver;
mod remediation;
mod secrets;
mod shadow;
mod state;
mod store;
mod takeover;

use std::collections::{BTreeMap, BTreeSet};

use rdkafka::message::Message;
use reflex::config::PipelineConfig;
use reflex::event::decode::Decoding;
use reflex::pipeline::Handled;
use reflex::store::OutcomeStatus;
use reflex::store::history::HistoryFilter;
use serde_json::json;

use harness::*;

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test]
async fn every_event_format_reaches_the_store_and_the_outcomes_topic() {
    let kafka = Kafka::new().await;
    let db = Db::sqlite().await;
    let store = db.store().await;
    let token = support::unique_name("formats");
    let rules = rules(&format!(
        "rules:\n  - name: log-{token}\n    actions:\n      - log:\n          message: \"{token} {{{{ meta.format }}}} {{{{ meta.id }}}}\"\n"
    ));
    let pipeline = pipeline(&rules, &store, &kafka, &PipelineConfig::default()).await;

    let fixtures = [
        include_str!("../../data/events/plain.json"),
        include_str!("../../data/events/cloudevent-structured.json"),
        include_str!("../../data/events/cloudevent-data-base64.json"),
        // One firing and one resolved alert: rules select firing alerts by default.
        include_str!("../../data/events/alertmanager-webhook.json"),
        include_str!("../../data/events/kubernetes-event.json"),
        include_str!("../../data/events/kubernetes-event-events-v1.json"),
        include_str!("../../data/events/falco-event.json"),
        include_str!("../../data/events/falco-event-no-uuid.json"),
    ];
    let mut records: Vec<Record> = fixtures
        .iter()
        .enumerate()
        .map(|(i, text)| Record::json(&kafka.source, i as i64, text))
        .collect();
    records.push(binary_cloudevent(&kafka.source, fixtures.len() as i64));
    for record in &records {
        let handled = handle(&pipeline, record).await.expect("handled");
        assert_eq!(handled, Handled::Outcomes(1), "offset {}", record.offset);
    }

    let rule = format!("log-{token}");
    let stored = rows(&store, &rule, None).await;
    assert_eq!(stored.len(), records.len());
    assert!(stored.iter().all(|r| r.status == OutcomeStatus::Succeeded
        && r.attempts == 1
        && r.published_at.is_some()));
    let formats: BTreeSet<String> = stored
        .iter()
        .map(|r| {
            let message = r.details["params"]["message"].as_str().expect("message");
            message.split(' ').nth(1).expect("format word").to_owned()
        })
        .collect();
    let expected: BTreeSet<String> = [
        "json",
        "cloudevents",
        "alertmanager",
        "kubernetes_event",
        "falco",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(formats, expected);
    assert_eq!(
        executions(&token),
        records.len(),
        "each action executed once"
    );

    let published = kafka.read_all(&kafka.topics.outcomes, records.len()).await;
    let stored_keys: BTreeSet<&str> = stored.iter().map(|r| r.idempotency_key.as_str()).collect();
    for message in &published {
        let record = json_of(message);
        assert_eq!(record["specversion"], "1.0");
        assert_eq!(record["source"], "reflex");
        assert_eq!(record["type"], "dev.reflex.outcome.succeeded");
        assert_eq!(record["data"]["rule"], rule.as_str());
        let key = record["data"]["idempotency_key"].as_str().expect("key");
        assert!(
            stored_keys.contains(key),
            "published outcome {key} is in the store"
        );
        assert_eq!(record["id"], format!("{key}.succeeded"));
        // A log action has no target: the rule keys the record.
        assert_eq!(message.key(), Some(rule.as_bytes()));
    }
    store.close().await;
    db.cleanup().await;
}

async fn redelivery_records_duplicates_and_executes_once(db: Db) {
    let kafka = Kafka::new().await;
    let store = db.store().await;
    let token = support::unique_name("dup");
    let rule = format!("once-{token}");
    let rules = rules(&format!(
        "rules:\n  - name: {rule}\n    actions:\n      - log:\n          message: \"{token} {{{{ meta.id }}}}\"\n"
    ));
    let config = PipelineConfig::default();
    let record = Record::json(
        &kafka.source,
        7,
        include_str!("../../data/events/plain.json"),
    );

    let first = pipeline(&rules, &store, &kafka, &config).await;
    assert_eq!(
        handle(&first, &record).await.expect("first"),
        Handled::Outcomes(1)
    );
    assert_eq!(
        handle(&first, &record).await.expect("redelivery"),
        Handled::Outcomes(1)
    );
    drop(first);
    // A restart: a new pipeline (new instance) over the same store.
    let second = pipeline(&rules, &store, &kafka, &config).await;
    assert_ne!(second.instance(), "");
    assert_eq!(
        handle(&second, &record).await.expect("after restart"),
        Handled::Outcomes(1)
    );

    assert_eq!(executions(&token), 1, "the log action ran once");
    let succeeded = rows(&store, &rule, Some(OutcomeStatus::Succeeded)).await;
    assert_eq!(succeeded.len(), 1);
    let key = &succeeded[0].idempotency_key;
    let duplicates = rows(&store, &rule, Some(OutcomeStatus::Duplicate)).await;
    // One row per duplicated action: the second redelivery refreshed it (and published again).
    assert_eq!(duplicates.len(), 1, "{duplicates:#?}");
    assert_eq!(duplicates[0].idempotency_key, format!("{key}.duplicate"));
    assert_eq!(duplicates[0].details["claimant"], second.instance());
    for duplicate in &duplicates {
        assert_eq!(duplicate.details["duplicate_of"], key.as_str());
        assert_eq!(duplicate.details["original_status"], "succeeded");
        assert!(duplicate.published_at.is_some());
    }

    let published = kafka.read_all(&kafka.topics.outcomes, 3).await;
    let types: Vec<String> = published
        .iter()
        .map(|m| json_of(m)["type"].as_str().expect("type").to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "dev.reflex.outcome.succeeded",
            "dev.reflex.outcome.duplicate",
            "dev.reflex.outcome.duplicate"
        ]
    );
    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_redelivered_record_is_a_duplicate_and_runs_once_on_sqlite() {
    redelivery_records_duplicates_and_executes_once(Db::sqlite().await).await;
}

#[tokio::test]
async fn a_redelivered_record_is_a_duplicate_and_runs_once_on_postgres() {
    redelivery_records_duplicates_and_executes_once(Db::postgres().await).await;
}

#[tokio::test]
async fn poison_records_go_to_the_dead_letter_topic_with_their_reason() {
    let kafka = Kafka::new().await;
    let db = Db::sqlite().await;
    let store = db.store().await;
    let forced = support::unique_name("falco-only");
    let config = PipelineConfig {
        max_payload_bytes: 4096,
        decoding: BTreeMap::from([(forced.clone(), Decoding::Falco)]),
        ..PipelineConfig::default()
    };
    let rules =
        rules("rules:\n  - name: anything\n    actions:\n      - log:\n          message: never\n");
    let pipeline = pipeline(&rules, &store, &kafka, &config).await;

    let mut not_json = Record::json(&kafka.source, 3, "{\"unterminated\": ");
    not_json.key = Some(b"k-1".to_vec());
    not_json
        .headers
        .push(("trace-id".to_owned(), b"abc".to_vec()));
    let oversized = Record::json(
        &kafka.source,
        4,
        &json!({ "padding": "x".repeat(5000) }).to_string(),
    );
    let wrong_format = Record::json(&forced, 5, include_str!("../../data/events/plain.json"));
    for record in [&not_json, &oversized, &wrong_format] {
        assert_eq!(
            handle(&pipeline, record)
                .await
                .expect("dead-lettered, not an error"),
            Handled::DeadLettered
        );
    }
    assert!(
        rows(&store, "anything", None).await.is_empty(),
        "no outcomes for poison"
    );

    let letters = kafka.read_all(&kafka.topics.dead_letters, 3).await;
    let expected = [
        (&not_json, "not_json"),
        (&oversized, "too_large"),
        (&wrong_format, "wrong_format"),
    ];
    for (message, (record, reason)) in letters.iter().zip(expected) {
        let headers = headers(message);
        assert_eq!(headers["reflex-dlq-reason"], reason);
        assert!(!headers["reflex-dlq-error"].is_empty());
        assert_eq!(headers["reflex-source-topic"], record.topic);
        assert_eq!(headers["reflex-source-partition"], "0");
        assert_eq!(headers["reflex-source-offset"], record.offset.to_string());
        assert_eq!(message.payload(), record.payload.as_deref(), "value kept");
        assert_eq!(message.key(), record.key.as_deref(), "key kept");
    }
    assert_eq!(
        headers(&letters[0])["trace-id"],
        "abc",
        "original headers kept"
    );
    assert!(headers(&letters[2])["reflex-dlq-error"].contains("falco"));
    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn dry_runs_are_skipped_and_kinds_without_executor_are_not_implemented() {
    let kafka = Kafka::new().await;
    let db = Db::sqlite().await;
    let store = db.store().await;
    let token = support::unique_name("dry");
    let rules = rules(&format!(
        r#"rules:
  - name: dry-{token}
    dry_run: true
    actions:
      - log:
          message: "{token} would log"
  - name: restart-{token}
    actions:
      - restart:
          target:
            namespace: "{{{{ event.service.namespace }}}}"
            name: "{{{{ event.service.deployment }}}}"
  - name: broken-{token}
    actions:
      - log:
          message: "{{{{ event.no_such_field }}}}"
"#
    ));
    let pipeline = pipeline(&rules, &store, &kafka, &PipelineConfig::default()).await;
    let record = Record::json(
        &kafka.source,
        0,
        include_str!("../../data/events/plain.json"),
    );
    assert_eq!(
        handle(&pipeline, &record).await.expect("handled"),
        Handled::Outcomes(3)
    );

    let dry = rows(&store, &format!("dry-{token}"), None).await;
    assert_eq!(dry.len(), 1);
    assert_eq!(dry[0].status, OutcomeStatus::SkippedDryRun);
    assert_eq!(executions(&token), 0, "a dry run executes nothing");

    let restart = rows(&store, &format!("restart-{token}"), None).await;
    assert_eq!(restart.len(), 1);
    assert_eq!(restart[0].status, OutcomeStatus::NotImplemented);
    assert_eq!(
        restart[0].target.as_deref(),
        Some("deployment/shop/payments")
    );
    let error = restart[0].error.as_deref().expect("error says why");
    assert!(
        error.contains("`restart`") && error.contains("executor"),
        "{error}"
    );

    let broken = rows(&store, &format!("broken-{token}"), None).await;
    assert_eq!(broken.len(), 1);
    assert_eq!(broken[0].status, OutcomeStatus::Failed);
    assert!(
        broken[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("no_such_field")),
        "{:?}",
        broken[0].error
    );

    let published = kafka.read_all(&kafka.topics.outcomes, 3).await;
    let by_type: BTreeMap<String, Option<Vec<u8>>> = published
        .iter()
        .map(|m| {
            (
                json_of(m)["type"].as_str().expect("type").to_owned(),
                m.key().map(<[u8]>::to_vec),
            )
        })
        .collect();
    assert_eq!(
        by_type["dev.reflex.outcome.not_implemented"].as_deref(),
        Some(&b"deployment/shop/payments"[..]),
        "keyed by target"
    );
    assert!(by_type.contains_key("dev.reflex.outcome.skipped_dry_run"));
    assert!(by_type.contains_key("dev.reflex.outcome.failed"));
    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn events_that_match_nothing_are_recorded_when_enabled() {
    let kafka = Kafka::new().await;
    let db = Db::sqlite().await;
    let store = db.store().await;
    let rules = rules(
        "rules:\n  - name: never\n    when: 'attempt > 100'\n    actions:\n      - log:\n          message: never\n",
    );
    let config = PipelineConfig {
        record_no_match: true,
        ..PipelineConfig::default()
    };
    let pipeline = pipeline(&rules, &store, &kafka, &config).await;
    let record = Record::json(
        &kafka.source,
        0,
        include_str!("../../data/events/plain.json"),
    );
    assert_eq!(
        handle(&pipeline, &record).await.expect("first"),
        Handled::Outcomes(1)
    );
    assert_eq!(
        handle(&pipeline, &record).await.expect("redelivery"),
        Handled::Outcomes(0),
        "a redelivered non-match is not recorded twice"
    );
    let found = store
        .history(&HistoryFilter {
            status: Some(OutcomeStatus::NoMatch),
            limit: 10,
            ..HistoryFilter::default()
        })
        .await
        .expect("history");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].event_id, format!("{}/0/0", kafka.source));
    let published = kafka.read_all(&kafka.topics.outcomes, 1).await;
    assert_eq!(
        json_of(&published[0])["type"],
        "dev.reflex.outcome.no_match"
    );
    store.close().await;
    db.cleanup().await;
}
