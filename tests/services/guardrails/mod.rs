//! The action guardrails against the real services: a circuit breaker counted in PostgreSQL
//! and announced on Kafka, per-target mutual exclusion across two pipelines sharing
//! PostgreSQL, the namespace policy and a global dry run against the real kube-apiserver,
//! `throttled` outcomes, and dead letters for actions that failed for good. Nothing is
//! mocked: webhooks reach a real HTTP server, restarts a real Deployment.
//!
//! Run: `scripts/services up && eval "$(scripts/services env)" && cargo test --features services --test services guardrails::`

use crate::support;

// The pipeline tests' harness (stores, topics, records).
use super::pipeline::harness;

mod fixtures;
mod kubernetes;
mod scope;

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rdkafka::message::Message;
use reflex::actions::guard::config::CircuitConfig;
use reflex::config::{ActionsConfig, PipelineConfig};
use reflex::metrics::RuleLabels;
use reflex::outcome::topic;
use reflex::store::OutcomeStatus;
use serde_json::Value;

use fixtures::{Receiver, executors, guarded};
use harness::*;

/// The time a JSON field holds.
fn time_at(value: &Value, pointer: &str) -> DateTime<Utc> {
    let text = value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{pointer} in {value}"));
    DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

#[tokio::test]
async fn a_flood_opens_the_circuit_after_n_executions_announces_it_once_and_resumes_after_the_cool_down()
 {
    let kafka = Kafka::new().await;
    let announcements = support::unique_name("guard");
    support::create_topic(&kafka.bootstrap, &announcements, 1).await;
    let db = Db::postgres().await;
    let store = db.store().await;
    let receiver = Receiver::start(Duration::ZERO, StatusCode::OK).await;
    let rule = support::unique_name("flood");
    let rules = rules(&format!(
        "rules:\n  - name: {rule}\n    guard: {{max_per_rule: 3, cool_down: 6s}}\n    actions:\n      \
         - webhook:\n          url: \"{}\"\n",
        receiver.url("/remediate")
    ));
    let actions = ActionsConfig {
        circuit: CircuitConfig {
            announce_topic: Some(announcements.clone()),
            ..CircuitConfig::default()
        },
        ..ActionsConfig::default()
    };
    let pipeline = guarded(&rules, &store, &kafka, executors(None), &actions).await;

    for offset in 0..6 {
        let record = Record::json(&kafka.source, offset, r#"{"alert": "flood"}"#);
        handle(&pipeline, &record).await.expect("handled");
    }
    assert_eq!(receiver.visits().len(), 3, "only the first 3 executed");
    assert_eq!(
        rows(&store, &rule, Some(OutcomeStatus::Succeeded))
            .await
            .len(),
        3
    );
    let suppressed = rows(&store, &rule, Some(OutcomeStatus::SuppressedByGuard)).await;
    assert_eq!(suppressed.len(), 3, "{suppressed:?}");
    for row in &suppressed {
        let error = row.error.as_deref().unwrap_or_default();
        assert!(
            error.contains(&format!("circuit breaker open for rule `{rule}`")),
            "{error}"
        );
        assert!(error.contains("guard.max_per_rule"), "{error}");
        assert_eq!(row.details["guard"]["guard"], "circuit_breaker");
    }

    // A second instance (a replica, or this one restarted) sees the open circuit in the store.
    let replica = guarded(&rules, &db.store().await, &kafka, executors(None), &actions).await;
    let record = Record::json(&kafka.source, 6, r#"{"alert": "flood"}"#);
    handle(&replica, &record).await.expect("handled");
    assert_eq!(receiver.visits().len(), 3, "the replica did not execute");
    assert_eq!(
        rows(&store, &rule, Some(OutcomeStatus::SuppressedByGuard))
            .await
            .len(),
        4
    );

    let opened = kafka.read_all(&announcements, 1).await;
    let event = json_of(&opened[0]);
    assert_eq!(event["type"], "dev.reflex.circuit.opened");
    assert_eq!(event["data"]["rule"], rule.as_str());
    assert_eq!(event["data"]["scope"], "rule");
    assert_eq!(
        event["data"]["executions"], 4,
        "the 4th execution tripped it"
    );
    assert_eq!(event["data"]["limit"], 3);
    assert_eq!(event["data"]["window"], "10m");
    let until = time_at(&event, "/data/cool_down_until");
    let opened_at = time_at(&event, "/data/opened_at");
    assert_eq!((until - opened_at).num_seconds(), 6, "the rule's cool-down");
    let trips = reflex::metrics::global()
        .circuit_trips
        .get_or_create(&RuleLabels { rule: rule.clone() })
        .get();
    assert_eq!(trips, 1);

    // After the cool-down the rule executes again, counted afresh, and the closing is announced.
    if let Ok(left) = (until - Utc::now()).to_std() {
        tokio::time::sleep(left + Duration::from_millis(200)).await;
    }
    let record = Record::json(&kafka.source, 7, r#"{"alert": "flood"}"#);
    handle(&pipeline, &record).await.expect("handled");
    assert_eq!(receiver.visits().len(), 4, "execution resumed");
    let both = kafka.read_all(&announcements, 2).await;
    let closed = json_of(&both[1]);
    assert_eq!(closed["type"], "dev.reflex.circuit.closed");
    assert_eq!(closed["data"]["rule"], rule.as_str());
    let gauge = reflex::metrics::global()
        .circuit_open
        .get_or_create(&RuleLabels { rule: rule.clone() })
        .get();
    assert_eq!(gauge, 0, "the circuit_open gauge follows the closing");
    db.cleanup().await;
}

#[tokio::test]
async fn two_pipelines_sharing_postgres_never_act_on_one_target_at_the_same_time() {
    let kafka = Kafka::new().await;
    let db = Db::postgres().await;
    let (store_a, store_b) = (db.store().await, db.store().await);
    // Each call holds the receiver for 300 ms: overlapping calls would be plain to see.
    let receiver = Receiver::start(Duration::from_millis(300), StatusCode::OK).await;
    let token = support::unique_name("serial");
    let rules = rules(&format!(
        "rules:\n  - name: same-{token}\n    select: {{types: [same]}}\n    actions:\n      - webhook:\n          \
         url: \"{same}\"\n  - name: apart-{token}\n    select: {{types: [apart]}}\n    actions:\n      \
         - webhook:\n          url: \"{apart}/{{{{ meta.offset }}}}\"\n",
        same = receiver.url("/apis/apps/v1/namespaces/shop/deployments/web"),
        apart = receiver.url("/apart"),
    ));
    let actions = ActionsConfig::default();
    let a = guarded(&rules, &store_a, &kafka, executors(None), &actions).await;
    let b = guarded(&rules, &store_b, &kafka, executors(None), &actions).await;
    let event = |offset: i64, kind: &str| {
        Record::json(
            &kafka.source,
            offset,
            &format!(
                r#"{{"specversion": "1.0", "id": "{token}-{offset}", "source": "test", "type": "{kind}"}}"#
            ),
        )
    };

    let (same_a, same_b) = tokio::join!(
        async {
            for offset in [0, 2] {
                handle(&a, &event(offset, "same"))
                    .await
                    .expect("handled by a");
            }
        },
        async {
            for offset in [1, 3] {
                handle(&b, &event(offset, "same"))
                    .await
                    .expect("handled by b");
            }
        }
    );
    let _ = (same_a, same_b);
    let mut same: Vec<_> = receiver
        .visits()
        .into_iter()
        .filter(|v| v.path.contains("/deployments/web"))
        .collect();
    assert_eq!(same.len(), 4, "{same:?}");
    same.sort_by_key(|v| v.started);
    for pair in same.windows(2) {
        assert!(
            pair[0].ended <= pair[1].started,
            "two actions on one target overlapped: {pair:?}"
        );
    }
    let done = rows(
        &store_a,
        &format!("same-{token}"),
        Some(OutcomeStatus::Succeeded),
    )
    .await;
    let claimants: BTreeSet<_> = done
        .iter()
        .filter_map(|row| row.details["claimant"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(claimants.len(), 2, "both pipelines executed: {claimants:?}");

    // Control: actions on different targets do run at the same time, so the receiver would
    // have seen an overlap above had the lock not serialized them.
    tokio::join!(
        async { handle(&a, &event(10, "apart")).await.expect("handled by a") },
        async { handle(&b, &event(11, "apart")).await.expect("handled by b") }
    );
    let apart: Vec<_> = receiver
        .visits()
        .into_iter()
        .filter(|v| v.path.starts_with("/apart"))
        .collect();
    assert_eq!(apart.len(), 2);
    assert!(
        apart[0].started < apart[1].ended && apart[1].started < apart[0].ended,
        "different targets ran concurrently: {apart:?}"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn throttled_firings_are_recorded_once_each_even_when_redelivered() {
    let kafka = Kafka::new().await;
    let db = Db::sqlite().await;
    let store = db.store().await;
    let rule = support::unique_name("throttle");
    let yaml = format!(
        "rules:\n  - name: {rule}\n    throttle: {{key: \"{{{{ event.host }}}}\", once_within: 10m}}\n    \
         actions:\n      - log: {{message: \"{rule} {{{{ event.host }}}}\"}}\n"
    );
    let rules = rules(&yaml);
    let first = pipeline(&rules, &store, &kafka, &PipelineConfig::default()).await;
    let record = |offset| Record::json(&kafka.source, offset, r#"{"host": "db-1"}"#);
    for offset in 0..3 {
        handle(&first, &record(offset)).await.expect("handled");
    }
    handle(&first, &record(1)).await.expect("redelivered");

    assert_eq!(
        rows(&store, &rule, Some(OutcomeStatus::Succeeded))
            .await
            .len(),
        1
    );
    let throttled = rows(&store, &rule, Some(OutcomeStatus::Throttled)).await;
    assert_eq!(
        throttled.len(),
        2,
        "one per suppressed event: {throttled:?}"
    );
    for row in &throttled {
        assert_eq!(row.details["throttle_key"], "db-1");
        assert_eq!(row.attempts, 0, "nothing executed");
        assert!(row.details["quiet_until"].is_string());
    }
    let statuses: Vec<String> = kafka
        .read_all(&kafka.topics.outcomes, 3)
        .await
        .iter()
        .map(|m| {
            json_of(m)["data"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(statuses, ["succeeded", "throttled", "throttled"]);

    // With `pipeline.record_throttled: false` nothing is recorded for them.
    let quiet_db = Db::sqlite().await;
    let quiet_store = quiet_db.store().await;
    let quiet = pipeline(
        &rules,
        &quiet_store,
        &kafka,
        &PipelineConfig {
            record_throttled: false,
            ..PipelineConfig::default()
        },
    )
    .await;
    for offset in 0..3 {
        handle(&quiet, &record(offset)).await.expect("handled");
    }
    assert!(
        rows(&quiet_store, &rule, Some(OutcomeStatus::Throttled))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn an_action_that_fails_for_good_is_dead_lettered_with_headers_naming_it() {
    let kafka = Kafka::new().await;
    let db = Db::sqlite().await;
    let store = db.store().await;
    let receiver = Receiver::start(Duration::ZERO, StatusCode::NOT_FOUND).await;
    let rule = support::unique_name("failing");
    let rules = rules(&format!(
        "rules:\n  - name: {rule}\n    actions:\n      - webhook:\n          url: \"{}\"\n          \
         retries: 0\n",
        receiver.url("/gone")
    ));
    let pipeline = guarded(
        &rules,
        &store,
        &kafka,
        executors(None),
        &ActionsConfig::default(),
    )
    .await;
    let record = Record::json(&kafka.source, 5, r#"{"alert": "x"}"#);
    handle(&pipeline, &record).await.expect("handled");

    let failed = rows(&store, &rule, Some(OutcomeStatus::Failed)).await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    let letters = kafka.read_all(&kafka.topics.dead_letters, 1).await;
    let headers = headers(&letters[0]);
    assert_eq!(headers[topic::HEADER_REASON], topic::REASON_ACTION_FAILED);
    assert_eq!(headers[topic::HEADER_SOURCE_TOPIC], kafka.source);
    assert_eq!(headers[topic::HEADER_SOURCE_PARTITION], "0");
    assert_eq!(headers[topic::HEADER_SOURCE_OFFSET], "5");
    assert_eq!(headers[topic::HEADER_RULE], rule);
    assert_eq!(headers[topic::HEADER_ACTION_KIND], "webhook");
    assert!(headers[topic::HEADER_ERROR].contains("404"), "{headers:?}");
    let body = json_of(&letters[0]);
    assert_eq!(body["idempotency_key"], failed[0].idempotency_key.as_str());
    assert_eq!(letters[0].key(), Some(failed[0].idempotency_key.as_bytes()));

    // A redelivery records a duplicate and dead-letters nothing more (read_all checks that no
    // second letter arrives).
    handle(&pipeline, &record).await.expect("redelivered");
    kafka.read_all(&kafka.topics.dead_letters, 1).await;
    assert_eq!(receiver.visits().len(), 1);
}

/// The engine's side of `throttled` outcomes, without any service: a suppressed firing is
/// reported with its key and quiet-until time, and nothing else is.
#[test]
fn the_engine_reports_each_firing_its_throttle_suppresses() {
    use reflex::event::decode::{Decoding, decode_json};
    use reflex::rules::Engine;

    let rules = rules(
        "rules:\n  - name: quiet\n    throttle: {key: \"{{ event.host }}\", once_within: 10m}\n    \
         actions: [{log: {message: m}}]\n",
    );
    let mut engine = Engine::new(rules);
    let t0: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().expect("time");
    let event = |offset: i64, host: &str| {
        decode_json(
            serde_json::json!({ "host": host }),
            "events",
            0,
            offset,
            None,
            &std::collections::BTreeMap::new(),
            Some(t0),
            Decoding::Json,
        )
        .expect("decodes")
        .remove(0)
    };
    let first = engine.process(&event(0, "a"), t0);
    assert_eq!(first.planned.len(), 1);
    assert!(first.throttled.is_empty());
    let later = t0 + chrono::Duration::minutes(1);
    let second = engine.process(&event(1, "a"), later);
    assert!(second.planned.is_empty());
    assert_eq!(second.throttled.len(), 1);
    let throttled = &second.throttled[0];
    assert_eq!(throttled.rule, "quiet");
    assert_eq!(throttled.key, "a");
    assert_eq!(throttled.until, t0 + chrono::Duration::minutes(10));
    assert_eq!(throttled.event_id, event(1, "a").meta.id);
    let other_key = engine.process(&event(2, "b"), later);
    assert_eq!((other_key.planned.len(), other_key.throttled.len()), (1, 0));
}
