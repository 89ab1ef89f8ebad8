//! Helpers shared by the integration tests that talk to the real services started by
//! `scripts/services up`.
//!
//! Connection details come from the environment (`eval "$(scripts/services env)"`). A missing
//! variable or an unreachable service FAILS the test (never skips it), naming what was tried
//! and how to start the services; every wait is bounded so a stopped service cannot hang a run.

// Each tier's root declares this module `pub` (`pub mod support;`): the tiers use different
// parts of it, and rustc checks a test binary's private items only, so a helper one tier leaves
// unused is no warning there. A helper no tier uses is deleted.

use std::path::PathBuf;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;

pub mod cli;
pub mod history;
pub mod kafka_broker;
pub mod private_postgres;
pub mod reflex_process;
pub mod running;

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

/// `REFLEX_KUBECONFIG_LIMITED` (a user with almost no permissions).
pub fn kubeconfig_limited() -> PathBuf {
    PathBuf::from(required_env("REFLEX_KUBECONFIG_LIMITED"))
}

/// `DATABASE_URL` (PostgreSQL).
pub fn database_url() -> String {
    required_env("DATABASE_URL")
}

/// Installs rustls' ring provider once; kube and reqwest need exactly one.
pub fn install_crypto_provider() {
    // Err means another test already installed it, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A name no other test (or earlier run) uses: `<prefix>-<12 hex digits>`, valid as a Kafka
/// topic, a Kubernetes namespace and a PostgreSQL identifier.
pub fn unique_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..12])
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

/// Creates `namespace` and in it the Deployment `name` (label `app: <name>`, one container of
/// a placeholder image that is never pulled: no kubelet runs) with `replicas` replicas (0: the
/// controller-manager completes its rollouts without pods). Returns the namespace's
/// Deployments.
pub async fn namespace_with_deployment(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    replicas: i32,
) -> kube::Api<k8s_openapi::api::apps::v1::Deployment> {
    use kube::api::PostParams;
    kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}}))
                .expect("namespace"),
        )
        .await
        .unwrap_or_else(|err| panic!("create namespace {namespace}: {err}"));
    let deployments = kube::Api::namespaced(client.clone(), namespace);
    let image = format!("registry.example.org/shop/{name}:1.0.0");
    deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(deployment_manifest(name, replicas, &image))
                .expect("deployment"),
        )
        .await
        .unwrap_or_else(|err| panic!("create deployment {namespace}/{name}: {err}"));
    deployments
}

/// A Deployment `name` with `replicas` replicas of one container running `image`, selected by
/// the label `app: <name>`.
pub fn deployment_manifest(name: &str, replicas: i32, image: &str) -> serde_json::Value {
    serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": image}]}
            }
        }
    })
}

/// The `kubectl.kubernetes.io/restartedAt` pod-template annotation of Deployment `name` (set
/// by a restart), `None` while it has none.
pub async fn restarted_at(
    deployments: &kube::Api<k8s_openapi::api::apps::v1::Deployment>,
    name: &str,
) -> Option<String> {
    let d = deployments
        .get(name)
        .await
        .unwrap_or_else(|err| panic!("get deployment {name}: {err}"));
    d.spec
        .template
        .metadata?
        .annotations?
        .get("kubectl.kubernetes.io/restartedAt")
        .cloned()
}

/// A client for `user`: the admin credentials impersonating a user that belongs to no group
/// with privileges, so only what is bound to `user` applies.
pub async fn impersonating(user: &str) -> kube::Client {
    install_crypto_provider();
    let path = kubeconfig();
    let file = kube::config::Kubeconfig::read_from(&path).expect("read kubeconfig");
    let mut config = kube::Config::from_custom_kubeconfig(file, &Default::default())
        .await
        .expect("valid kubeconfig");
    config.auth_info.impersonate = Some(user.to_owned());
    config.auth_info.impersonate_groups = Some(vec!["system:authenticated".to_owned()]);
    kube::Client::try_from(config).expect("client")
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

/// A record's headers as text (lossy UTF-8; a header without value is empty; last one wins).
pub fn header_map(
    message: &rdkafka::message::OwnedMessage,
) -> std::collections::BTreeMap<String, String> {
    use rdkafka::message::{Headers, Message};
    let mut map = std::collections::BTreeMap::new();
    if let Some(headers) = message.headers() {
        for header in headers.iter() {
            let value = header
                .value
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            map.insert(header.key.to_owned(), value);
        }
    }
    map
}

/// A PostgreSQL database of its own for one test, created on the server of `DATABASE_URL` and
/// dropped by [`TempDatabase::drop_now`] (replicas sharing a store need a real server, and a
/// fresh database keeps their rows apart from every other test's).
pub struct TempDatabase {
    admin_url: String,
    name: String,
    /// The URL of the new database.
    pub url: String,
}

impl TempDatabase {
    /// Creates `<prefix>_<12 hex digits>`; fails the test when PostgreSQL does not answer.
    pub async fn create(prefix: &str) -> TempDatabase {
        let admin_url = database_url();
        let name = unique_name(prefix).replace('-', "_");
        let (base, query) = admin_url
            .split_once('?')
            .map_or((admin_url.as_str(), ""), |(b, q)| (b, q));
        let authority = base.find("://").map_or(0, |i| i + 3);
        let server = base[authority..]
            .find('/')
            .map_or(base, |slash| &base[..authority + slash]);
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        let url = format!("{server}/{name}{query}");
        Self::admin_sql(&admin_url, &format!("CREATE DATABASE {name}")).await;
        TempDatabase {
            admin_url,
            name,
            url,
        }
    }

    /// Drops the database, disconnecting whoever is still connected.
    pub async fn drop_now(self) {
        Self::admin_sql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .await;
    }

    async fn admin_sql(admin_url: &str, sql: &str) {
        use sqlx::Connection;
        let mut admin =
            tokio::time::timeout(PRECHECK_TIMEOUT, sqlx::PgConnection::connect(admin_url))
                .await
                .unwrap_or_else(|_| panic!("PostgreSQL at {admin_url} did not answer; {HINT}"))
                .unwrap_or_else(|err| {
                    panic!("cannot connect to PostgreSQL at {admin_url}: {err}; {HINT}")
                });
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|err| panic!("`{sql}` failed: {err}"));
    }
}

/// Serves `app` on an ephemeral port of 127.0.0.1 (a real HTTP server standing in for a webhook
/// receiver) until the test's runtime ends; returns its address.
pub async fn serve(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an HTTP server to 127.0.0.1:0");
    let addr = listener.local_addr().expect("server address");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("test HTTP server");
    });
    addr
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

/// Installs a CustomResourceDefinition of `kind` (plural `<kind in lower case>s`, version `v1`)
/// in a group no other test uses, with `scope` `Namespaced` or `Cluster`, a scale subresource
/// on `.spec.replicas` and `spec_properties` as the schema of `spec`; waits until it is
/// established and served (bounded by `limit`). Returns (group, CRD name).
pub async fn install_scalable_crd(
    client: &kube::Client,
    kind: &str,
    scope: &str,
    spec_properties: serde_json::Value,
    limit: Duration,
) -> (String, String) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, PostParams};
    let singular = kind.to_lowercase();
    let plural = format!("{singular}s");
    let group = format!("{}.reflex.test", unique_name(&singular[..1]));
    let name = format!("{plural}.{group}");
    let crd = serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": name },
        "spec": {
            "group": group,
            "scope": scope,
            "names": { "plural": plural, "singular": singular, "kind": kind },
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": { "scale": {
                    "specReplicasPath": ".spec.replicas",
                    "statusReplicasPath": ".status.replicas"
                } },
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": { "type": "object", "properties": spec_properties },
                        "status": { "type": "object", "properties": {
                            "replicas": { "type": "integer" }
                        } }
                    }
                } }
            }]
        }
    });
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(crd).expect("valid CRD"),
    )
    .await
    .expect("create CRD");
    let gvk = kube::core::GroupVersionKind::gvk(&group, "v1", kind);
    eventually(&format!("CRD {name} established and served"), limit, || {
        let (client, crds, gvk, name) = (client.clone(), crds.clone(), gvk.clone(), name.clone());
        async move {
            let crd = crds.get(&name).await.ok()?;
            let established = crd
                .status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            let served = kube::discovery::pinned_kind(&client, &gvk).await.is_ok();
            (established && served).then_some(())
        }
    })
    .await;
    (group, name)
}
