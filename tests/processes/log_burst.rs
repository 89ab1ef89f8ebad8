//! Issue #16's proof for log lines: the shipped rules/logs/pod-error-lines.yaml in a real
//! `reflex run`, Fluent Bit records (its `kubernetes` filter's metadata, `out_kafka` JSON)
//! produced to a topic whose `pipeline.decoding` is `log_json`, a real Deployment on the real
//! API server. Four error lines of one pod, four of its sibling pod and info lines restart
//! nothing; the fifth error line of the first pod within the minute restarts its Deployment
//! (named by the pod's `app` label) once: the restart annotation changes, the outcome is on the
//! outcomes topic and in the store.
//!
//! Records the topic's decoding cannot read are dead-lettered with the reason. "Restart
//! nothing" is asserted once the group has committed every record produced (each
//! record's outcomes are durable before its offset is), not after a sleep.
//!
//! Run: `eval "$(scripts/services env)"; cargo test --features services --test processes
//! log_burst:: -- --include-ignored`

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};

use crate::support;
use crate::support::reflex_process::committed_offsets;
use crate::support::running::{self, Reflex, Setup};

/// The rule file a user deploys, as shipped.
const RULES: &str = include_str!("../../rules/logs/pod-error-lines.yaml");
/// A real Fluent Bit record: the shape every produced line takes.
const FLUENT_BIT: &str = include_str!("../data/events/fluent-bit-record.json");
/// The shipped rule that restarts.
const RULE: &str = "restart-deployment-on-error-burst";
/// The restart stamp `kubectl rollout restart` (and Reflex) set on the pod template.
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// The stamp the Deployment starts with (an earlier restart).
const OLD_STAMP: &str = "2026-01-01T00:00:00Z";
/// Two pods of the `checkout` Deployment, as the ReplicaSet names them.
const POD: &str = "checkout-7d9f8c6b5-x2x9q";
const SIBLING: &str = "checkout-7d9f8c6b5-k4m7z";
/// Bound on every wait: a group join, the pipeline's work, the API server.
const LIMIT: Duration = Duration::from_secs(60);

const ERROR_LINE: &str =
    "2026-12-04 23:10:01.123 ERROR [main] c.e.Checkout - payment gateway timeout after 30s\n";
const INFO_LINE: &str = "2026-12-04 23:10:01.456 INFO [main] c.e.Checkout - order placed\n";

/// The Fluent Bit record of `log` from `pod` of the `checkout` Deployment in `namespace`,
/// stamped now.
fn fluent_bit_record(namespace: &str, pod: &str, log: &str) -> String {
    let mut record: Value = serde_json::from_str(FLUENT_BIT).expect("the sample is JSON");
    let now = chrono::Utc::now();
    record["@timestamp"] = json!(now.timestamp_micros() as f64 / 1e6);
    record["time"] = json!(now.to_rfc3339());
    record["log"] = json!(log);
    record["kubernetes"]["namespace_name"] = json!(namespace);
    record["kubernetes"]["pod_name"] = json!(pod);
    record.to_string()
}

async fn produce(producer: &FutureProducer, topic: &str, namespace: &str, lines: &[(&str, &str)]) {
    for (pod, log) in lines {
        let payload = fluent_bit_record(namespace, pod, log);
        producer
            .send(
                FutureRecord::to(topic).key(*pod).payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(err, _)| panic!("produce to {topic}: {err}"));
    }
}

async fn stamp(deployments: &Api<Deployment>) -> Option<String> {
    deployments
        .get("checkout")
        .await
        .expect("get the Deployment")
        .spec
        .template
        .metadata?
        .annotations?
        .get(RESTARTED_AT)
        .cloned()
}

/// Waits until the group committed every record of the (one-partition) events topic.
async fn wait_handled(setup: &Setup, reflex: &Reflex) {
    let group = setup.events.trim_end_matches(".events").to_owned();
    let (bootstrap, topic) = (setup.bootstrap.clone(), setup.events.clone());
    let handled = tokio::time::timeout(LIMIT, async {
        loop {
            let (bootstrap, group, topic) = (bootstrap.clone(), group.clone(), topic.clone());
            let offsets = tokio::task::spawn_blocking(move || {
                committed_offsets(&bootstrap, &group, &topic, 1)
            })
            .await
            .expect("offset reader");
            if offsets.iter().all(|(c, end)| c.unwrap_or(0) >= *end) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(
        handled.is_ok(),
        "records not all handled within {LIMIT:?}; log:\n{}",
        reflex.log()
    );
}

/// The rule's outcome rows in the store: (action kind, status, target).
async fn store_outcomes(setup: &Setup) -> Vec<(String, String, Option<String>)> {
    let url = format!("sqlite://{}", setup.dir.path().join("audit.db").display());
    let pool = sqlx::SqlitePool::connect(&url)
        .await
        .expect("open the audit store");
    let rows = sqlx::query_as("SELECT action_kind, status, target FROM outcomes WHERE rule = ?")
        .bind(RULE)
        .fetch_all(&pool)
        .await
        .expect("read outcomes");
    pool.close().await;
    rows
}

#[tokio::test]
async fn five_error_lines_of_one_pod_within_a_minute_restart_its_deployment_and_fewer_do_not() {
    support::install_crypto_provider();
    let setup = Setup::new("log-burst").await;
    let client = support::kube_client(&support::kubeconfig()).await;
    let namespace = support::unique_name("log-burst");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": namespace}})).expect("namespace"),
        )
        .await
        .expect("create the namespace");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let manifest = json!({
        "metadata": {"name": "checkout"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "checkout"}},
            "template": {
                "metadata": {"labels": {"app": "checkout"}, "annotations": {RESTARTED_AT: OLD_STAMP}},
                "spec": {"containers": [{"name": "checkout", "image": "registry.example.org/shop/checkout:1.42.0"}]}
            }
        }
    });
    deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(manifest).expect("deployment"),
        )
        .await
        .expect("create the Deployment");

    // The shipped rules, reading this test's topic instead of `logs`.
    assert!(
        RULES.contains("topics: [logs]"),
        "the shipped rule reads `logs`"
    );
    std::fs::write(
        setup.rules.join("pod-error-lines.yaml"),
        RULES.replace("topics: [logs]", &format!("topics: [{}]", setup.events)),
    )
    .expect("write the rules");
    let config = setup.write_config(
        &setup.rules,
        // The only consumed topic holds logs: HTTP ingest (which writes alerts and
        // CloudEvents to the first topic by default) is off, as a log-only deployment has it.
        &format!(
            "pipeline:\n  decoding:\n    {}: log_json\nserver:\n  ingest:\n    enabled: false\n",
            setup.events
        ),
    );
    let reflex = Reflex::start(&setup, &config, &[]);
    reflex.wait_ready().await;
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &setup.bootstrap)
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer");

    // Four error lines of the pod, four of its sibling (eight for the Deployment, but the
    // threshold counts per pod), and info lines of the pod: nothing restarts.
    let mut quiet = Vec::new();
    for _ in 0..4 {
        quiet.extend([(POD, ERROR_LINE), (SIBLING, ERROR_LINE), (POD, INFO_LINE)]);
    }
    produce(&producer, &setup.events, &namespace, &quiet).await;
    // Records a log_json topic cannot read: dead-lettered with the reason, nothing else.
    for bad in [
        "GET /healthz 200 0.3ms",
        r#"{"stream": "stderr", "kubernetes": {}}"#,
    ] {
        producer
            .send(
                FutureRecord::to(&setup.events).key("bad").payload(bad),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(err, _)| panic!("produce to {}: {err}", setup.events));
    }
    wait_handled(&setup, &reflex).await;
    let dead_letters = running::reader(
        &setup.bootstrap,
        &format!("{}.dead-letters", setup.events.trim_end_matches(".events")),
    );
    let mut letters = Vec::new();
    running::read_until(
        &dead_letters,
        "two dead letters",
        || reflex.log(),
        |m| {
            letters.push(support::header_map(&m.detach()));
            letters.len() == 2
        },
    )
    .await;
    assert_eq!(letters[0]["reflex-dlq-reason"], "not_json", "{letters:?}");
    assert_eq!(
        letters[1]["reflex-dlq-reason"], "wrong_format",
        "{letters:?}"
    );
    assert!(
        letters[1]["reflex-dlq-error"].contains("no `message`, `log` or `msg` string"),
        "{letters:?}"
    );
    assert_eq!(
        stamp(&deployments).await.as_deref(),
        Some(OLD_STAMP),
        "restarted by fewer than five error lines of one pod; log:\n{}",
        reflex.log()
    );
    assert_eq!(store_outcomes(&setup).await, [], "log:\n{}", reflex.log());

    // The pod's fifth error line within the minute.
    produce(&producer, &setup.events, &namespace, &[(POD, ERROR_LINE)]).await;
    let outcomes = running::reader(&setup.bootstrap, &setup.outcomes);
    let mut outcome = Value::Null;
    running::read_until(
        &outcomes,
        "the restart's outcome",
        || reflex.log(),
        |message| {
            outcome = running::json_of(message);
            outcome["data"]["rule"] == RULE
        },
    )
    .await;
    assert_eq!(outcome["data"]["status"], "succeeded", "{outcome:#}");
    assert_eq!(outcome["data"]["action_kind"], "restart", "{outcome:#}");
    let target = &outcome["data"]["details"]["params"]["target"];
    assert_eq!(
        (&target["namespace"], &target["name"]),
        (&json!(namespace), &json!("checkout")),
        "{outcome:#}"
    );
    let restarted = stamp(&deployments).await;
    assert!(
        restarted.as_deref().is_some_and(|s| s != OLD_STAMP),
        "the restart stamp did not change: {restarted:?}"
    );

    wait_handled(&setup, &reflex).await;
    let rows = store_outcomes(&setup).await;
    assert_eq!(rows.len(), 1, "one restart: {rows:?}");
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str()),
        ("restart", "succeeded")
    );
    assert!(
        rows[0]
            .2
            .as_deref()
            .is_some_and(|t| t.contains(&namespace) && t.contains("checkout")),
        "{rows:?}"
    );

    drop(reflex);
    namespaces
        .delete(&namespace, &DeleteParams::default())
        .await
        .expect("delete the namespace");
}
