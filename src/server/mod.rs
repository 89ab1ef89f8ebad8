//! The HTTP server: probes and metrics for Kubernetes and Prometheus, the rules listing for
//! operators, and the ingest endpoints that let Alertmanager and CloudEvents producers feed
//! Reflex without a bridge.
//!
//! - `GET /healthz`: the process is up and serving (liveness).
//! - `GET /readyz`: 200 only when Kafka answers a metadata request, the audit store answers a
//!   query, a rule set is loaded, (under `reflex run`) the event consumer has joined its group
//!   with no partition stuck retrying, and the Kubernetes API answers `/version` when a loaded
//!   rule has a Kubernetes action; the JSON body has each check's result ([`health`]).
//! - `GET /metrics`: OpenMetrics text ([`crate::metrics`]).
//! - `GET /v1/rules`: the loaded rules, their state and last match, the last reload
//!   ([`rules_api`]).
//! - `POST /v1/alertmanager`, `POST /v1/events`, `POST /v1/github`, `POST /v1/gitlab`: write
//!   what is posted to Kafka, answering 200 only once the broker acknowledged it ([`ingest`]).
//! - `GET /v1/quarantines`, `POST /v1/quarantines/release`: the loop guard's quarantines, and
//!   lifting them ([`quarantines`]).

pub mod auth;
mod cloudevents;
pub mod health;
pub mod ingest;
mod problem;
pub mod quarantines;
pub mod rules_api;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::metrics::{Dependency, Metrics};
pub use health::{CHECK_TIMEOUT, CheckResult, Dependencies, ReadinessReport};
pub use ingest::{Ingest, IngestState};
pub use problem::ApiError;

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

/// Shared state of the HTTP handlers.
#[derive(Debug)]
pub struct AppState {
    /// What `/readyz` checks.
    pub dependencies: Dependencies,
    /// What `/metrics` shows.
    pub metrics: &'static Metrics,
    /// The event consumer's state, when one runs; part of readiness.
    pub consumer: Option<Arc<crate::source::Status>>,
    /// The running pipeline, when one runs: its rules feed `/readyz` and `/v1/rules`.
    pub pipeline: Option<Arc<crate::pipeline::Pipeline>>,
    /// The last rule reload, shown by `/readyz` and `/v1/rules`.
    pub reload: Arc<crate::reload::Status>,
    /// Whether Kubernetes actions are carried out (`actions.kubernetes`): only then can the
    /// rules need the Kubernetes API, and only then does `/readyz` check it.
    pub kubernetes_actions: bool,
    /// The ingest endpoints: on (with their producer and token) or off (and why).
    pub ingest: IngestState,
    /// The token `GET /v1/rules` and `GET /v1/quarantines` require
    /// (`server.rules_api_auth`); `None` = open.
    pub rules_token: Option<auth::Token>,
    /// Who may `POST /v1/quarantines/release`.
    pub release: quarantines::ReleaseAuth,
}

/// The routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/v1/rules", get(rules_api::list))
        .route("/v1/alertmanager", post(ingest::alertmanager))
        .route("/v1/events", post(ingest::events))
        .route("/v1/github", post(ingest::github))
        .route("/v1/gitlab", post(ingest::gitlab))
        .route("/v1/quarantines", get(quarantines::list))
        .route("/v1/quarantines/release", post(quarantines::release))
        .with_state(state)
}

/// Binds the listen address. Separate from [`serve`] so a bad address fails before anything
/// else starts, and tests can bind port 0 and learn the port.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// Serves the routes until `shutdown` is cancelled, then finishes in-flight requests (an
/// ingest request waiting for the broker's acknowledgement still gets its answer).
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: CancellationToken,
) -> Result<()> {
    let addr = listener.local_addr().map_err(|source| Error::Serve {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    let ingest = match &state.ingest {
        IngestState::On(_) => "on".to_owned(),
        IngestState::Off { why } => format!("off ({why})"),
    };
    tracing::info!(%addr, %ingest, "serving /healthz, /readyz, /metrics, /v1/rules, /v1/quarantines and ingest");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(|source| Error::Serve { addr, source })
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;
    use crate::store::Store;

    /// A state whose dependencies point nowhere (no check is run by these requests), with
    /// ingest off, `/v1/rules` behind a token and releasing off.
    async fn state(dir: &std::path::Path) -> Arc<AppState> {
        let url = format!("sqlite://{}", dir.join("audit.db").display());
        let store = Store::connect(&url).await.expect("sqlite store");
        Arc::new(state_with(store, quarantines::ReleaseAuth::Off))
    }

    /// Like [`state`], on `store`, releasing as `release` says.
    pub(super) fn state_with(store: Store, release: quarantines::ReleaseAuth) -> AppState {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kafka = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .create()
            .expect("admin client");
        let kube_config = kube::Config::new("http://127.0.0.1:1".parse().expect("url"));
        let kube = kube::Client::try_from(kube_config).expect("kube client");
        AppState {
            dependencies: Dependencies {
                kafka: Arc::new(kafka),
                kafka_bootstrap: "127.0.0.1:1".to_owned(),
                kube,
                kube_url: "http://127.0.0.1:1".to_owned(),
                store,
                check_timeout: CHECK_TIMEOUT,
            },
            metrics: crate::metrics::global(),
            consumer: None,
            pipeline: None,
            reload: Arc::new(crate::reload::Status::default()),
            kubernetes_actions: true,
            ingest: IngestState::Off {
                why: "no bearer token is configured".to_owned(),
            },
            rules_token: auth::Token::new("listing-token"),
            release,
        }
    }

    #[tokio::test]
    async fn ingest_off_answers_404_saying_why_and_a_protected_rules_listing_needs_the_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(listener, state(dir.path()).await, shutdown.clone()));
        let http = reqwest::Client::new();

        let response = http
            .post(format!("{base}/v1/alertmanager"))
            .body("{}")
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body: serde_json::Value = response.json().await.expect("JSON error");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains("ingest is off: no bearer token"), "{body}");

        let response = http
            .get(format!("{base}/v1/rules"))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        // With the token it passes auth; no pipeline runs in this process, which it says.
        let response = http
            .get(format!("{base}/v1/rules"))
            .bearer_auth("listing-token")
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body: serde_json::Value = response.json().await.expect("JSON error");
        assert!(
            body["hint"]
                .as_str()
                .unwrap_or_default()
                .contains("reflex run"),
            "{body}"
        );

        shutdown.cancel();
        server.await.expect("server task").expect("clean stop");
    }
}
