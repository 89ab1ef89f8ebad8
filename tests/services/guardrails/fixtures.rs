//! Fixtures of the guardrail tests: an HTTP receiver that records when each request started
//! and ended, a namespace with a Deployment, and pipelines wired with guard settings.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use reflex::actions::Executors;
use reflex::actions::kubernetes::KubeExecutor;
use reflex::actions::webhook::{WebhookConfig, WebhookExecutor};
use reflex::config::{ActionsConfig, Config, KafkaConfig, PipelineConfig};
use reflex::pipeline::Pipeline;
use reflex::rules::RuleSet;
use reflex::store::Store;
use serde_json::json;

use super::harness::{Kafka, pipeline};
use crate::support;

/// One request the receiver answered.
#[derive(Debug, Clone)]
pub struct Visit {
    pub path: String,
    pub started: DateTime<Utc>,
    pub ended: DateTime<Utc>,
}

#[derive(Debug)]
struct Behaviour {
    delay: Duration,
    status: StatusCode,
    visits: Mutex<Vec<Visit>>,
}

/// A real HTTP server on 127.0.0.1 answering every request with `status` after `delay`.
pub struct Receiver {
    addr: SocketAddr,
    behaviour: Arc<Behaviour>,
}

async fn answer(State(behaviour): State<Arc<Behaviour>>, uri: Uri) -> StatusCode {
    let started = Utc::now();
    tokio::time::sleep(behaviour.delay).await;
    let ended = Utc::now();
    behaviour.visits.lock().expect("visits lock").push(Visit {
        path: uri.path().to_owned(),
        started,
        ended,
    });
    behaviour.status
}

impl Receiver {
    pub async fn start(delay: Duration, status: StatusCode) -> Receiver {
        let behaviour = Arc::new(Behaviour {
            delay,
            status,
            visits: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&behaviour));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("test receiver");
        });
        Receiver { addr, behaviour }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn visits(&self) -> Vec<Visit> {
        self.behaviour.visits.lock().expect("visits lock").clone()
    }
}

/// Executors for webhooks (any literal host) and, when given a client, Kubernetes.
pub fn executors(kube: Option<kube::Client>) -> Executors {
    support::install_crypto_provider();
    Executors {
        webhook: Some(WebhookExecutor::new(WebhookConfig::default()).expect("webhook executor")),
        kubernetes: kube.map(KubeExecutor::new),
        ..Executors::default()
    }
}

/// A pipeline with these executors and guard settings (Reflex's own topics: `kafka`'s).
pub async fn guarded(
    rules: &Arc<RuleSet>,
    store: &Store,
    kafka: &Kafka,
    executors: Executors,
    actions: &ActionsConfig,
) -> Pipeline {
    let config = Config {
        actions: actions.clone(),
        kafka: KafkaConfig {
            topics: kafka.topics.clone(),
            ..KafkaConfig::default()
        },
        ..Config::default()
    };
    pipeline(rules, store, kafka, &PipelineConfig::default())
        .await
        .with_executors(executors)
        .with_guard(&config)
}

/// A fresh namespace (name starting with `prefix`) holding a Deployment `web`.
pub struct Workload {
    pub client: kube::Client,
    pub namespace: String,
}

impl Workload {
    pub async fn create(prefix: &str) -> Workload {
        support::install_crypto_provider();
        let client = support::kube_client(&support::kubeconfig()).await;
        let namespace = support::unique_name(prefix);
        Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": namespace}}))
                    .expect("namespace"),
            )
            .await
            .expect("create namespace");
        let manifest = json!({
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "registry.example.org/web:1"}]}
                }
            }
        });
        Api::<Deployment>::namespaced(client.clone(), &namespace)
            .create(
                &PostParams::default(),
                &serde_json::from_value(manifest).expect("deployment"),
            )
            .await
            .expect("create deployment");
        Workload { client, namespace }
    }

    /// The `kubectl.kubernetes.io/restartedAt` annotation of the Deployment, if a restart set it.
    pub async fn restarted_at(&self) -> Option<String> {
        let deployment = Api::<Deployment>::namespaced(self.client.clone(), &self.namespace)
            .get("web")
            .await
            .expect("get deployment");
        deployment
            .spec
            .template
            .metadata
            .as_ref()?
            .annotations
            .as_ref()?
            .get("kubectl.kubernetes.io/restartedAt")
            .cloned()
    }

    pub async fn delete(self) {
        Api::<Namespace>::all(self.client)
            .delete(&self.namespace, &DeleteParams::default())
            .await
            .expect("delete namespace");
    }
}
