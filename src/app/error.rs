//! Why `reflex run` could not start or stopped: the one error enum of [`crate::app`].

use std::path::PathBuf;
use std::time::Duration;

use rdkafka::error::KafkaError;

use crate::rules::LoadError;

/// An error of start-up (rules, configuration, a dependency out of reach) or of a task that
/// ended the process. Each names the setting or address to check.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The rules directory holds invalid rules (each problem was printed to stderr).
    #[error(
        "{count} problem(s) in the rules under {dir}; fix them (`reflex validate {dir}` lists \
         them too)",
        dir = .dir.display()
    )]
    InvalidRules {
        /// How many problems were found.
        count: usize,
        /// The rules directory.
        dir: PathBuf,
    },
    /// The rules directory could not be read.
    #[error("cannot load the rules from {} (set rules.dir or --rules)", .dir.display())]
    LoadRules {
        /// The rules directory.
        dir: PathBuf,
        /// What went wrong.
        #[source]
        source: LoadError,
    },
    /// `server.rules_api_auth` asks for a token that is not configured.
    #[error(
        "server.rules_api_auth is true but no token is configured; set \
         server.ingest.token_file or server.ingest.token_env"
    )]
    RulesApiTokenMissing,
    /// The ingest token could not be read.
    #[error(transparent)]
    Token(#[from] crate::server::auth::Error),
    /// The ingest endpoints are misconfigured.
    #[error(transparent)]
    Ingest(#[from] crate::server::ingest::Error),
    /// The HTTP server could not bind or stopped with an error.
    #[error(transparent)]
    Server(#[from] crate::server::Error),
    /// The rules reloader could not start.
    #[error(transparent)]
    Reload(#[from] crate::reload::Error),
    /// The audit store could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// The Kafka consumer could not be created.
    #[error("cannot create the Kafka consumer")]
    Consumer(#[source] crate::source::Error),
    /// The Kafka consumer stopped with an error.
    #[error("the Kafka consumer failed")]
    ConsumerFailed(#[source] crate::source::Error),
    /// A task panicked.
    #[error("the {task} task panicked")]
    Panicked {
        /// Which task.
        task: &'static str,
        /// The panic.
        #[source]
        source: tokio::task::JoinError,
    },
    /// The outcome producer's configuration (`kafka.client`) is invalid.
    #[error("invalid Kafka producer configuration for {servers}")]
    OutcomeProducer {
        /// `kafka.bootstrap_servers`.
        servers: String,
        /// librdkafka's complaint.
        #[source]
        source: KafkaError,
    },
    /// The pipeline could not start (restoring the rules' state from the store).
    #[error("cannot start the pipeline (restoring the rules' state from the store)")]
    Pipeline(#[source] crate::pipeline::Error),
    /// `actions.webhook_allowed_hosts` is invalid.
    #[error("invalid `actions.webhook_allowed_hosts`")]
    WebhookExecutor(#[source] crate::actions::webhook::Error),
    /// The producer of the `kafka` action could not be created.
    #[error("cannot create the Kafka action producer")]
    KafkaExecutor(#[source] crate::actions::kafka::Error),
    /// The Kafka client configuration (`kafka.client`) is invalid.
    #[error("invalid Kafka client configuration for {servers}")]
    KafkaClient {
        /// `kafka.bootstrap_servers`.
        servers: String,
        /// librdkafka's complaint.
        #[source]
        source: KafkaError,
    },
    /// Kafka gave no metadata within the start-up bound.
    #[error(
        "cannot reach Kafka at {servers} within {timeout:?} \
         (check kafka.bootstrap_servers / KAFKA_BOOTSTRAP_SERVERS)"
    )]
    KafkaUnreachable {
        /// `kafka.bootstrap_servers`.
        servers: String,
        /// The start-up bound.
        timeout: Duration,
        /// What librdkafka saw.
        #[source]
        source: KafkaError,
    },
    /// Kafka answered with metadata that lists no broker.
    #[error("Kafka at {servers} answered with no brokers in its metadata")]
    NoBrokers {
        /// `kafka.bootstrap_servers`.
        servers: String,
    },
    /// The start-up check kept a reference to the admin client (a bug).
    #[error("Kafka admin client still shared after the start-up check")]
    AdminStillShared,
    /// `kubernetes.kubeconfig` cannot be read or is invalid.
    #[error("{problem} kubeconfig {}", .path.display())]
    Kubeconfig {
        /// `cannot read` or `invalid`.
        problem: &'static str,
        /// `kubernetes.kubeconfig`.
        path: PathBuf,
        /// What was wrong.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// `kubernetes.context` names no context of the kubeconfig.
    #[error("cannot load the kubeconfig context named in kubernetes.context")]
    KubeContext(#[source] kube::config::KubeconfigError),
    /// No kubeconfig and not in a pod.
    #[error("no Kubernetes credentials: set kubernetes.kubeconfig or KUBECONFIG, or run in a pod")]
    NoKubeCredentials(#[source] kube::config::InferConfigError),
    /// The kubeconfig does not make a client.
    #[error("cannot build a Kubernetes client for {url}")]
    KubeClient {
        /// The API server URL.
        url: String,
        /// What was wrong.
        #[source]
        source: kube::Error,
    },
    /// The API server did not answer `/version` within the start-up bound.
    #[error("Kubernetes API at {url} did not answer within {timeout:?}")]
    KubeTimeout {
        /// The API server URL.
        url: String,
        /// The start-up bound.
        timeout: Duration,
    },
    /// The API server answered `/version` with an error.
    #[error("cannot reach the Kubernetes API at {url}")]
    KubeUnreachable {
        /// The API server URL.
        url: String,
        /// What the client saw.
        #[source]
        source: kube::Error,
    },
    /// A signal handler could not be installed.
    #[error("cannot install a {signal} handler")]
    Signal {
        /// `SIGTERM`, `SIGINT` or `SIGHUP`.
        signal: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// Results of [`crate::app`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
