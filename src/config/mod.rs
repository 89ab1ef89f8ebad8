//! The `reflex run` configuration file (YAML) and its defaults.
//!
//! Every field has a default, so an empty file (or no file) is a valid configuration for a
//! local run. Precedence, lowest first: defaults, the file, environment variables
//! (`KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`, `KAFKA_SASL_PASSWORD`, `REFLEX_INGEST_TOKEN`),
//! command-line flags. The Kubernetes client also
//! honours `KUBECONFIG` (and in-cluster service-account credentials) when
//! `kubernetes.kubeconfig` is not set. `deploy/config.example.yaml` shows every field.
//!
//! One file per section of the file (`kafka`, `kubernetes`, `store`, `server`, `rules`,
//! `pipeline`, `consumer`, `actions`), its types re-exported here; each section checks its own
//! values and [`Config::validate`] reports every problem found at once.

mod actions;
mod check;
mod consumer;
mod kafka;
mod kubernetes;
mod pipeline;
mod redact;
mod rules;
mod server;
mod store;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use actions::{ActionsConfig, CircuitConfig, ClusterScopedLists, NamespaceLists};
pub use check::check;
pub use consumer::{ConsumerConfig, RESERVED_CONSUMER_PROPERTIES};
pub use kafka::{KafkaConfig, TopicsConfig};
pub use kubernetes::KubernetesConfig;
pub use pipeline::PipelineConfig;
pub use rules::RulesConfig;
pub use server::{GitWebhookConfig, IngestConfig, ServerConfig};
pub use store::StoreConfig;

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
    /// Values parsed but make no sense (for example an empty broker list). Every problem found
    /// is listed, so one edit can fix them all.
    #[error("invalid config: {}", list(problems))]
    Invalid {
        /// Each problem, in the order of the sections.
        problems: Vec<Problem>,
    },
}

/// One value that parsed but makes no sense: where it is and what would be valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the field, e.g. `kafka.bootstrap_servers`.
    pub field: &'static str,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// One problem on the error's line; several as a count and one indented line each.
fn list(problems: &[Problem]) -> String {
    match problems {
        [one] => one.to_string(),
        many => many
            .iter()
            .fold(format!("{} problems:", many.len()), |text, problem| {
                format!("{text}\n  - {problem}")
            }),
    }
}

/// The problems the section checks find, collected so that all of them are reported at once.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<Problem>);

impl Problems {
    /// Records that `field` is wrong, with `message` saying what would be valid.
    pub(crate) fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push(Problem {
            field,
            message: message.into(),
        });
    }

    /// `Ok` when nothing was found, else one error listing everything.
    fn into_result(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid { problems: self.0 })
        }
    }
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The whole `reflex run` configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
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
        let config: Config = if has_content(text) {
            // Comments are not emitted as events: buffered while the parser looks ahead, a long
            // commented-out block would otherwise be refused ("too many buffered comments").
            let mut options = serde_saphyr::Options::default();
            options.emit_comments = false;
            serde_saphyr::from_str_with_options(text, options).map_err(|source| Error::Parse {
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
            Some(path) => Self::from_yaml(&read_file(path)?, path)?,
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

    /// Checks what serde cannot (non-empty lists and names, bounds, known store schemes, the
    /// guardrail lists), section by section, and reports every problem found in one error.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Problems::default();
        self.kafka.validate(&mut problems);
        self.pipeline.validate(&mut problems);
        self.consumer.validate(&self.kafka, &mut problems);
        self.actions.validate(&mut problems);
        self.server
            .ingest
            .validate(&self.kafka, &self.pipeline, &mut problems);
        self.store.validate(&mut problems);
        // A claim must outlive the action it covers: with a lease at or below the action
        // timeout, another replica would take over (and repeat) an action still running.
        let lease = Duration::from_secs(self.pipeline.claim_lease_secs);
        if lease <= self.actions.timeout {
            problems.add(
                "pipeline.claim_lease_secs",
                format!(
                    "is {} s, not above `actions.timeout` ({} s): another replica would take \
                     over an action that is still running; set it above the timeout (default \
                     60 with a 45 s timeout)",
                    self.pipeline.claim_lease_secs,
                    self.actions.timeout.as_secs_f64()
                ),
            );
        }
        problems.into_result()
    }
}

/// Reads a configuration file, refusing one larger than any real configuration.
pub fn read_file(path: &Path) -> Result<String> {
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
    std::fs::read_to_string(path).map_err(read_err)
}

/// Whether `text` holds more than blank lines and comments: such a file is a valid "all
/// defaults" configuration.
fn has_content(text: &str) -> bool {
    text.lines()
        .any(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
}

/// Parses `text` as the file `test.yaml`, for the unit tests of every section.
#[cfg(test)]
fn parse(text: &str) -> Result<Config> {
    Config::from_yaml(text, Path::new("test.yaml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_lease_not_above_the_action_timeout_is_refused_naming_both() {
        for (lease, timeout) in [(0, "45s"), (30, "45s"), (45, "45s"), (5, "10s")] {
            let text =
                format!("pipeline:\n  claim_lease_secs: {lease}\nactions:\n  timeout: {timeout}\n");
            let err = parse(&text).expect_err("refused").to_string();
            assert!(
                err.contains("pipeline.claim_lease_secs") && err.contains("actions.timeout"),
                "{lease} s vs {timeout}: {err}"
            );
        }
        let ok = "pipeline:\n  claim_lease_secs: 11\nactions:\n  timeout: 10s\n";
        assert!(parse(ok).is_ok());
    }

    #[test]
    fn a_long_commented_out_block_is_no_problem() {
        let block = "#   old_setting: 1\n".repeat(100);
        let config = parse(&format!(
            "pipeline:\n{block}  claim_lease_secs: 60\n{block}"
        ))
        .expect("comments are ignored");
        assert_eq!(config.pipeline.claim_lease_secs, 60);
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
        assert!(
            config.kubernetes.events,
            "Events are on unless switched off"
        );
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
    fn every_problem_is_reported_at_once_with_its_field_and_fix() {
        let err = parse(
            "kafka:\n  bootstrap_servers: ' '\nconsumer:\n  topic_patterns: ['alerts.*']\n\
             actions:\n  max_concurrent: 0\n",
        )
        .expect_err("three independent mistakes");
        let Error::Invalid { problems } = &err else {
            panic!("expected invalid values, got {err:?}");
        };
        let fields: Vec<_> = problems.iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "kafka.bootstrap_servers",
                "consumer.topic_patterns",
                "actions.max_concurrent"
            ]
        );
        let text = err.to_string();
        assert!(text.starts_with("invalid config: 3 problems:"), "{text}");
        for fix in [
            "give at least one host:port",
            "write `^alerts.*`",
            "must be between 1 and 256",
        ] {
            assert!(text.contains(fix), "{fix} missing from {text}");
        }
    }

    #[test]
    fn the_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config.example.yaml");
        let text = std::fs::read_to_string(&path).expect("example config exists");
        let config = Config::from_yaml(&text, &path).expect("example config is valid");
        assert!(!config.kafka.topics.events.is_empty());
    }
}
