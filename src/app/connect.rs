//! Connecting to the three dependencies at start (Kafka, the Kubernetes API, the audit store),
//! each bounded and failing with an error that names the address, and the process's signals.

use std::sync::Arc;

use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use tokio_util::sync::CancellationToken;

use super::{Error, Result, STARTUP_TIMEOUT};
use crate::config::Config;
use crate::server::{CHECK_TIMEOUT, Dependencies};
use crate::store::Store;

/// Connects to the three dependencies concurrently; the error names the one that failed and
/// its address.
pub async fn connect(config: &Config) -> Result<Dependencies> {
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
pub async fn connect_kafka(config: &Config) -> Result<AdminClient<DefaultClientContext>> {
    let servers = config.kafka.bootstrap_servers.clone();
    let admin: AdminClient<DefaultClientContext> =
        kafka_client_config(config)
            .create()
            .map_err(|source| Error::KafkaClient {
                servers: servers.clone(),
                source,
            })?;
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
    .map_err(|source| Error::Panicked {
        task: "Kafka start-up check",
        source,
    })?
    .map_err(|source| Error::KafkaUnreachable {
        servers: servers.clone(),
        timeout: STARTUP_TIMEOUT,
        source,
    })?;
    if brokers == 0 {
        return Err(Error::NoBrokers { servers });
    }
    tracing::info!(%servers, brokers, "connected to Kafka");
    Arc::into_inner(admin).ok_or(Error::AdminStillShared)
}

/// Builds a Kubernetes client (the configured kubeconfig, else KUBECONFIG / ~/.kube/config,
/// else in-cluster) and checks the API server answers `/version`. Returns the client and the
/// server URL.
pub async fn connect_kubernetes(config: &Config) -> Result<(kube::Client, String)> {
    let options = kube::config::KubeConfigOptions {
        context: config.kubernetes.context.clone(),
        ..Default::default()
    };
    let kube_config = match &config.kubernetes.kubeconfig {
        Some(path) => {
            let file =
                kube::config::Kubeconfig::read_from(path).map_err(|source| Error::Kubeconfig {
                    problem: "cannot read",
                    path: path.clone(),
                    source,
                })?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|source| Error::Kubeconfig {
                    problem: "invalid",
                    path: path.clone(),
                    source,
                })?
        }
        None if options.context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(Error::KubeContext)?,
        None => kube::Config::infer()
            .await
            .map_err(Error::NoKubeCredentials)?,
    };
    let url = kube_config.cluster_url.to_string();
    let client = kube::Client::try_from(kube_config).map_err(|source| Error::KubeClient {
        url: url.clone(),
        source,
    })?;
    let version = tokio::time::timeout(STARTUP_TIMEOUT, client.apiserver_version())
        .await
        .map_err(|_| Error::KubeTimeout {
            url: url.clone(),
            timeout: STARTUP_TIMEOUT,
        })?
        .map_err(|source| Error::KubeUnreachable {
            url: url.clone(),
            source,
        })?;
    tracing::info!(%url, version = %version.git_version, "connected to Kubernetes");
    Ok((client, url))
}

/// Opens the audit store and applies its migrations.
pub async fn connect_store(config: &Config) -> Result<Store> {
    let store = Store::connect(&config.store.url).await?;
    tracing::info!(url = %store.url(), backend = ?store.backend(), "connected to the audit store");
    Ok(store)
}

/// Cancels `shutdown` on the first SIGINT or SIGTERM; takes SIGHUP over from its default.
pub fn spawn_signal_handler(shutdown: CancellationToken) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handler = |name| {
        move |source| Error::Signal {
            signal: name,
            source,
        }
    };
    let mut terminate = signal(SignalKind::terminate()).map_err(handler("SIGTERM"))?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(handler("SIGINT"))?;
    // SIGHUP reloads the rules (crate::reload). Registering it now replaces the default
    // action (terminate) for the whole process life, so a SIGHUP sent during start-up, before
    // the reloader listens, is ignored instead of killing the process.
    drop(signal(SignalKind::hangup()).map_err(handler("SIGHUP"))?);
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
