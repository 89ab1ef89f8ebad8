//! What every fault test shares: a steady stream of events, the real `reflex run` on its own
//! topics, a webhook receiver that counts what it carried out, a readiness poller, and the
//! final accounting (every event has its final, published outcome; nothing ran twice).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use rdkafka::ClientConfig;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::support;
use crate::support::reflex_process::Reflex;

/// Partitions of the events topic: several partitions work at once, so a fault always lands
/// in the middle of some action.
pub const PARTITIONS: i32 = 4;

/// Bound on start-up (three services, each bounded at 15 s by `reflex run`, then a group join).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Bound on noticing a fault or a recovery on `/readyz`: the checks are bounded at 3 s, the
/// consumer notices a stuck partition at its first failed retry.
pub const NOTICE_TIMEOUT: Duration = Duration::from_secs(45);

/// Bound on every event being settled once the fault is over: the backlog of the outage, the
/// retry backoff (`retry_max_delay: 1s` in these configs) and a group rejoin, with room for a
/// loaded 2-core machine.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(90);

/// How often readiness is sampled.
const READINESS_PERIOD: Duration = Duration::from_millis(200);

// ---------------------------------------------------------------------------------------------
// The process under test.

/// `reflex run` on fresh topics (`<name>.events` with [`PARTITIONS`] partitions, `.outcomes`,
/// `.dead-letters`), with its readiness sampled from the start.
pub struct Running {
    /// Config, rules, log (and the SQLite store of the tests that use one); kept until the
    /// test ends.
    _dir: tempfile::TempDir,
    /// Brokers.
    pub bootstrap: String,
    /// Topic and group prefix.
    pub name: String,
    /// The process.
    pub reflex: Reflex,
    /// Its `/readyz`, sampled.
    pub readiness: Readiness,
}

impl Running {
    /// Creates the topics, writes the config (`store_url` plus `extra` sections) and the rule,
    /// starts the binary with `env` and waits until it is ready.
    pub async fn start(
        bootstrap: &str,
        dir: tempfile::TempDir,
        rule: &str,
        store_url: &str,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Running {
        let name = support::unique_name("faults");
        support::create_topic(bootstrap, &format!("{name}.events"), PARTITIONS).await;
        support::create_topic(bootstrap, &format!("{name}.outcomes"), 1).await;
        support::create_topic(bootstrap, &format!("{name}.dead-letters"), 1).await;
        let config = support::reflex_process::write_config(
            dir.path(),
            &name,
            rule,
            &format!("store:\n  url: {store_url}\n{extra}"),
        );
        // The store of the config file, never the shared PostgreSQL of the environment.
        let mut all = vec![("KAFKA_BOOTSTRAP_SERVERS", bootstrap), ("DATABASE_URL", "")];
        all.extend_from_slice(env);
        let reflex = Reflex::spawn(&config, dir.path().join("reflex.log"), &all);
        reflex.wait_readyz(200, READY_TIMEOUT).await;
        let readiness = Readiness::start(reflex.port());
        Running {
            _dir: dir,
            bootstrap: bootstrap.to_owned(),
            name,
            reflex,
            readiness,
        }
    }

    /// The events topic.
    pub fn events(&self) -> String {
        format!("{}.events", self.name)
    }

    /// Starts producing `total` events to the events topic.
    pub fn stream(&self, total: usize) -> Stream {
        Stream::start(&self.bootstrap, &self.events(), total)
    }

    /// A fault was injected at `since`: waits until `/readyz` reports it (503 naming
    /// `dependency`, or any 503 when `None`), keeps the fault for `hold`, ends it with `restore`,
    /// asserts that every answer in between said so too, and waits for 200 again.
    pub async fn outage(
        &self,
        since: Instant,
        dependency: Option<&str>,
        hold: Duration,
        restore: impl Future<Output = ()>,
    ) -> Outage {
        let unready = |s: &Sample| match dependency {
            Some(dependency) => s.unready_naming(dependency),
            None => s.status == Some(503),
        };
        let log = || self.reflex.log();
        let noticed = self
            .readiness
            .wait(
                "/readyz reports the fault",
                since,
                NOTICE_TIMEOUT,
                log,
                unready,
            )
            .await;
        tokio::time::sleep(hold).await;
        // The fault lasts until its repair BEGINS: a broker or server that is restarting may
        // already answer before `restore` returns, and an answer from then may rightly show a
        // later stage of recovery (e.g. the consumer rejoining its group) instead of the fault.
        let restoring = Instant::now();
        restore.await;
        let restored = Instant::now();
        // Asked and answered while the fault lasted.
        let during: Vec<_> = self
            .readiness
            .between(noticed.at, restoring)
            .into_iter()
            .filter(|s| s.answered < restoring)
            .collect();
        let lying: Vec<_> = during
            .iter()
            .filter(|s| s.status.is_some() && !unready(s))
            .collect();
        assert!(
            lying.is_empty(),
            "/readyz did not report {dependency:?} down while it was: {lying:#?}"
        );
        let ready = self
            .readiness
            .wait("/readyz ready again", restored, NOTICE_TIMEOUT, log, |s| {
                s.status == Some(200)
            })
            .await;
        Outage {
            noticed: noticed.at - since,
            failing: noticed.failing,
            unready_samples: during.len(),
            ready_after: ready.at - restored,
        }
    }

    /// Lets the stream end and waits until every event has a settled `kind` outcome.
    pub async fn settle(&self, stream: Stream, audit: &Audit, kind: &str) -> Vec<Row> {
        let events = stream.total;
        stream.finish().await;
        audit.settled(events, &[kind], || self.reflex.log()).await
    }

    /// The checks every fault ends with: [`account`] (nothing lost, nothing twice), no
    /// `failed` outcome, every outcome on the topic, a clean stop of the same process. Returns
    /// the figures as one line.
    pub async fn conclude(
        &mut self,
        rows: &[Row],
        kind: &str,
        effects: &BTreeMap<u64, usize>,
    ) -> String {
        let events = originals(rows).len();
        let figures = account(rows, kind, events, effects);
        let failed: Vec<_> = rows.iter().filter(|r| r.status == "failed").collect();
        assert!(failed.is_empty(), "outcomes recorded failed: {failed:#?}");
        let records = assert_published(&self.bootstrap, &self.name, rows).await;
        self.reflex.terminate();
        format!(
            "{events} events, outcomes {:?}, {} carried out, {} twice, {records} outcome \
             records; {}",
            figures.statuses,
            figures.effects,
            figures.executed_twice,
            retry_figures(&self.reflex.log())
        )
    }
}

/// How `/readyz` went through one fault.
#[derive(Debug)]
pub struct Outage {
    /// From the fault to the first 503 that reported it.
    pub noticed: Duration,
    /// The failing checks of that answer.
    pub failing: Vec<String>,
    /// Answers between that one and the end of the fault (all 503).
    pub unready_samples: usize,
    /// From the end of the fault to the first 200.
    pub ready_after: Duration,
}

impl std::fmt::Display for Outage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "/readyz 503 after {:?} ({:?}), unready on all {} samples of the fault, 200 again \
             {:?} after it ended",
            self.noticed, self.failing, self.unready_samples, self.ready_after
        )
    }
}

/// The `actions:` section of these tests: no circuit breaker (one rule acting on every event
/// is the point), webhooks to the test's receiver, Kubernetes only where a test asks.
pub fn actions_section(kubernetes: bool) -> String {
    format!(
        "actions:\n  kubernetes: {kubernetes}\n  webhook: true\n  kafka: false\n  timeout: 20s\n  \
         circuit:\n    max_per_rule: null\n    max_per_target: null\n"
    )
}

/// A rule calling the receiver once per event, with the event's number in the body.
pub fn webhook_rule(receiver: SocketAddr, extra_params: &str) -> String {
    format!(
        "rules:\n  - name: fault\n    actions:\n      - webhook:\n          \
         url: \"http://{receiver}/hook\"\n{extra_params}          body:\n            \
         n: \"{{{{ event.n }}}}\"\n            event: \"{{{{ meta.id }}}}\"\n"
    )
}

// ---------------------------------------------------------------------------------------------
// The stream of events.

/// Events produced per pacing step and the pause after each: ~20 events/s, so the stream is
/// still flowing while a fault is injected and removed.
const STEP: usize = 4;
const STEP_PAUSE: Duration = Duration::from_millis(200);

/// A background producer of `{"type":"fault","n":N}` records, round-robin over the partitions.
/// Its producer queues records while a broker is down and delivers them once it is back.
pub struct Stream {
    task: tokio::task::JoinHandle<()>,
    /// How many events it produces.
    pub total: usize,
}

impl Stream {
    fn start(bootstrap: &str, topic: &str, total: usize) -> Stream {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("message.timeout.ms", "120000")
            .create()
            .expect("producer");
        let topic = topic.to_owned();
        let task = tokio::spawn(async move {
            for start in (0..total).step_by(STEP) {
                for n in start..(start + STEP).min(total) {
                    let payload = format!(r#"{{"type":"fault","n":{n}}}"#);
                    let partition = i32::try_from(n).expect("small") % PARTITIONS;
                    producer
                        .send(
                            FutureRecord::to(&topic)
                                .partition(partition)
                                .key(&format!("k{n}"))
                                .payload(&payload),
                            Duration::from_secs(120),
                        )
                        .await
                        .unwrap_or_else(|(err, _)| panic!("produce to {topic}: {err}"));
                }
                tokio::time::sleep(STEP_PAUSE).await;
            }
        });
        Stream { task, total }
    }

    /// Waits for the last event to be acknowledged.
    pub async fn finish(self) {
        tokio::time::timeout(SETTLE_TIMEOUT, self.task)
            .await
            .expect("the stream was not produced in time")
            .expect("producer task");
    }
}

// ---------------------------------------------------------------------------------------------
// The webhook receiver.

/// Whether the receiver hangs on a delivery, given the event number and how many deliveries of
/// that key came before.
pub type HangPolicy = Arc<dyn Fn(u64, usize) -> bool + Send + Sync>;

#[derive(Clone)]
struct ReceiverState {
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    delay: Duration,
    hang: Option<(HangPolicy, Duration)>,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Its `Idempotency-Key` header.
    pub key: String,
    /// The event number in its body.
    pub n: u64,
    /// True when the receiver hung on it instead of carrying it out.
    pub hung: bool,
}

/// A real HTTP server standing for a webhook's target: each request it does not hang on is
/// "carried out" (counted as an effect), after `delay`, so actions are in flight when a fault
/// strikes.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
}

async fn receive(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("<none>")
        .to_owned();
    let n = body["n"].as_u64().unwrap_or(u64::MAX);
    let hang = {
        let mut deliveries = state.deliveries.lock().expect("deliveries lock");
        let earlier = deliveries.iter().filter(|d| d.key == key).count();
        let hung = state
            .hang
            .as_ref()
            .is_some_and(|(policy, _)| policy(n, earlier));
        deliveries.push(Delivery { key, n, hung });
        hung
    };
    match (&state.hang, hang) {
        (Some((_, how_long)), true) => {
            // A stuck receiver: it never carries this request out and answers (an error) only
            // long after the caller's timeout.
            tokio::time::sleep(*how_long).await;
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => {
            tokio::time::sleep(state.delay).await;
            StatusCode::OK
        }
    }
}

impl Receiver {
    /// Starts the receiver; `hang` says which deliveries it hangs on, and for how long.
    pub async fn start(delay: Duration, hang: Option<(HangPolicy, Duration)>) -> Receiver {
        let deliveries = Arc::new(Mutex::new(Vec::new()));
        let state = ReceiverState {
            deliveries: Arc::clone(&deliveries),
            delay,
            hang,
        };
        let app = axum::Router::new().fallback(receive).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the webhook receiver");
        let addr = listener.local_addr().expect("receiver address");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("webhook receiver");
        });
        Receiver { addr, deliveries }
    }

    /// Waits until `count` events were carried out (the stream is flowing).
    pub async fn wait_effects(&self, count: usize) {
        support::eventually("webhooks carried out", SETTLE_TIMEOUT, || async {
            (self.effects().len() >= count).then_some(())
        })
        .await;
    }

    /// Every request so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().expect("deliveries lock").clone()
    }

    /// Requests carried out (not hung on), per event number.
    pub fn effects(&self) -> BTreeMap<u64, usize> {
        let mut effects = BTreeMap::new();
        for delivery in self.deliveries().iter().filter(|d| !d.hung) {
            *effects.entry(delivery.n).or_default() += 1;
        }
        effects
    }
}

// ---------------------------------------------------------------------------------------------
// Readiness.

/// One `/readyz` answer.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it was asked.
    pub at: Instant,
    /// When the answer came (a check may take 3 s: an answer to a question asked during a
    /// fault can describe the state after it).
    pub answered: Instant,
    /// HTTP status; `None` when the server did not answer.
    pub status: Option<u16>,
    /// The failing checks, as `dependency: error`.
    pub failing: Vec<String>,
}

impl Sample {
    /// True when this answer is 503 naming `dependency` among the failing checks.
    pub fn unready_naming(&self, dependency: &str) -> bool {
        self.status == Some(503)
            && self
                .failing
                .iter()
                .any(|f| f.starts_with(&format!("{dependency}:")))
    }
}

/// Samples `/readyz` every [`READINESS_PERIOD`] until dropped.
pub struct Readiness {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: CancellationToken,
}

impl Readiness {
    fn start(port: u16) -> Readiness {
        support::install_crypto_provider();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (into, token) = (Arc::clone(&samples), stop.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client");
            let url = format!("http://127.0.0.1:{port}/readyz");
            while !token.is_cancelled() {
                let at = Instant::now();
                let (status, failing) = match client.get(&url).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let body: Value = response.json().await.unwrap_or_default();
                        let failing = body["checks"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter(|c| c["ok"] == false)
                            .map(|c| {
                                format!(
                                    "{}: {}",
                                    c["dependency"].as_str().unwrap_or("?"),
                                    c["error"].as_str().unwrap_or_default()
                                )
                            })
                            .collect();
                        (Some(status), failing)
                    }
                    Err(_) => (None, Vec::new()),
                };
                into.lock().expect("samples lock").push(Sample {
                    at,
                    answered: Instant::now(),
                    status,
                    failing,
                });
                tokio::time::sleep(READINESS_PERIOD).await;
            }
        });
        Readiness { samples, stop }
    }

    /// Every sample so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().expect("samples lock").clone()
    }

    /// Waits for the first sample taken at or after `since` that satisfies `want`; returns it.
    /// Fails with `what`, the samples and `log` after `limit`.
    pub async fn wait(
        &self,
        what: &str,
        since: Instant,
        limit: Duration,
        log: impl Fn() -> String,
        want: impl Fn(&Sample) -> bool,
    ) -> Sample {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(found) = self
                .samples()
                .into_iter()
                .find(|s| s.at >= since && want(s))
            {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {limit:?}; samples since: {:#?}\nreflex log:\n{}",
                self.samples()
                    .into_iter()
                    .filter(|s| s.at >= since)
                    .collect::<Vec<_>>(),
                log()
            );
            tokio::time::sleep(READINESS_PERIOD).await;
        }
    }

    /// Samples taken in `[from, to)`.
    pub fn between(&self, from: Instant, to: Instant) -> Vec<Sample> {
        self.samples()
            .into_iter()
            .filter(|s| s.at >= from && s.at < to)
            .collect()
    }
}

impl Drop for Readiness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

// ---------------------------------------------------------------------------------------------
// The audit store and the accounting.

/// One row of the audit store, as these tests read it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    pub event_id: String,
    pub action_kind: String,
    pub idempotency_key: String,
    pub status: String,
    pub error: Option<String>,
    pub details: String,
    pub published: bool,
}

impl Row {
    /// The event number the action's rendered parameters carry (webhook body `n`, or a
    /// `n-<N>` label of a created object).
    pub fn n(&self) -> Option<u64> {
        let details: Value = serde_json::from_str(&self.details).ok()?;
        let params = &details["params"];
        params["body"]["n"].as_u64().or_else(|| {
            params["manifest"]["metadata"]["labels"][LABEL]
                .as_str()?
                .strip_prefix("n-")?
                .parse()
                .ok()
        })
    }
}

/// The label carrying the event number on objects the rules create.
pub const LABEL: &str = "reflex-fault";

const ROWS: &str = "SELECT event_id, action_kind, idempotency_key, status, error, \
                    CAST(details AS TEXT) AS details, \
                    published_at IS NOT NULL AS published FROM outcomes ORDER BY id";

/// The audit store a test reads (the one `reflex run` writes).
pub enum Audit {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Audit {
    /// The SQLite store at `path` (opened once `reflex run` created it).
    pub async fn sqlite(path: &Path) -> Audit {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .read_only(true);
        Audit::Sqlite(
            sqlx::SqlitePool::connect_with(options)
                .await
                .expect("open the audit store"),
        )
    }

    /// A PostgreSQL store.
    pub async fn postgres(url: &str) -> Audit {
        Audit::Postgres(
            sqlx::PgPool::connect(url)
                .await
                .expect("connect to the audit store"),
        )
    }

    /// Every outcome row; an error while the store is faulted.
    pub async fn try_rows(&self) -> Result<Vec<Row>, sqlx::Error> {
        match self {
            Audit::Sqlite(pool) => sqlx::query_as(ROWS).fetch_all(pool).await,
            Audit::Postgres(pool) => sqlx::query_as(ROWS).fetch_all(pool).await,
        }
    }

    /// Waits until every one of `events` events has a final, published row for each of
    /// `kinds` (and every duplicate row is published too); returns the rows.
    pub async fn settled(
        &self,
        events: usize,
        kinds: &[&str],
        log: impl Fn() -> String,
    ) -> Vec<Row> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let rows = self.try_rows().await.unwrap_or_default();
            if is_settled(&rows, events, kinds) {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "not every event settled within {SETTLE_TIMEOUT:?}: {} rows, {} events with rows, \
                 unsettled: {:#?}\nreflex log:\n{}",
                rows.len(),
                originals(&rows).len(),
                rows.iter()
                    .filter(|r| r.status == "started" || !r.published)
                    .collect::<Vec<_>>(),
                log()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Original (non-duplicate) rows per event id.
pub fn originals(rows: &[Row]) -> BTreeMap<&str, Vec<&Row>> {
    let mut events: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.status != "duplicate") {
        events.entry(&row.event_id).or_default().push(row);
    }
    events
}

fn is_settled(rows: &[Row], events: usize, kinds: &[&str]) -> bool {
    let by_event = originals(rows);
    by_event.len() == events
        && by_event
            .values()
            .all(|actions| actions.len() == kinds.len())
        && rows.iter().all(|r| r.status != "started" && r.published)
}

/// What a fault test measured, for its report line and docs/operations.md.
#[derive(Debug, Default)]
pub struct Figures {
    pub statuses: BTreeMap<String, usize>,
    pub effects: usize,
    pub executed_twice: usize,
}

/// The final accounting for one action kind: every event has exactly one original row of
/// `kind` (plus any duplicates), with one row per event number; the receiving end carried out
/// each succeeded action exactly once, each other one at most once (`failed` after a possible
/// effect), and nothing it carried out lacks a row. Returns the figures; panics with the rows
/// otherwise.
pub fn account(rows: &[Row], kind: &str, events: usize, effects: &BTreeMap<u64, usize>) -> Figures {
    let mut figures = Figures::default();
    let mut numbers = BTreeSet::new();
    for row in rows.iter().filter(|r| r.action_kind == kind) {
        *figures.statuses.entry(row.status.clone()).or_default() += 1;
        if row.status == "duplicate" {
            continue;
        }
        let n = row
            .n()
            .unwrap_or_else(|| panic!("no event number in {row:#?}"));
        assert!(
            numbers.insert(n),
            "two original `{kind}` rows for event {n}"
        );
        let done = effects.get(&n).copied().unwrap_or(0);
        match row.status.as_str() {
            "succeeded" => assert_eq!(done, 1, "event {n}: carried out {done} time(s): {row:#?}"),
            "failed" => assert!(done <= 1, "event {n}: carried out {done} times: {row:#?}"),
            other => panic!("event {n}: unexpected status {other}: {row:#?}"),
        }
    }
    let expected: BTreeSet<u64> = (0..u64::try_from(events).expect("small")).collect();
    assert_eq!(numbers, expected, "`{kind}` rows do not cover every event");
    let unrecorded: Vec<_> = effects.keys().filter(|n| !numbers.contains(n)).collect();
    assert!(
        unrecorded.is_empty(),
        "carried out without a row: {unrecorded:?}"
    );
    figures.effects = effects.values().sum();
    figures.executed_twice = effects.values().filter(|c| **c > 1).count();
    figures
}

/// Reads the outcomes topic from its start until every final original row's key is there with
/// the same status; duplicate records of a key must repeat that status.
pub async fn assert_published(bootstrap: &str, name: &str, rows: &[Row]) -> usize {
    let wanted: BTreeMap<&str, &str> = rows
        .iter()
        .filter(|r| r.status != "duplicate")
        .map(|r| (r.idempotency_key.as_str(), r.status.as_str()))
        .collect();
    let consumer = support::topic_reader(bootstrap, &format!("{name}.outcomes"));
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut records = 0;
    while wanted.keys().any(|k| !seen.contains_key(*k)) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "outcome records missing from {name}.outcomes: {:?}",
            wanted
                .keys()
                .filter(|k| !seen.contains_key(**k))
                .collect::<Vec<_>>()
        );
        if let Ok(Ok(message)) = tokio::time::timeout(left, consumer.recv()).await {
            records += 1;
            let value: Value = serde_json::from_slice(message.payload().unwrap_or_default())
                .expect("outcome records are JSON");
            let key = value["data"]["idempotency_key"]
                .as_str()
                .unwrap_or_default();
            let status = value["data"]["status"].as_str().unwrap_or_default();
            if let Some(want) = wanted.get(key) {
                assert_eq!(status, *want, "outcome record of {key}: {value}");
                seen.insert(key.to_owned(), status.to_owned());
            }
        }
    }
    records
}

/// What the process logged about retried records: how many retries, how many of them waited
/// to record an action that had already run, how many waited for an unreachable service.
pub fn retry_figures(log: &str) -> String {
    let retries: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("handling a record failed; retrying it"))
        .collect();
    let executed = retries
        .iter()
        .filter(|l| l.contains("recorded on the retry"))
        .count();
    let unreachable = retries
        .iter()
        .filter(|l| l.contains("the record is retried"))
        .count();
    format!(
        "{} record retries ({executed} recording an executed action, {unreachable} waiting for \
         an unreachable service)",
        retries.len()
    )
}
