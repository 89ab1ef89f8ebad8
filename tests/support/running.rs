//! For the HTTP-facing tests (`processes` tier: ingest, reload): a config on unique topics with
//! a SQLite store in a temp dir, a `reflex run` process (see [`super::reflex_process`]) with an
//! HTTP client, and reading a topic from its start.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::consumer::StreamConsumer;
use rdkafka::message::BorrowedMessage;

use crate::support;
use crate::support::reflex_process::Reflex as Process;

/// How long the binary may take to become ready: start-up connects to three services, each
/// bounded at 15 s by `reflex run` itself, then the consumer joins its group.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Bound on waiting for records on a topic (a group join and the pipeline's work).
pub const RECORD_TIMEOUT: Duration = Duration::from_secs(60);

/// Unique topics and a temp dir holding the config, rules and store of one process.
pub struct Setup {
    /// Holds config, rules, store and log.
    pub dir: tempfile::TempDir,
    /// The Kafka bootstrap servers.
    pub bootstrap: String,
    /// The consumed topic (also where ingest writes).
    pub events: String,
    /// The outcomes topic.
    pub outcomes: String,
    /// The rules directory.
    pub rules: PathBuf,
}

impl Setup {
    /// Creates the topics and the rules directory.
    pub async fn new(prefix: &str) -> Setup {
        let bootstrap = support::require_kafka().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let name = support::unique_name(prefix);
        let events = format!("{name}.events");
        let outcomes = format!("{name}.outcomes");
        for topic in [&events, &outcomes, &format!("{name}.dead-letters")] {
            support::create_topic(&bootstrap, topic, 1).await;
        }
        let rules = dir.path().join("rules");
        std::fs::create_dir_all(&rules).expect("rules dir");
        Setup {
            dir,
            bootstrap,
            events,
            outcomes,
            rules,
        }
    }

    /// Writes the config: this setup's topics and store, plus `extra` YAML (whole top-level
    /// sections such as `server:`).
    pub fn write_config(&self, rules_dir: &Path, extra: &str) -> PathBuf {
        let name = self.events.trim_end_matches(".events");
        let path = self.dir.path().join("config.yaml");
        let text = format!(
            "kafka:\n  topics:\n    events: [{events}]\n    outcomes: {outcomes}\n    \
             dead_letters: {name}.dead-letters\n    group_id: {name}\n\
             store:\n  url: sqlite://{store}\n\
             consumer:\n  drain_timeout: 2s\n  commit_interval: 200ms\n\
             {extra}",
            events = self.events,
            outcomes = self.outcomes,
            store = self.dir.path().join("audit.db").display(),
        );
        let text = format!("{text}rules:\n  dir: {}\n", rules_dir.display());
        std::fs::write(&path, text).expect("write config");
        path
    }
}

/// A running `reflex run` (killed when dropped) and an HTTP client for it.
pub struct Reflex {
    /// The process.
    pub process: Process,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// An HTTP client with a bounded timeout.
    pub http: reqwest::Client,
}

impl Reflex {
    /// Starts the binary with `config`, Kafka from the environment and the config's SQLite
    /// store; `envs` adds variables.
    pub fn start(setup: &Setup, config: &Path, envs: &[(&str, &str)]) -> Reflex {
        // The SQLite store of the config file, not a shared PostgreSQL.
        let mut all = vec![
            ("KAFKA_BOOTSTRAP_SERVERS", setup.bootstrap.as_str()),
            ("DATABASE_URL", ""),
        ];
        all.extend_from_slice(envs);
        let process = Process::spawn(config, setup.dir.path().join("reflex.log"), &all);
        Reflex {
            base: format!("http://127.0.0.1:{}", process.port()),
            process,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("HTTP client"),
        }
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Waits until `/readyz` answers 200; fails with the log otherwise.
    pub async fn wait_ready(&self) {
        self.process.wait_readyz(200, READY_TIMEOUT).await;
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GETs `path` and returns the body as text.
    pub async fn get_text(&self, path: &str) -> String {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("body")
    }

    /// GETs `path` as JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        serde_json::from_str(&self.get_text(path).await).expect("JSON body")
    }
}

/// A consumer reading `topic` from its start, in its own group.
pub fn reader(bootstrap: &str, topic: &str) -> StreamConsumer {
    support::topic_reader(bootstrap, topic)
}

/// Reads records with `consumer` and hands each to `take` until it returns true; fails after
/// [`RECORD_TIMEOUT`] naming `what`, with `log` for context.
pub async fn read_until(
    consumer: &StreamConsumer,
    what: &str,
    log: impl Fn() -> String,
    mut take: impl FnMut(&BorrowedMessage<'_>) -> bool,
) {
    let deadline = Instant::now() + RECORD_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "{what}: not seen within {RECORD_TIMEOUT:?}; reflex log:\n{}",
            log()
        );
        if let Ok(Ok(message)) = tokio::time::timeout(left, consumer.recv()).await
            && take(&message)
        {
            return;
        }
    }
}

/// The JSON value of a record (Null when it is not JSON).
pub fn json_of(message: &BorrowedMessage<'_>) -> serde_json::Value {
    use rdkafka::Message as _;
    serde_json::from_slice(message.payload().unwrap_or_default()).unwrap_or_default()
}
