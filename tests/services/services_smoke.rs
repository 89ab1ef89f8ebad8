//! Smoke tests against the real services (`scripts/services up`): Apache Kafka through
//! rdkafka, kube-apiserver (+ controller-manager) through kube, PostgreSQL and SQLite through
//! the audit store. Nothing is mocked. Each test works in its own topic / namespace / database.
//!
//! Run: `scripts/services up && eval "$(scripts/services env)" && cargo test --features services --test services services_smoke::`

use crate::support;

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use reflex::store::{Backend, NewOutcome, OutcomeStatus, Store};
use serde_json::json;
use sqlx::Connection;

/// Bound on any single Kafka operation in these tests (topic creation, a delivery, a group
/// join). Group joins against a fresh broker take a few seconds; 30 s leaves room on CI.
const KAFKA_OP_TIMEOUT: Duration = Duration::from_secs(30);

fn kafka_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

fn consumer(bootstrap: &str, group: &str) -> StreamConsumer {
    kafka_config(bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // Short session so a dropped consumer's partitions move on quickly.
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .create()
        .expect("consumer configuration is valid")
}

async fn receive(consumer: &StreamConsumer, count: usize) -> Vec<rdkafka::message::OwnedMessage> {
    let mut received = Vec::with_capacity(count);
    let deadline = Instant::now() + KAFKA_OP_TIMEOUT;
    while received.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, consumer.recv()).await {
            Ok(Ok(message)) => received.push(message.detach()),
            Ok(Err(err)) => panic!("consuming failed: {err}"),
            Err(_) => panic!(
                "received {} of {count} messages within {KAFKA_OP_TIMEOUT:?}",
                received.len()
            ),
        }
    }
    received
}

#[tokio::test]
async fn kafka_round_trip_keeps_headers_and_resumes_from_the_committed_offset() {
    let bootstrap = support::require_kafka().await;
    let topic = support::unique_name("smoke");
    let group = support::unique_name("smoke-group");

    let admin: AdminClient<DefaultClientContext> =
        kafka_config(&bootstrap).create().expect("admin client");
    let options = AdminOptions::new().operation_timeout(Some(KAFKA_OP_TIMEOUT));
    let created = admin
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &options,
        )
        .await
        .expect("create_topics request");
    assert_eq!(created.len(), 1);
    assert!(
        created[0].is_ok(),
        "topic creation failed: {:?}",
        created[0]
    );

    let producer: FutureProducer = kafka_config(&bootstrap)
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    let send = |i: usize| {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "ce_type",
                value: Some("com.example.smoke"),
            })
            .insert(Header {
                key: "seq",
                value: Some(&i.to_string()),
            });
        let payload = json!({ "n": i }).to_string();
        let key = format!("key-{i}");
        let producer = producer.clone();
        let topic = topic.clone();
        async move {
            producer
                .send(
                    FutureRecord::to(&topic)
                        .payload(&payload)
                        .key(&key)
                        .headers(headers),
                    KAFKA_OP_TIMEOUT,
                )
                .await
                .map_err(|(err, _)| err)
                .expect("delivery")
        }
    };
    for i in 0..3 {
        let delivery = send(i).await;
        assert_eq!(
            delivery.offset,
            i64::try_from(i).expect("small"),
            "offsets are sequential"
        );
    }

    // First consumer: read everything, check the headers, commit.
    {
        let first = consumer(&bootstrap, &group);
        first.subscribe(&[&topic]).expect("subscribe");
        let messages = receive(&first, 3).await;
        for (i, message) in messages.iter().enumerate() {
            let payload: serde_json::Value =
                serde_json::from_slice(message.payload().expect("payload")).expect("JSON payload");
            assert_eq!(payload, json!({ "n": i }));
            assert_eq!(message.key(), Some(format!("key-{i}").as_bytes()));
            let headers = support::header_map(message);
            assert_eq!(
                headers.get("ce_type").map(String::as_str),
                Some("com.example.smoke")
            );
            assert_eq!(headers.get("seq"), Some(&i.to_string()));
        }
        first
            .commit_consumer_state(CommitMode::Sync)
            .expect("commit offsets");
        first.unsubscribe();
    }

    // A fresh consumer in the same group sees the committed offset and only newer records.
    let second = consumer(&bootstrap, &group);
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition(&topic, 0);
    let committed = second
        .committed_offsets(partitions, KAFKA_OP_TIMEOUT)
        .expect("committed offsets");
    let offset = committed
        .find_partition(&topic, 0)
        .expect("partition 0 listed")
        .offset();
    assert_eq!(
        offset,
        Offset::Offset(3),
        "the group committed after the third record"
    );

    send(3).await;
    second.subscribe(&[&topic]).expect("subscribe");
    let resumed = receive(&second, 1).await;
    assert_eq!(
        resumed[0].offset(),
        3,
        "the group resumed after its committed offset"
    );
    assert_eq!(
        support::header_map(&resumed[0])
            .get("seq")
            .map(String::as_str),
        Some("3")
    );
    drop(second);

    let deleted = admin
        .delete_topics(&[&topic], &options)
        .await
        .expect("delete_topics request");
    assert!(
        deleted[0].is_ok(),
        "topic deletion failed: {:?}",
        deleted[0]
    );
}

#[tokio::test]
async fn an_unreachable_broker_fails_the_precheck_quickly_naming_its_address() {
    // Port 1 on loopback: nothing listens there, exactly like a stopped broker.
    let address = "127.0.0.1:1";
    let start = Instant::now();
    let err = support::kafka_precheck(address, Duration::from_secs(5))
        .await
        .expect_err("nothing listens on port 1");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "took {:?}",
        start.elapsed()
    );
    assert!(err.contains(address), "{err}");
    assert!(err.contains("scripts/services up"), "{err}");
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "app", "image": "registry.invalid/app:1" }] }
            }
        }
    }))
    .expect("valid Deployment")
}

fn status_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

#[tokio::test]
async fn kube_deployments_can_be_created_patched_and_scaled_and_rbac_is_enforced() {
    let admin = support::kube_client(&support::kubeconfig()).await;
    let limited = support::kube_client(&support::kubeconfig_limited()).await;
    let namespace = support::unique_name("smoke");
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": namespace } }))
                .expect("valid Namespace"),
        )
        .await
        .expect("create namespace");

    let outcome = tokio::spawn(exercise_deployments(admin, limited, namespace.clone())).await;

    // Clean up whatever happened; the namespace controller removes what is inside.
    let cleanup = namespaces
        .delete(&namespace, &DeleteParams::default())
        .await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
    cleanup.expect("delete namespace");
}

async fn exercise_deployments(admin: kube::Client, limited: kube::Client, namespace: String) {
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &namespace);
    let name = "web";
    deployments
        .create(&PostParams::default(), &deployment(name, 1))
        .await
        .expect("create Deployment");
    let replica_sets: Api<ReplicaSet> = Api::namespaced(admin.clone(), &namespace);
    // The controller-manager gives the Deployment its first ReplicaSet (revision 1).
    let first = replica_set_of_revision(&replica_sets, name, "1").await;
    assert_eq!(restarted_at(&first), None, "revision 1 predates the patch");

    // Merge patch: an annotation, the way a restart action sets its timestamp.
    let patched = deployments
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({
                "spec": { "template": { "metadata": { "annotations": {
                    "reflex.dev/restartedAt": "2026-01-01T00:00:00Z"
                } } } }
            })),
        )
        .await
        .expect("merge patch");
    let annotations = patched
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .expect("template annotations");
    assert_eq!(
        annotations
            .get("reflex.dev/restartedAt")
            .map(String::as_str),
        Some("2026-01-01T00:00:00Z")
    );
    // A changed pod template is a new revision: what a rollout restart relies on.
    let second = replica_set_of_revision(&replica_sets, name, "2").await;
    assert_eq!(restarted_at(&second), Some("2026-01-01T00:00:00Z"));

    // Scale through the scale subresource, then read the replicas back both ways.
    let scale = deployments
        .patch_scale(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 3 } })),
        )
        .await
        .expect("patch scale");
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(3));
    let scale = deployments.get_scale(name).await.expect("get scale");
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(3));
    let fetched = deployments.get(name).await.expect("get Deployment");
    assert_eq!(fetched.spec.replicas, Some(3));

    // The limited user may read Deployments in its own namespace only: anything here is 403.
    let as_limited: Api<Deployment> = Api::namespaced(limited.clone(), &namespace);
    let refused = as_limited
        .create(&PostParams::default(), &deployment("intruder", 1))
        .await
        .expect_err("the limited user may not create Deployments");
    assert_eq!(status_code(&refused), Some(403), "{refused}");
    let refused = as_limited
        .patch_scale(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 0 } })),
        )
        .await
        .expect_err("the limited user may not scale");
    assert_eq!(status_code(&refused), Some(403), "{refused}");
    // ...while its token is valid: reading where its Role allows succeeds (not a 401).
    let own: Api<Deployment> = Api::namespaced(limited, "reflex-limited");
    own.list(&ListParams::default())
        .await
        .expect("the limited user may list Deployments in reflex-limited");
}

/// The `reflex.dev/restartedAt` annotation of a ReplicaSet's pod template.
fn restarted_at(rs: &ReplicaSet) -> Option<&str> {
    rs.spec
        .template
        .as_ref()?
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get("reflex.dev/restartedAt")
        .map(String::as_str)
}

/// Waits (bounded) for the ReplicaSet the controller-manager made for a Deployment revision.
async fn replica_set_of_revision(
    api: &Api<ReplicaSet>,
    deployment: &str,
    revision: &str,
) -> ReplicaSet {
    let list = ListParams::default().labels(&format!("app={deployment}"));
    support::eventually(
        &format!(
            "ReplicaSet for revision {revision} of Deployment {deployment} \
             (is kube-controller-manager running? scripts/services status)"
        ),
        Duration::from_secs(60),
        || {
            let api = api.clone();
            let list = list.clone();
            async move {
                let found = api.list(&list).await.ok()?;
                found.items.into_iter().find(|rs| {
                    let owned = rs
                        .metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|o| o.kind == "Deployment" && o.name == deployment);
                    let this_revision = rs
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get("deployment.kubernetes.io/revision"))
                        .is_some_and(|r| r == revision);
                    owned && this_revision
                })
            }
        },
    )
    .await
}

/// Exercises a store the way the pipeline will: idempotent insert, read back, rule state.
async fn exercise_store(store: &Store) {
    store.ping().await.expect("ping");
    let key = support::unique_name("key");
    let details = json!({ "namespace": "shop", "replicas": 3 });
    let started = Utc
        .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
        .single()
        .expect("valid time");
    let outcome = NewOutcome {
        event_id: "evt-1",
        rule: "restart-on-oom",
        action_kind: "restart",
        idempotency_key: &key,
        status: OutcomeStatus::Succeeded,
        attempts: 1,
        started_at: started,
        finished_at: Some(started + chrono::Duration::milliseconds(250)),
        target: Some("deployment/shop/checkout"),
        error: None,
        details: &details,
    };
    assert!(
        store.insert_outcome(&outcome).await.expect("insert"),
        "first insert records"
    );
    let again = NewOutcome {
        status: OutcomeStatus::Failed,
        ..outcome.clone()
    };
    assert!(
        !store.insert_outcome(&again).await.expect("insert again"),
        "a second insert with the same idempotency key is ignored"
    );
    let record = store
        .outcome_by_key(&key)
        .await
        .expect("read")
        .expect("the outcome exists");
    assert_eq!(
        record.status,
        OutcomeStatus::Succeeded,
        "the first write wins"
    );
    assert_eq!(record.rule, "restart-on-oom");
    assert_eq!(record.started_at, started);
    assert_eq!(record.finished_at, outcome.finished_at);
    assert_eq!(record.target.as_deref(), Some("deployment/shop/checkout"));
    assert_eq!(record.error, None);
    assert_eq!(record.details, details);
    assert!(
        store
            .outcome_by_key("missing")
            .await
            .expect("read")
            .is_none()
    );

    assert_eq!(store.load_rule_state("r").await.expect("load"), None);
    store
        .save_rule_state("r", &json!({ "count": 1 }), started)
        .await
        .expect("save");
    store
        .save_rule_state("r", &json!({ "count": 2 }), started)
        .await
        .expect("save over");
    assert_eq!(
        store.load_rule_state("r").await.expect("load"),
        Some(json!({ "count": 2 }))
    );
}

/// Replaces the database name at the end of a PostgreSQL URL.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    format!("{base}/{database}{query}")
}

#[tokio::test]
async fn the_store_migrates_and_records_outcomes_on_postgres() {
    let url = support::database_url();
    let shown = reflex::store::redact_url(&url);
    let mut admin =
        tokio::time::timeout(support::PRECHECK_TIMEOUT, sqlx::PgConnection::connect(&url))
            .await
            .unwrap_or_else(|_| panic!("PostgreSQL at {shown} did not answer; {}", support::HINT))
            .unwrap_or_else(|err| {
                panic!(
                    "cannot connect to PostgreSQL at {shown}: {err}; {}",
                    support::HINT
                )
            });
    let database = support::unique_name("smoke").replace('-', "_");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .execute(&mut admin)
        .await
        .expect("create test database");

    let test_url = with_database(&url, &database);
    let result = tokio::spawn(async move {
        let store = Store::connect(&test_url).await.expect("connect + migrate");
        assert_eq!(store.backend(), Backend::Postgres);
        exercise_store(&store).await;
        store.close().await;
        // Connecting again finds the migrations applied and changes nothing.
        let again = Store::connect(&test_url).await.expect("reconnect");
        again.ping().await.expect("ping");
        again.close().await;
    })
    .await;

    let dropped = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic.into_panic());
    }
    dropped.expect("drop test database");
}

#[tokio::test]
async fn the_store_migrates_and_records_outcomes_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("reflex.db").display());
    let store = Store::connect(&url).await.expect("connect + migrate");
    assert_eq!(store.backend(), Backend::Sqlite);
    exercise_store(&store).await;
    store.close().await;
    // The file keeps the data; migrations are not re-applied.
    let again = Store::connect(&url).await.expect("reconnect");
    assert_eq!(
        again.load_rule_state("r").await.expect("load"),
        Some(json!({ "count": 2 }))
    );
    again.close().await;
}

#[test]
fn with_database_replaces_only_the_database_name() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5/reflex", "t1"),
        "postgres://postgres@127.0.0.1:5/t1"
    );
    assert_eq!(
        with_database("postgres://u:p@h:5/reflex?sslmode=disable", "t1"),
        "postgres://u:p@h:5/t1?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h:5", "t1"), "postgres://h:5/t1");
}
