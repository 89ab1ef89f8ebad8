//! `reflex backtest` against the real Kafka: 50,000 recorded events over 4 partitions with
//! known firings (tests/support/history.rs), read by time; the report's counts and targets for
//! the whole history and for a slice; `--against` and its exit codes; and no consumer group
//! gains or changes a committed offset — a "production" group's stay exactly as they were.

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

use crate::support::history::{self, NEW, OLD, exit_code, json_of};
use crate::support::{self};

const RECORDS: usize = 50_000;
const PARTITIONS: i32 = 4;
const TIMEOUT: Duration = Duration::from_secs(30);

fn backtest(bootstrap: &str, topic: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reflex"))
        .args(["backtest", "--topic", topic, "--timeout", "60"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        .output()
        .expect("the reflex binary runs")
}

/// Produces the history round-robin over the partitions, each record with its event time as
/// its timestamp (so every partition is in time order, and the seeds of one key land on
/// different partitions: only a merge in time order finds the firings).
fn produce(bootstrap: &str, topic: &str, t0: DateTime<Utc>) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("queue.buffering.max.messages", "200000")
        .set("linger.ms", "20")
        .create()
        .expect("producer");
    for (i, (at, payload)) in history::events(t0, RECORDS).into_iter().enumerate() {
        let body = payload.to_string();
        let partition = i as i32 % PARTITIONS;
        let mut record = BaseRecord::<(), String>::to(topic)
            .partition(partition)
            .payload(&body)
            .timestamp(at.timestamp_millis());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    // The local queue is full: let deliveries drain, then retry.
                    producer.poll(Duration::from_millis(50));
                    record = back;
                }
            }
        }
    }
    producer.flush(TIMEOUT).expect("every record delivered");
}

/// A client of `group` (never subscribed: it only reads or commits offsets), or of none.
fn consumer(bootstrap: &str, group: Option<&str>) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("enable.auto.commit", "false");
    if let Some(group) = group {
        config.set("group.id", group);
    }
    config.create().expect("consumer")
}

/// A consumer group's committed offsets on `topic`'s partitions (`None` where nothing is
/// committed).
fn committed(bootstrap: &str, group: &str, topic: &str) -> BTreeMap<i32, Option<i64>> {
    let consumer = consumer(bootstrap, Some(group));
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        list.add_partition(topic, p);
    }
    consumer
        .committed_offsets(list, TIMEOUT)
        .expect("committed offsets")
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => (e.partition(), Some(o)),
            _ => (e.partition(), None),
        })
        .collect()
}

/// Commits offsets for `group` as a production consumer would have.
fn commit_production_offsets(bootstrap: &str, group: &str, topic: &str) {
    let consumer = consumer(bootstrap, Some(group));
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        list.add_partition_offset(topic, p, Offset::Offset(1_000 + i64::from(p)))
            .expect("offset");
    }
    consumer
        .commit(&list, rdkafka::consumer::CommitMode::Sync)
        .expect("commit the production offsets");
}

fn groups(bootstrap: &str) -> Vec<String> {
    consumer(bootstrap, None)
        .fetch_group_list(None, TIMEOUT)
        .expect("group list")
        .groups()
        .iter()
        .map(|g| g.name().to_owned())
        .collect()
}

#[tokio::test]
#[ignore = "needs Kafka: scripts/services up"]
async fn backtest_reads_kafka_history_by_time_reports_the_seeded_firings_and_commits_nothing() {
    let bootstrap = support::require_kafka().await;
    let topic = support::unique_name("backtest");
    support::create_topic(&bootstrap, &topic, PARTITIONS).await;
    // Two hours ago, whole seconds: the slice's bounds are exact instants.
    let t0 = DateTime::from_timestamp(Utc::now().timestamp() - 2 * 3600, 0).unwrap();
    let production = support::unique_name("production");
    let (bootstrap2, topic2, production2) = (bootstrap.clone(), topic.clone(), production.clone());
    let before = tokio::task::spawn_blocking(move || {
        produce(&bootstrap2, &topic2, t0);
        commit_production_offsets(&bootstrap2, &production2, &topic2);
        committed(&bootstrap2, &production2, &topic2)
    })
    .await
    .unwrap();
    let since = (t0 - chrono::Duration::seconds(1)).to_rfc3339();

    let whole = backtest(
        &bootstrap,
        &topic,
        &["--rules", NEW, "--since", &since, "--format", "json"],
    );
    exit_code(&whole, 0);
    let report = json_of(&whole);
    assert_eq!(report["events"], RECORDS, "every record read once");
    assert_eq!(report["skipped"], 0);
    history::assert_report(&report, false);
    // Decoding on two more threads gives the very same report: they keep the read order.
    let one_thread = backtest(
        &bootstrap,
        &topic,
        &[
            "--rules",
            NEW,
            "--since",
            &since,
            "--format",
            "json",
            "--decode-threads",
            "0",
        ],
    );
    exit_code(&one_thread, 0);
    // `to` is the start of each backtest (the end of the slice when no --until is given).
    let without_end = |mut report: Value| {
        report.as_object_mut().unwrap().remove("to");
        report
    };
    assert_eq!(
        without_end(json_of(&one_thread)),
        without_end(report.clone())
    );

    let slice_since = (t0 + chrono::Duration::seconds(history::SLICE.0)).to_rfc3339();
    let slice_until = (t0 + chrono::Duration::seconds(history::SLICE.1)).to_rfc3339();
    let slice = backtest(
        &bootstrap,
        &topic,
        &[
            "--rules",
            NEW,
            "--since",
            &slice_since,
            "--until",
            &slice_until,
            "--format",
            "json",
        ],
    );
    exit_code(&slice, 0);
    history::assert_report(&json_of(&slice), true);

    let against = backtest(
        &bootstrap,
        &topic,
        &[
            "--rules",
            NEW,
            "--against",
            OLD,
            "--since",
            &since,
            "--format",
            "json",
        ],
    );
    exit_code(&against, 1);
    let diff = json_of(&against);
    assert_eq!(diff["events"], RECORDS);
    history::assert_against(&diff);
    let same = backtest(
        &bootstrap,
        &topic,
        &["--rules", NEW, "--against", NEW, "--since", &since],
    );
    exit_code(&same, 0);

    let (bootstrap2, topic2, production2) = (bootstrap.clone(), topic.clone(), production.clone());
    let (after, groups, production_after) = tokio::task::spawn_blocking(move || {
        let groups = groups(&bootstrap2);
        let offsets: Vec<(String, BTreeMap<i32, Option<i64>>)> = groups
            .iter()
            .map(|g| (g.clone(), committed(&bootstrap2, g, &topic2)))
            .collect();
        let production_after = committed(&bootstrap2, &production2, &topic2);
        (offsets, groups, production_after)
    })
    .await
    .unwrap();
    assert_eq!(
        production_after, before,
        "the production group's offsets are untouched"
    );
    assert!(
        !groups.iter().any(|g| g.starts_with("reflex-backtest")),
        "the backtest joined no group: {groups:?}"
    );
    for (group, offsets) in after {
        if group == production {
            assert_eq!(
                offsets, before,
                "the production group's offsets are untouched"
            );
        } else {
            assert!(
                offsets.values().all(Option::is_none),
                "group {group} has offsets committed on {topic}: {offsets:?}"
            );
        }
    }
    assert!(before.values().all(Option::is_some), "{before:?}");
}
