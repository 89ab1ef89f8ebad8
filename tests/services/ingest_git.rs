//! `POST /v1/github` and `POST /v1/gitlab` of Reflex's HTTP server, in process, against the real
//! Kafka: a webhook with the right signature (computed here from a test secret, as GitHub does)
//! or token is exactly one record on the source's topic, keyed by the repository and decoded by
//! Reflex's own CloudEvents decoder into the provider's event type with the payload reachable by
//! path; a bad or missing signature or a wrong GitLab token is 401 and the topic stays empty
//! (read to its end); GitHub's `ping` is 200 and writes nothing. No bearer token is configured:
//! the webhooks need none, and `/v1/alertmanager` stays off.
//!
//! Run: `scripts/services up && eval "$(scripts/services env)" && cargo test --features services --test services ingest_git::`

use crate::support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use rdkafka::ClientConfig;
use rdkafka::Message as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use reflex::config::Config;
use reflex::event::decode::{self, DecodeLimits, Decoding, RawRecord};
use reflex::server::{self, AppState, CHECK_TIMEOUT, Dependencies, IngestState};
use reflex::store::Store;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

const WORKFLOW_RUN: &str = include_str!("../data/webhooks/github-workflow_run-failure.json");
const PUSH: &str = include_str!("../data/webhooks/github-push.json");
const PING: &str = include_str!("../data/webhooks/github-ping.json");
const PIPELINE: &str = include_str!("../data/webhooks/gitlab-pipeline-failed.json");

const GITHUB_SECRET: &str = "gh-test-secret-4d0c";
const GITLAB_SECRET: &str = "gl-test-secret-91ab";

/// Bound on reading the topic's end.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(30);

/// Reflex's HTTP server with both webhook sources writing to `topic`.
struct Server {
    base: String,
    http: reqwest::Client,
    bootstrap: String,
    topic: String,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(prefix: &str) -> Server {
        support::install_crypto_provider();
        let bootstrap = support::require_kafka().await;
        let topic = support::unique_name(prefix);
        // One partition: its high watermark is the number of records written.
        support::create_topic(&bootstrap, &topic, 1).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let secret_file = dir.path().join("github-secret");
        std::fs::write(&secret_file, format!("{GITHUB_SECRET}\n")).expect("write secret");
        let yaml = format!(
            "kafka:\n  bootstrap_servers: {bootstrap}\n  topics:\n    events: [{topic}]\n\
             server:\n  ingest:\n    github:\n      secret_file: {}\n    gitlab:\n      \
             secret_env: REFLEX_TEST_GITLAB_SECRET\n      topic: {topic}\n",
            secret_file.display()
        );
        let config = Config::from_yaml(&yaml, Path::new("ingest_git.yaml")).expect("config");
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", &bootstrap);
        let ingest = IngestState::configure(&config, &client, |name| {
            (name == "REFLEX_TEST_GITLAB_SECRET").then(|| GITLAB_SECRET.to_owned())
        })
        .expect("ingest configured");
        assert!(matches!(ingest, IngestState::On(_)), "{ingest:?}");
        let state = Arc::new(state(&bootstrap, ingest, dir.path()).await);
        let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let shutdown = CancellationToken::new();
        tokio::spawn(server::serve(listener, state, shutdown.clone()));
        Server {
            base,
            http: reqwest::Client::new(),
            bootstrap,
            topic,
            shutdown,
            _dir: dir,
        }
    }

    async fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> (StatusCode, Value) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("POST");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// How many records the topic holds (its one partition's high watermark).
    async fn records(&self) -> i64 {
        let consumer = support::topic_reader(&self.bootstrap, &self.topic);
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || consumer.fetch_watermarks(&topic, 0, KAFKA_TIMEOUT))
            .await
            .expect("watermark task")
            .expect("watermarks")
            .1
    }

    /// The topic's records, read to its end, as Reflex's consumer decodes them (auto-detection,
    /// as a topic without a configured decoding is read).
    async fn read_all(&self) -> Vec<(Option<String>, Vec<reflex::event::Event>)> {
        let end = self.records().await;
        let consumer: StreamConsumer = support::topic_reader(&self.bootstrap, &self.topic);
        let mut out = Vec::new();
        while (out.len() as i64) < end {
            let message = tokio::time::timeout(KAFKA_TIMEOUT, consumer.recv())
                .await
                .expect("a record within the timeout")
                .expect("a record");
            let headers = support::header_map(&message.detach());
            let raw = RawRecord {
                topic: &self.topic,
                partition: message.partition(),
                offset: message.offset(),
                key: message.key(),
                headers: headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), Some(v.as_bytes())))
                    .collect(),
                payload: message.payload(),
                timestamp: None,
            };
            let events = decode::decode(&raw, Decoding::Auto, &DecodeLimits::default())
                .expect("Reflex's decoder reads what ingest wrote");
            let key = message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned());
            out.push((key, events));
        }
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Handler state with real Kafka for ingest; the other dependencies are not used by these
/// requests.
async fn state(bootstrap: &str, ingest: IngestState, dir: &Path) -> AppState {
    let url = format!("sqlite://{}", dir.join("audit.db").display());
    let store = Store::connect(&url).await.expect("sqlite store");
    let kafka = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let kube_config = kube::Config::new("http://127.0.0.1:1".parse().expect("url"));
    AppState {
        dependencies: Dependencies {
            kafka: Arc::new(kafka),
            kafka_bootstrap: bootstrap.to_owned(),
            kube: kube::Client::try_from(kube_config).expect("kube client"),
            kube_url: "http://127.0.0.1:1".to_owned(),
            store,
            check_timeout: CHECK_TIMEOUT,
        },
        metrics: reflex::metrics::global(),
        consumer: None,
        pipeline: None,
        reload: Arc::new(reflex::reload::Status::default()),
        kubernetes_actions: false,
        ingest,
        rules_token: None,
        release: server::quarantines::ReleaseAuth::Off,
    }
}

/// `X-Hub-Signature-256` as GitHub computes it: HMAC-SHA256 of the body, hex, `sha256=`.
fn github_signature(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
#[ignore = "needs Kafka (scripts/services up)"]
async fn a_bad_or_missing_github_signature_is_401_and_nothing_reaches_kafka() {
    let server = Server::start("ingest-github-refused").await;
    let event = ("x-github-event", "workflow_run");
    let wrong = github_signature("not-the-secret", WORKFLOW_RUN);
    // Signed over another body: a replayed signature does not cover a changed payload.
    let other_body = github_signature(GITHUB_SECRET, PUSH);
    for (headers, says) in [
        (vec![event], "no x-hub-signature-256"),
        (
            vec![event, ("x-hub-signature-256", wrong.as_str())],
            "not the body's signature",
        ),
        (
            vec![event, ("x-hub-signature-256", other_body.as_str())],
            "not the body's signature",
        ),
        (
            vec![event, ("x-hub-signature-256", "sha256=00")],
            "not the body's signature",
        ),
    ] {
        let (status, body) = server.post("/v1/github", &headers, WORKFLOW_RUN).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{says}: {body}");
        assert!(
            body["hint"].as_str().unwrap_or_default().contains("secret"),
            "{body}"
        );
    }
    // A wrong or missing GitLab token likewise.
    let pipeline = ("x-gitlab-event", "Pipeline Hook");
    for headers in [
        vec![pipeline],
        vec![pipeline, ("x-gitlab-token", "gl-test-secret")],
    ] {
        let (status, body) = server.post("/v1/gitlab", &headers, PIPELINE).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    // GitHub's ping, correctly signed, is answered and writes nothing.
    let signature = github_signature(GITHUB_SECRET, PING);
    let ping = [
        ("x-github-event", "ping"),
        ("x-hub-signature-256", signature.as_str()),
    ];
    let (status, body) = server.post("/v1/github", &ping, PING).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["records"], Value::Array(Vec::new()), "{body}");

    // No bearer token is configured: the webhook sources serve, the bearer-token endpoints
    // stay off and say why.
    let (status, body) = server.post("/v1/alertmanager", &[], "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("no bearer token"), "{body}");

    assert_eq!(server.records().await, 0, "refused requests wrote records");
}

#[tokio::test]
#[ignore = "needs Kafka (scripts/services up)"]
async fn signed_github_and_gitlab_webhooks_are_one_cloudevent_each_keyed_by_repository() {
    let server = Server::start("ingest-git").await;
    let signature = github_signature(GITHUB_SECRET, WORKFLOW_RUN);
    let delivery = "5f1e9a40-d1c2-11f0-8f3e-7a1b2c3d4e5f";
    let headers = [
        ("x-github-event", "workflow_run"),
        ("x-github-delivery", delivery),
        ("x-hub-signature-256", signature.as_str()),
        ("user-agent", "GitHub-Hookshot/5a1b2c3"),
    ];
    let (status, body) = server.post("/v1/github", &headers, WORKFLOW_RUN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["topic"], server.topic.as_str(), "{body}");
    assert_eq!(body["events"], 1, "{body}");

    let headers = [
        ("x-gitlab-event", "Pipeline Hook"),
        (
            "x-gitlab-event-uuid",
            "0b8c6a7e-3f52-4c1d-9e07-5d2f8a1b6c90",
        ),
        ("x-gitlab-token", GITLAB_SECRET),
    ];
    let (status, body) = server.post("/v1/gitlab", &headers, PIPELINE).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let records = server.read_all().await;
    assert_eq!(records.len(), 2, "exactly one record per webhook");

    let (key, events) = &records[0];
    assert_eq!(key.as_deref(), Some("example-shop/checkout"));
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.meta.format, reflex::event::Format::Cloudevents);
    assert_eq!(
        event.meta.event_type.as_deref(),
        Some("com.github.workflow_run")
    );
    assert_eq!(event.meta.id, delivery);
    assert_eq!(
        event.meta.source.as_deref(),
        Some("https://github.com/example-shop/checkout")
    );
    assert_eq!(event.payload["workflow_run"]["conclusion"], "failure");
    assert_eq!(event.payload["repository"]["default_branch"], "main");
    let sent: Value = serde_json::from_str(WORKFLOW_RUN).expect("sample is JSON");
    assert_eq!(
        event.payload, sent,
        "the body is the CloudEvent's data, unchanged"
    );

    let (key, events) = &records[1];
    assert_eq!(key.as_deref(), Some("payments/ledger"));
    let event = &events[0];
    assert_eq!(
        event.meta.event_type.as_deref(),
        Some("com.gitlab.pipeline")
    );
    assert_eq!(event.meta.id, "0b8c6a7e-3f52-4c1d-9e07-5d2f8a1b6c90");
    assert_eq!(event.payload["object_attributes"]["status"], "failed");
}
