//! PostgreSQL, the audit store, stopped (`pg_ctl stop -m immediate`: no shutdown checkpoint, like
//! a crashed server) while actions are being claimed and executed, and started again on the
//! same port a few seconds later. The server is PRIVATE to the test (initdb in a temp dir),
//! never the shared one.

use std::time::{Duration, Instant};

use super::harness::{self, Audit, Receiver, Running};
use crate::support;
use crate::support::private_postgres::PrivatePostgres;

const EVENTS: usize = 240;

/// How long the store stays down once readiness reported it.
const OUTAGE: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_mid_claim_and_restarted_loses_and_repeats_nothing() {
    let bootstrap = support::require_kafka().await;
    let postgres = PrivatePostgres::start("fault-injection");
    // 100 ms per call: with four partitions, some action is always between its claim and its
    // recorded end when the server stops.
    let receiver = Receiver::start(Duration::from_millis(100), None).await;
    let mut running = Running::start(
        &bootstrap,
        tempfile::tempdir().expect("tempdir"),
        &harness::webhook_rule(receiver.addr, ""),
        &postgres.url(),
        &harness::actions_section(false),
        &[],
    )
    .await;
    let stream = running.stream(EVENTS);
    receiver.wait_effects(40).await;

    let stopped = Instant::now();
    postgres.stop_immediately();
    let outage = running
        .outage(stopped, Some("store"), OUTAGE, async {
            postgres.resume();
        })
        .await;
    let audit = Audit::postgres(&postgres.url()).await;
    let rows = running.settle(stream, &audit, "webhook").await;
    let summary = running
        .conclude(&rows, "webhook", &receiver.effects())
        .await;
    eprintln!("postgres restart: {summary}; {outage}");
}
