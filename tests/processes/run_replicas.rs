//! Two `reflex run` processes (the real binary) in ONE consumer group, sharing a PostgreSQL
//! audit store: the topic's partitions are split between them, one is killed with SIGKILL
//! mid-stream, the other takes its partitions over, and in the end every event has exactly one
//! final outcome per planned action and the group's offsets are committed to the end of every
//! partition. The counting webhook receiver got no call twice — or, when the rule declares it
//! `idempotent_receiver`, got every call, the ones the kill interrupted twice (same key).
//!
//! Each test has its own topics, group, webhook receiver and PostgreSQL database.
//!
//! Run: `scripts/services up && eval "$(scripts/services env)" && cargo test --features services --test processes run_replicas::`

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use support::reflex_process::Reflex;

/// Partitions of the events topic: enough that each replica owns several.
const PARTITIONS: i32 = 6;

/// Events produced in all, round-robin over the partitions.
const EVENTS: usize = 600;

/// Events produced per pacing step, and the pause after each step: ~150 events/s, so the
/// stream is still flowing when a replica is killed a few seconds in and while the survivor
/// takes over.
const STEP: usize = 15;
const STEP_PAUSE: Duration = Duration::from_millis(100);

/// `pipeline.claim_lease_secs` in this test (default 60). A record the killed replica was in
/// the middle of stays claimed by it until the lease passes, and its partition waits that long
/// (measured with the default: every event settled ~65 s after the kill instead of ~10-20 s).
/// Below the group's session timeout (6 s here), the claim is already stale when the survivor
/// is assigned the partition.
const CLAIM_LEASE_SECS: u64 = 5;

/// Bound on the whole stream being handled after the kill: group session timeout (6 s) +
/// claim lease + the remaining records, with room for a loaded 2-core machine.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Bound on start-up and group joins.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the webhook receiver takes to answer. With ~25 events/s per partition, a partition
/// is busy most of the time, like a replica under real load.
const RECEIVER_DELAY: Duration = Duration::from_millis(30);

/// The webhook receiver: calls counted per `Idempotency-Key`.
type Calls = Arc<Mutex<BTreeMap<String, usize>>>;

async fn count_call(State(calls): State<Calls>, headers: HeaderMap) -> StatusCode {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("<none>")
        .to_owned();
    *calls.lock().expect("calls lock").entry(key).or_default() += 1;
    // Counted on arrival, answered after a while: the replicas are always in the middle of
    // some call, so the kill interrupts actions in flight rather than an idle process.
    tokio::time::sleep(RECEIVER_DELAY).await;
    StatusCode::OK
}

async fn start_receiver() -> (SocketAddr, Calls) {
    let calls = Calls::default();
    let app = axum::Router::new()
        .fallback(count_call)
        .with_state(Arc::clone(&calls));
    let addr = support::serve(app).await;
    (addr, calls)
}

/// One row of the shared audit store, as this test reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Row {
    event_id: String,
    action_kind: String,
    idempotency_key: String,
    status: String,
    attempts: i32,
    error: Option<String>,
    claimant: Option<String>,
    partition: Option<i32>,
    started_at: DateTime<Utc>,
    published: bool,
}

async fn rows(pool: &sqlx::PgPool) -> Vec<Row> {
    sqlx::query_as(
        "SELECT event_id, action_kind, idempotency_key, status, attempts, error, \
         details->>'claimant' AS claimant, \
         (details->'source'->>'partition')::int AS partition, \
         started_at, published_at IS NOT NULL AS published \
         FROM outcomes ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .expect("read the outcomes")
}

/// Original (non-duplicate) rows per event id.
fn by_event(rows: &[Row]) -> BTreeMap<&str, Vec<&Row>> {
    let mut events: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.status != "duplicate") {
        events.entry(&row.event_id).or_default().push(row);
    }
    events
}

/// True when every produced event has a final log and a final webhook outcome.
fn all_settled(rows: &[Row]) -> bool {
    let events = by_event(rows);
    events.len() >= EVENTS
        && events
            .values()
            // Published too: a row B finished but did not publish before the kill is published
            // by A only after B's claim lease; stopping A earlier would leave it unpublished.
            .all(|r| r.len() == 2 && r.iter().all(|r| r.status != "started" && r.published))
}

fn is_replica(row: &Row, name: &str) -> bool {
    row.claimant
        .as_deref()
        .is_some_and(|c| c.starts_with(&format!("{name}-")))
}

/// What the webhook receiver does with a repeated `Idempotency-Key`, as the rule declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Receiving {
    /// Nothing special: a webhook interrupted by the kill is recorded `failed` (it may have
    /// taken effect), never re-sent.
    AtMostOnce,
    /// The receiver deduplicates (`idempotent_receiver: true`): an interrupted webhook is
    /// re-sent by the survivor and succeeds.
    Deduplicating,
}

/// Every event gets two actions: `log` (safe to repeat, so a taken-over attempt runs again)
/// and a webhook (safe to repeat only with a deduplicating receiver).
fn log_and_webhook_rule(receiving: Receiving) -> impl FnOnce(SocketAddr) -> String {
    move |receiver| {
        format!(
            "rules:\n  - name: replicated\n    actions:\n      - log:\n          \
             message: \"{{{{ meta.id }}}}\"\n      - webhook:\n          \
             url: \"http://{receiver}/hook\"\n          idempotent_receiver: {}\n          \
             body:\n            event: \"{{{{ meta.id }}}}\"\n",
            receiving == Receiving::Deduplicating
        )
    }
}

/// Two replicas of one group over a fresh topic and database, with a counting webhook
/// receiver; replica A owns some partitions, replica B the others.
struct Cluster {
    bootstrap: String,
    name: String,
    events: String,
    database: support::TempDatabase,
    calls: Calls,
    pool: sqlx::PgPool,
    a: Reflex,
    b: Reflex,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// `rule(receiver)` gives the rule file's text.
    async fn start(rule: impl FnOnce(SocketAddr) -> String) -> Cluster {
        let bootstrap = support::require_kafka().await;
        let database = support::TempDatabase::create("replicas").await;
        let name = support::unique_name("replicas");
        let events = format!("{name}.events");
        support::create_topic(&bootstrap, &events, PARTITIONS).await;
        support::create_topic(&bootstrap, &format!("{name}.outcomes"), 1).await;
        support::create_topic(&bootstrap, &format!("{name}.dead-letters"), 1).await;
        let (receiver, calls) = start_receiver().await;
        let dir = tempfile::tempdir().expect("tempdir");
        // A short claim lease (see CLAIM_LEASE_SECS) with the action timeout below it, as the
        // configuration requires; no circuit breaker, since one rule acting on every event is
        // the point here.
        let config = support::reflex_process::write_config(
            dir.path(),
            &name,
            &rule(receiver),
            &format!(
                "pipeline:\n  claim_lease_secs: {CLAIM_LEASE_SECS}\n\
                 actions:\n  kubernetes: false\n  kafka: false\n  timeout: 4s\n  \
                 circuit:\n    max_per_rule: null\n    max_per_target: null\n"
            ),
        );
        let spawn = |replica: &str| {
            Reflex::spawn(
                &config,
                dir.path().join(format!("{replica}.log")),
                &[
                    ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.as_str()),
                    ("DATABASE_URL", database.url.as_str()),
                    // Claims name `<HOSTNAME>-<pid>-<start>`: this tells the replicas apart.
                    ("HOSTNAME", replica),
                ],
            )
        };
        // A joins alone and owns every partition; B joins and the cooperative rebalance moves
        // some of them to B.
        let a = spawn("replica-a");
        a.wait_readyz(200, JOIN_TIMEOUT).await;
        let b = spawn("replica-b");
        b.wait_readyz(200, JOIN_TIMEOUT).await;
        support::eventually("B is assigned partitions", JOIN_TIMEOUT, || async {
            b.log().contains("partition assigned").then_some(())
        })
        .await;
        support::eventually("A releases the partitions B got", JOIN_TIMEOUT, || async {
            a.log().contains("partition revoked").then_some(())
        })
        .await;
        let pool = sqlx::PgPool::connect(&database.url)
            .await
            .expect("connect to the test database");
        Cluster {
            bootstrap,
            name,
            events,
            database,
            calls,
            pool,
            a,
            b,
            _dir: dir,
        }
    }

    async fn cleanup(self) {
        self.pool.close().await;
        drop((self.a, self.b));
        self.database.drop_now().await;
    }
}

/// Produces [`EVENTS`] records round-robin over the partitions, paced; returns when all are
/// acknowledged.
async fn produce(bootstrap: String, topic: String) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer");
    for start in (0..EVENTS).step_by(STEP) {
        for n in start..(start + STEP).min(EVENTS) {
            let payload = format!(r#"{{"type":"replicas","n":{n}}}"#);
            let key = format!("k{n}");
            let partition = i32::try_from(n).expect("small") % PARTITIONS;
            producer
                .send(
                    FutureRecord::to(&topic)
                        .partition(partition)
                        .key(&key)
                        .payload(&payload),
                    Duration::from_secs(30),
                )
                .await
                .unwrap_or_else(|(err, _)| panic!("produce to {topic}: {err}"));
        }
        tokio::time::sleep(STEP_PAUSE).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_split_the_partitions_and_one_takes_over_when_the_other_is_killed() {
    kill_one_of_two_replicas(Receiving::AtMostOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_deduplicating_receiver_every_webhook_arrives_despite_a_kill() {
    kill_one_of_two_replicas(Receiving::Deduplicating).await;
}

async fn kill_one_of_two_replicas(receiving: Receiving) {
    let mut cluster = Cluster::start(log_and_webhook_rule(receiving)).await;
    let pool = cluster.pool.clone();
    let producing = tokio::spawn(produce(cluster.bootstrap.clone(), cluster.events.clone()));

    // Both replicas do work before the kill.
    let before = support::eventually(
        "both replicas record succeeded outcomes",
        JOIN_TIMEOUT,
        || async {
            let rows = rows(&pool).await;
            let done = |name| {
                rows.iter()
                    .filter(|r| r.status == "succeeded" && is_replica(r, name))
                    .count()
            };
            (done("replica-a") >= 20 && done("replica-b") >= 20).then_some(rows)
        },
    )
    .await;
    let partitions_of = |rows: &[Row], name: &str| -> BTreeSet<i32> {
        rows.iter()
            .filter(|r| is_replica(r, name))
            .filter_map(|r| r.partition)
            .collect()
    };
    let b_partitions = partitions_of(&before, "replica-b");
    let a_partitions = partitions_of(&before, "replica-a");
    assert!(
        a_partitions.is_disjoint(&b_partitions),
        "the replicas handled the same partition: A {a_partitions:?}, B {b_partitions:?}"
    );

    let killed_at = Utc::now();
    let kill_clock = Instant::now();
    cluster.b.kill9();
    assert!(
        by_event(&before).len() < EVENTS,
        "every event was handled before the kill; raise EVENTS"
    );

    let rows = support::eventually(
        "every event settled after the takeover",
        SETTLE_TIMEOUT,
        || async {
            let rows = rows(&pool).await;
            all_settled(&rows).then_some(rows)
        },
    )
    .await;
    let settled_after = kill_clock.elapsed();
    producing.await.expect("producer task");
    cluster.a.terminate();

    // Takeover: when A first recorded something on each of B's partitions after the kill.
    let resumed: BTreeMap<i32, Duration> = b_partitions
        .iter()
        .filter_map(|partition| {
            rows.iter()
                .filter(|r| r.partition == Some(*partition) && is_replica(r, "replica-a"))
                .filter(|r| r.started_at > killed_at)
                .map(|r| r.started_at)
                .min()
                .map(|at| (*partition, (at - killed_at).to_std().unwrap_or_default()))
        })
        .collect();
    assert_eq!(
        resumed.len(),
        b_partitions.len(),
        "A never worked on some of B's partitions {b_partitions:?}: {resumed:?}"
    );

    // Exactly one final outcome per planned action; nothing left `started`; all published.
    let events_rows = by_event(&rows);
    assert_eq!(events_rows.len(), EVENTS);
    let calls = cluster.calls.lock().expect("calls lock").clone();
    let mut refused = Vec::new();
    for (event, actions) in &events_rows {
        let kinds: BTreeSet<&str> = actions.iter().map(|r| r.action_kind.as_str()).collect();
        assert_eq!(
            kinds,
            BTreeSet::from(["log", "webhook"]),
            "event {event}: {actions:#?}"
        );
        for row in actions {
            assert!(row.published, "unpublished outcome: {row:#?}");
            let sent = calls.get(&row.idempotency_key).copied().unwrap_or(0);
            match (row.action_kind.as_str(), row.status.as_str()) {
                ("log", "succeeded") => {}
                ("webhook", "succeeded") if receiving == Receiving::AtMostOnce => {
                    assert_eq!(sent, 1, "webhook calls for {row:#?}")
                }
                // Re-sent by the survivor if the kill interrupted it: the receiver saw the key
                // once or twice, and counts it once.
                ("webhook", "succeeded") => {
                    assert!((1..=2).contains(&sent), "webhook calls for {row:#?}")
                }
                // Killed while the call was on its way: not sent again, and said so.
                ("webhook", "failed")
                    if receiving == Receiving::AtMostOnce
                        && row
                            .error
                            .as_deref()
                            .is_some_and(|e| e.contains("may have taken effect")) =>
                {
                    assert!(sent <= 1, "webhook calls for {row:#?}");
                    refused.push(row.idempotency_key.clone());
                }
                _ => panic!("unexpected outcome: {row:#?}"),
            }
        }
    }
    let repeated: Vec<_> = calls.iter().filter(|(_, n)| **n > 1).collect();
    let interrupted = match receiving {
        Receiving::AtMostOnce => {
            assert!(repeated.is_empty(), "webhook calls repeated: {repeated:?}");
            refused.len()
        }
        Receiving::Deduplicating => repeated.len(),
    };
    // Webhooks whose claim the survivor took over (sent again, or sent for the first time if
    // B died before sending).
    let taken_over = rows
        .iter()
        .filter(|r| r.action_kind == "webhook" && r.attempts > 1)
        .count();
    assert!(
        interrupted <= b_partitions.len(),
        "more interrupted webhooks than B had partitions in flight: {refused:?} {repeated:?}"
    );

    // The group's offsets reached the end of every partition.
    let offsets = support::reflex_process::committed_and_ends(
        &cluster.bootstrap,
        &cluster.name,
        &cluster.events,
        PARTITIONS,
    );
    for (partition, (committed, end)) in offsets.iter().enumerate() {
        assert_eq!(committed, end, "partition {partition}: {offsets:?}");
    }
    let total_end: i64 = offsets.iter().map(|(_, end)| end).sum();
    assert_eq!(total_end, i64::try_from(EVENTS).expect("small"));

    let duplicates = rows.iter().filter(|r| r.status == "duplicate").count();
    let b_rows = rows.iter().filter(|r| is_replica(r, "replica-b")).count();
    let first = resumed.values().min().copied().unwrap_or_default();
    let last = resumed.values().max().copied().unwrap_or_default();
    eprintln!(
        "replicas: A partitions {a_partitions:?}, B partitions {b_partitions:?}; B recorded \
         {b_rows} outcomes before SIGKILL; takeover: first of B's partitions resumed by A after \
         {first:?}, the last after {last:?} (per partition: {resumed:?}); all {EVENTS} events \
         settled {settled_after:?} after the kill; {duplicates} duplicate outcome(s), \
         {interrupted} webhook(s) interrupted by the kill ({receiving:?}: {}), {taken_over} \
         webhook claim(s) taken over",
        match receiving {
            Receiving::AtMostOnce => "not re-sent",
            Receiving::Deduplicating => "re-sent, deduplicated by the receiver",
        }
    );
    cluster.cleanup().await;
}
