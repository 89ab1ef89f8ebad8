//! Rule state across restarts and failures: throttles, bursts, rollback.

use chrono::Utc;
use reflex::config::{PipelineConfig, TopicsConfig};
use reflex::outcome::store::OutcomeStatus;
use reflex::pipeline::{Error, Handled};

use crate::harness::*;
use crate::support;

#[tokio::test]
async fn throttle_state_survives_a_pipeline_restart() {
    let kafka = Kafka::new().await;
    let db = Db::sqlite().await;
    let store = db.store().await;
    let token = support::unique_name("throttle");
    let rule = format!("throttled-{token}");
    let rules = rules(&format!(
        "rules:\n  - name: {rule}\n    throttle:\n      key: \"{{{{ event.service.deployment }}}}\"\n      once_within: 1h\n    actions:\n      - log:\n          message: \"{token} {{{{ event.service.deployment }}}}\"\n"
    ));
    // These tests count action outcomes; `throttled` outcomes are covered in tests/guardrails.
    let config = PipelineConfig {
        record_throttled: false,
        ..PipelineConfig::default()
    };
    let payments = include_str!("../data/events/plain.json");
    let checkout = payments.replace("\"payments\"", "\"checkout\"");

    let first = pipeline(&rules, &store, &kafka, &config).await;
    let a = Record::json(&kafka.source, 0, payments);
    assert_eq!(handle(&first, &a).await.expect("a"), Handled::Outcomes(1));
    drop(first);

    let second = pipeline(&rules, &store, &kafka, &config).await;
    let b = Record::json(&kafka.source, 1, payments);
    assert_eq!(
        handle(&second, &b).await.expect("b"),
        Handled::Outcomes(0),
        "same key within the window after a restart: throttled"
    );
    let c = Record::json(&kafka.source, 2, &checkout);
    assert_eq!(
        handle(&second, &c).await.expect("c"),
        Handled::Outcomes(1),
        "another key still fires"
    );
    assert_eq!(executions(&format!("{token} payments")), 1);
    assert_eq!(executions(&format!("{token} checkout")), 1);
    assert!(store.load_rule_state(&rule).await.expect("load").is_some());
    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_burst_opened_before_a_restart_fires_on_tick_after_it() {
    let kafka = Kafka::new().await;
    let db = Db::sqlite().await;
    let store = db.store().await;
    let token = support::unique_name("burst");
    let rule = format!("burst-{token}");
    let rules = rules(&format!(
        "rules:\n  - name: {rule}\n    throttle:\n      key: \"{{{{ event.service.deployment }}}}\"\n      once_after: 2m\n    actions:\n      - log:\n          message: \"{token} count={{{{ match.count }}}}\"\n"
    ));
    let config = PipelineConfig::default();
    let payments = include_str!("../data/events/plain.json");

    let first = pipeline(&rules, &store, &kafka, &config).await;
    for offset in 0..2 {
        let record = Record::json(&kafka.source, offset, payments);
        assert_eq!(
            handle(&first, &record).await.expect("in the burst"),
            Handled::Outcomes(0),
            "a burst fires when its window closes, not before"
        );
    }
    assert_eq!(
        first.tick(Utc::now()).await.expect("tick"),
        0,
        "not due yet"
    );
    drop(first);

    let second = pipeline(&rules, &store, &kafka, &config).await;
    let later = Utc::now() + chrono::Duration::minutes(3);
    let fired = tokio::time::timeout(OP_TIMEOUT, second.tick(later))
        .await
        .expect("tick within the bound")
        .expect("tick");
    assert_eq!(fired, 1, "the restored burst fires once");
    assert_eq!(second.tick(later).await.expect("tick again"), 0);
    assert_eq!(
        executions(&format!("{token} count=2")),
        1,
        "both events counted"
    );
    let done = rows(&store, &rule, Some(OutcomeStatus::Succeeded)).await;
    assert_eq!(done.len(), 1);
    assert!(
        done[0].details["source"].is_null(),
        "a timer firing has no source record"
    );
    second.save_state().await.expect("save_state");
    let published = kafka.read_all(&kafka.topics.outcomes, 1).await;
    assert_eq!(
        json_of(&published[0])["type"],
        "dev.reflex.outcome.succeeded"
    );
    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_failed_publication_rolls_state_back_and_a_retry_publishes_without_re_executing() {
    let kafka = Kafka::new().await;
    let db = Db::sqlite().await;
    let store = db.store().await;
    let token = support::unique_name("rollback");
    let rule = format!("rollback-{token}");
    let rules = rules(&format!(
        "rules:\n  - name: {rule}\n    throttle:\n      key: \"{{{{ event.service.deployment }}}}\"\n      once_within: 1h\n    actions:\n      - log:\n          message: \"{token}\"\n"
    ));
    // These tests count action outcomes; `throttled` outcomes are covered in tests/guardrails.
    let config = PipelineConfig {
        record_throttled: false,
        ..PipelineConfig::default()
    };
    let payments = include_str!("../data/events/plain.json");
    let record = Record::json(&kafka.source, 0, payments);

    // The broker refuses this topic name, as an unreachable cluster would refuse everything.
    let broken = Kafka {
        bootstrap: kafka.bootstrap.clone(),
        topics: TopicsConfig {
            outcomes: "not a valid topic!".to_owned(),
            ..kafka.topics.clone()
        },
        source: kafka.source.clone(),
    };
    let failing = pipeline(&rules, &store, &broken, &config).await;
    for attempt in 0..2 {
        let err = handle(&failing, &record)
            .await
            .expect_err("the outcome cannot be published");
        assert!(
            matches!(err, Error::Publish { .. }),
            "attempt {attempt}: {err}"
        );
    }
    assert_eq!(
        executions(&token),
        1,
        "the retry found the recorded outcome and did not execute again"
    );
    assert_eq!(
        store.load_rule_state(&rule).await.expect("load"),
        None,
        "no state is saved for a record whose outcomes are not durable"
    );
    drop(failing);

    // Another instance publishes a recorded outcome only once the recording instance's claim
    // lease has passed (it might be publishing it right now); a zero lease says "it is dead".
    let restarted = PipelineConfig {
        claim_lease_secs: 0,
        ..config.clone()
    };
    let healthy = pipeline(&rules, &store, &kafka, &restarted).await;
    assert_eq!(
        handle(&healthy, &record).await.expect("retried"),
        Handled::Outcomes(1),
        "the retry publishes the recorded outcome"
    );
    assert_eq!(executions(&token), 1);
    let next = Record::json(&kafka.source, 1, payments);
    assert_eq!(
        handle(&healthy, &next).await.expect("next"),
        Handled::Outcomes(0),
        "the throttle window opened by the retried record holds"
    );
    let done = rows(&store, &rule, None).await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].status, OutcomeStatus::Succeeded);
    assert!(done[0].published_at.is_some());
    let published = kafka.read_all(&kafka.topics.outcomes, 1).await;
    assert_eq!(
        json_of(&published[0])["type"],
        "dev.reflex.outcome.succeeded"
    );
    store.close().await;
    db.cleanup().await;
}
