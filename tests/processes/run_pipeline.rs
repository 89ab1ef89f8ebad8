//! `reflex run` end to end as a real process: events of several formats in, one outcome per
//! planned action on the outcomes topic, poison records on the dead-letter topic; a SIGTERM
//! commits and a restart does not repeat anything; a `kill -9` mid-stream and a restart leave
//! exactly one succeeded outcome per planned action. Each test has its own topics, group and
//! SQLite store.
//!
//! Run: `scripts/services up && eval "$(scripts/services env)" && cargo test --features services --test processes run_pipeline::`

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};

/// Bound on waiting for outcomes: start-up (three services), a group join, and the records.
const OUTCOME_TIMEOUT: Duration = Duration::from_secs(90);

/// How long a clean shutdown may take after SIGTERM: the drain timeout (2 s in these configs)
/// plus the final commit and leaving the group.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// The event formats the decoders know, as produced by real sources.
const ALERTMANAGER: &str = include_str!("../data/events/alertmanager-webhook.json");
const KUBERNETES_EVENT: &str = include_str!("../data/events/kubernetes-event.json");
const FALCO: &str = include_str!("../data/events/falco-event.json");
const CLOUDEVENT: &str = include_str!("../data/events/cloudevent-structured.json");

struct Setup {
    dir: tempfile::TempDir,
    bootstrap: String,
    events: String,
    outcomes: String,
    dead_letters: String,
    config: PathBuf,
}

async fn setup(rule_name: &str) -> Setup {
    let bootstrap = support::require_kafka().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let name = support::unique_name("run");
    let events = format!("{name}.events");
    let outcomes = format!("{name}.outcomes");
    let dead_letters = format!("{name}.dead-letters");
    support::create_topic(&bootstrap, &events, 3).await;
    support::create_topic(&bootstrap, &outcomes, 1).await;
    support::create_topic(&bootstrap, &dead_letters, 1).await;
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    std::fs::write(
        rules.join("log.yaml"),
        format!(
            "rules:\n  - name: {rule_name}\n    actions:\n      - log:\n          \
             message: \"{{{{ meta.format }}}} {{{{ meta.id }}}}\"\n"
        ),
    )
    .expect("write rule");
    let config = dir.path().join("config.yaml");
    // A short claim lease: after a kill -9, the dead process's in-flight claims are taken over
    // once it expires (60 s by default), and the retries waiting on them are at most 1 s apart.
    std::fs::write(
        &config,
        format!(
            "kafka:\n  client:\n    session.timeout.ms: '6000'\n  topics:\n    events: [{events}]\n    \
             outcomes: {outcomes}\n    dead_letters: {dead_letters}\n    group_id: {name}\n\
             store:\n  url: sqlite://{}\n\
             rules:\n  dir: {}\n\
             consumer:\n  drain_timeout: 2s\n  commit_interval: 200ms\n  retry_max_delay: 1s\n\
             pipeline:\n  claim_lease_secs: 3\n\
             actions:\n  timeout: 2s\n",
            dir.path().join("audit.db").display(),
            rules.display()
        ),
    )
    .expect("write config");
    Setup {
        dir,
        bootstrap,
        events,
        outcomes,
        dead_letters,
        config,
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

impl Setup {
    fn log(&self, run: usize) -> PathBuf {
        self.dir.path().join(format!("reflex-{run}.log"))
    }

    fn spawn(&self, run: usize) -> Child {
        let log = std::fs::File::create(self.log(run)).expect("create log file");
        Command::new(env!("CARGO_BIN_EXE_reflex"))
            .args(["run", "--config"])
            .arg(&self.config)
            .args(["--listen", &format!("127.0.0.1:{}", free_port())])
            .env("RUST_LOG", "info")
            .env("KAFKA_BOOTSTRAP_SERVERS", &self.bootstrap)
            .env("KUBECONFIG", support::kubeconfig())
            // The SQLite store of the config file, not a shared PostgreSQL.
            .env("DATABASE_URL", "")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("start the reflex binary")
    }

    fn read_log(&self, run: usize) -> String {
        std::fs::read_to_string(self.log(run)).unwrap_or_default()
    }

    fn producer(&self) -> FutureProducer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("message.timeout.ms", "10000")
            .create()
            .expect("producer")
    }

    /// Reads every record of `topic` (from the start) until `done` accepts them all, or fails
    /// after [`OUTCOME_TIMEOUT`] printing the process logs.
    async fn read_until(
        &self,
        topic: &str,
        runs: usize,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let consumer = support::topic_reader(&self.bootstrap, topic);
        let deadline = Instant::now() + OUTCOME_TIMEOUT;
        let mut values = Vec::new();
        while !done(&values) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let logs: String = (0..runs).map(|run| self.read_log(run)).collect();
                panic!(
                    "{topic}: condition not met within {OUTCOME_TIMEOUT:?}; read {} records: \
                     {values:#?}\nreflex logs:\n{logs}",
                    values.len()
                );
            }
            if let Ok(Ok(message)) = tokio::time::timeout(left, consumer.recv()).await {
                let payload = message.payload().unwrap_or_default();
                values.push(
                    serde_json::from_slice(payload)
                        .unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(payload) })),
                );
            }
        }
        values
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("poll child") {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} failed");
}

/// Sends SIGTERM and expects a clean exit.
fn terminate(setup: &Setup, child: &mut Child, run: usize) {
    signal(child, "-TERM");
    let Some(status) = wait_exit(child, EXIT_TIMEOUT) else {
        let _ = child.kill();
        panic!(
            "reflex did not exit within {EXIT_TIMEOUT:?} of SIGTERM; log:\n{}",
            setup.read_log(run)
        );
    };
    let log = setup.read_log(run);
    assert!(status.success(), "exit status {status}; log:\n{log}");
    assert!(
        log.contains("consumer drained and committed"),
        "log:\n{log}"
    );
    assert!(log.contains("stopped cleanly"), "log:\n{log}");
}

async fn send(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    payload: &str,
    headers: Option<OwnedHeaders>,
) {
    let mut record = FutureRecord::to(topic).key(key).payload(payload);
    if let Some(headers) = headers {
        record = record.headers(headers);
    }
    producer
        .send(record, Duration::from_secs(10))
        .await
        .unwrap_or_else(|(err, _)| panic!("produce to {topic}: {err}"));
}

fn binary_cloudevent(id: &str) -> OwnedHeaders {
    [
        ("ce_specversion", "1.0"),
        ("ce_type", "dev.reflex.test"),
        ("ce_source", "/tests/run_pipeline"),
        ("ce_id", id),
        ("content-type", "application/json"),
    ]
    .into_iter()
    .fold(OwnedHeaders::new(), |headers, (key, value)| {
        headers.insert(Header {
            key,
            value: Some(value),
        })
    })
}

/// The outcome records' `data` of the given status, keyed by idempotency key with a count.
fn keys_with_status(outcomes: &[Value], status: &str) -> BTreeMap<String, usize> {
    let mut keys = BTreeMap::new();
    for outcome in outcomes {
        if outcome["data"]["status"] == status {
            let key = outcome["data"]["idempotency_key"]
                .as_str()
                .unwrap_or_else(|| panic!("outcome without an idempotency key: {outcome}"))
                .to_owned();
            *keys.entry(key).or_insert(0) += 1;
        }
    }
    keys
}

fn count_status(outcomes: &[Value], status: &str) -> usize {
    outcomes
        .iter()
        .filter(|o| o["data"]["status"] == status)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_every_format_become_outcomes_and_a_restart_repeats_nothing() {
    let setup = setup("log-all").await;
    let producer = setup.producer();
    // One outcome each: the Alertmanager sample has a firing and a resolved alert, and rules
    // select firing alerts by default.
    send(
        &producer,
        &setup.events,
        "plain",
        r#"{"type":"plain","n":1}"#,
        None,
    )
    .await;
    send(&producer, &setup.events, "ce", CLOUDEVENT, None).await;
    send(
        &producer,
        &setup.events,
        "ce-binary",
        r#"{"replicas":3}"#,
        Some(binary_cloudevent("binary-1")),
    )
    .await;
    send(&producer, &setup.events, "am", ALERTMANAGER, None).await;
    send(&producer, &setup.events, "k8s", KUBERNETES_EVENT, None).await;
    send(&producer, &setup.events, "falco", FALCO, None).await;
    send(&producer, &setup.events, "poison", "{not json", None).await;
    let first_batch = 6;

    let mut child = setup.spawn(0);
    let outcomes = setup
        .read_until(&setup.outcomes, 1, |o| o.len() >= first_batch)
        .await;
    let formats: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| o["data"]["details"]["params"]["message"].as_str())
        .filter_map(|m| m.split(' ').next())
        .collect();
    for format in [
        "json",
        "cloudevents",
        "alertmanager",
        "kubernetes_event",
        "falco",
    ] {
        assert!(
            formats.contains(&format),
            "no outcome for format {format}: {formats:?}\n{outcomes:#?}"
        );
    }
    let dead = setup
        .read_until(&setup.dead_letters, 1, |d| !d.is_empty())
        .await;
    assert_eq!(dead[0]["raw"], "{not json", "{dead:?}");
    terminate(&setup, &mut child, 0);

    // A restart resumes after the committed offsets: nothing is evaluated again.
    let mut child = setup.spawn(1);
    for i in 0..3 {
        send(
            &producer,
            &setup.events,
            &format!("second-{i}"),
            &format!(r#"{{"type":"second","n":{i}}}"#),
            None,
        )
        .await;
    }
    let outcomes = setup
        .read_until(&setup.outcomes, 2, |o| o.len() >= first_batch + 3)
        .await;
    // Let a wrongly rewound consumer show its extra outcomes before checking.
    tokio::time::sleep(Duration::from_secs(2)).await;
    terminate(&setup, &mut child, 1);
    let outcomes = setup
        .read_until(&setup.outcomes, 2, |o| o.len() >= outcomes.len())
        .await;
    assert_eq!(outcomes.len(), first_batch + 3, "{outcomes:#?}");
    let succeeded = keys_with_status(&outcomes, "succeeded");
    assert_eq!(succeeded.len(), first_batch + 3, "{outcomes:#?}");
    assert!(
        succeeded.values().all(|n| *n == 1),
        "an action succeeded twice: {succeeded:?}"
    );
    assert_eq!(count_status(&outcomes, "duplicate"), 0, "{outcomes:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_restarts_and_every_action_succeeds_exactly_once() {
    let setup = setup("log-crash").await;
    let producer = setup.producer();
    let total = 600;
    for i in 0..total {
        send(
            &producer,
            &setup.events,
            &format!("k{}", i % 17),
            &format!(r#"{{"type":"crash","n":{i}}}"#),
            None,
        )
        .await;
    }

    let mut child = setup.spawn(0);
    // Kill it once it is part-way through.
    let partial = setup
        .read_until(&setup.outcomes, 1, |o| o.len() >= 50)
        .await;
    signal(&child, "-KILL");
    wait_exit(&mut child, EXIT_TIMEOUT).expect("a killed process exits");
    assert!(
        partial.len() < total,
        "the process finished before it was killed; raise `total`"
    );

    let mut child = setup.spawn(1);
    let outcomes = setup
        .read_until(&setup.outcomes, 2, |o| {
            keys_with_status(o, "succeeded").len() >= total
        })
        .await;
    terminate(&setup, &mut child, 1);

    // The outcomes topic is at-least-once: an outcome whose publication was not yet marked in
    // the store when the process died is published again, as the same record (same CloudEvents
    // `id`, same attempt). Two *different* succeeded records for one key would be a second
    // execution.
    let mut successes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for outcome in outcomes
        .iter()
        .filter(|o| o["data"]["status"] == "succeeded")
    {
        let key = outcome["data"]["idempotency_key"].as_str().expect("key");
        let identity = format!(
            "{} {} {}",
            outcome["id"], outcome["data"]["started_at"], outcome["data"]["attempts"]
        );
        successes
            .entry(key.to_owned())
            .or_default()
            .insert(identity);
    }
    assert_eq!(successes.len(), total);
    let twice: Vec<_> = successes.iter().filter(|(_, s)| s.len() > 1).collect();
    assert!(twice.is_empty(), "actions that succeeded twice: {twice:#?}");
    assert_eq!(count_status(&outcomes, "failed"), 0, "{outcomes:#?}");

    // The audit store has exactly one succeeded row per event, every one published.
    let url = format!("sqlite://{}", setup.dir.path().join("audit.db").display());
    let pool = sqlx::SqlitePool::connect(&url)
        .await
        .expect("open the audit store");
    let (rows, events, unpublished): (i64, i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT event_id), \
         COALESCE(SUM(CASE WHEN published_at IS NULL THEN 1 ELSE 0 END), 0) \
         FROM outcomes WHERE status = 'succeeded'",
    )
    .fetch_one(&pool)
    .await
    .expect("count outcomes");
    pool.close().await;
    assert_eq!((rows, events, unpublished), (total as i64, total as i64, 0));
    let republished = outcomes.len() - count_status(&outcomes, "duplicate") - total;
    eprintln!(
        "crash test: {} outcomes before the kill; after the restart {} duplicate(s) and {} \
         republished outcome(s)",
        partial.len(),
        count_status(&outcomes, "duplicate"),
        republished
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_json_record_near_one_megabyte_is_dead_lettered_and_its_partition_moves_on() {
    let setup = setup("log-after-poison").await;
    // librdkafka's default `message.max.bytes` (1,000,000) would refuse the record here already.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &setup.bootstrap)
        .set("message.timeout.ms", "10000")
        .set("message.max.bytes", "2000000")
        .create()
        .expect("producer");
    // Under the decode limit (1 MiB) and the broker's (1,048,588 bytes), so it is consumed
    // and dead-lettered as `not_json`; the copy plus Reflex's headers is over 1,000,000 bytes.
    let poison = "x".repeat(1_020_000);
    // One key: both records on the same partition, the second behind the poison one.
    send(&producer, &setup.events, "one-key", &poison, None).await;
    send(
        &producer,
        &setup.events,
        "one-key",
        r#"{"type":"after"}"#,
        None,
    )
    .await;

    let mut child = setup.spawn(0);
    setup
        .read_until(&setup.outcomes, 1, |o| !o.is_empty())
        .await;
    let reader = support::topic_reader(&setup.bootstrap, &setup.dead_letters);
    let letter = tokio::time::timeout(OUTCOME_TIMEOUT, reader.recv())
        .await
        .unwrap_or_else(|_| panic!("no dead letter; log:\n{}", setup.read_log(0)))
        .expect("read the dead-letter topic")
        .detach();
    terminate(&setup, &mut child, 0);
    let headers = support::header_map(&letter);
    assert_eq!(headers["reflex-dlq-reason"], "not_json", "{headers:?}");
    assert_eq!(headers["reflex-source-topic"], setup.events);
    assert_eq!(headers["reflex-source-offset"], "0");
    assert_eq!(
        letter.payload(),
        Some(poison.as_bytes()),
        "the whole value is kept when it is within the decode limit"
    );
    assert_eq!(letter.key(), Some(&b"one-key"[..]));
}

#[test]
fn the_shared_rule_text_is_valid() {
    // Guards the inline rule of `setup` against rule-language changes with a clear message.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log.yaml");
    std::fs::write(
        &path,
        "rules:\n  - name: r\n    actions:\n      - log:\n          \
         message: \"{{ meta.format }} {{ meta.id }}\"\n",
    )
    .expect("write");
    reflex::rules::load_dir(Path::new(&path)).expect("the test rule is valid");
}

#[test]
fn reflex_run_with_invalid_rules_prints_every_problem_and_exits_non_zero() {
    // Rules are checked before any service is contacted, so this needs none.
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rules-invalid");
    let output = Command::new(env!("CARGO_BIN_EXE_reflex"))
        .args(["run", "--rules"])
        .arg(&rules)
        .env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
        .stdin(Stdio::null())
        .output()
        .expect("run the reflex binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "must fail; stderr:\n{stderr}");
    // One line per problem, each with file:line:column, then the summary.
    for file in [
        "a-unknown-field.yaml",
        "b-semantic.yaml",
        "c-unknown-action.yaml",
        "d-wrong-type.yaml",
        "e-malformed.yaml",
    ] {
        assert!(
            stderr.contains(file),
            "no problem reported in {file}:\n{stderr}"
        );
    }
    assert!(stderr.contains("did you mean `restart`?"), "{stderr}");
    assert!(
        stderr.contains("9 problem(s) in the rules under"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("cannot reach Kafka"),
        "rules come first:\n{stderr}"
    );
}
