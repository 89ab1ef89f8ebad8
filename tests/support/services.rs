//! Helpers shared by the integration tests that talk to the real services started by
//! `scripts/services up`.
//!
//! Connection details come from the environment (`eval "$(scripts/services env)"`). A missing
//! variable or an unreachable service FAILS the test (never skips it), naming what was tried
//! and how to start the services; every wait is bounded so a stopped service cannot hang a run.

use std::path::PathBuf;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;

use super::{install_crypto_provider, unique_name};

/// What to run when a service is missing.
pub const HINT: &str = "start the services and load their addresses: \
     scripts/services up && eval \"$(scripts/services env)\"";

/// How long a precheck waits for a service before failing. Long enough for a loaded CI
/// machine, short enough that a stopped service fails in seconds instead of hanging.
pub const PRECHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads a required environment variable or fails with the command that sets it.
pub fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => panic!("{name} is not set; {HINT} (run: eval \"$(scripts/services env)\")"),
    }
}

/// `KAFKA_BOOTSTRAP_SERVERS`.
pub fn kafka_bootstrap() -> String {
    required_env("KAFKA_BOOTSTRAP_SERVERS")
}

/// `KUBECONFIG` (admin).
pub fn kubeconfig() -> PathBuf {
    PathBuf::from(required_env("KUBECONFIG"))
}

/// Asks the brokers for metadata within `timeout`; the error names the address.
pub async fn kafka_precheck(bootstrap: &str, timeout: Duration) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .map_err(|err| format!("cannot create a Kafka client for {bootstrap}: {err}"))?;
    let bootstrap_owned = bootstrap.to_owned();
    tokio::task::spawn_blocking(move || admin.inner().fetch_metadata(None, timeout).map(drop))
        .await
        .map_err(|err| format!("Kafka precheck task failed: {err}"))?
        .map_err(|err| {
            format!("Kafka at {bootstrap_owned} gave no metadata within {timeout:?}: {err}; {HINT}")
        })
}

/// Fails the test unless Kafka answers.
pub async fn require_kafka() -> String {
    let bootstrap = kafka_bootstrap();
    if let Err(message) = kafka_precheck(&bootstrap, PRECHECK_TIMEOUT).await {
        panic!("{message}");
    }
    bootstrap
}

/// A Kubernetes client from a kubeconfig file, checked against `/version`.
pub async fn kube_client(path: &std::path::Path) -> kube::Client {
    install_crypto_provider();
    let file = kube::config::Kubeconfig::read_from(path)
        .unwrap_or_else(|err| panic!("cannot read kubeconfig {}: {err}; {HINT}", path.display()));
    let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
        .await
        .unwrap_or_else(|err| panic!("invalid kubeconfig {}: {err}", path.display()));
    let url = config.cluster_url.to_string();
    let client = kube::Client::try_from(config)
        .unwrap_or_else(|err| panic!("cannot build a client for {url}: {err}"));
    match tokio::time::timeout(PRECHECK_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(_)) => client,
        Ok(Err(err)) => panic!("Kubernetes API at {url} failed GET /version: {err}; {HINT}"),
        Err(_) => {
            panic!("Kubernetes API at {url} did not answer within {PRECHECK_TIMEOUT:?}; {HINT}")
        }
    }
}

/// Polls `probe` every 200 ms until it returns `Some`, failing with `what` after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{what}: not within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates `topic` with `partitions` partitions (replication 1), failing the test on error.
pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap_or_else(|err| panic!("cannot create a Kafka admin client for {bootstrap}: {err}"));
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(PRECHECK_TIMEOUT)),
        )
        .await
        .unwrap_or_else(|err| panic!("create topic {topic} on {bootstrap}: {err}; {HINT}"));
    for result in results {
        result.unwrap_or_else(|(name, err)| panic!("cannot create topic {name}: {err}"));
    }
}

/// A consumer reading `topic` from its start, in a group of its own (so it sees every record
/// and commits nothing).
pub fn topic_reader(bootstrap: &str, topic: &str) -> rdkafka::consumer::StreamConsumer {
    use rdkafka::consumer::Consumer;
    let consumer: rdkafka::consumer::StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_name("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

