//! A webhook receiver that hangs past the action's timeout on some requests: the attempt times
//! out and is retried (same `Idempotency-Key`), or the action fails once its retries are used;
//! other partitions and later events are not held up beyond that, and readiness stays green
//! (a webhook target is not a dependency of Reflex: taking the pod out of service would not
//! bring the receiver back).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::harness::{self, Audit, HangPolicy, Receiver, Running};
use crate::support;

const EVENTS: usize = 120;

/// Longer than the rule's 1 s timeout: the receiver answers long after Reflex gave up.
const HANG: Duration = Duration::from_secs(3);

/// Events whose first delivery hangs (the retry is carried out).
fn hangs_once(n: u64) -> bool {
    n % 10 == 3
}

/// Events whose every delivery hangs (the action fails).
fn hangs_always(n: u64) -> bool {
    n % 10 == 6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_hangs_past_its_timeout_fails_or_is_retried_once_and_stalls_nothing() {
    let bootstrap = support::require_kafka().await;
    let policy: HangPolicy =
        Arc::new(|n, earlier| hangs_always(n) || (hangs_once(n) && earlier == 0));
    let receiver = Receiver::start(Duration::from_millis(20), Some((policy, HANG))).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("audit.db");
    let running = Running::start(
        &bootstrap,
        dir,
        &harness::webhook_rule(
            receiver.addr,
            "          timeout: 1s\n          retries: 1\n",
        ),
        &format!("sqlite://{}", store.display()),
        &harness::actions_section(false),
        &[],
    )
    .await;
    let started = Instant::now();
    let stream = running.stream(EVENTS);
    stream.finish().await;
    let audit = Audit::sqlite(&store).await;
    let rows = audit
        .settled(EVENTS, &["webhook"], || running.reflex.log())
        .await;
    let settled = started.elapsed();
    let figures = harness::account(&rows, "webhook", EVENTS, &receiver.effects());

    // Exactly the events whose every delivery hung failed, saying it timed out.
    for row in harness::originals(&rows).values().flatten() {
        let n = row.n().expect("event number");
        if hangs_always(n) {
            assert_eq!(row.status, "failed", "{row:#?}");
            let error = row.error.as_deref().unwrap_or_default();
            assert!(error.contains("no response within"), "{row:#?}");
        } else {
            assert_eq!(row.status, "succeeded", "{row:#?}");
        }
    }
    // A timed-out attempt is retried with the same key, never under a new one, so a receiver
    // that did act on the hung request can drop the retry.
    let deliveries = receiver.deliveries();
    for n in (0..EVENTS as u64).filter(|n| hangs_once(*n)) {
        let keys: Vec<_> = deliveries
            .iter()
            .filter(|d| d.n == n)
            .map(|d| &d.key)
            .collect();
        assert!(
            keys.len() == 2 && keys[0] == keys[1] && keys[0] != "<none>",
            "event {n}: deliveries {keys:?}"
        );
    }
    // Readiness never went red: no dependency of Reflex failed.
    let samples = running.readiness.between(started, Instant::now());
    let unready: Vec<_> = samples.iter().filter(|s| s.status != Some(200)).collect();
    assert!(unready.is_empty(), "/readyz went unready: {unready:#?}");
    let records = harness::assert_published(&running.bootstrap, &running.name, &rows).await;
    eprintln!(
        "webhook hang: {EVENTS} events, outcomes {:?}, {} deliveries ({} hung), {} carried out, \
         {} carried out twice, {records} outcome records; settled {settled:?} after the stream \
         started; /readyz 200 on all {} samples",
        figures.statuses,
        deliveries.len(),
        deliveries.iter().filter(|d| d.hung).count(),
        figures.effects,
        figures.executed_twice,
        samples.len()
    );
}
