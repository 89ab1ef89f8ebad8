//! Rule state across restarts, replicas and failures: throttles, bursts, rollback, redelivery.

use chrono::Utc;
use reflex::config::{PipelineConfig, TopicsConfig};
use reflex::pipeline::{Error, Handled};
use reflex::store::OutcomeStatus;

use super::harness::*;
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
    let payments = include_str!("../../data/events/plain.json");
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
    let keys = store.load_rule_keys(&rule).await.expect("load keys");
    let names: Vec<&str> = keys.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(names, ["checkout", "payments"], "one row per key");
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
    let payments = include_str!("../../data/events/plain.json");

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
    let payments = include_str!("../../data/events/plain.json");
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
    assert!(store.load_rule_keys(&rule).await.expect("load").is_empty());
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

/// Throttled events are not recorded, so outcomes count executions (`throttled` outcomes are
/// covered in tests/guardrails).
fn counting() -> PipelineConfig {
    PipelineConfig {
        record_throttled: false,
        ..PipelineConfig::default()
    }
}

/// A `once_within: 1h` rule keyed on the deployment, logging `<token> <deployment>`.
fn keyed_throttle(rule: &str, token: &str) -> String {
    format!(
        "  - name: {rule}\n    throttle:\n      key: \"{{{{ event.service.deployment }}}}\"\n      once_within: 1h\n    actions:\n      - log:\n          message: \"{token} {{{{ event.service.deployment }}}}\"\n"
    )
}

/// The plain JSON fixture for another deployment.
fn for_deployment(deployment: &str) -> String {
    include_str!("../../data/events/plain.json")
        .replace("\"payments\"", &format!("\"{deployment}\""))
}

/// Two pipelines ("replicas") on one database running one keyed throttle rule; throttled
/// events are not recorded, so outcomes count executions.
struct Replicas {
    kafka: Kafka,
    token: String,
    rule: String,
    rules: std::sync::Arc<reflex::rules::RuleSet>,
    config: PipelineConfig,
    store_a: reflex::store::Store,
    store_b: reflex::store::Store,
    a: reflex::pipeline::Pipeline,
    b: reflex::pipeline::Pipeline,
}

impl Replicas {
    async fn start(db: &Db, name: &str) -> Replicas {
        let kafka = Kafka::new().await;
        let token = support::unique_name(name);
        let rule = format!("{name}-{token}");
        let rules = rules(&format!("rules:\n{}", keyed_throttle(&rule, &token)));
        let config = counting();
        // Each replica has its own connection pool, as separate processes would.
        let (store_a, store_b) = (db.store().await, db.store().await);
        let a = pipeline(&rules, &store_a, &kafka, &config).await;
        let b = pipeline(&rules, &store_b, &kafka, &config).await;
        Replicas {
            kafka,
            token,
            rule,
            rules,
            config,
            store_a,
            store_b,
            a,
            b,
        }
    }
}

/// Closes the stores, then drops the database.
async fn close(db: Db, stores: impl IntoIterator<Item = reflex::store::Store>) {
    for store in stores {
        store.close().await;
    }
    db.cleanup().await;
}

/// Two replicas share one database: a key fired by one is throttled on the other at once (the
/// state is read from the store for every decision, not restored at start), and a third process
/// started afterwards re-fires none inside its window.
async fn replicas_decide_each_key_once(db: Db) {
    let Replicas {
        kafka,
        token,
        rule,
        rules,
        config,
        store_a,
        store_b,
        a,
        b,
    } = Replicas::start(&db, "replicated").await;
    let sent = [
        (&a, "payments", 1),
        (&b, "payments", 0),
        (&b, "checkout", 1),
        (&a, "checkout", 0),
        (&a, "orders", 1),
    ];
    for (offset, (replica, deployment, outcomes)) in (0..).zip(sent) {
        let record = Record::json(&kafka.source, offset, &for_deployment(deployment));
        assert_eq!(
            handle(replica, &record).await.expect("handled"),
            Handled::Outcomes(outcomes),
            "{deployment}: fires once, on whichever replica sees it first"
        );
    }
    let keys = store_a.load_rule_keys(&rule).await.expect("load keys");
    let names: Vec<&str> = keys.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(names, ["checkout", "orders", "payments"]);
    drop((a, b));

    let store_c = db.store().await;
    let restarted = pipeline(&rules, &store_c, &kafka, &config).await;
    for (offset, deployment) in (10..).zip(["payments", "checkout", "orders"]) {
        let record = Record::json(&kafka.source, offset, &for_deployment(deployment));
        assert_eq!(
            handle(&restarted, &record)
                .await
                .expect("inside the window"),
            Handled::Outcomes(0),
            "{deployment} is throttled after the restart, whichever replica fired it"
        );
        assert_eq!(executions(&format!("{token} {deployment}")), 1);
    }
    let done = rows(&store_c, &rule, Some(OutcomeStatus::Succeeded)).await;
    assert_eq!(done.len(), 3, "one succeeded action per key, none re-fired");
    close(db, [store_a, store_b, store_c]).await;
}

#[tokio::test]
async fn replicas_on_postgres_decide_each_key_once_across_replicas_and_restarts() {
    replicas_decide_each_key_once(Db::postgres().await).await;
}

#[tokio::test]
async fn replicas_on_sqlite_decide_each_key_once_across_pipelines_and_restarts() {
    replicas_decide_each_key_once(Db::sqlite().await).await;
}

/// A window that ended is swept by whichever replica ticks first; the key then holds no state.
/// A record redelivered to the other replica is not counted into the key again.
async fn ended_windows_and_redeliveries(db: Db) {
    let Replicas {
        kafka,
        rule,
        store_a,
        store_b,
        a,
        b,
        ..
    } = Replicas::start(&db, "expiring").await;
    let record = Record::json(&kafka.source, 0, &for_deployment("payments"));
    assert_eq!(
        handle(&a, &record).await.expect("fires"),
        Handled::Outcomes(1)
    );
    assert_eq!(
        handle(&b, &record).await.expect("redelivered to B"),
        Handled::Outcomes(0),
        "the redelivered record is recognised, not throttled a second time nor re-fired"
    );
    assert_eq!(store_a.load_rule_keys(&rule).await.expect("load").len(), 1);
    let later = Utc::now() + chrono::Duration::hours(2);
    assert_eq!(
        b.tick(later).await.expect("tick b"),
        0,
        "an ended suppression fires nothing"
    );
    assert!(
        store_a
            .load_rule_keys(&rule)
            .await
            .expect("load")
            .is_empty(),
        "the window ended: the key holds no state"
    );
    assert_eq!(
        a.tick(later).await.expect("tick a"),
        0,
        "nothing left to do"
    );
    close(db, [store_a, store_b]).await;
}

#[tokio::test]
async fn an_ended_window_on_postgres_is_swept_once_and_a_redelivery_is_not_counted() {
    ended_windows_and_redeliveries(Db::postgres().await).await;
}

#[tokio::test]
async fn an_ended_window_on_sqlite_is_swept_once_and_a_redelivery_is_not_counted() {
    ended_windows_and_redeliveries(Db::sqlite().await).await;
}

/// A threshold of three fed the same record three times (redeliveries) counts it once; two new
/// records then complete it.
#[tokio::test]
async fn a_redelivered_record_counts_once_in_a_threshold_window() {
    let kafka = Kafka::new().await;
    let db = Db::postgres().await;
    let store = db.store().await;
    let token = support::unique_name("threshold");
    let rule = format!("threshold-{token}");
    let rules = rules(&format!(
        "rules:\n  - name: {rule}\n    threshold:\n      key: \"{{{{ event.service.deployment }}}}\"\n      count: 3\n      within: 1h\n    actions:\n      - log:\n          message: \"{token} count={{{{ match.count }}}}\"\n"
    ));
    let config = counting();
    let replica = pipeline(&rules, &store, &kafka, &config).await;
    let payments = for_deployment("payments");
    for _ in 0..3 {
        let record = Record::json(&kafka.source, 5, &payments);
        assert_eq!(
            handle(&replica, &record).await.expect("counted"),
            Handled::Outcomes(0)
        );
    }
    for offset in [6, 7] {
        let record = Record::json(&kafka.source, offset, &payments);
        handle(&replica, &record).await.expect("counted");
    }
    assert_eq!(
        executions(&format!("{token} count=3")),
        1,
        "fired once, at the third record"
    );
    close(db, [store]).await;
}

#[tokio::test]
async fn a_rule_state_row_of_the_earlier_format_is_moved_to_key_rows_on_restore() {
    let kafka = Kafka::new().await;
    let db = Db::sqlite().await;
    let store = db.store().await;
    let token = support::unique_name("legacy");
    let (source_rule, legacy_rule) = (format!("source-{token}"), format!("legacy-{token}"));
    let config = counting();
    // A key document written by this version for one rule, wrapped the way the earlier version
    // saved a whole rule: `{"keys": [{key, deadline, value}], "evictions": n}`.
    let first = pipeline(
        &rules(&format!("rules:\n{}", keyed_throttle(&source_rule, &token))),
        &store,
        &kafka,
        &config,
    )
    .await;
    let record = Record::json(&kafka.source, 0, &for_deployment("payments"));
    assert_eq!(
        handle(&first, &record).await.expect("fires"),
        Handled::Outcomes(1)
    );
    drop(first);
    let keys = store.load_rule_keys(&source_rule).await.expect("load");
    let (key, doc) = &keys[0];
    let legacy = serde_json::json!({
        "keys": [{"key": key, "deadline": doc["deadline"], "value": doc["value"]}],
        "evictions": 7,
    });
    store
        .save_rule_state(&legacy_rule, &legacy, Utc::now())
        .await
        .expect("write an earlier-format row");

    let both = rules(&format!(
        "rules:\n{}{}",
        keyed_throttle(&source_rule, &token),
        keyed_throttle(&legacy_rule, &format!("{token}-legacy"))
    ));
    let restarted = pipeline(&both, &store, &kafka, &config).await;
    let migrated = store.load_rule_keys(&legacy_rule).await.expect("load");
    assert_eq!(migrated, keys, "the key moved to its own row unchanged");
    assert_eq!(
        store.load_rule_state(&legacy_rule).await.expect("load"),
        Some(serde_json::json!({"evictions": 7})),
        "the rule row keeps only the rule-wide counters"
    );
    let again = Record::json(&kafka.source, 1, &for_deployment("payments"));
    assert_eq!(
        handle(&restarted, &again).await.expect("throttled"),
        Handled::Outcomes(0),
        "the migrated window still throttles"
    );
    assert_eq!(executions(&format!("{token}-legacy payments")), 0);
    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn unreadable_saved_state_costs_only_that_key_or_rule_and_never_the_start() {
    let kafka = Kafka::new().await;
    let db = Db::sqlite().await;
    let store = db.store().await;
    let token = support::unique_name("unreadable");
    let (keyed, whole) = (format!("keyed-{token}"), format!("whole-{token}"));
    let config = counting();
    let rules = rules(&format!(
        "rules:\n{}{}",
        keyed_throttle(&keyed, &format!("{token}-keyed")),
        keyed_throttle(&whole, &format!("{token}-whole"))
    ));
    let only_keyed = self::rules(&format!(
        "rules:\n{}",
        keyed_throttle(&keyed, &format!("{token}-keyed"))
    ));
    let first = pipeline(&only_keyed, &store, &kafka, &config).await;
    let record = Record::json(&kafka.source, 0, &for_deployment("payments"));
    assert_eq!(
        handle(&first, &record).await.expect("fires"),
        Handled::Outcomes(1)
    );
    drop(first);
    // A key row another version wrote, next to the readable `payments` row; and an
    // earlier-format rule row that is not a rule state at all.
    let bad = [(
        "checkout".to_owned(),
        serde_json::json!({"value": {"kind": "from_the_future"}}),
    )];
    let reflex::store::Store::Sqlite { pool, .. } = &store else {
        panic!("a SQLite store")
    };
    sqlx::query(
        "INSERT INTO rule_state_keys (rule, key, state, updated_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&keyed)
    .bind(&bad[0].0)
    .bind(sqlx::types::Json(&bad[0].1))
    .bind(Utc::now())
    .execute(pool)
    .await
    .expect("write an unreadable key row");
    let garbage = serde_json::json!({"keys": "not a list", "evictions": 2});
    store
        .save_rule_state(&whole, &garbage, Utc::now())
        .await
        .expect("write");

    let restarted = pipeline(&rules, &store, &kafka, &config).await;
    let again = Record::json(&kafka.source, 1, &for_deployment("payments"));
    assert_eq!(
        handle(&restarted, &again).await.expect("handled"),
        Handled::Outcomes(1),
        "the readable key still throttles; the rule whose row was unreadable starts empty"
    );
    assert_eq!(executions(&format!("{token}-keyed payments")), 1);
    assert_eq!(executions(&format!("{token}-whole payments")), 1);
    let keyed_after = store.load_rule_keys(&keyed).await.expect("load");
    assert!(
        keyed_after.iter().any(|row| row == &bad[0]),
        "the unreadable key row is left for the operator (or the version that wrote it): \
         {keyed_after:?}"
    );
    let rewritten = store
        .load_rule_state(&whole)
        .await
        .expect("load")
        .expect("row");
    assert!(
        rewritten.get("keys").is_none(),
        "the next save replaced the unreadable row: {rewritten}"
    );
    assert_eq!(store.load_rule_keys(&whole).await.expect("load").len(), 1);
    close(db, [store]).await;
}

/// A rule over its `max_keys` is brought back to it by the timer's bound check: the keys due
/// first go, and the rule's summary counts them.
async fn a_rule_over_max_keys_loses_the_keys_due_first(db: Db) {
    let kafka = Kafka::new().await;
    let store = db.store().await;
    let token = support::unique_name("bounded");
    let rule = format!("bounded-{token}");
    let rules = rules(&format!(
        "rules:\n  - name: {rule}\n    max_keys: 2\n    threshold:\n      key: \"{{{{ event.service.deployment }}}}\"\n      count: 100\n      within: 1h\n    actions:\n      - log:\n          message: \"{token}\"\n"
    ));
    let replica = pipeline(&rules, &store, &kafka, &counting()).await;
    for (offset, deployment) in (0..).zip(["a", "b", "c", "d"]) {
        let record = Record::json(&kafka.source, offset, &for_deployment(deployment));
        handle(&replica, &record).await.expect("counted");
    }
    assert_eq!(store.load_rule_keys(&rule).await.expect("load").len(), 4);
    assert_eq!(replica.bound_keys().await.expect("bound"), 2);
    let left: Vec<String> = store
        .load_rule_keys(&rule)
        .await
        .expect("load")
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(left, ["c", "d"], "the windows that end first were evicted");
    let summary = replica.state_summary().await.expect("summary");
    assert_eq!(summary[&rule].keys, 2);
    assert_eq!(summary[&rule].evictions, 2);
    let metrics = reflex::metrics::global().encode();
    assert!(
        metrics.contains(&format!(
            "reflex_state_keys_evicted_total{{rule=\"{rule}\"}} 2"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("reflex_state_lock_wait_seconds_count"),
        "{metrics}"
    );
    assert_eq!(
        replica.bound_keys().await.expect("bound"),
        0,
        "within bounds now"
    );
    close(db, [store]).await;
}

#[tokio::test]
async fn a_rule_over_max_keys_on_postgres_loses_the_keys_due_first() {
    a_rule_over_max_keys_loses_the_keys_due_first(Db::postgres().await).await;
}

#[tokio::test]
async fn a_rule_over_max_keys_on_sqlite_loses_the_keys_due_first() {
    a_rule_over_max_keys_loses_the_keys_due_first(Db::sqlite().await).await;
}
