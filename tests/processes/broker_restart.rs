//! `reflex run` (the real binary) across a Kafka outage: a PRIVATE broker (never the shared one,
//! which other tests use) is killed with SIGKILL mid-run and restarted on the same port and log
//! directory. Readiness reports the outage naming Kafka and recovers; every event produced
//! before, during and after the outage ends with exactly one succeeded outcome, published to
//! the outcomes topic, and the group's offsets reach the end.
//!
//! Run: `scripts/services up && eval "$(scripts/services env)" && cargo test --features services --test processes broker_restart::`
//! (the shared services provide Kubernetes; the broker is started from the cached Kafka jars).

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use support::kafka_broker::Broker;
use support::reflex_process::Reflex;

/// Partitions of the events topic.
const PARTITIONS: i32 = 3;

/// Events per phase: before the outage, during it (queued in the test's producer while the
/// broker is down), after it.
const BATCH: usize = 30;

/// Generous bounds on what the test waits for; none is a timing assertion.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const OUTCOME_TIMEOUT: Duration = Duration::from_secs(90);

/// How long the broker stays down after readiness reported it: long enough for the consumer,
/// the producer and the group coordinator client to notice and start reconnecting.
const OUTAGE: Duration = Duration::from_secs(5);

fn write_files(dir: &Path, name: &str) -> std::path::PathBuf {
    support::reflex_process::write_config(
        dir,
        name,
        "rules:\n  - name: outage\n    actions:\n      - log:\n          \
         message: \"{{ event.phase }} {{ meta.id }}\"\n",
        &format!(
            "store:\n  url: sqlite://{}\n\
             actions:\n  kubernetes: false\n  webhook: false\n  kafka: false\n  \
             circuit:\n    max_per_rule: null\n    max_per_target: null\n",
            dir.join("audit.db").display()
        ),
    )
}

/// Enqueues one phase's events (round-robin over the partitions) and returns their delivery
/// futures, so a phase can be produced while the broker is down and delivered once it is back.
fn enqueue(
    producer: &FutureProducer,
    topic: &str,
    phase: &str,
) -> Vec<rdkafka::producer::DeliveryFuture> {
    (0..BATCH)
        .map(|n| {
            let payload = format!(r#"{{"phase":"{phase}","n":{n}}}"#);
            let partition = i32::try_from(n).expect("small") % PARTITIONS;
            producer
                .send_result(
                    FutureRecord::to(topic)
                        .partition(partition)
                        .key(&format!("{phase}-{n}"))
                        .payload(&payload),
                )
                .unwrap_or_else(|(err, _)| panic!("queue a record for {topic}: {err}"))
        })
        .collect()
}

async fn delivered(futures: Vec<rdkafka::producer::DeliveryFuture>) {
    for future in futures {
        future
            .await
            .expect("delivery future")
            .unwrap_or_else(|(err, _)| panic!("delivering a record failed: {err}"));
    }
}

/// `(phase, status)` of every outcome row, and how many rows are unpublished.
async fn store_rows(pool: &sqlx::SqlitePool) -> (Vec<(String, String, String)>, i64) {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT idempotency_key, status, json_extract(details, '$.params.message') FROM outcomes",
    )
    .fetch_all(pool)
    .await
    .expect("read outcomes");
    let unpublished: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outcomes WHERE published_at IS NULL")
            .fetch_one(pool)
            .await
            .expect("count unpublished");
    (rows, unpublished)
}

/// Reads the outcomes topic from the start until `count` distinct succeeded keys are there.
async fn outcome_records(bootstrap: &str, topic: &str, count: usize) -> Vec<Value> {
    let consumer = support::topic_reader(bootstrap, topic);
    let deadline = Instant::now() + OUTCOME_TIMEOUT;
    let mut values: Vec<Value> = Vec::new();
    let succeeded = |values: &[Value]| {
        values
            .iter()
            .filter(|v| v["data"]["status"] == "succeeded")
            .map(|v| v["data"]["idempotency_key"].to_string())
            .collect::<BTreeSet<_>>()
            .len()
    };
    while succeeded(&values) < count {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "{topic}: {count} succeeded outcomes not read within {OUTCOME_TIMEOUT:?}: {values:#?}"
        );
        if let Ok(Ok(message)) = tokio::time::timeout(left, consumer.recv()).await {
            let payload = message.payload().unwrap_or_default();
            values.push(serde_json::from_slice(payload).expect("outcome records are JSON"));
        }
    }
    values
}

fn kafka_check(body: &Value) -> &Value {
    body["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["dependency"] == "kafka"))
        .unwrap_or_else(|| panic!("no kafka check in /readyz: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_is_reported_by_readiness_and_loses_or_repeats_no_event() {
    let mut broker = Broker::start().await;
    let bootstrap = broker.bootstrap();
    let name = support::unique_name("outage");
    let events = format!("{name}.events");
    let outcomes = format!("{name}.outcomes");
    support::create_topic(&bootstrap, &events, PARTITIONS).await;
    support::create_topic(&bootstrap, &outcomes, 1).await;
    support::create_topic(&bootstrap, &format!("{name}.dead-letters"), 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_files(dir.path(), &name);
    let mut reflex = Reflex::spawn(
        &config,
        dir.path().join("reflex.log"),
        &[
            ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.as_str()),
            // The SQLite store of the config file: only Kafka goes away in this test.
            ("DATABASE_URL", ""),
        ],
    );
    reflex.wait_readyz(200, READY_TIMEOUT).await;
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("audit.db").display()
    ))
    .await
    .expect("open the audit store");
    // The test's producer keeps records queued while the broker is down (up to 2 minutes)
    // and delivers them once it is back, like any well-configured event source.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("message.timeout.ms", "120000")
        .create()
        .expect("producer");

    delivered(enqueue(&producer, &events, "before")).await;
    support::eventually("outcomes of the first phase", OUTCOME_TIMEOUT, || async {
        (store_rows(&pool).await.0.len() >= BATCH).then_some(())
    })
    .await;

    broker.kill();
    let (body, noticed) = reflex.wait_readyz(503, READY_TIMEOUT).await;
    let kafka = kafka_check(&body);
    assert_eq!(kafka["ok"], false, "{body}");
    let error = kafka["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("Kafka") && error.contains(&bootstrap),
        "the readiness error names Kafka and its address: {body}"
    );
    let during = enqueue(&producer, &events, "during");
    tokio::time::sleep(OUTAGE).await;
    assert!(
        reflex
            .readyz()
            .await
            .is_some_and(|(status, _)| status == 503),
        "still unready while the broker is down"
    );

    broker.restart().await;
    let back = Instant::now();
    let (_, recovered) = reflex.wait_readyz(200, READY_TIMEOUT).await;
    delivered(during).await;
    // Consumption resumes once the consumer has rejoined its group (its session expired
    // during the outage, so its partitions were lost and are assigned afresh).
    support::eventually(
        "outcomes of events produced during the outage",
        OUTCOME_TIMEOUT,
        || async {
            let (rows, _) = store_rows(&pool).await;
            rows.iter().any(|r| r.2.starts_with("during")).then_some(())
        },
    )
    .await;
    let resumed = back.elapsed();
    delivered(enqueue(&producer, &events, "after")).await;

    let total = 3 * BATCH;
    let (rows, _) = support::eventually(
        "an outcome for every event, all published",
        OUTCOME_TIMEOUT,
        || async {
            let (rows, unpublished) = store_rows(&pool).await;
            let succeeded = rows.iter().filter(|r| r.1 == "succeeded").count();
            (succeeded >= total && unpublished == 0).then_some((rows, unpublished))
        },
    )
    .await;
    reflex.terminate();

    // Exactly one succeeded outcome per event and phase; anything else is a duplicate record
    // of a redelivery (never a second execution).
    let mut per_phase: BTreeMap<String, usize> = BTreeMap::new();
    let mut keys = BTreeSet::new();
    for (key, status, message) in &rows {
        match status.as_str() {
            "succeeded" => {
                assert!(keys.insert(key.clone()), "key {key} succeeded twice");
                let phase = message.split(' ').next().unwrap_or_default().to_owned();
                *per_phase.entry(phase).or_default() += 1;
            }
            "duplicate" => {}
            other => panic!("unexpected outcome status {other} for {key}: {rows:#?}"),
        }
    }
    assert_eq!(
        per_phase,
        BTreeMap::from([
            ("after".to_owned(), BATCH),
            ("before".to_owned(), BATCH),
            ("during".to_owned(), BATCH),
        ])
    );

    // The outcomes topic has every succeeded outcome; a republication after the outage is the
    // same record (same CloudEvents id), never a second success.
    let records = outcome_records(&bootstrap, &outcomes, total).await;
    let mut identities: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for record in records
        .iter()
        .filter(|r| r["data"]["status"] == "succeeded")
    {
        identities
            .entry(record["data"]["idempotency_key"].to_string())
            .or_default()
            .insert(record["id"].to_string());
    }
    assert_eq!(identities.len(), total);
    assert!(
        identities.values().all(|ids| ids.len() == 1),
        "two different succeeded records for one key: {identities:#?}"
    );

    // Offsets were committed to the end of every partition.
    let offsets =
        support::reflex_process::committed_and_ends(&bootstrap, &name, &events, PARTITIONS);
    for (partition, (committed, end)) in offsets.iter().enumerate() {
        assert_eq!(committed, end, "partition {partition}: {offsets:?}");
    }

    let duplicates = rows.iter().filter(|r| r.1 == "duplicate").count();
    eprintln!(
        "broker restart: /readyz reported Kafka down {noticed:?} after the kill and ready again \
         {recovered:?} after the broker answered again; events were handled again {resumed:?} \
         after it answered; {total} events, {duplicates} duplicate outcome(s), {} outcome \
         record(s) on the topic",
        records.len()
    );
    pool.close().await;
}
