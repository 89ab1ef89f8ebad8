//! A webhook URL that is itself a credential (Slack-style `/services/T000/B000/XXXX`), read
//! from `{env: NAME}`: the real receiver gets the call, and the secret appears in no outcome on
//! Kafka, no dead letter, no store row (outcomes and circuits), no error and no log line.

use rdkafka::consumer::StreamConsumer;
use rdkafka::message::Message;
use reflex::actions::Executors;
use reflex::actions::webhook::{WebhookConfig, WebhookExecutor};
use reflex::config::{Config, PipelineConfig};
use reflex::store::OutcomeStatus;

use super::harness::*;
use super::receiver::Receiver;
use crate::support;

/// Every payload (with its key and headers) on `topic` until it stays quiet.
async fn drain(kafka: &Kafka, topic: &str) -> Vec<String> {
    let consumer: StreamConsumer = support::topic_reader(&kafka.bootstrap, topic);
    let mut texts = Vec::new();
    // The first record may take a group join; later ones arrive at once.
    let mut wait = OP_TIMEOUT;
    while let Ok(Ok(message)) = tokio::time::timeout(wait, consumer.recv()).await {
        let payload = message.payload().map(String::from_utf8_lossy);
        let key = message.key().map(String::from_utf8_lossy);
        let headers = support::header_map(&message.detach());
        texts.push(format!("{key:?} {headers:?} {payload:?}"));
        wait = QUIET_PERIOD;
    }
    texts
}

#[tokio::test]
async fn a_webhook_url_read_from_a_secret_is_called_and_never_recorded_or_logged() {
    let kafka = Kafka::new().await;
    let db = Db::sqlite().await;
    let store = db.store().await;
    let receiver = Receiver::start().await;
    let token = support::unique_name("slack");
    // The credential part of the URL, unique so that any copy of it is found.
    let secret = format!("XXXX{}", token.replace('-', ""));
    let variable = support::unique_name("REFLEX_TEST_HOOK").replace('-', "_");
    let working = format!("{variable}_OK");
    let dead = format!("{variable}_DEAD");
    let elsewhere = format!("{variable}_ELSEWHERE");
    // SAFETY: the variable names are unique to this test and nothing else reads or writes
    // them; no other test of this binary touches the environment.
    unsafe {
        std::env::set_var(
            &working,
            format!("http://{}/services/T000/B000/{secret}", receiver.addr),
        );
        // Nothing listens on port 1: this call fails, so its error is recorded too.
        std::env::set_var(
            &dead,
            format!("http://127.0.0.1:1/services/T000/B000/{secret}"),
        );
        // The same receiver under a name the allow-list does not have: refused unsent.
        let port = receiver.addr.port();
        std::env::set_var(
            &elsewhere,
            format!("http://localhost:{port}/services/T000/B000/{secret}"),
        );
    }
    let rules = rules(&format!(
        "rules:\n  - name: hook-{token}\n    guard: {{max_per_target: 1}}\n    actions:\n      \
         - webhook:\n          url: {{env: {working}}}\n          body: {{event: \"{{{{ meta.id }}}}\"}}\n  \
         - name: dead-{token}\n    actions:\n      - webhook:\n          url: {{env: {dead}}}\n          \
         retries: 0\n          timeout: 2s\n  - name: elsewhere-{token}\n    actions:\n      \
         - webhook:\n          url: {{env: {elsewhere}}}\n"
    ));
    support::install_crypto_provider();
    let pipeline = pipeline(&rules, &store, &kafka, &PipelineConfig::default())
        .await
        .with_executors(Executors {
            webhook: Some(
                WebhookExecutor::new(WebhookConfig {
                    allowed_hosts: vec!["127.0.0.1".to_owned()],
                    ..WebhookConfig::default()
                })
                .expect("executor"),
            ),
            ..Executors::default()
        })
        .with_guard(&Config::default());

    // Two events: the first calls the receiver, the second finds the circuit of that target
    // open (one execution per window), which writes a circuit row and an announcement.
    for offset in [1, 2] {
        let record = Record::json(
            &kafka.source,
            offset,
            include_str!("../../data/events/plain.json"),
        );
        handle(&pipeline, &record).await.expect("handled");
    }

    let calls = receiver.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].path, format!("/services/T000/B000/{secret}"));
    assert!(calls[0].idempotency_key.is_some());

    let mut hook = rows(&store, &format!("hook-{token}"), None).await;
    hook.sort_by_key(|r| r.id);
    let statuses: Vec<_> = hook.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [OutcomeStatus::Succeeded, OutcomeStatus::SuppressedByGuard],
        "{hook:#?}"
    );
    let target = format!("webhook/env:{working}");
    assert!(
        hook.iter()
            .all(|r| r.target.as_deref() == Some(target.as_str())),
        "{hook:#?}"
    );
    let failed = rows(&store, &format!("dead-{token}"), None).await;
    assert!(
        failed.iter().all(|r| r.status == OutcomeStatus::Failed),
        "{failed:#?}"
    );
    let error = failed[0].error.as_deref().unwrap_or_default();
    assert!(
        error.contains(&format!("/*** (url from env `{dead}`)")),
        "{error}"
    );

    let refused = rows(&store, &format!("elsewhere-{token}"), None).await;
    let error = refused[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("`localhost` is not allowed"), "{error}");

    let published = drain(&kafka, &kafka.topics.outcomes).await;
    assert!(
        published.len() >= 7,
        "six outcomes and an announcement: {published:#?}"
    );
    assert!(
        published.iter().any(|p| p.contains("circuit")),
        "{published:#?}"
    );
    let dead_letters = drain(&kafka, &kafka.topics.dead_letters).await;
    assert_eq!(dead_letters.len(), 4, "{dead_letters:#?}");
    store.close().await;

    // The store as bytes: every table, the write-ahead log included.
    let path = db.url().trim_start_matches("sqlite://").to_owned();
    let mut stored = Vec::new();
    for file in [path.clone(), format!("{path}-wal")] {
        stored.extend(std::fs::read(&file).unwrap_or_default());
    }
    assert!(!stored.is_empty());
    let stored = String::from_utf8_lossy(&stored);
    assert!(
        stored.contains(&target),
        "the store holds the circuit and outcomes"
    );
    let logs = all_log_lines();
    assert!(
        logs.iter().any(|l| l.contains("127.0.0.1:1/***")),
        "the failing call was logged (without its path)"
    );
    for (place, text) in [
        ("the store", stored.into_owned()),
        ("the outcomes topic", published.join("\n")),
        ("the dead-letter topic", dead_letters.join("\n")),
        ("the logs", logs.join("\n")),
    ] {
        assert!(
            !text.contains(&secret),
            "the secret URL leaked into {place}: {text}"
        );
    }
    db.cleanup().await;
}
