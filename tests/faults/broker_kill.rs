//! The Kafka broker killed with SIGKILL while outcomes are being published (the actions of the
//! records in hand have run; their outcome records wait for the broker's acknowledgement), and
//! restarted on the same port and log directory. The broker is PRIVATE to the test.

use std::time::{Duration, Instant};

use crate::harness::{self, Audit, Receiver, Running};
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
    let log = || running.reflex.log();
    let audit = Audit::sqlite(&store).await;
    let stream = running.stream(EVENTS);
    support::eventually(
        "webhooks carried out before the fault",
        harness::SETTLE_TIMEOUT,
        || async { (receiver.effects().len() >= 40).then_some(()) },
    )
    .await;

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
    let noticed = running
        .readiness
        .wait(
            "/readyz reports Kafka down",
            killed,
            harness::NOTICE_TIMEOUT,
            log,
            |s| s.unready_naming("kafka"),
        )
        .await;
    tokio::time::sleep(OUTAGE).await;
    broker.restart().await;
    let restored = Instant::now();
    let unready =
        harness::assert_unready_throughout(&running.readiness, "kafka", noticed.at, restored);
    let ready = running
        .readiness
        .wait(
            "/readyz ready again",
            restored,
            harness::NOTICE_TIMEOUT,
            log,
            |s| s.status == Some(200),
        )
        .await;

    stream.finish().await;
    let rows = audit.settled(EVENTS, &["webhook"], log).await;
    let figures = harness::account(&rows, "webhook", EVENTS, &receiver.effects());
    let failed: Vec<_> = rows.iter().filter(|r| r.status == "failed").collect();
    assert!(failed.is_empty(), "outcomes recorded failed: {failed:#?}");
    let records = harness::assert_published(&running.bootstrap, &running.name, &rows).await;
    running.reflex.terminate();
    let retried = harness::retry_figures(&running.reflex.log());
    eprintln!(
        "broker kill: {EVENTS} events, outcomes {:?}, {} carried out, {} twice, {caught} \
         outcome(s) awaiting publication at the kill, {records} outcome records; /readyz \
         noticed after {:?}, unready on all {unready} samples of the outage, ready {:?} after \
         the broker answered again; {retried}",
        figures.statuses,
        figures.effects,
        figures.executed_twice,
        noticed.at - killed,
        ready.at - restored,
    );
}
