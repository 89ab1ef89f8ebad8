//! Stalls the source must not have: a partition paused by back-pressure that is revoked and
//! assigned back must flow again, and a partition whose worker died must end the source with an
//! error (the process exits and restarts) instead of stopping silently with readiness green.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reflex::event::decode::RawRecord;
use reflex::source::Handler;

use super::harness::*;
use crate::support;

/// Holds every record until `open` is set, then records it (a handler stuck on a slow action:
/// the source's queue fills and it pauses the partition). With `panic_on`, the record at that
/// offset panics instead once the gate is open (a bug in the handler).
struct Gated {
    seen: Seen,
    open: Arc<AtomicBool>,
    panic_on: Option<i64>,
}

impl Handler for Gated {
    type Error = String;

    async fn handle(&self, record: &RawRecord<'_>) -> Result<(), String> {
        while !self.open.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if self.panic_on == Some(record.offset) {
            panic!("simulated handler bug at offset {}", record.offset);
        }
        note(&self.seen, record);
        Ok(())
    }
}

fn gated(panic_on: Option<i64>) -> (Arc<Gated>, Seen, Arc<AtomicBool>) {
    let seen = Seen::default();
    let open = Arc::new(AtomicBool::new(false));
    let handler = Arc::new(Gated {
        seen: Arc::clone(&seen),
        open: Arc::clone(&open),
        panic_on,
    });
    (handler, seen, open)
}

async fn wait_until(what: &str, probe: impl Fn() -> bool) {
    support::eventually(what, WAIT, || {
        let ok = probe();
        async move { ok.then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_partition_revoked_and_assigned_back_flows_again_and_every_record_is_handled() {
    let bootstrap = support::require_kafka().await;
    let topic = support::unique_name("src-pause-rebalance");
    let group = support::unique_name("g");
    let per_partition = 100;
    create_topic_and_fill(&bootstrap, &topic, 2, per_partition).await;
    let mut config = config(&bootstrap, &topic, &group);
    // One record queued per partition: the held slack (16 records) is passed at once, so both
    // partitions are paused while the handler is stuck.
    config.consumer.partition_queue = 1;
    // The stuck record in hand is abandoned quickly on revoke (and redelivered).
    config.consumer.revoke_timeout = Duration::from_secs(1);
    config.consumer.drain_timeout = Duration::from_secs(1);

    let (handler, seen, open) = gated(None);
    let first = start(&config, handler);
    wait_until("both partitions paused by back-pressure", || {
        first.status.snapshot().paused == 2
    })
    .await;

    // A second member joins: cooperative-sticky moves one of the two paused partitions to it.
    // It handles nothing (every record fails), so it commits nothing either.
    let (second_handler, second_seen) = recorder(Box::new(|_| true));
    let second = start(&config, second_handler);
    wait_until("one partition moved to the second member", || {
        first.status.snapshot().assigned == 1 && second.status.snapshot().assigned == 1
    })
    .await;
    // It leaves: the moved partition comes back to the first member.
    second.stop().await;
    assert!(second_seen.lock().expect("lock").is_empty());
    wait_until("the partition assigned back to the first member", || {
        first.status.snapshot().assigned == 2
    })
    .await;

    open.store(true, Ordering::SeqCst);
    let expected: BTreeSet<(i32, i64)> = (0..2)
        .flat_map(|p| (0..per_partition as i64).map(move |o| (p, o)))
        .collect();
    let handled = || -> BTreeSet<(i32, i64)> {
        seen.lock()
            .expect("lock")
            .iter()
            .map(|(p, o, _)| (*p, *o))
            .collect()
    };
    support::eventually("every record of both partitions handled", WAIT, || {
        let missing = expected.difference(&handled()).count();
        async move { (missing == 0).then_some(()) }
    })
    .await;
    let status = first.status.snapshot();
    assert_eq!((status.assigned, status.paused), (2, 0), "{status:?}");
    first.stop().await;
    assert_eq!(handled(), expected);
}

/// Waits for the source to end by itself and checks it reports the dead worker of `topic`/0.
async fn expect_worker_died(running: Running, topic: &str) {
    let status = Arc::clone(&running.status);
    let result = tokio::time::timeout(WAIT, running.task)
        .await
        .unwrap_or_else(|_| {
            panic!("the source did not report the dead worker within {WAIT:?} (a silent stall)")
        })
        .expect("the source itself does not panic");
    match result {
        Err(reflex::source::Error::WorkerDied {
            topic: died,
            partition: 0,
        }) => assert_eq!(died, topic),
        other => panic!("expected WorkerDied for {topic}/0, got {other:?}"),
    }
    assert!(
        status.readiness().is_err(),
        "not ready once the consumer ended"
    );
    running.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_dies_on_a_paused_partition_ends_the_source_with_an_error() {
    let bootstrap = support::require_kafka().await;
    let topic = support::unique_name("src-dead-paused");
    let group = support::unique_name("g");
    create_topic_and_fill(&bootstrap, &topic, 1, 100).await;
    let mut config = config(&bootstrap, &topic, &group);
    config.consumer.partition_queue = 1;

    let (handler, _seen, open) = gated(Some(0));
    let running = start(&config, handler);
    wait_until("the partition paused by back-pressure", || {
        running.status.snapshot().paused == 1
    })
    .await;
    // The worker panics on its record in hand; the partition is paused, so no new record
    // arrives to reveal the closed queue.
    open.store(true, Ordering::SeqCst);
    expect_worker_died(running, &topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_dies_on_the_last_record_of_its_partition_ends_the_source_with_an_error() {
    let bootstrap = support::require_kafka().await;
    let topic = support::unique_name("src-dead-idle");
    let group = support::unique_name("g");
    create_topic_and_fill(&bootstrap, &topic, 1, 1).await;
    let config = config(&bootstrap, &topic, &group);

    // Nothing is held or paused, and no later record comes: only the worker's end tells.
    let (handler, _seen, open) = gated(Some(0));
    open.store(true, Ordering::SeqCst);
    let running = start(&config, handler);
    expect_worker_died(running, &topic).await;
}
