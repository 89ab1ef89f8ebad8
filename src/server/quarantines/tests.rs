//! The endpoints over real HTTP on a real SQLite store (the same statements run on PostgreSQL in
//! `tests/services/cli_closed_loop.rs`).

use std::net::SocketAddr;

use axum::http::StatusCode;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::server::tests::state_with;
use crate::store::Store;

/// A server on 127.0.0.1 with a SQLite store holding two active quarantines on
/// `deployment/shop/checkout` (rules `restart` and `scale`) and one expired on `node/worker-3`;
/// releasing needs `release-token`.
struct Server {
    base: String,
    store: Store,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<crate::server::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(release: ReleaseAuth) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("audit.db").display());
        let store = Store::connect(&url).await.expect("sqlite store");
        let now = Utc::now().timestamp_millis();
        let hour = 3_600_000;
        for (rule, target, since, until) in [
            (
                "restart",
                "deployment/shop/checkout",
                now - hour,
                now + hour,
            ),
            ("scale", "deployment/shop/checkout", now - hour, now + hour),
            ("cordon", "node/worker-3", now - 3 * hour, now - hour),
        ] {
            let opened = store
                .open_quarantine(rule, target, since, until, "recurring", Some("rem-1"))
                .await
                .expect("open quarantine");
            assert!(opened, "{rule} on {target}");
        }
        let listener = crate::server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let shutdown = CancellationToken::new();
        let state = Arc::new(state_with(store.clone(), release));
        let task = tokio::spawn(crate::server::serve(listener, state, shutdown.clone()));
        Server {
            base,
            store,
            shutdown,
            task,
            _dir: dir,
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth("listing-token")
            .send()
            .await
            .expect("GET");
        let status = response.status();
        (status, response.json().await.expect("a JSON answer"))
    }

    async fn release(&self, token: Option<&str>, body: &str) -> (StatusCode, Value) {
        let mut request = reqwest::Client::new()
            .post(format!("{}/v1/quarantines/release", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("POST");
        let status = response.status();
        (status, response.json().await.expect("a JSON answer"))
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("server task").expect("clean stop");
        self.store.close().await;
    }
}

fn field(rows: &Value, key: &str) -> Vec<String> {
    rows.as_array()
        .expect("an array")
        .iter()
        .map(|r| format!("{}@{}", r["rule"].as_str().unwrap_or("?"), r[key]))
        .collect()
}

#[tokio::test]
async fn the_listing_shows_active_quarantines_and_all_of_them_on_request() {
    let server = Server::start(ReleaseAuth::Off).await;
    let (status, body) = server.get("/v1/quarantines").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        field(&body["quarantines"], "target"),
        [
            "restart@\"deployment/shop/checkout\"",
            "scale@\"deployment/shop/checkout\""
        ]
    );
    let first = &body["quarantines"][0];
    assert_eq!(first["active"], true);
    assert_eq!(first["reason"], "recurring");
    assert_eq!(first["remediation_id"], "rem-1");
    assert!(
        first["since"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{first}"
    );

    let (status, body) = server.get("/v1/quarantines?all=true").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        field(&body["quarantines"], "active"),
        ["cordon@false", "restart@true", "scale@true"]
    );

    let (status, body) = server.get("/v1/quarantines?everything=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("all=true"),
        "{body}"
    );

    let response = reqwest::get(format!("{}/v1/quarantines", server.base))
        .await
        .expect("GET");
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "protected like /v1/rules"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_release_needs_the_token_and_lifts_the_quarantines_of_the_target() {
    let server = Server::start(ReleaseAuth::Token(
        Token::new("release-token").expect("token"),
    ))
    .await;
    let body = r#"{"target": "deployment/shop/checkout", "rule": "restart"}"#;
    let (status, answer) = server.release(None, body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    let (status, answer) = server.release(Some("listing-token"), body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");

    // The kind may be written as Kubernetes spells it.
    let body = r#"{"target": "Deployment/shop/checkout", "rule": "restart"}"#;
    let (status, answer) = server.release(Some("release-token"), body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let released = &answer["released"];
    assert_eq!(field(released, "active"), ["restart@false"]);
    assert_eq!(released[0]["released_by"], RELEASED_BY_HTTP);
    assert!(released[0]["released_at"].is_string(), "{answer}");
    let row = server
        .store
        .quarantine("restart", "deployment/shop/checkout")
        .await
        .expect("read")
        .expect("the row stays, released");
    assert_eq!(row.released_by.as_deref(), Some("http"));
    assert!(!row.active(Utc::now().timestamp_millis()));

    // Again: nothing left for that rule; the other rule's quarantine is untouched.
    let (status, answer) = server.release(Some("release-token"), body).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("rule `restart` has no active quarantine on `deployment/shop/checkout`"),
        "{answer}"
    );
    let (_, listing) = server.get("/v1/quarantines").await;
    assert_eq!(field(&listing["quarantines"], "active"), ["scale@true"]);

    // Without a rule, every rule's quarantine on the target; an expired one is not released.
    let all = r#"{"target": "deployment/shop/checkout"}"#;
    let (status, answer) = server.release(Some("release-token"), all).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(field(&answer["released"], "active"), ["scale@false"]);
    let (status, answer) = server
        .release(Some("release-token"), r#"{"target": "node/worker-3"}"#)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "expired: {answer}");
    server.stop().await;
}

#[tokio::test]
async fn a_bad_release_request_is_refused_saying_what_to_send() {
    let server = Server::start(ReleaseAuth::Open).await;
    for body in [
        "",
        "not json",
        r#"{"rule": "restart"}"#,
        r#"{"target": "x", "force": true}"#,
        r#"{"target": "  "}"#,
    ] {
        let (status, answer) = server.release(None, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(
            answer["hint"]
                .as_str()
                .unwrap_or_default()
                .contains("\"target\""),
            "{body}: {answer}"
        );
    }
    let (_, listing) = server.get("/v1/quarantines").await;
    assert_eq!(
        listing["quarantines"].as_array().map(Vec::len),
        Some(2),
        "nothing was released"
    );
    server.stop().await;
}

#[tokio::test]
async fn without_a_configured_token_releasing_over_http_is_off_and_says_how_to_turn_it_on() {
    let server = Server::start(ReleaseAuth::Off).await;
    let (status, answer) = server
        .release(
            Some("anything"),
            r#"{"target": "deployment/shop/checkout"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let hint = answer["hint"].as_str().unwrap_or_default();
    assert!(hint.contains("server.ingest.token_file"), "{answer}");
    assert!(hint.contains("reflex release"), "{answer}");
    server.stop().await;
}

#[test]
fn release_auth_follows_the_ingest_token_and_allow_unauthenticated() {
    let config = IngestConfig {
        token_env: Some("T".to_owned()),
        ..IngestConfig::default()
    };
    let auth = ReleaseAuth::configure(&config, |_| Some("secret".to_owned())).expect("token");
    assert!(matches!(auth, ReleaseAuth::Token(_)));
    let off = ReleaseAuth::configure(&IngestConfig::default(), |_| None).expect("no token");
    assert!(matches!(off, ReleaseAuth::Off));
    let open = IngestConfig {
        allow_unauthenticated: true,
        enabled: false,
        ..IngestConfig::default()
    };
    let open = ReleaseAuth::configure(&open, |_| None).expect("open");
    assert!(
        matches!(open, ReleaseAuth::Open),
        "ingest being off does not matter"
    );
}

#[test]
fn a_target_names_its_kind_in_lower_case_and_keeps_the_rest() {
    assert_eq!(
        target_name(" Deployment/Shop/Checkout "),
        "deployment/Shop/Checkout"
    );
    assert_eq!(target_name("node/worker-3"), "node/worker-3");
    assert_eq!(target_name("web"), "web");
}
