//! `reflex run`: the controller's main job.
//!
//! For now it loads the configuration, connects to Kafka, the Kubernetes API and the audit
//! store (failing with an error that names the address when one cannot be reached), serves
//! `/healthz`, `/readyz` and `/metrics`, and stops cleanly on SIGINT or SIGTERM. The event
//! pipeline (consume, evaluate, act, record) plugs in here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::outcome::store::Store;
use crate::server::{self, AppState, CHECK_TIMEOUT, Dependencies, Metrics};

/// How long `reflex run` waits for each dependency at start before giving up. Longer than a
/// readiness check because a broker or API server that is itself starting (a fresh test
/// environment, a rolling restart) usually answers within seconds; still bounded so a wrong
/// address ends the process with a clear error instead of a silent hang.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// Arguments of `reflex run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Configuration file (YAML). Without it, the defaults apply, with environment overrides
    /// (KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL, KUBECONFIG).
    #[arg(long, short = 'c', env = "REFLEX_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Rules directory; overrides `rules.dir` from the configuration.
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Address for /healthz, /readyz and /metrics; overrides `server.listen`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

/// Runs the controller until SIGINT or SIGTERM.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    // Signals first, so a SIGTERM during start-up stops the process cleanly too.
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone())?;

    let config = load_config(&args)?;
    tracing::info!(
        kafka = %config.kafka.bootstrap_servers,
        store = %crate::outcome::store::redact_url(&config.store.url),
        listen = %config.server.listen,
        rules = %config.rules.dir.display(),
        "starting reflex"
    );

    // Bind before connecting: a taken port is a configuration error worth reporting at once.
    let listener = server::bind(config.server.listen).await?;

    let dependencies = tokio::select! {
        deps = connect(&config) => deps?,
        () = shutdown.cancelled() => {
            tracing::info!("stopped during start-up");
            return Ok(());
        }
    };
    let state = Arc::new(AppState {
        dependencies,
        metrics: Metrics::default(),
    });

    let report = state.readiness().await;
    for check in &report.checks {
        match &check.error {
            None => {
                tracing::info!(dependency = ?check.dependency, millis = check.millis, "dependency ready")
            }
            Some(error) => {
                tracing::warn!(dependency = ?check.dependency, %error, "dependency not ready")
            }
        }
    }
    tracing::info!(ready = report.ready, "reflex started");

    server::serve(listener, Arc::clone(&state), shutdown.clone()).await?;

    state.dependencies.store.close().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Loads the configuration file (if any), environment overrides, then command-line overrides.
pub fn load_config(args: &RunArgs) -> anyhow::Result<Config> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(rules) = &args.rules {
        config.rules.dir.clone_from(rules);
    }
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    Ok(config)
}

/// Connects to the three dependencies concurrently; the error names the one that failed and
/// its address.
pub async fn connect(config: &Config) -> anyhow::Result<Dependencies> {
    let (kafka, kube, store) = tokio::join!(
        connect_kafka(config),
        connect_kubernetes(config),
        connect_store(config),
    );
    let (kafka, kube, store) = (kafka?, kube?, store?);
    Ok(Dependencies {
        kafka: Arc::new(kafka),
        kafka_bootstrap: config.kafka.bootstrap_servers.clone(),
        kube: kube.0,
        kube_url: kube.1,
        store,
        check_timeout: CHECK_TIMEOUT,
    })
}

/// Builds the librdkafka configuration: the pass-through map, then the bootstrap servers.
pub fn kafka_client_config(config: &Config) -> ClientConfig {
    let mut client = ClientConfig::new();
    for (key, value) in &config.kafka.client {
        client.set(key, value);
    }
    client
        .set("bootstrap.servers", &config.kafka.bootstrap_servers)
        .set("client.id", "reflex");
    client
}

/// Creates a Kafka admin client and waits (bounded) for the cluster's metadata.
pub async fn connect_kafka(config: &Config) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    let servers = config.kafka.bootstrap_servers.clone();
    let admin: AdminClient<DefaultClientContext> = kafka_client_config(config)
        .create()
        .with_context(|| format!("invalid Kafka client configuration for {servers}"))?;
    let admin = Arc::new(admin);
    let probe = Arc::clone(&admin);
    // fetch_metadata blocks until librdkafka answers or the timeout passes.
    let brokers = tokio::task::spawn_blocking(move || {
        probe
            .inner()
            .fetch_metadata(None, STARTUP_TIMEOUT)
            .map(|m| m.brokers().len())
    })
    .await
    .context("Kafka start-up check panicked")?
    .with_context(|| {
        format!(
            "cannot reach Kafka at {servers} within {STARTUP_TIMEOUT:?} \
             (check kafka.bootstrap_servers / KAFKA_BOOTSTRAP_SERVERS)"
        )
    })?;
    if brokers == 0 {
        bail!("Kafka at {servers} answered with no brokers in its metadata");
    }
    tracing::info!(%servers, brokers, "connected to Kafka");
    Arc::into_inner(admin).context("Kafka admin client still shared after the start-up check")
}

/// Builds a Kubernetes client (the configured kubeconfig, else KUBECONFIG / ~/.kube/config,
/// else in-cluster) and checks the API server answers `/version`. Returns the client and the
/// server URL.
pub async fn connect_kubernetes(config: &Config) -> anyhow::Result<(kube::Client, String)> {
    let options = kube::config::KubeConfigOptions {
        context: config.kubernetes.context.clone(),
        ..Default::default()
    };
    let kube_config = match &config.kubernetes.kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .with_context(|| format!("invalid kubeconfig {}", path.display()))?
        }
        None if options.context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .context("cannot load the kubeconfig context named in kubernetes.context")?,
        None => kube::Config::infer().await.context(
            "no Kubernetes credentials: set kubernetes.kubeconfig or KUBECONFIG, or run in a pod",
        )?,
    };
    let url = kube_config.cluster_url.to_string();
    let client = kube::Client::try_from(kube_config)
        .with_context(|| format!("cannot build a Kubernetes client for {url}"))?;
    let version = tokio::time::timeout(STARTUP_TIMEOUT, client.apiserver_version())
        .await
        .map_err(|_| {
            anyhow::anyhow!("Kubernetes API at {url} did not answer within {STARTUP_TIMEOUT:?}")
        })?
        .with_context(|| format!("cannot reach the Kubernetes API at {url}"))?;
    tracing::info!(%url, version = %version.git_version, "connected to Kubernetes");
    Ok((client, url))
}

/// Opens the audit store and applies its migrations.
pub async fn connect_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(&config.store.url).await?;
    tracing::info!(url = %store.url(), backend = ?store.backend(), "connected to the audit store");
    Ok(store)
}

/// Cancels `shutdown` on the first SIGINT or SIGTERM.
fn spawn_signal_handler(shutdown: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate =
        signal(SignalKind::terminate()).context("cannot install a SIGTERM handler")?;
    let mut interrupt =
        signal(SignalKind::interrupt()).context("cannot install a SIGINT handler")?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down");
        shutdown.cancel();
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_flags_override_the_configuration() {
        let args = RunArgs {
            config: None,
            rules: Some(PathBuf::from("/etc/reflex/rules")),
            listen: Some(SocketAddr::from(([0, 0, 0, 0], 9000))),
        };
        let config = load_config(&args).expect("defaults load");
        assert_eq!(config.rules.dir, PathBuf::from("/etc/reflex/rules"));
        assert_eq!(config.server.listen.to_string(), "0.0.0.0:9000");
    }

    #[test]
    fn kafka_passthrough_settings_reach_librdkafka_and_bootstrap_wins() {
        let mut config = Config::default();
        config.kafka.bootstrap_servers = "b1:9092,b2:9092".to_owned();
        config
            .kafka
            .client
            .insert("security.protocol".to_owned(), "SSL".to_owned());
        let client = kafka_client_config(&config);
        assert_eq!(client.get("security.protocol"), Some("SSL"));
        assert_eq!(client.get("bootstrap.servers"), Some("b1:9092,b2:9092"));
    }
}
