//! The running controller behind `reflex run`, wired from its parts.
//!
//! [`App::build`] loads the rules (printing every problem and failing when a rule is invalid),
//! binds the HTTP listener, connects to Kafka, the Kubernetes API and the audit store (failing
//! with an error that names the address when one cannot be reached) and builds the
//! [`Pipeline`] with its executors and guard. [`App::run`] then runs four tasks until
//! `shutdown`: the Kafka consumer ([`KafkaSource`]) feeding the pipeline, a timer firing the
//! rules' due deadlines, the rules [`Reloader`] (directory polling and SIGHUP) and the HTTP
//! server (`/healthz`, `/readyz`, `/metrics`, `/v1/rules`, ingest). When any of them ends, the
//! others are told to stop too: the process exits instead of limping on without its consumer
//! or its probes. On shutdown the consumer drains, the pipeline saves its rule state, offsets
//! are committed and the consumer leaves its group. `reflex bench` builds its pipeline with
//! the same functions.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::FutureProducer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::actions::Executors;
use crate::config::Config;
use crate::outcome::topic::producer_max_message_bytes;
use crate::pipeline::Pipeline;
use crate::reload::Reloader;
use crate::rules::{LoadError, RuleSet};
use crate::server::auth::Token;
use crate::server::{self, AppState, CHECK_TIMEOUT, Dependencies, IngestState};
use crate::source::KafkaSource;
use crate::store::Store;

/// How long `reflex run` waits for each dependency at start before giving up. Longer than a
/// readiness check because a broker or API server that is itself starting (a fresh test
/// environment, a rolling restart) usually answers within seconds; still bounded so a wrong
/// address ends the process with a clear error instead of a silent hang.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// How often the timer asks the pipeline to fire due deadlines (`once_after`, `absence`). Rule
/// windows are written in seconds or more, so firing up to one second late is within what a
/// rule can express; records arriving also fire due deadlines on their way.
const TICK_EVERY: Duration = Duration::from_secs(1);

/// How often the timer holds the stateful rules to their `max_keys` (a count per rule in the
/// store; an over-full rule loses the keys due first).
const BOUND_KEYS_EVERY: Duration = Duration::from_secs(30);

/// The controller, connected and built, ready to run.
pub struct App {
    listener: TcpListener,
    pipeline: Arc<Pipeline>,
    source: KafkaSource<Pipeline>,
    reloader: Reloader,
    state: Arc<AppState>,
}

impl App {
    /// Loads the rules, binds the HTTP listener, connects to the dependencies and builds the
    /// pipeline. `None` when `shutdown` is cancelled while connecting or building.
    pub async fn build(
        config: &Config,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<App>> {
        // Taken before loading, so a change made while the rules load is seen at the first poll.
        let fingerprint = crate::reload::fingerprint(&config.rules.dir).ok();
        let rules = load_rules(config)?;
        let ingest = IngestState::configure(config, &kafka_client_config(config), |name| {
            std::env::var(name).ok()
        })?;
        let rules_token = rules_api_token(config)?;
        tracing::info!(
            kafka = %config.kafka.bootstrap_servers,
            store = %crate::store::redact_url(&config.store.url),
            listen = %config.server.listen,
            rules = %config.rules.dir.display(),
            "starting reflex"
        );

        // Bind before connecting: a taken port is a configuration error worth reporting at once.
        let listener = server::bind(config.server.listen).await?;

        let dependencies = tokio::select! {
            deps = connect(config) => deps?,
            () = shutdown.cancelled() => {
                tracing::info!("stopped during start-up");
                return Ok(None);
            }
        };
        let pipeline = tokio::select! {
            pipeline = build_pipeline(config, rules, dependencies.store.clone()) => {
                Arc::new(
                    pipeline?
                        .with_executors(build_executors(config, &dependencies.kube)?)
                        .with_guard(config),
                )
            }
            () = shutdown.cancelled() => {
                tracing::info!("stopped during start-up");
                return Ok(None);
            }
        };
        let source = KafkaSource::new(config, Arc::clone(&pipeline))
            .context("cannot create the Kafka consumer")?;
        let reloader = Reloader::new(
            config.rules.dir.clone(),
            config.rules.reload_interval,
            Arc::clone(&pipeline),
            fingerprint,
        )?;
        let state = Arc::new(AppState {
            dependencies,
            metrics: crate::metrics::global(),
            consumer: Some(source.status()),
            pipeline: Some(Arc::clone(&pipeline)),
            reload: reloader.status(),
            kubernetes_actions: config.actions.kubernetes,
            ingest,
            rules_token,
        });
        Ok(Some(App {
            listener,
            pipeline,
            source,
            reloader,
            state,
        }))
    }

    /// Logs readiness, then runs the consumer, the timer, the reloader and the HTTP server
    /// until `shutdown` or until one of them ends; closes the store at the end.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let App {
            listener,
            pipeline,
            source,
            reloader,
            state,
        } = self;
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

        // Each task cancels `shutdown` when it ends, for whatever reason, so the others stop too.
        let consumer = tokio::spawn(critical(shutdown.clone(), source.run(shutdown.clone())));
        let timer = tokio::spawn(critical(
            shutdown.clone(),
            run_timer(Arc::clone(&pipeline), shutdown.clone()),
        ));
        let reload = tokio::spawn(critical(shutdown.clone(), reloader.run(shutdown.clone())));
        let http = tokio::spawn(critical(
            shutdown.clone(),
            server::serve(listener, Arc::clone(&state), shutdown.clone()),
        ));
        let (consumer, timer, reload, http) = tokio::join!(consumer, timer, reload, http);
        timer.context("the timer task panicked")?;
        reload.context("the rules reloader task panicked")?;
        let http = http.context("the HTTP server task panicked")?;
        consumer
            .context("the consumer task panicked")?
            .context("the Kafka consumer failed")?;
        http?;

        state.dependencies.store.close().await;
        tracing::info!("stopped cleanly");
        Ok(())
    }
}

/// Runs `task`; cancels `shutdown` when it ends, whether it succeeded or failed.
async fn critical<T>(shutdown: CancellationToken, task: impl Future<Output = T>) -> T {
    let _stop_the_others = shutdown.drop_guard();
    task.await
}

/// Loads and compiles the rules directory; prints every problem and fails when any rule is
/// invalid, so a broken rule set never starts consuming.
pub fn load_rules(config: &Config) -> anyhow::Result<Arc<RuleSet>> {
    let dir = &config.rules.dir;
    match crate::rules::load_dir(dir) {
        Ok(rules) => {
            let enabled = rules.rules().iter().filter(|r| r.enabled).count();
            if enabled == 0 {
                tracing::warn!(dir = %dir.display(), "no enabled rules: events will be consumed and match nothing");
            } else {
                tracing::info!(dir = %dir.display(), rules = rules.len(), enabled, "rules loaded");
            }
            Ok(Arc::new(rules))
        }
        Err(LoadError::Invalid(problems)) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            bail!(
                "{} problem(s) in the rules under {}; fix them (`reflex validate {}` lists them \
                 too)",
                problems.len(),
                dir.display(),
                dir.display()
            )
        }
        Err(err) => Err(err).with_context(|| {
            format!(
                "cannot load the rules from {} (set rules.dir or --rules)",
                dir.display()
            )
        }),
    }
}

/// The token `GET /v1/rules` requires when `server.rules_api_auth` is set: the ingest token,
/// which must then be configured.
fn rules_api_token(config: &Config) -> anyhow::Result<Option<Token>> {
    if !config.server.rules_api_auth {
        return Ok(None);
    }
    let token = Token::from_config(&config.server.ingest, |name| std::env::var(name).ok())?;
    token.map(Some).context(
        "server.rules_api_auth is true but no token is configured; set \
         server.ingest.token_file or server.ingest.token_env",
    )
}

/// Creates the outcome producer and the pipeline (which restores the rules' state).
pub async fn build_pipeline(
    config: &Config,
    rules: Arc<RuleSet>,
    store: Store,
) -> anyhow::Result<Pipeline> {
    let mut client = kafka_client_config(config);
    // Retries after a lost acknowledgement must not write an outcome twice.
    client.set("enable.idempotence", "true");
    // A record's offset waits for its outcome's acknowledgement, so the outcome producer sends
    // at once instead of lingering librdkafka's default 5 ms for a fuller batch; records of
    // concurrent partitions still share batches. A configured value wins.
    if !config.kafka.client.contains_key("linger.ms")
        && !config.kafka.client.contains_key("queue.buffering.max.ms")
    {
        client.set("linger.ms", "0");
    }
    // A dead-letter copy of any record within the decode limit, plus its headers, must fit the
    // producer's limit (librdkafka's default is 1,000,000 bytes, below the 1 MiB decode
    // limit); a configured value wins (larger dead letters are then cut to fit it).
    if !config.kafka.client.contains_key("message.max.bytes") {
        let max = producer_max_message_bytes(config.pipeline.max_payload_bytes);
        client.set("message.max.bytes", max.to_string());
    }
    let producer: FutureProducer = client.create().with_context(|| {
        format!(
            "invalid Kafka producer configuration for {}",
            config.kafka.bootstrap_servers
        )
    })?;
    Pipeline::new(
        rules,
        store,
        producer,
        &config.kafka.topics,
        &config.pipeline,
    )
    .await
    .context("cannot start the pipeline (restoring the rules' state from the store)")
}

/// Builds the executors the configuration switches on (`actions:`).
pub fn build_executors(config: &Config, kube: &kube::Client) -> anyhow::Result<Executors> {
    let actions = &config.actions;
    let kubernetes = actions
        .kubernetes
        .then(|| crate::actions::kubernetes::KubeExecutor::new(kube.clone()));
    let webhook = if actions.webhook {
        let webhook_config = crate::actions::webhook::WebhookConfig {
            allowed_hosts: actions.webhook_allowed_hosts.clone(),
            ..Default::default()
        };
        Some(
            crate::actions::webhook::WebhookExecutor::new(webhook_config)
                .context("invalid `actions.webhook_allowed_hosts`")?,
        )
    } else {
        None
    };
    let kafka = if actions.kafka {
        Some(
            crate::actions::kafka::KafkaExecutor::new(
                &kafka_client_config(config),
                crate::actions::kafka::DEFAULT_ACK_TIMEOUT,
            )
            .context("cannot create the Kafka action producer")?,
        )
    } else {
        None
    };
    tracing::info!(
        kubernetes = kubernetes.is_some(),
        webhook = webhook.is_some(),
        kafka = kafka.is_some(),
        "action executors"
    );
    Ok(Executors {
        kubernetes,
        webhook,
        kafka,
    })
}

/// Fires due rule deadlines every [`TICK_EVERY`], and holds the rules to their `max_keys`
/// every [`BOUND_KEYS_EVERY`], until `shutdown` (every decision saves the state it changed
/// before it returns).
async fn run_timer(pipeline: Arc<Pipeline>, shutdown: CancellationToken) {
    let mut last_bound = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval(TICK_EVERY);
    // After a stall (a slow store), fire once, not once per missed second.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Log a failure once at WARN, then at DEBUG until it recovers: the store being down is
    // already reported by the partitions and by readiness.
    let mut failing = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let mut result = pipeline.tick(Utc::now()).await.map(drop);
        if result.is_ok() && last_bound.elapsed() >= BOUND_KEYS_EVERY {
            result = pipeline.bound_keys().await.map(drop);
            last_bound = tokio::time::Instant::now();
        }
        match result {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("rule timers work again");
            }
            Ok(()) => {}
            Err(err) if !failing => {
                failing = true;
                tracing::warn!(error = %err, "firing rule timers failed; retrying every second");
            }
            Err(err) => tracing::debug!(error = %err, "firing rule timers still fails"),
        }
    }
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

/// Cancels `shutdown` on the first SIGINT or SIGTERM; takes SIGHUP over from its default.
pub fn spawn_signal_handler(shutdown: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate =
        signal(SignalKind::terminate()).context("cannot install a SIGTERM handler")?;
    let mut interrupt =
        signal(SignalKind::interrupt()).context("cannot install a SIGINT handler")?;
    // SIGHUP reloads the rules (crate::reload). Registering it now replaces the default
    // action (terminate) for the whole process life, so a SIGHUP sent during start-up, before
    // the reloader listens, is ignored instead of killing the process.
    drop(signal(SignalKind::hangup()).context("cannot install a SIGHUP handler")?);
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
