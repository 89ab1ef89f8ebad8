//! Shared fixtures of the pipeline tests: a capture of `log` executions, per-test stores and
//! topics, owned records, and small helpers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use reflex::config::{PipelineConfig, TopicsConfig};
use reflex::event::decode::RawRecord;
use reflex::pipeline::{Error, Handled, Pipeline};
use reflex::rules::RuleSet;
use reflex::store::history::HistoryFilter;
use reflex::store::{OutcomeRecord, OutcomeStatus, Store};
use serde_json::Value;
use sqlx::Connection;
use tracing_subscriber::layer::SubscriberExt;

/// Bound on one Kafka operation or one `handle` call: a delivery to a local broker takes
/// milliseconds, topic creation and a first metadata fetch a few seconds; 30 s leaves room on a
/// loaded CI machine while a stopped broker still fails the test in bounded time.
pub(crate) const OP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long to wait for a message that must NOT arrive (after the expected ones did).
pub(crate) const QUIET_PERIOD: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------------
// Counting `log` executions: the executor emits one tracing event per execution.

pub(crate) type Logged = Arc<Mutex<Vec<String>>>;

/// The `log` executions, and every event of every level with all its fields (`name=value`).
pub(crate) struct Capture {
    executions: Logged,
    everything: Logged,
}

/// Writes every field of an event as `name=value`.
struct AllFields<'a>(&'a mut String);

impl tracing::field::Visit for AllFields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

pub(crate) struct MessageVisitor<'a>(&'a mut String);

impl tracing::field::Visit for MessageVisitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            *self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if event.metadata().target() == "reflex::actions::log" {
            let mut message = String::new();
            event.record(&mut MessageVisitor(&mut message));
            self.executions.lock().expect("capture lock").push(message);
        }
        let mut line = format!("{} {}", event.metadata().level(), event.metadata().target());
        event.record(&mut AllFields(&mut line));
        self.everything.lock().expect("capture lock").push(line);
    }
}

/// The captures, installed once as the global subscriber of this test binary.
fn captures() -> &'static (Logged, Logged) {
    static CAPTURES: OnceLock<(Logged, Logged)> = OnceLock::new();
    CAPTURES.get_or_init(|| {
        let (executions, everything) = (Logged::default(), Logged::default());
        let subscriber = tracing_subscriber::registry().with(Capture {
            executions: Arc::clone(&executions),
            everything: Arc::clone(&everything),
        });
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in this test binary");
        (executions, everything)
    })
}

/// Every message the `log` executor emitted in this test process.
pub(crate) fn logged() -> Logged {
    captures().0.clone()
}

/// Every event logged in this test process so far, all levels, one line each with its fields.
pub(crate) fn all_log_lines() -> Vec<String> {
    captures().1.lock().expect("capture lock").clone()
}

/// How many `log` executions carried `token` in their message.
pub(crate) fn executions(token: &str) -> usize {
    logged()
        .lock()
        .expect("capture lock")
        .iter()
        .filter(|m| m.contains(token))
        .count()
}

// ---------------------------------------------------------------------------------------------
// Stores: a SQLite file in a temporary directory, or a fresh PostgreSQL database.

pub(crate) enum Db {
    Sqlite {
        _dir: tempfile::TempDir,
        url: String,
    },
    Postgres {
        admin_url: String,
        database: String,
        url: String,
    },
}

impl Db {
    pub(crate) async fn sqlite() -> Db {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("audit.db").display());
        Db::Sqlite { _dir: dir, url }
    }

    pub(crate) async fn postgres() -> Db {
        let admin_url = crate::support::database_url();
        let mut admin = pg_admin(&admin_url).await;
        let database = crate::support::unique_name("pipeline").replace('-', "_");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let url = with_database(&admin_url, &database);
        Db::Postgres {
            admin_url,
            database,
            url,
        }
    }

    pub(crate) fn url(&self) -> &str {
        match self {
            Db::Sqlite { url, .. } | Db::Postgres { url, .. } => url,
        }
    }

    pub(crate) async fn store(&self) -> Store {
        Store::connect(self.url()).await.expect("connect + migrate")
    }

    /// Drops the PostgreSQL database (the SQLite directory goes with the value).
    pub(crate) async fn cleanup(self) {
        if let Db::Postgres {
            admin_url,
            database,
            ..
        } = self
        {
            let mut admin = pg_admin(&admin_url).await;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await
            .expect("drop test database");
        }
    }
}

pub(crate) async fn pg_admin(url: &str) -> sqlx::PgConnection {
    let shown = reflex::store::redact_url(url);
    tokio::time::timeout(
        crate::support::PRECHECK_TIMEOUT,
        sqlx::PgConnection::connect(url),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "PostgreSQL at {shown} did not answer; {}",
            crate::support::HINT
        )
    })
    .unwrap_or_else(|err| {
        panic!(
            "cannot connect to PostgreSQL at {shown}: {err}; {}",
            crate::support::HINT
        )
    })
}

/// Replaces the database name at the end of a PostgreSQL URL.
pub(crate) fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    format!("{base}/{database}{query}")
}

// ---------------------------------------------------------------------------------------------
// Kafka: per-test topics, a producer for the pipeline, a consumer to read results back.

pub(crate) struct Kafka {
    pub(crate) bootstrap: String,
    pub(crate) topics: TopicsConfig,
    /// The (never produced-to) topic the test's records claim to come from.
    pub(crate) source: String,
}

impl Kafka {
    pub(crate) async fn new() -> Kafka {
        // Capture `log` executions from the start of every test that can cause any.
        drop(logged());
        let bootstrap = crate::support::require_kafka().await;
        let topics = TopicsConfig {
            outcomes: crate::support::unique_name("outcomes"),
            dead_letters: crate::support::unique_name("dead-letters"),
            ..TopicsConfig::default()
        };
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("admin client");
        let options = AdminOptions::new().operation_timeout(Some(OP_TIMEOUT));
        let created = admin
            .create_topics(
                &[
                    NewTopic::new(&topics.outcomes, 1, TopicReplication::Fixed(1)),
                    NewTopic::new(&topics.dead_letters, 1, TopicReplication::Fixed(1)),
                ],
                &options,
            )
            .await
            .expect("create_topics request");
        for result in created {
            result.unwrap_or_else(|(topic, err)| panic!("creating topic {topic}: {err}"));
        }
        Kafka {
            bootstrap,
            topics,
            source: crate::support::unique_name("events"),
        }
    }

    pub(crate) fn producer(&self) -> FutureProducer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("enable.idempotence", "true")
            // Bounds every delivery wait of the pipeline.
            .set("message.timeout.ms", "30000")
            .create()
            .expect("producer")
    }

    /// Reads exactly `count` messages of `topic` from the beginning, then checks that no more
    /// arrive within the quiet period.
    pub(crate) async fn read_all(&self, topic: &str, count: usize) -> Vec<OwnedMessage> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", crate::support::unique_name("reader"))
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut partitions = TopicPartitionList::new();
        partitions
            .add_partition_offset(topic, 0, Offset::Beginning)
            .expect("partition list");
        consumer.assign(&partitions).expect("assign");
        let mut received = Vec::with_capacity(count);
        let deadline = Instant::now() + OP_TIMEOUT;
        while received.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, consumer.recv()).await {
                Ok(Ok(message)) => received.push(message.detach()),
                Ok(Err(err)) => panic!("consuming {topic} failed: {err}"),
                Err(_) => panic!(
                    "received {} of {count} messages on {topic} within {OP_TIMEOUT:?}",
                    received.len()
                ),
            }
        }
        if let Ok(Ok(extra)) = tokio::time::timeout(QUIET_PERIOD, consumer.recv()).await {
            panic!(
                "more than {count} messages on {topic}; extra: {:?}",
                extra.payload().map(String::from_utf8_lossy)
            );
        }
        received
    }
}

pub(crate) fn headers(message: &OwnedMessage) -> BTreeMap<String, String> {
    super::support::header_map(message)
}

pub(crate) fn json_of(message: &OwnedMessage) -> Value {
    serde_json::from_slice(message.payload().expect("payload")).expect("JSON outcome record")
}

// ---------------------------------------------------------------------------------------------
// Rules, records, pipelines.

pub(crate) fn rules(yaml: &str) -> Arc<RuleSet> {
    let sources = vec![(PathBuf::from("test-rules.yaml"), yaml.to_owned())];
    Arc::new(reflex::rules::load_sources(&sources).unwrap_or_else(|err| panic!("rules: {err:?}")))
}

pub(crate) async fn pipeline(
    rules: &Arc<RuleSet>,
    store: &Store,
    kafka: &Kafka,
    config: &PipelineConfig,
) -> Pipeline {
    Pipeline::new(
        Arc::clone(rules),
        store.clone(),
        kafka.producer(),
        &kafka.topics,
        config,
    )
    .await
    .expect("pipeline")
}

/// An owned record; `raw()` borrows it as the pipeline sees it.
pub(crate) struct Record {
    pub(crate) topic: String,
    pub(crate) offset: i64,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    pub(crate) payload: Option<Vec<u8>>,
}

impl Record {
    pub(crate) fn json(topic: &str, offset: i64, payload: &str) -> Record {
        Record {
            topic: topic.to_owned(),
            offset,
            key: None,
            headers: Vec::new(),
            payload: Some(payload.as_bytes().to_vec()),
        }
    }

    pub(crate) fn raw(&self) -> RawRecord<'_> {
        RawRecord {
            topic: &self.topic,
            partition: 0,
            offset: self.offset,
            key: self.key.as_deref(),
            headers: self
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), Some(value.as_slice())))
                .collect(),
            payload: self.payload.as_deref(),
            timestamp: Some(Utc::now()),
        }
    }
}

/// The binary-mode CloudEvent fixture: `headers:` lines, `key:` and `value:`.
pub(crate) fn binary_cloudevent(topic: &str, offset: i64) -> Record {
    let text = include_str!("../../data/events/cloudevent-binary-kafka.txt");
    let mut record = Record::json(topic, offset, "");
    record.payload = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some(header) = line.strip_prefix("  ") {
            let (name, value) = header.split_once(": ").expect("name: value");
            record
                .headers
                .push((name.to_owned(), value.as_bytes().to_vec()));
        } else if let Some(key) = line.strip_prefix("key: ") {
            record.key = Some(key.as_bytes().to_vec());
        } else if let Some(value) = line.strip_prefix("value: ") {
            record.payload = Some(value.as_bytes().to_vec());
        }
    }
    assert!(record.payload.is_some() && !record.headers.is_empty());
    record
}

pub(crate) async fn handle(pipeline: &Pipeline, record: &Record) -> Result<Handled, Error> {
    tokio::time::timeout(OP_TIMEOUT, pipeline.handle(&record.raw()))
        .await
        .expect("handle finished within the bound")
}

pub(crate) async fn rows(
    store: &Store,
    rule: &str,
    status: Option<OutcomeStatus>,
) -> Vec<OutcomeRecord> {
    store
        .history(&HistoryFilter {
            rule: Some(rule.to_owned()),
            status,
            limit: 1000,
            ..HistoryFilter::default()
        })
        .await
        .expect("history")
}

/// Inserts the `started` claim another instance (`claimant`) left on action `index` of `rule`
/// for `record`, `age` ago, as a process that died mid-action leaves it; returns its key.
pub(crate) async fn leave_claim(
    store: &Store,
    record: &Record,
    rule: &str,
    index: usize,
    kind: &str,
    age: chrono::Duration,
    claimant: &str,
) -> String {
    let event_id = format!("{}/0/{}", record.topic, record.offset);
    let key = reflex::rules::engine::idempotency_key(&event_id, rule, index);
    let claim = reflex::store::NewOutcome {
        event_id: &event_id,
        rule,
        action_kind: kind,
        idempotency_key: &key,
        status: OutcomeStatus::Started,
        attempts: 1,
        started_at: Utc::now() - age,
        finished_at: None,
        target: None,
        error: None,
        details: &serde_json::json!({ "claimant": claimant }),
    };
    assert!(store.insert_outcome(&claim).await.expect("claim"));
    key
}

/// A fresh namespace holding a one-replica Deployment `checkout` on the real API server: the
/// client, the namespace's name, and the APIs to delete the namespace and read the Deployment.
pub(crate) async fn checkout_namespace(
    prefix: &str,
) -> (
    kube::Client,
    String,
    kube::Api<k8s_openapi::api::core::v1::Namespace>,
    kube::Api<k8s_openapi::api::apps::v1::Deployment>,
) {
    crate::support::install_crypto_provider();
    let client = crate::support::kube_client(&crate::support::kubeconfig()).await;
    let namespace = crate::support::unique_name(prefix);
    let deployments =
        crate::support::namespace_with_deployment(&client, &namespace, "checkout", 1).await;
    let namespaces = kube::Api::all(client.clone());
    (client, namespace, namespaces, deployments)
}
