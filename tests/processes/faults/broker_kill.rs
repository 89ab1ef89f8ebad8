//! The Kafka broker killed with SIGKILL while outcomes are being published (the actions of the
//! records in hand have run; their outcome records wait for the broker's acknowledgement), and
//! restarted on the same port and log directory. The broker is PRIVATE to the test.

use std::time::{Duration, Instant};

use super::harness::{self, Audit, Receiver, Running};
use crate::support;
use crate::support::kafka_broker::Broker;

const EVENTS: usize = 160;

/// How long the broker stays down once readiness reported it: long enough for the group
/// session (6 s in these configs) to expire, so partitions are lost and assigned afresh.
const OUTAGE: Duration = Duration::from_secs(8);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_during_outcome_publishes_loses_and_repeats_nothing() {
    let mut broker = Broker::start().await;
    // 250 ms per call: the partitions fall behind the stream, so each one always has an action
    // in flight whose outcome is published right after it, when the broker dies.
    let receiver = Receiver::start(Duration::from_millis(250), None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("audit.db");
    let mut running = Running::start(
        &broker.bootstrap(),
        dir,
        &harness::webhook_rule(receiver.addr, ""),
        &format!("sqlite://{}", store.display()),
        &harness::actions_section(false),
        &[],
    )
    .await;
    let audit = Audit::sqlite(&store).await;
    let stream = running.stream(EVENTS);
    receiver.wait_effects(40).await;

    let killed = Instant::now();
    broker.kill();
    // Actions in flight at the kill finish, and their outcome records cannot be published:
    // the kill caught outcome publishes.
    let caught = support::eventually(
        "an executed action whose outcome awaits publication",
        harness::NOTICE_TIMEOUT,
        || async {
            let rows = audit.try_rows().await.ok()?;
            let waiting = rows
                .iter()
                .filter(|r| r.status != "started" && !r.published)
                .count();
            (waiting > 0).then_some(waiting)
        },
    )
    .await;
    let outage = running
        .outage(killed, Some("kafka"), OUTAGE, broker.restart())
        .await;
    let rows = running.settle(stream, &audit, "webhook").await;
    let summary = running
        .conclude(&rows, "webhook", &receiver.effects())
        .await;
    eprintln!(
        "broker kill: {summary}; {caught} outcome(s) awaiting publication at the kill; {outage}"
    );
}
