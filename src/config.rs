//! The `reflex run` configuration file (YAML) and its defaults.
//!
//! Every field has a default, so an empty file (or no file) is a valid configuration for a
//! local run. Precedence, lowest first: defaults, the file, environment variables
//! (`KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`, `KAFKA_SASL_PASSWORD`, `REFLEX_INGEST_TOKEN`),
//! command-line flags. The Kubernetes client also
//! honours `KUBECONFIG` (and in-cluster service-account credentials) when
//! `kubernetes.kubeconfig` is not set. `deploy/config.example.yaml` shows every field.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Environment variable that overrides `kafka.bootstrap_servers`.
pub const ENV_KAFKA_BOOTSTRAP_SERVERS: &str = "KAFKA_BOOTSTRAP_SERVERS";
/// Environment variable that overrides `store.url`.
pub const ENV_DATABASE_URL: &str = "DATABASE_URL";
/// Environment variable that sets the librdkafka property `sasl.password` (so the password can
/// come from a Secret while the rest of the configuration sits in a ConfigMap).
pub const ENV_KAFKA_SASL_PASSWORD: &str = "KAFKA_SASL_PASSWORD";
/// Environment variable holding the ingest bearer token, used when the file names neither
/// `server.ingest.token_file` nor `server.ingest.token_env`.
pub const ENV_INGEST_TOKEN: &str = "REFLEX_INGEST_TOKEN";

/// Largest configuration file read. A real configuration is a few kilobytes; the bound keeps a
/// wrong path (a log file, a binary) from being read whole into memory.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than any real configuration.
    #[error(
        "config file {path} is {size} bytes; the limit is {MAX_FILE_BYTES} (is this the right file?)"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
    },
    /// The file is not valid YAML for this schema (unknown field, wrong type...).
    #[error("invalid config file {path}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The YAML error, with line and column.
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    /// A value parsed but makes no sense (for example an empty broker list).
    #[error("invalid config: {field}: {message}")]
    Invalid {
        /// Dotted path of the field, e.g. `kafka.bootstrap_servers`.
        field: &'static str,
        /// What is wrong and what would be valid.
        message: String,
    },
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The whole `reflex run` configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Kafka: where events come from and outcomes go.
    pub kafka: KafkaConfig,
    /// Kubernetes API access for actions.
    pub kubernetes: KubernetesConfig,
    /// The SQL audit store.
    pub store: StoreConfig,
    /// The HTTP server: health, readiness, metrics, the rules listing and ingest.
    pub server: ServerConfig,
    /// Where the rule files live and how often they are checked for changes.
    pub rules: RulesConfig,
    /// How each record is decoded, evaluated and recorded.
    pub pipeline: PipelineConfig,
    /// How records are fetched, buffered, retried and committed.
    pub consumer: ConsumerConfig,
    /// Which executors carry out planned actions.
    pub actions: ActionsConfig,
}

/// Which executors carry out planned actions. A kind whose executor is off is recorded
/// `not_implemented` and nothing is done (rules can be validated and tested before any of this
/// is switched on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActionsConfig {
    /// Carry out Kubernetes actions through the client configured under `kubernetes`, with the
    /// permissions of its identity (`reflex rbac` prints what the rules need). Default `true`.
    pub kubernetes: bool,
    /// Call webhooks. Default `true`.
    pub webhook: bool,
    /// Hosts webhooks may reach: `hooks.example.com` or `*.example.com`, checked on every call
    /// (also for URLs read from a secret). Default empty: any host written literally in a rule
    /// or held by a URL secret (templates can never choose the host).
    pub webhook_allowed_hosts: Vec<String>,
    /// Publish Kafka actions to the cluster under `kafka`. Default `true`.
    pub kafka: bool,
    /// Topics `kafka` actions may publish to: names or `*` globs (`notify.*`). Default empty:
    /// any topic whose name (or a literal prefix of it) the rule writes. Reflex's own topics
    /// (consumed, outcomes, dead-letter, circuit announcements) are refused unless listed here
    /// by their literal name.
    pub kafka_allowed_topics: Vec<String>,
    /// Record every action as `skipped_dry_run` (with its rendered parameters) and execute
    /// none, whatever the rules say. Default `false`.
    pub dry_run: bool,
    /// Reflex's own namespace, refused to actions unless `namespaces.allow` names it
    /// literally. Default: the `POD_NAMESPACE` environment variable (set it from the downward
    /// API), else none.
    pub own_namespace: Option<String>,
    /// Namespaces Kubernetes actions may and may not touch (globs). Rules can narrow this with
    /// their own `guard.namespaces`, never widen it.
    pub namespaces: crate::actions::guard::config::NamespaceLists,
    /// Cluster-scoped kinds (Node, Namespace, ClusterRole...) Kubernetes actions may act on;
    /// none by default.
    pub cluster_scoped: crate::actions::guard::config::ClusterScopedLists,
    /// Circuit breaker: how many executions per rule and per target a window allows.
    pub circuit: crate::actions::guard::config::CircuitConfig,
    /// Actions executing at the same time in this process; more wait (up to `timeout`) for a
    /// free slot. Default 16.
    pub max_concurrent: usize,
    /// Longest one action may take, waiting for its slot and its target's lock included; it is
    /// then recorded `failed`. Default `45s`. Keep it below `pipeline.claim_lease_secs`, so a
    /// claim is never presumed dead while its action still runs.
    #[serde(with = "duration_text")]
    pub timeout: std::time::Duration,
}

impl Default for ActionsConfig {
    fn default() -> Self {
        Self {
            kubernetes: true,
            webhook: true,
            webhook_allowed_hosts: Vec::new(),
            kafka: true,
            kafka_allowed_topics: Vec::new(),
            dry_run: false,
            own_namespace: None,
            namespaces: Default::default(),
            cluster_scoped: Default::default(),
            circuit: Default::default(),
            max_concurrent: 16,
            timeout: std::time::Duration::from_secs(45),
        }
    }
}

/// Kafka connection and topics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list of brokers. Default `127.0.0.1:9092`; the environment
    /// variable `KAFKA_BOOTSTRAP_SERVERS` overrides it.
    pub bootstrap_servers: String,
    /// Extra librdkafka properties passed through unchanged, e.g. `security.protocol: SASL_SSL`
    /// (see librdkafka's CONFIGURATION.md). Default: none. `bootstrap.servers` is set from
    /// `bootstrap_servers` and may not appear here.
    pub client: BTreeMap<String, String>,
    /// Topic names.
    pub topics: TopicsConfig,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: "127.0.0.1:9092".to_owned(),
            client: BTreeMap::new(),
            topics: TopicsConfig::default(),
        }
    }
}

/// Topic names Reflex reads and writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicsConfig {
    /// Topics consumed as events. Default `[reflex.events]`.
    pub events: Vec<String>,
    /// Topic where one outcome record per executed action is published. Default
    /// `reflex.outcomes`.
    pub outcomes: String,
    /// Consumer group id shared by all replicas. Default `reflex`.
    pub group_id: String,
    /// Topic where undecodable records are copied, with headers naming the reason and the
    /// source topic/partition/offset. Default `reflex.dead-letters`.
    pub dead_letters: String,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        Self {
            events: vec!["reflex.events".to_owned()],
            outcomes: "reflex.outcomes".to_owned(),
            group_id: "reflex".to_owned(),
            dead_letters: "reflex.dead-letters".to_owned(),
        }
    }
}

/// How to reach the Kubernetes API.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Path of a kubeconfig file. Default: unset, which means `KUBECONFIG` or `~/.kube/config`
    /// if present, else the in-cluster service account.
    pub kubeconfig: Option<PathBuf>,
    /// Context inside the kubeconfig. Default: its `current-context`.
    pub context: Option<String>,
}

/// The SQL audit store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://<file>` (created if missing) or `postgres://user@host:port/db`. Default
    /// `sqlite://reflex.db`; the environment variable `DATABASE_URL` overrides it.
    pub url: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://reflex.db".to_owned(),
        }
    }
}

/// The HTTP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address for `/healthz`, `/readyz`, `/metrics`, `/v1/rules` and the ingest endpoints.
    /// Default `127.0.0.1:8080`; use `0.0.0.0:8080` inside a pod so the kubelet's probes (and
    /// Alertmanager) reach it.
    pub listen: SocketAddr,
    /// `POST /v1/alertmanager` and `POST /v1/events`: write what is posted to Kafka.
    pub ingest: IngestConfig,
    /// Require the ingest bearer token on `GET /v1/rules` too. Default `false`: like
    /// `/metrics`, the listing is read-only and names only rules, files and counts.
    pub rules_api_auth: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            ingest: IngestConfig::default(),
            rules_api_auth: false,
        }
    }
}

/// The HTTP ingest endpoints (`server.ingest`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Serve the ingest endpoints. Default `true`, but they stay off while no token is
    /// configured, unless `allow_unauthenticated` is set.
    pub enabled: bool,
    /// File holding the bearer token clients must send (`Authorization: Bearer <token>`),
    /// e.g. a mounted Secret key. Surrounding whitespace is ignored. Read at start-up.
    pub token_file: Option<PathBuf>,
    /// Name of an environment variable holding the token (used when `token_file` is unset).
    pub token_env: Option<String>,
    /// Serve ingest without a token. Default `false`: anyone who can reach the port could
    /// otherwise inject events that trigger remediation actions (restarts, scaling...). Only
    /// for a listener no untrusted client can reach (localhost, a strict NetworkPolicy).
    pub allow_unauthenticated: bool,
    /// Largest request body accepted, in bytes; larger requests get 413. Default 1 MiB (the
    /// pipeline's default `max_payload_bytes` and about Kafka's default `message.max.bytes`).
    pub max_body_bytes: usize,
    /// Topic `POST /v1/alertmanager` writes to. Default: the first of `kafka.topics.events`.
    pub alertmanager_topic: Option<String>,
    /// Topic `POST /v1/events` writes to. Default: the first of `kafka.topics.events`.
    pub events_topic: Option<String>,
    /// How long a request waits for the broker's acknowledgement before answering 503 (the
    /// sender retries). Default `10s`, Alertmanager's usual webhook timeout.
    #[serde(with = "duration_text")]
    pub ack_timeout: std::time::Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            token_file: None,
            token_env: None,
            allow_unauthenticated: false,
            max_body_bytes: crate::event::decode::DecodeLimits::DEFAULT_MAX_PAYLOAD_BYTES,
            alertmanager_topic: None,
            events_topic: None,
            ack_timeout: std::time::Duration::from_secs(10),
        }
    }
}

impl IngestConfig {
    /// The topic `POST /v1/alertmanager` writes to (`None` only when no topic can be derived).
    pub fn alertmanager_topic<'a>(&'a self, kafka: &'a KafkaConfig) -> Option<&'a str> {
        self.alertmanager_topic
            .as_deref()
            .or_else(|| kafka.topics.events.first().map(String::as_str))
    }

    /// The topic `POST /v1/events` writes to (`None` only when no topic can be derived).
    pub fn events_topic<'a>(&'a self, kafka: &'a KafkaConfig) -> Option<&'a str> {
        self.events_topic
            .as_deref()
            .or_else(|| kafka.topics.events.first().map(String::as_str))
    }

    /// Checks the ingest topics exist (or can be derived) and are decoded the way the endpoint
    /// writes them, so an accepted request can never end on the dead-letter topic.
    fn validate(&self, kafka: &KafkaConfig, pipeline: &PipelineConfig) -> Result<()> {
        use crate::event::decode::Decoding;
        if !self.enabled {
            return Ok(());
        }
        if self.max_body_bytes == 0 {
            return Err(Error::Invalid {
                field: "server.ingest.max_body_bytes",
                message: "must be at least 1".to_owned(),
            });
        }
        let endpoints = [
            (
                "server.ingest.alertmanager_topic",
                self.alertmanager_topic(kafka),
                Decoding::Alertmanager,
            ),
            (
                "server.ingest.events_topic",
                self.events_topic(kafka),
                Decoding::Cloudevents,
            ),
        ];
        for (field, topic, wanted) in endpoints {
            let Some(topic) = topic.filter(|t| !t.trim().is_empty()) else {
                return Err(Error::Invalid {
                    field,
                    message: "is unset and kafka.topics.events is empty; name the topic (or set \
                              server.ingest.enabled: false)"
                        .to_owned(),
                });
            };
            let decoding = pipeline.decoding.get(topic).copied().unwrap_or_default();
            if decoding != Decoding::Auto && decoding != wanted {
                return Err(Error::Invalid {
                    field,
                    message: format!(
                        "topic `{topic}` is decoded as `{decoding}` (pipeline.decoding), so \
                         what this endpoint writes would be dead-lettered; decode it as \
                         `{wanted}` or `auto`, or write to another topic"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Where the rule files live and how changes are picked up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// Directory of `*.yaml` rule files, relative to the working directory. Default `rules`.
    pub dir: PathBuf,
    /// How often the directory is checked for changes (paths, sizes, modification times,
    /// symlink targets); a change reloads the whole set. SIGHUP reloads at once. Default `5s`;
    /// `0s` turns polling off (SIGHUP still works).
    #[serde(with = "duration_text")]
    pub reload_interval: std::time::Duration,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("rules"),
            reload_interval: std::time::Duration::from_secs(5),
        }
    }
}

/// How the pipeline decodes, evaluates and records each record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Decoding per topic name (`auto`, `json`, `cloudevents`, `alertmanager`,
    /// `kubernetes_event`, `falco`). Topics not listed are auto-detected. Default: none.
    pub decoding: BTreeMap<String, crate::event::decode::Decoding>,
    /// Largest record value decoded, in bytes; larger records are dead-lettered. Default 1 MiB
    /// (Kafka's default `message.max.bytes` is about 1 MB).
    pub max_payload_bytes: usize,
    /// Deepest JSON nesting decoded; deeper records are dead-lettered. Default 64.
    pub max_depth: usize,
    /// Record one `no_match` outcome per event that no rule fired for. Default `false`: on a
    /// busy topic most events match nothing, and the audit store would fill with them.
    pub record_no_match: bool,
    /// Seconds a `started` claim of another process is respected before that process is
    /// presumed dead and the action is taken over (see `crate::pipeline`). Must exceed the
    /// longest action execution (webhook timeout × attempts). Default 60.
    pub claim_lease_secs: u64,
    /// Record one `throttled` outcome per event a rule's `throttle.once_within` suppressed.
    /// Default `true`; turn it off when a noisy rule fills the audit store.
    pub record_throttled: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        let limits = crate::event::decode::DecodeLimits::default();
        Self {
            decoding: BTreeMap::new(),
            max_payload_bytes: limits.max_payload_bytes,
            max_depth: limits.max_depth,
            record_no_match: false,
            claim_lease_secs: 60,
            record_throttled: true,
        }
    }
}

impl PipelineConfig {
    /// The decode limits these settings describe.
    pub fn decode_limits(&self) -> crate::event::decode::DecodeLimits {
        crate::event::decode::DecodeLimits {
            max_payload_bytes: self.max_payload_bytes,
            max_depth: self.max_depth,
        }
    }
}

/// The Kafka consumer: subscriptions, buffering, retries, rebalance and shutdown bounds.
/// librdkafka's own consumer settings (`session.timeout.ms`, `auto.offset.reset`, ...) go in
/// `kafka.client`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Topic regular expressions consumed besides `kafka.topics.events`, each starting with `^`
    /// (librdkafka's marker for a pattern), e.g. `^alerts\..*`. Topics created later are
    /// picked up at the next metadata refresh (`topic.metadata.refresh.interval.ms`). Default:
    /// none.
    pub topic_patterns: Vec<String>,
    /// Records buffered per assigned partition between the fetcher and the partition's worker.
    /// When the buffer is full the partition is paused until it is half empty. Default 128.
    pub partition_queue: usize,
    /// First delay before a record whose handling failed (store or Kafka unavailable) is tried
    /// again; the delay doubles, with jitter, up to `retry_max_delay`. Default `200ms`.
    #[serde(with = "duration_text")]
    pub retry_min_delay: std::time::Duration,
    /// Longest delay between two tries of the same record. Default `30s`.
    #[serde(with = "duration_text")]
    pub retry_max_delay: std::time::Duration,
    /// How long a rebalance waits for the workers of revoked partitions to finish the record in
    /// hand before committing their offsets and releasing them. Default `10s`.
    #[serde(with = "duration_text")]
    pub revoke_timeout: std::time::Duration,
    /// How long a shutdown (SIGTERM) waits for buffered records to be handled before it
    /// commits and leaves the group. Default `10s`; keep it under the pod's
    /// `terminationGracePeriodSeconds` (30 s by default).
    #[serde(with = "duration_text")]
    pub drain_timeout: std::time::Duration,
    /// How often offsets of handled records are committed (`auto.commit.interval.ms`). Default
    /// `1s`. A crash redelivers at most this much work; actions are not run twice because of
    /// their idempotency keys.
    #[serde(with = "duration_text")]
    pub commit_interval: std::time::Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        use std::time::Duration;
        Self {
            topic_patterns: Vec::new(),
            partition_queue: 128,
            retry_min_delay: Duration::from_millis(200),
            retry_max_delay: Duration::from_secs(30),
            revoke_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            commit_interval: Duration::from_secs(1),
        }
    }
}

/// librdkafka properties Reflex sets itself because at-least-once delivery depends on them.
pub const RESERVED_CONSUMER_PROPERTIES: [&str; 4] = [
    "group.id",
    "enable.auto.offset.store",
    "enable.auto.commit",
    "auto.commit.interval.ms",
];

/// Largest `consumer.partition_queue`: with records of up to 1 MiB, a larger buffer could hold
/// gigabytes for one partition.
const MAX_PARTITION_QUEUE: usize = 4096;

impl ConsumerConfig {
    /// Checks the bounds, the patterns and that `kafka.client` does not override what the
    /// delivery contract needs.
    pub fn validate(&self, kafka: &KafkaConfig) -> Result<()> {
        let invalid = |field, message: String| Err(Error::Invalid { field, message });
        if let Some(key) = RESERVED_CONSUMER_PROPERTIES
            .iter()
            .find(|key| kafka.client.contains_key(**key))
        {
            return invalid(
                "kafka.client",
                format!(
                    "sets {key}, which Reflex manages for at-least-once delivery; use \
                     kafka.topics.group_id or consumer.commit_interval instead"
                ),
            );
        }
        if !(1..=MAX_PARTITION_QUEUE).contains(&self.partition_queue) {
            return invalid(
                "consumer.partition_queue",
                format!("must be between 1 and {MAX_PARTITION_QUEUE}"),
            );
        }
        if self.retry_min_delay.is_zero() || self.retry_min_delay > self.retry_max_delay {
            return invalid(
                "consumer.retry_min_delay",
                "must be above zero and at most consumer.retry_max_delay".to_owned(),
            );
        }
        if self.commit_interval.is_zero() {
            return invalid("consumer.commit_interval", "must be above zero".to_owned());
        }
        for pattern in &self.topic_patterns {
            if !pattern.starts_with('^') {
                return invalid(
                    "consumer.topic_patterns",
                    format!("`{pattern}` must start with `^` (write `^{pattern}`)"),
                );
            }
            if let Err(err) = regex::Regex::new(pattern) {
                return invalid(
                    "consumer.topic_patterns",
                    format!("`{pattern}` is not a valid regular expression: {err}"),
                );
            }
        }
        if kafka.topics.events.is_empty() && self.topic_patterns.is_empty() {
            return invalid(
                "kafka.topics.events",
                "is empty and consumer.topic_patterns too; name at least one topic".to_owned(),
            );
        }
        Ok(())
    }
}

/// Serde for durations written like rule durations: `500ms`, `10s`, `1h30m`.
pub(crate) mod duration_text {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        let d = chrono::Duration::from_std(*d).unwrap_or(chrono::Duration::MAX);
        s.serialize_str(&crate::rules::duration::format(d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
        let text = String::deserialize(d)?;
        let parsed = crate::rules::duration::parse(&text).map_err(D::Error::custom)?;
        parsed
            .to_std()
            .map_err(|_| D::Error::custom(format!("`{text}` is negative")))
    }
}

impl Config {
    /// Parses a configuration from YAML text; `origin` names it in errors. Empty text gives the
    /// defaults.
    pub fn from_yaml(text: &str, origin: &Path) -> Result<Self> {
        // A file holding only comments or nothing is a valid "all defaults" configuration.
        let has_content = text
            .lines()
            .any(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'));
        let config: Config = if has_content {
            serde_saphyr::from_str(text).map_err(|source| Error::Parse {
                path: origin.to_owned(),
                source: Box::new(source),
            })?
        } else {
            Config::default()
        };
        config.validate()?;
        Ok(config)
    }

    /// Reads the file at `path` (if any), then applies the environment overrides from the
    /// process environment.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let mut config = match path {
            Some(path) => {
                let read_err = |source| Error::Read {
                    path: path.to_owned(),
                    source,
                };
                let size = std::fs::metadata(path).map_err(read_err)?.len();
                if size > MAX_FILE_BYTES {
                    return Err(Error::TooLarge {
                        path: path.to_owned(),
                        size,
                    });
                }
                let text = std::fs::read_to_string(path).map_err(read_err)?;
                Self::from_yaml(&text, path)?
            }
            None => Config::default(),
        };
        config.apply_env(|name| std::env::var(name).ok());
        config.validate()?;
        Ok(config)
    }

    /// Applies environment overrides; `lookup` returns a variable's value (injected so tests
    /// need not touch the process environment). Empty values are ignored.
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) {
        let non_empty = |name| lookup(name).filter(|value: &String| !value.trim().is_empty());
        if let Some(servers) = non_empty(ENV_KAFKA_BOOTSTRAP_SERVERS) {
            self.kafka.bootstrap_servers = servers;
        }
        if let Some(url) = non_empty(ENV_DATABASE_URL) {
            self.store.url = url;
        }
        if let Some(password) = non_empty(ENV_KAFKA_SASL_PASSWORD) {
            self.kafka
                .client
                .insert("sasl.password".to_owned(), password);
        }
        let ingest = &mut self.server.ingest;
        if ingest.token_file.is_none()
            && ingest.token_env.is_none()
            && non_empty(ENV_INGEST_TOKEN).is_some()
        {
            // Only the variable's name is kept: the token is read where it is used, so it is
            // never part of a printed configuration.
            ingest.token_env = Some(ENV_INGEST_TOKEN.to_owned());
        }
    }

    /// Checks what serde cannot: non-empty lists and names, known store schemes.
    pub fn validate(&self) -> Result<()> {
        if self
            .kafka
            .bootstrap_servers
            .split(',')
            .all(|s| s.trim().is_empty())
        {
            return Err(Error::Invalid {
                field: "kafka.bootstrap_servers",
                message: "is empty; give at least one host:port".to_owned(),
            });
        }
        if self.kafka.client.contains_key("bootstrap.servers") {
            return Err(Error::Invalid {
                field: "kafka.client",
                message: "sets bootstrap.servers; use kafka.bootstrap_servers instead".to_owned(),
            });
        }
        if self.kafka.topics.events.iter().any(|t| t.trim().is_empty()) {
            return Err(Error::Invalid {
                field: "kafka.topics.events",
                message: "contains an empty topic name".to_owned(),
            });
        }
        if self.kafka.topics.outcomes.trim().is_empty() {
            return Err(Error::Invalid {
                field: "kafka.topics.outcomes",
                message: "is empty".to_owned(),
            });
        }
        if self.kafka.topics.dead_letters.trim().is_empty() {
            return Err(Error::Invalid {
                field: "kafka.topics.dead_letters",
                message: "is empty".to_owned(),
            });
        }
        if self.pipeline.max_payload_bytes == 0 || self.pipeline.max_depth == 0 {
            return Err(Error::Invalid {
                field: "pipeline",
                message: "max_payload_bytes and max_depth must be at least 1".to_owned(),
            });
        }
        if self.kafka.topics.group_id.trim().is_empty() {
            return Err(Error::Invalid {
                field: "kafka.topics.group_id",
                message: "is empty".to_owned(),
            });
        }
        self.consumer.validate(&self.kafka)?;
        crate::actions::guard::config::validate(&self.actions)?;
        self.server.ingest.validate(&self.kafka, &self.pipeline)?;
        let url = self.store.url.as_str();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(Error::Invalid {
                field: "store.url",
                message: format!(
                    "`{}` has an unknown scheme; use sqlite://<file> or postgres://user@host:port/db",
                    crate::outcome::store::redact_url(url)
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::from_yaml(text, Path::new("test.yaml"))
    }

    #[test]
    fn an_empty_file_gives_the_documented_defaults() {
        let config = parse("# nothing but a comment\n").expect("empty config is valid");
        assert_eq!(config.kafka.bootstrap_servers, "127.0.0.1:9092");
        assert_eq!(config.store.url, "sqlite://reflex.db");
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.rules.dir, PathBuf::from("rules"));
        assert_eq!(config.kafka.topics.events, vec!["reflex.events".to_owned()]);
        assert_eq!(config.kubernetes.kubeconfig, None);
    }

    #[test]
    fn a_partial_file_keeps_defaults_for_the_fields_it_omits() {
        let config = parse(
            "kafka:\n  bootstrap_servers: broker:9093\n  client:\n    security.protocol: SSL\n",
        )
        .expect("valid");
        assert_eq!(config.kafka.bootstrap_servers, "broker:9093");
        assert_eq!(
            config
                .kafka
                .client
                .get("security.protocol")
                .map(String::as_str),
            Some("SSL")
        );
        assert_eq!(config.kafka.topics.outcomes, "reflex.outcomes");
        assert_eq!(config.store.url, "sqlite://reflex.db");
    }

    #[test]
    fn an_unknown_field_is_an_error_naming_the_file() {
        let err = parse("kafka:\n  bootstrap_server: typo:9092\n").expect_err("typo must fail");
        let text = format!("{:#}", anyhow::Error::new(err));
        assert!(text.contains("test.yaml"), "{text}");
        assert!(text.contains("bootstrap_server"), "{text}");
    }

    #[test]
    fn environment_variables_override_the_file() {
        let mut config = parse("store:\n  url: sqlite://file.db\n").expect("valid");
        config.apply_env(|name| match name {
            ENV_KAFKA_BOOTSTRAP_SERVERS => Some("127.0.0.1:1234".to_owned()),
            ENV_DATABASE_URL => Some("postgres://u@h:5/db".to_owned()),
            ENV_KAFKA_SASL_PASSWORD => Some("s3cret".to_owned()),
            ENV_INGEST_TOKEN => Some("t0ken".to_owned()),
            _ => None,
        });
        assert_eq!(config.kafka.bootstrap_servers, "127.0.0.1:1234");
        assert_eq!(config.store.url, "postgres://u@h:5/db");
        assert_eq!(config.kafka.client["sasl.password"], "s3cret");
        assert_eq!(
            config.server.ingest.token_env.as_deref(),
            Some(ENV_INGEST_TOKEN)
        );
    }

    #[test]
    fn the_ingest_token_variable_does_not_replace_a_configured_token_file() {
        let mut config = parse("server:\n  ingest:\n    token_file: /etc/token\n").expect("valid");
        config.apply_env(|name| (name == ENV_INGEST_TOKEN).then(|| "t0ken".to_owned()));
        assert_eq!(config.server.ingest.token_env, None);
        assert!(config.server.ingest.token_file.is_some());
    }

    #[test]
    fn empty_environment_variables_are_ignored() {
        let mut config = Config::default();
        config.apply_env(|_| Some("  ".to_owned()));
        assert_eq!(config.kafka.bootstrap_servers, "127.0.0.1:9092");
    }

    #[test]
    fn an_unknown_store_scheme_is_rejected_with_the_valid_ones() {
        let err = parse("store:\n  url: mysql://x@y/z\n").expect_err("mysql is not supported");
        let text = err.to_string();
        assert!(text.contains("store.url"), "{text}");
        assert!(text.contains("sqlite://"), "{text}");
    }

    #[test]
    fn bootstrap_servers_in_the_client_passthrough_is_rejected() {
        let err = parse("kafka:\n  client:\n    bootstrap.servers: x:1\n").expect_err("ambiguous");
        assert!(err.to_string().contains("kafka.bootstrap_servers"));
    }

    #[test]
    fn consumer_durations_are_written_like_rule_durations() {
        let config = parse(
            "consumer:\n  drain_timeout: 1m30s\n  retry_min_delay: 50ms\n  \
             topic_patterns: ['^alerts\\..*']\n",
        )
        .expect("valid");
        assert_eq!(config.consumer.drain_timeout.as_secs(), 90);
        assert_eq!(config.consumer.retry_min_delay.as_millis(), 50);
        assert_eq!(
            config.consumer.topic_patterns,
            vec!["^alerts\\..*".to_owned()]
        );
        assert_eq!(config.consumer.partition_queue, 128);
    }

    #[test]
    fn the_passthrough_cannot_turn_off_at_least_once_offset_storage() {
        let err = parse("kafka:\n  client:\n    enable.auto.offset.store: 'true'\n")
            .expect_err("reserved");
        assert!(
            err.to_string().contains("enable.auto.offset.store"),
            "{err}"
        );
    }

    #[test]
    fn a_topic_pattern_without_a_caret_is_rejected_with_the_fix() {
        let err = parse("consumer:\n  topic_patterns: ['alerts.*']\n").expect_err("no ^");
        assert!(err.to_string().contains("write `^alerts.*`"), "{err}");
        let err = parse("consumer:\n  topic_patterns: ['^(']\n").expect_err("bad regex");
        assert!(
            err.to_string().contains("not a valid regular expression"),
            "{err}"
        );
    }

    #[test]
    fn the_pipeline_section_maps_topics_to_decodings() {
        let config = parse(
            "kafka:\n  topics:\n    dead_letters: dlq\npipeline:\n  decoding:\n    alerts: alertmanager\n  record_no_match: true\n",
        )
        .expect("valid");
        assert_eq!(config.kafka.topics.dead_letters, "dlq");
        assert_eq!(
            config.pipeline.decoding.get("alerts"),
            Some(&crate::event::decode::Decoding::Alertmanager)
        );
        assert!(config.pipeline.record_no_match);
        assert_eq!(config.pipeline.claim_lease_secs, 60);
        assert_eq!(
            Config::default().kafka.topics.dead_letters,
            "reflex.dead-letters"
        );
        let err = parse("pipeline:\n  decoding:\n    alerts: prometheus\n").expect_err("unknown");
        assert!(format!("{:#}", anyhow::Error::new(err)).contains("prometheus"));
    }

    #[test]
    fn ingest_topics_default_to_the_first_consumed_topic_and_reload_to_five_seconds() {
        let config = parse("kafka:\n  topics:\n    events: [alerts, other]\n").expect("valid");
        let ingest = &config.server.ingest;
        assert_eq!(ingest.alertmanager_topic(&config.kafka), Some("alerts"));
        assert_eq!(ingest.events_topic(&config.kafka), Some("alerts"));
        assert_eq!(ingest.max_body_bytes, 1024 * 1024);
        assert!(ingest.enabled && !ingest.allow_unauthenticated);
        assert_eq!(config.rules.reload_interval.as_secs(), 5);
        let config =
            parse("rules:\n  reload_interval: 0s\nserver:\n  ingest:\n    ack_timeout: 3s\n")
                .expect("zero turns polling off");
        assert!(config.rules.reload_interval.is_zero());
        assert_eq!(config.server.ingest.ack_timeout.as_secs(), 3);
    }

    #[test]
    fn an_ingest_topic_decoded_as_another_format_is_rejected_with_the_fix() {
        let err = parse(
            "server:\n  ingest:\n    events_topic: k8s\npipeline:\n  decoding:\n    k8s: kubernetes_event\n",
        )
        .expect_err("CloudEvents written to a kubernetes_event topic would be dead-lettered");
        let text = err.to_string();
        assert!(text.contains("server.ingest.events_topic"), "{text}");
        assert!(text.contains("`cloudevents` or `auto`"), "{text}");
        let err = parse("kafka:\n  topics:\n    events: []\nconsumer:\n  topic_patterns: ['^a']\n")
            .expect_err("no topic to derive");
        assert!(
            err.to_string().contains("server.ingest.alertmanager_topic"),
            "{err}"
        );
        parse(
            "kafka:\n  topics:\n    events: []\nconsumer:\n  topic_patterns: ['^a']\n\
             server:\n  ingest:\n    enabled: false\n",
        )
        .expect("disabled ingest needs no topic");
    }

    #[test]
    fn the_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config.example.yaml");
        let text = std::fs::read_to_string(&path).expect("example config exists");
        let config = Config::from_yaml(&text, &path).expect("example config is valid");
        assert!(!config.kafka.topics.events.is_empty());
    }
}
