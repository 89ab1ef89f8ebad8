//! HTTP endpoints for health, readiness and metrics.
//!
//! - `/healthz`: the process is up and serving (liveness).
//! - `/readyz`: 200 only when Kafka answers a metadata request, the Kubernetes API answers
//!   `/version`, the audit store answers a query and (under `reflex run`) the event consumer
//!   has joined its group with no partition stuck retrying; the JSON body has each check's
//!   result.
//! - `/metrics`: OpenMetrics text, including one readiness gauge per dependency.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::outcome::store::Store;

/// How long one readiness check may take. Kubelet probes time out after 1 s by default and are
/// usually raised to a few seconds; a check that has not answered in 3 s counts as failed so a
/// hung dependency cannot hang the probe.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr} (is another process using it? set server.listen or --listen)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed after start.
    #[error("HTTP server on {addr} failed")]
    Serve {
        /// The address.
        addr: SocketAddr,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub use crate::metrics::{Dependency, Metrics};

/// The result of one readiness check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// Which dependency.
    pub dependency: Dependency,
    /// Whether it answered.
    pub ok: bool,
    /// How long the check took, in milliseconds.
    pub millis: u64,
    /// Why it failed, naming the address tried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The `/readyz` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadinessReport {
    /// True when every check passed.
    pub ready: bool,
    /// One entry per dependency.
    pub checks: Vec<CheckResult>,
}

/// Clients for the dependencies, used only to check that each one answers.
pub struct Dependencies {
    /// A Kafka admin client (metadata requests).
    pub kafka: Arc<AdminClient<DefaultClientContext>>,
    /// The brokers, for error messages.
    pub kafka_bootstrap: String,
    /// The Kubernetes client.
    pub kube: kube::Client,
    /// The API server URL, for error messages.
    pub kube_url: String,
    /// The audit store.
    pub store: Store,
    /// Bound on each check.
    pub check_timeout: Duration,
}

impl std::fmt::Debug for Dependencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dependencies")
            .field("kafka_bootstrap", &self.kafka_bootstrap)
            .field("kube_url", &self.kube_url)
            .field("store", &self.store.url())
            .finish_non_exhaustive()
    }
}

async fn timed<F>(dependency: Dependency, limit: Duration, what: &str, check: F) -> CheckResult
where
    F: Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    let result = match tokio::time::timeout(limit, check).await {
        Ok(result) => result,
        Err(_) => Err(format!("{what}: no answer within {limit:?}")),
    };
    let millis = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    CheckResult {
        dependency,
        ok: result.is_ok(),
        millis,
        error: result.err(),
    }
}

impl Dependencies {
    /// Asks Kafka for cluster metadata (no topics, so it is cheap).
    pub async fn check_kafka(&self) -> CheckResult {
        let admin = Arc::clone(&self.kafka);
        let bootstrap = self.kafka_bootstrap.clone();
        let limit = self.check_timeout;
        timed(
            Dependency::Kafka,
            limit,
            &format!("Kafka at {bootstrap}"),
            async move {
                // fetch_metadata blocks the calling thread until librdkafka answers.
                let fetched = tokio::task::spawn_blocking(move || {
                    admin
                        .inner()
                        .fetch_metadata(None, limit)
                        .map(|m| m.brokers().len())
                })
                .await
                .map_err(|err| format!("Kafka check task failed: {err}"))?;
                match fetched {
                    Ok(0) => Err(format!(
                        "Kafka at {bootstrap} returned metadata with no brokers"
                    )),
                    Ok(_) => Ok(()),
                    Err(err) => Err(format!(
                        "Kafka at {bootstrap}: metadata request failed: {err}"
                    )),
                }
            },
        )
        .await
    }

    /// Asks the Kubernetes API server for `/version`.
    pub async fn check_kubernetes(&self) -> CheckResult {
        let url = &self.kube_url;
        timed(
            Dependency::Kubernetes,
            self.check_timeout,
            &format!("Kubernetes API at {url}"),
            async {
                self.kube
                    .apiserver_version()
                    .await
                    .map(drop)
                    .map_err(|err| format!("Kubernetes API at {url}: GET /version failed: {err}"))
            },
        )
        .await
    }

    /// Runs a trivial query on the audit store.
    pub async fn check_store(&self) -> CheckResult {
        let url = self.store.url();
        timed(
            Dependency::Store,
            self.check_timeout,
            &format!("store at {url}"),
            async {
                self.store
                    .ping()
                    .await
                    .map_err(|err| format!("{:#}", anyhow::Error::new(err)))
            },
        )
        .await
    }

    /// Runs the three checks concurrently.
    pub async fn check_all(&self) -> ReadinessReport {
        let (kafka, kube, store) = tokio::join!(
            self.check_kafka(),
            self.check_kubernetes(),
            self.check_store()
        );
        let checks = vec![kafka, kube, store];
        ReadinessReport {
            ready: checks.iter().all(|c| c.ok),
            checks,
        }
    }
}

/// Shared state of the HTTP handlers.
#[derive(Debug)]
pub struct AppState {
    /// What `/readyz` checks.
    pub dependencies: Dependencies,
    /// What `/metrics` shows.
    pub metrics: &'static Metrics,
    /// The event consumer's state, when one runs; part of readiness.
    pub consumer: Option<Arc<crate::source::Status>>,
}

impl AppState {
    /// Checks every dependency and records the results in the metrics.
    pub async fn readiness(&self) -> ReadinessReport {
        let mut report = self.dependencies.check_all().await;
        if let Some(consumer) = &self.consumer {
            let error = consumer.readiness().err();
            report.ready &= error.is_none();
            report.checks.push(CheckResult {
                dependency: Dependency::Consumer,
                ok: error.is_none(),
                millis: 0,
                error,
            });
        }
        for check in &report.checks {
            self.metrics.set_ready(check.dependency, check.ok);
        }
        report
    }
}

/// The routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let report = state.readiness().await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// Binds the listen address. Separate from [`serve`] so a bad address fails before anything
/// else starts, and tests can bind port 0 and learn the port.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// Serves the routes until `shutdown` is cancelled, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: CancellationToken,
) -> Result<()> {
    let addr = listener.local_addr().map_err(|source| Error::Serve {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(|source| Error::Serve { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readiness_report_serialises_each_check_with_its_error() {
        let report = ReadinessReport {
            ready: false,
            checks: vec![
                CheckResult {
                    dependency: Dependency::Kafka,
                    ok: false,
                    millis: 3000,
                    error: Some("Kafka at 127.0.0.1:1: no answer".to_owned()),
                },
                CheckResult {
                    dependency: Dependency::Store,
                    ok: true,
                    millis: 1,
                    error: None,
                },
            ],
        };
        let json = serde_json::to_value(&report).expect("serialisable");
        assert_eq!(json["ready"], false);
        assert_eq!(json["checks"][0]["dependency"], "kafka");
        assert_eq!(
            json["checks"][0]["error"],
            "Kafka at 127.0.0.1:1: no answer"
        );
        assert!(json["checks"][1].get("error").is_none());
    }
}
