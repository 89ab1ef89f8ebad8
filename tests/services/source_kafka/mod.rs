//! The Kafka source against the real broker: order per partition, retries that hold a
//! partition back, offsets committed only for handled records, back-pressure by pausing, and
//! hand-over on rebalance. Each test uses its own topic and consumer group.
//!
//! Run: `scripts/services up && eval "$(scripts/services env)" && cargo test --features services --test services source_kafka::`

use crate::support;

mod harness;
mod stalls;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use reflex::event::decode::RawRecord;
use reflex::source::Handler;
use tokio_util::sync::CancellationToken;

use harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_three_partitions_are_handled_in_order_per_partition_and_committed() {
    let bootstrap = support::require_kafka().await;
    let topic = support::unique_name("src-order");
    let group = support::unique_name("g");
    support::create_topic(&bootstrap, &topic, 3).await;
    let producer = producer(&bootstrap);
    for partition in 0..3 {
        produce(&producer, &topic, partition, 0..20).await;
    }

    let (handler, seen) = recorder(never());
    let running = start(&config(&bootstrap, &topic, &group), handler);
    wait_for_count(&seen, 60, "60 records handled").await;
    let status = running.status.snapshot();
    assert!(status.joined, "{status:?}");
    assert_eq!(status.assigned, 3, "{status:?}");
    running.stop().await;

    let partitions = by_partition(&seen);
    assert_eq!(partitions.len(), 3);
    for (partition, records) in &partitions {
        let payloads: Vec<&str> = records.iter().map(|(_, p)| p.as_str()).collect();
        let expected: Vec<String> = (0..20).map(|i| format!("p{partition}-{i}")).collect();
        assert_eq!(
            payloads, expected,
            "partition {partition} out of order or incomplete"
        );
        let offsets: Vec<i64> = records.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, (0..20).collect::<Vec<i64>>());
    }
    assert_eq!(
        committed(&bootstrap, &group, &topic, 3).await,
        vec![Some(20); 3],
        "every handled record is committed after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_record_is_retried_while_later_records_of_its_partition_wait() {
    let bootstrap = support::require_kafka().await;
    let topic = support::unique_name("src-retry");
    let group = support::unique_name("g");
    support::create_topic(&bootstrap, &topic, 2).await;
    let producer = producer(&bootstrap);
    produce(&producer, &topic, 0, 0..5).await;
    produce(&producer, &topic, 1, 0..5).await;

    // Partition 0's record at offset 2 fails until the test lets it through.
    let outage = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let fail_flag = Arc::clone(&outage);
    let (handler, seen) = recorder(Box::new(move |record| {
        record.partition == 0
            && record.offset == 2
            && fail_flag.load(std::sync::atomic::Ordering::SeqCst)
    }));
    let running = start(&config(&bootstrap, &topic, &group), handler);

    // Partition 1 completes and partition 0 stops before offset 2.
    wait_for_count(
        &seen,
        7,
        "partition 1 and the first two records of partition 0",
    )
    .await;
    support::eventually("the partition reported as retrying", WAIT, || {
        let status = Arc::clone(&running.status);
        async move { (status.snapshot().retrying == 1).then_some(()) }
    })
    .await;
    assert!(
        running.status.readiness().is_err(),
        "not ready while retrying"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stuck = by_partition(&seen);
    assert_eq!(stuck[&1].len(), 5, "the other partition is not held back");
    assert_eq!(
        stuck[&0].iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        vec![0, 1],
        "nothing after the failing record is handled"
    );

    outage.store(false, std::sync::atomic::Ordering::SeqCst);
    wait_for_count(&seen, 10, "all records after the outage").await;
    let status = Arc::clone(&running.status);
    support::eventually("readiness back", WAIT, || {
        let status = Arc::clone(&status);
        async move { status.readiness().ok() }
    })
    .await;
    running.stop().await;
    let done = by_partition(&seen);
    assert_eq!(
        done[&0].iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4],
        "partition 0 resumed in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_consumer_of_the_group_resumes_at_the_first_unhandled_record() {
    let bootstrap = support::require_kafka().await;
    let topic = support::unique_name("src-resume");
    let group = support::unique_name("g");
    support::create_topic(&bootstrap, &topic, 1).await;
    let producer = producer(&bootstrap);
    produce(&producer, &topic, 0, 0..10).await;

    // The first consumer handles offsets 0..5 and never gets past offset 5.
    let (handler, seen) = recorder(Box::new(|record| record.offset >= 5));
    let mut config = config(&bootstrap, &topic, &group);
    config.consumer.drain_timeout = Duration::from_secs(1);
    let running = start(&config, handler);
    wait_for_count(&seen, 5, "the first five records").await;
    support::eventually("offset 5 retried", WAIT, || {
        let status = Arc::clone(&running.status);
        async move { (status.snapshot().retrying == 1).then_some(()) }
    })
    .await;
    running.stop().await;
    assert_eq!(
        committed(&bootstrap, &group, &topic, 1).await,
        vec![Some(5)]
    );

    let (handler, seen) = recorder(never());
    let running = start(&config, handler);
    wait_for_count(&seen, 5, "the records the first consumer left").await;
    // Give a wrongly rewound consumer time to show extra records.
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.stop().await;
    let offsets: Vec<i64> = seen.lock().expect("lock").iter().map(|r| r.1).collect();
    assert_eq!(offsets, vec![5, 6, 7, 8, 9]);
    assert_eq!(
        committed(&bootstrap, &group, &topic, 1).await,
        vec![Some(10)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_partition_queue_pauses_the_partition_without_losing_or_reordering_records() {
    let bootstrap = support::require_kafka().await;
    let topic = support::unique_name("src-pause");
    let group = support::unique_name("g");
    support::create_topic(&bootstrap, &topic, 1).await;
    let producer = producer(&bootstrap);
    produce(&producer, &topic, 0, 0..200).await;

    let seen = Seen::default();
    let handler = Arc::new(Recorder {
        seen: Arc::clone(&seen),
        fail: never(),
        delay: Duration::from_millis(2),
    });
    let mut config = config(&bootstrap, &topic, &group);
    config.consumer.partition_queue = 4;
    let running = start(&config, handler);
    let status = Arc::clone(&running.status);
    let finished = CancellationToken::new();
    let watching = finished.clone();
    let watcher = tokio::spawn(async move {
        let mut max_paused = 0;
        while !watching.is_cancelled() {
            max_paused = max_paused.max(status.snapshot().paused);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        max_paused
    });
    wait_for_count(&seen, 200, "200 records through a queue of 4").await;
    finished.cancel();
    let max_paused = watcher.await.expect("watcher");
    assert_eq!(
        max_paused, 1,
        "the partition was paused while its queue was full"
    );
    assert_eq!(
        running.status.snapshot().paused,
        0,
        "and resumed once drained"
    );
    running.stop().await;
    let offsets: Vec<i64> = seen.lock().expect("lock").iter().map(|r| r.1).collect();
    assert_eq!(
        offsets,
        (0..200).collect::<Vec<i64>>(),
        "no loss, no duplicate, in order"
    );
    assert_eq!(
        committed(&bootstrap, &group, &topic, 1).await,
        vec![Some(200)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_member_takes_over_partitions_at_the_committed_offsets_without_duplicates() {
    let bootstrap = support::require_kafka().await;
    let topic = support::unique_name("src-rebalance");
    let group = support::unique_name("g");
    support::create_topic(&bootstrap, &topic, 4).await;
    let producer = producer(&bootstrap);
    for partition in 0..4 {
        produce(&producer, &topic, partition, 0..10).await;
    }
    let config = config(&bootstrap, &topic, &group);
    let (first_handler, first_seen) = recorder(never());
    let first = start(&config, first_handler);
    wait_for_count(&first_seen, 40, "the first member handles everything").await;

    let (second_handler, second_seen) = recorder(never());
    let second = start(&config, second_handler);
    support::eventually("the partitions split between the two members", WAIT, || {
        let (a, b) = (first.status.snapshot(), second.status.snapshot());
        async move { (a.assigned > 0 && b.assigned > 0 && a.assigned + b.assigned == 4).then_some(()) }
    })
    .await;
    for partition in 0..4 {
        produce(&producer, &topic, partition, 10..20).await;
    }
    support::eventually("all 80 records handled", WAIT, || {
        let n = first_seen.lock().expect("lock").len() + second_seen.lock().expect("lock").len();
        async move { (n >= 80).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.stop().await;
    second.stop().await;

    let mut all: Vec<(i32, i64)> = first_seen
        .lock()
        .expect("lock")
        .iter()
        .chain(second_seen.lock().expect("lock").iter())
        .map(|(p, o, _)| (*p, *o))
        .collect();
    assert!(
        !second_seen.lock().expect("lock").is_empty(),
        "the second member got work"
    );
    all.sort_unstable();
    let expected: Vec<(i32, i64)> = (0..4).flat_map(|p| (0..20).map(move |o| (p, o))).collect();
    assert_eq!(
        all, expected,
        "every record exactly once across the hand-over"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_partitions_finish_their_record_in_hand_and_commit_before_the_hand_over() {
    let bootstrap = support::require_kafka().await;
    let topic = support::unique_name("src-busy-revoke");
    let group = support::unique_name("g");
    create_topic_and_fill(&bootstrap, &topic, 4, 40).await;
    let config = config(&bootstrap, &topic, &group);
    // Slow records: the second member joins while every partition of the first is mid-record
    // with more queued behind it.
    let slow = |seen: &Seen| {
        Arc::new(Recorder {
            seen: Arc::clone(seen),
            fail: never(),
            delay: Duration::from_millis(150),
        })
    };
    let (first_seen, second_seen) = (Seen::default(), Seen::default());
    let first = start(&config, slow(&first_seen));
    wait_for_count(&first_seen, 4, "the first member is busy").await;
    let second = start(&config, slow(&second_seen));
    support::eventually("the second member gets partitions", WAIT, || {
        let b = second.status.snapshot();
        async move { (b.assigned > 0).then_some(()) }
    })
    .await;
    support::eventually("all 160 records handled", WAIT, || {
        let n = first_seen.lock().expect("lock").len() + second_seen.lock().expect("lock").len();
        async move { (n >= 160).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.stop().await;
    second.stop().await;
    assert!(
        !second_seen.lock().expect("lock").is_empty(),
        "the second member got work"
    );
    let mut all: Vec<(i32, i64)> = first_seen
        .lock()
        .expect("lock")
        .iter()
        .chain(second_seen.lock().expect("lock").iter())
        .map(|(p, o, _)| (*p, *o))
        .collect();
    all.sort_unstable();
    let expected: Vec<(i32, i64)> = (0..4).flat_map(|p| (0..40).map(move |o| (p, o))).collect();
    assert_eq!(
        all, expected,
        "every record exactly once across a busy hand-over"
    );
}

/// Counts records; nothing else, so the measurement is the source's own cost.
struct Counter {
    count: std::sync::atomic::AtomicUsize,
    first: std::sync::OnceLock<std::time::Instant>,
}

impl Handler for Counter {
    type Error = String;

    async fn handle(&self, _record: &RawRecord<'_>) -> Result<(), String> {
        self.first.get_or_init(std::time::Instant::now);
        self.count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// A measurement, not a check of a property: run it on purpose with
/// `cargo test --release --features services --test services source_kafka:: -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; prints the source's throughput"]
async fn measure_the_source_throughput_with_a_no_op_handler() {
    use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
    let bootstrap = support::require_kafka().await;
    let topic = support::unique_name("src-bench");
    let group = support::unique_name("g");
    let partitions = 6;
    let total = 200_000;
    support::create_topic(&bootstrap, &topic, partitions).await;
    let producer: ThreadedProducer<rdkafka::producer::DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    let payload = r#"{"type":"bench","labels":{"severity":"warning","app":"shop"},"value":42}"#;
    for i in 0..total {
        let key = format!("k{}", i % 1000);
        let mut record = BaseRecord::<String, str>::to(&topic)
            .key(&key)
            .payload(payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60)).expect("flush");

    let handler = Arc::new(Counter {
        count: std::sync::atomic::AtomicUsize::new(0),
        first: std::sync::OnceLock::new(),
    });
    let running = start(&config(&bootstrap, &topic, &group), Arc::clone(&handler));
    support::eventually("every record counted", Duration::from_secs(120), || {
        let n = handler.count.load(std::sync::atomic::Ordering::Relaxed);
        async move { (n >= total).then_some(()) }
    })
    .await;
    let elapsed = handler.first.get().expect("started").elapsed();
    running.stop().await;
    assert_eq!(
        handler.count.load(std::sync::atomic::Ordering::Relaxed),
        total
    );
    eprintln!(
        "source throughput: {total} records over {partitions} partitions in {elapsed:?} = {:.0} records/s",
        total as f64 / elapsed.as_secs_f64()
    );
}
