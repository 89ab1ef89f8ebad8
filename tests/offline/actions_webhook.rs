//! The webhook executor against a real HTTP server (an axum app on `127.0.0.1:0` in the same
//! test), nothing mocked. Retry timing runs on paused tokio time: the client, the server and the
//! backoff sleeps share one current-thread runtime, so virtual time only moves when everything
//! waits on a timer, and the gaps between arrivals are the executor's delays exactly.

use crate::support;

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{KeyInit, Mac};
use reflex::actions::webhook::{
    BackoffPolicy, Error, RESPONSE_EXCERPT_BYTES, WebhookConfig, WebhookExecutor,
};
use reflex::rules::action::{HmacParams, HttpMethod, SecretRef, StatusRange, WebhookAction};
use serde_json::json;
use tokio::time::Instant;

/// One scripted answer of the test receiver.
#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    /// Wait this long before answering (virtual time in paused tests).
    delay: Option<Duration>,
    /// Put the received `Authorization` header into the body (a receiver that echoes).
    echo_authorization: bool,
}

fn reply(status: u16) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: format!("answer {status}"),
        delay: None,
        echo_authorization: false,
    }
}

/// What the receiver saw.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Default)]
struct Script {
    replies: VecDeque<Reply>,
    seen: Vec<Seen>,
}

type Shared = Arc<Mutex<Script>>;

async fn handle(
    State(script): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let next = {
        let mut script = script.lock().expect("script lock");
        script.seen.push(Seen {
            at: Instant::now(),
            method,
            uri,
            headers: headers.clone(),
            body,
        });
        // Once the script is used up, the receiver says 200.
        script.replies.pop_front().unwrap_or_else(|| reply(200))
    };
    if let Some(delay) = next.delay {
        tokio::time::sleep(delay).await;
    }
    let mut body = next.body.clone();
    if next.echo_authorization {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none");
        body = format!("you sent: {auth}");
    }
    let mut response = (
        StatusCode::from_u16(next.status).expect("valid status"),
        body,
    )
        .into_response();
    for (name, value) in next.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    response
}

/// The test receiver.
struct Receiver {
    addr: SocketAddr,
    script: Shared,
}

impl Receiver {
    async fn start(replies: Vec<Reply>) -> Receiver {
        let script: Shared = Arc::new(Mutex::new(Script {
            replies: replies.into(),
            seen: Vec::new(),
        }));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("test server");
        });
        Receiver { addr, script }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.script.lock().expect("script lock").seen.clone()
    }
}

/// Parameters as the planner renders them, with the defaults a rule gets.
fn params(url: String) -> WebhookAction {
    WebhookAction {
        method: HttpMethod::Post,
        url: url.into(),
        headers: BTreeMap::new(),
        secret_headers: BTreeMap::new(),
        body: None,
        body_text: None,
        timeout_ms: 10_000,
        retries: 3,
        success_status: vec![StatusRange { from: 200, to: 299 }],
        hmac: None,
        idempotent_receiver: false,
    }
}

/// Exact delays (no jitter), so paused-time tests can assert them to the millisecond.
fn exact_backoff(first_ms: u64) -> BackoffPolicy {
    BackoffPolicy {
        first_delay: Duration::from_millis(first_ms),
        max_delay: Duration::from_secs(10),
        max_retry_after: Duration::from_secs(60),
        jitter: false,
    }
}

fn executor(backoff: BackoffPolicy, allowed_hosts: &[&str]) -> WebhookExecutor {
    support::install_crypto_provider();
    WebhookExecutor::new(WebhookConfig {
        allowed_hosts: allowed_hosts.iter().map(|h| h.to_string()).collect(),
        backoff,
    })
    .expect("executor")
}

fn gaps(seen: &[Seen]) -> Vec<Duration> {
    seen.windows(2).map(|w| w[1].at - w[0].at).collect()
}

/// backon computes delays in f32; a millisecond covers its rounding.
fn assert_close(got: Duration, want: Duration) {
    assert!(
        got.abs_diff(want) <= Duration::from_millis(2),
        "got {got:?}, want {want:?}"
    );
}

#[tokio::test]
async fn a_json_webhook_arrives_with_its_exact_body_headers_and_idempotency_key() {
    let receiver = Receiver::start(vec![Reply {
        body: r#"{"ticket":"INC-42"}"#.into(),
        ..reply(201)
    }])
    .await;
    let body = json!({
        "alert": "HighLatency",
        "labels": {"team": "sre", "quote": "a \"b\" \\ c", "unicode": "é✓"},
        "count": 3,
        "ratio": 0.25,
        "resolved": false,
        "tags": ["a", null],
    });
    let mut p = params(receiver.url("/hooks/alerts?source=reflex"));
    p.method = HttpMethod::Put;
    p.headers.insert("X-Team".into(), "sre".into());
    p.body = Some(body.clone());

    let result = executor(BackoffPolicy::default(), &[])
        .execute(&p, "rule-a/0/evt-1")
        .await
        .expect("webhook succeeds");

    assert_eq!(result.status, 201);
    assert_eq!(result.attempts, 1);
    assert_eq!(result.response_excerpt, r#"{"ticket":"INC-42"}"#);
    let seen = receiver.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.method, Method::PUT);
    assert_eq!(request.uri.path(), "/hooks/alerts");
    assert_eq!(request.uri.query(), Some("source=reflex"));
    assert_eq!(
        request.body.as_ref(),
        serde_json::to_vec(&body).expect("json").as_slice()
    );
    let received: serde_json::Value = serde_json::from_slice(&request.body).expect("json body");
    assert_eq!(received, body);
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["idempotency-key"], "rule-a/0/evt-1");
    assert_eq!(request.headers["x-team"], "sre");
}

#[tokio::test]
async fn a_text_body_is_sent_as_utf8_text_and_a_long_answer_is_cut_to_the_excerpt_bound() {
    let receiver = Receiver::start(vec![Reply {
        body: "x".repeat(10 * RESPONSE_EXCERPT_BYTES),
        ..reply(200)
    }])
    .await;
    let mut p = params(receiver.url("/text"));
    p.body_text = Some("disk full on node-7 ✓".into());

    let result = executor(BackoffPolicy::default(), &[])
        .execute(&p, "k-text")
        .await
        .expect("webhook succeeds");

    let seen = receiver.seen();
    assert_eq!(seen[0].body.as_ref(), "disk full on node-7 ✓".as_bytes());
    assert_eq!(seen[0].headers["content-type"], "text/plain; charset=utf-8");
    assert!(
        result
            .response_excerpt
            .starts_with(&"x".repeat(RESPONSE_EXCERPT_BYTES))
    );
    // The bound plus the one-character truncation mark.
    assert_eq!(
        result.response_excerpt.chars().count(),
        RESPONSE_EXCERPT_BYTES + 1
    );
}

#[tokio::test(start_paused = true)]
async fn two_503s_then_200_take_three_attempts_spaced_by_the_doubling_backoff() {
    let receiver = Receiver::start(vec![reply(503), reply(503), reply(200)]).await;
    let mut p = params(receiver.url("/flaky"));
    p.body = Some(json!({"n": 1}));

    let result = executor(exact_backoff(100), &[])
        .execute(&p, "k-503")
        .await
        .expect("third attempt succeeds");

    assert_eq!(result.status, 200);
    assert_eq!(result.attempts, 3);
    let seen = receiver.seen();
    assert_eq!(seen.len(), 3);
    let gaps = gaps(&seen);
    assert_close(gaps[0], Duration::from_millis(100));
    assert_close(gaps[1], Duration::from_millis(200));
    assert!(
        result.elapsed_ms.abs_diff(300) <= 4,
        "{}",
        result.elapsed_ms
    );
    // Every attempt carries the same idempotency key, so the receiver can deduplicate.
    assert!(seen.iter().all(|s| s.headers["idempotency-key"] == "k-503"));
}

#[tokio::test(start_paused = true)]
async fn jittered_delays_stay_within_their_ceilings_and_exhausted_5xx_is_retryable() {
    let receiver = Receiver::start(vec![reply(502); 6]).await;
    let mut p = params(receiver.url("/down"));
    p.retries = 4;
    let backoff = BackoffPolicy {
        first_delay: Duration::from_millis(200),
        max_delay: Duration::from_millis(600),
        max_retry_after: Duration::from_secs(60),
        jitter: true,
    };

    let err = executor(backoff, &[])
        .execute(&p, "k-jitter")
        .await
        .expect_err("every attempt fails");

    assert!(matches!(err, Error::Status { status: 502, .. }), "{err}");
    assert_eq!(err.attempts(), 5);
    assert!(err.retryable());
    let seen = receiver.seen();
    assert_eq!(seen.len(), 5);
    // Full jitter: each delay is somewhere in [0, ceiling]; ceilings 200, 400, 600 (capped), 600.
    for (gap, ceiling_ms) in gaps(&seen).into_iter().zip([200, 400, 600, 600]) {
        assert!(
            gap <= Duration::from_millis(ceiling_ms + 2),
            "{gap:?} > {ceiling_ms} ms"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_seconds_on_a_429_replace_the_backoff() {
    let receiver = Receiver::start(vec![
        Reply {
            headers: vec![("retry-after", "3".into())],
            ..reply(429)
        },
        reply(200),
    ])
    .await;
    let p = params(receiver.url("/limited"));

    let result = executor(exact_backoff(100), &[])
        .execute(&p, "k-429")
        .await
        .expect("second attempt succeeds");

    assert_eq!(result.attempts, 2);
    let gaps = gaps(&receiver.seen());
    assert_close(gaps[0], Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_the_cap_waits_only_the_cap() {
    let receiver = Receiver::start(vec![
        Reply {
            headers: vec![("retry-after", "3600".into())],
            ..reply(503)
        },
        reply(200),
    ])
    .await;
    let backoff = BackoffPolicy {
        max_retry_after: Duration::from_secs(5),
        ..exact_backoff(100)
    };

    let result = executor(backoff, &[])
        .execute(&params(receiver.url("/busy")), "k-cap")
        .await
        .expect("second attempt succeeds");

    assert_eq!(result.attempts, 2);
    assert_close(gaps(&receiver.seen())[0], Duration::from_secs(5));
}

#[tokio::test]
async fn a_400_fails_at_once_without_retry_and_is_permanent() {
    let receiver = Receiver::start(vec![Reply {
        body: "field `summary` is required".into(),
        ..reply(400)
    }])
    .await;

    let err = executor(exact_backoff(1), &[])
        .execute(&params(receiver.url("/strict")), "k-400")
        .await
        .expect_err("400 fails");

    assert!(!err.retryable(), "{err}");
    assert_eq!(err.attempts(), 1);
    match &err {
        Error::Status {
            status, excerpt, ..
        } => {
            assert_eq!(*status, 400);
            assert_eq!(excerpt, "field `summary` is required");
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    assert_eq!(receiver.seen().len(), 1);
}

#[tokio::test]
async fn a_status_listed_in_success_status_succeeds_even_outside_2xx() {
    let receiver = Receiver::start(vec![reply(409)]).await;
    let mut p = params(receiver.url("/exists"));
    p.success_status = vec![
        StatusRange { from: 200, to: 299 },
        StatusRange { from: 409, to: 409 },
    ];

    let result = executor(exact_backoff(1), &[])
        .execute(&p, "k-409")
        .await
        .expect("409 counts as success");

    assert_eq!((result.status, result.attempts), (409, 1));
}

#[tokio::test(start_paused = true)]
async fn a_slow_receiver_times_out_on_every_attempt_and_the_attempts_are_counted() {
    let slow = Reply {
        delay: Some(Duration::from_secs(60)),
        ..reply(200)
    };
    let receiver = Receiver::start(vec![slow.clone(), slow.clone(), slow]).await;
    let mut p = params(receiver.url("/slow"));
    p.timeout_ms = 1_000;
    p.retries = 2;
    let started = Instant::now();

    let err = executor(exact_backoff(100), &[])
        .execute(&p, "k-slow")
        .await
        .expect_err("every attempt times out");

    assert!(
        matches!(
            err,
            Error::Timeout {
                timeout_ms: 1_000,
                attempts: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.retryable());
    assert_eq!(receiver.seen().len(), 3);
    // Three 1 s timeouts and 100 ms + 200 ms of backoff, in virtual time.
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(3_300) && elapsed < Duration::from_millis(3_400),
        "{elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_connection_is_retried_and_reported_as_a_connect_error() {
    // A port that was free a moment ago and has no listener now.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let mut p = params(format!("http://{addr}/gone"));
    p.retries = 2;

    let err = executor(exact_backoff(50), &[])
        .execute(&p, "k-refused")
        .await
        .expect_err("nobody listens");

    assert!(matches!(err, Error::Connect { attempts: 3, .. }), "{err:?}");
    assert!(err.retryable());
}

#[tokio::test]
async fn the_hmac_signature_header_verifies_over_the_sent_body_with_the_key_file() {
    let receiver = Receiver::start(vec![reply(200)]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let key_path = dir.path().join("signing-key");
    std::fs::write(&key_path, "whsec_test_key_123\n").expect("write key");
    let mut p = params(receiver.url("/signed"));
    p.body = Some(json!({"alert": "DiskFull", "value": 97.5}));
    p.hmac = Some(HmacParams {
        secret: SecretRef::File(key_path.display().to_string()),
        header: "X-Signature-256".into(),
    });

    executor(BackoffPolicy::default(), &[])
        .execute(&p, "k-hmac")
        .await
        .expect("webhook succeeds");

    let seen = receiver.seen();
    let request = &seen[0];
    // The receiver's side: RustCrypto's HMAC over the bytes it received, with the trimmed key.
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(b"whsec_test_key_123").expect("any key length");
    mac.update(&request.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(request.headers["x-signature-256"], expected.as_str());
}

#[tokio::test]
async fn a_host_outside_the_allow_list_is_refused_before_any_request() {
    let receiver = Receiver::start(vec![reply(200)]).await;
    let mut p = params(receiver.url("/internal"));
    p.body = Some(json!({"x": 1}));

    let err = executor(
        BackoffPolicy::default(),
        &["hooks.example.com", "*.pagerduty.com"],
    )
    .execute(&p, "k-ssrf")
    .await
    .expect_err("127.0.0.1 is not allowed");

    match &err {
        Error::HostNotAllowed { host, allowed } => {
            assert_eq!(host, "127.0.0.1");
            assert!(allowed.contains("*.pagerduty.com"), "{allowed}");
        }
        other => panic!("expected HostNotAllowed, got {other:?}"),
    }
    assert!(!err.retryable());
    assert_eq!(err.attempts(), 0);
    assert!(
        receiver.seen().is_empty(),
        "a refused request reached the server"
    );

    // The same request goes through once the host is listed.
    let result = executor(BackoffPolicy::default(), &["127.0.0.1"])
        .execute(&p, "k-ssrf")
        .await
        .expect("allowed host");
    assert_eq!(result.status, 200);
    assert_eq!(receiver.seen().len(), 1);
}

/// A `tracing` writer into a shared buffer, to assert on what the executor logs.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }
}

/// Installs, once, a global TRACE subscriber writing into a buffer and returns the buffer.
/// Global rather than `set_default` for one test: with tests running in parallel threads, a
/// thread-scoped subscriber misses events whose callsites other threads registered first.
/// Every test's logs land here, which only makes the "no secret in logs" check stricter.
fn captured_logs() -> LogBuffer {
    static LOGS: std::sync::OnceLock<LogBuffer> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = LogBuffer::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
        logs
    })
    .clone()
}

#[tokio::test]
async fn a_secret_header_reaches_the_receiver_but_never_results_errors_or_logs() {
    const SECRET: &str = "Bearer tok-8c1f7e2a-do-not-leak";
    let variable = support::unique_name("REFLEX_TEST_TOKEN").replace('-', "_");
    // SAFETY: the variable name is unique to this test and nothing else reads or writes it;
    // this test binary's other tests do not touch the environment.
    unsafe { std::env::set_var(&variable, SECRET) };

    let logs = captured_logs();

    // A receiver that echoes the Authorization header back: first a 500, then a 200.
    let echo = |status| Reply {
        echo_authorization: true,
        ..reply(status)
    };
    let receiver = Receiver::start(vec![echo(500), echo(200)]).await;
    let mut p = params(receiver.url("/secure"));
    p.secret_headers
        .insert("Authorization".into(), SecretRef::Env(variable.clone()));
    p.body = Some(json!({"hello": "world"}));
    let executor = executor(exact_backoff(10), &[]);

    let result = executor
        .execute(&p, "k-secret")
        .await
        .expect("second attempt succeeds");
    let seen = receiver.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.headers["authorization"] == SECRET));
    assert_eq!(result.response_excerpt, "you sent: ***");

    // A failure whose answer echoes the secret too.
    let failing = Receiver::start(vec![echo(401)]).await;
    let mut q = p.clone();
    q.url = failing.url("/secure").into();
    let err = executor
        .execute(&q, "k-secret-2")
        .await
        .expect_err("401 fails");
    assert_eq!(failing.seen()[0].headers["authorization"], SECRET);

    let logged = logs.text();
    // The executor's own lines for both receivers (their targets name the ports) were captured.
    for receiver in [&receiver, &failing] {
        let target = format!("POST http://{}/secure", receiver.addr);
        assert!(
            logged.contains(&target),
            "no log line for {target}: {logged}"
        );
    }
    for (what, text) in [
        ("params Debug", format!("{p:?}")),
        ("params JSON", serde_json::to_string(&p).expect("json")),
        ("result Debug", format!("{result:?}")),
        ("result JSON", serde_json::to_string(&result).expect("json")),
        ("error Display", err.to_string()),
        ("error Debug", format!("{err:?}")),
        ("logs", logged),
    ] {
        assert!(
            !text.contains("tok-8c1f7e2a"),
            "the secret leaked into {what}: {text}"
        );
    }
    assert!(err.to_string().contains("***"), "{err}");
}

#[tokio::test]
async fn a_missing_secret_fails_permanently_before_sending() {
    let receiver = Receiver::start(vec![reply(200)]).await;
    let mut p = params(receiver.url("/secure"));
    p.secret_headers.insert(
        "Authorization".into(),
        SecretRef::Env("REFLEX_TEST_NEVER_SET_3B9D".into()),
    );

    let err = executor(BackoffPolicy::default(), &[])
        .execute(&p, "k-missing")
        .await
        .expect_err("secret missing");

    assert!(
        err.to_string().contains("REFLEX_TEST_NEVER_SET_3B9D"),
        "{err}"
    );
    assert!(!err.retryable());
    assert!(receiver.seen().is_empty());
}

#[tokio::test]
async fn a_redirect_is_reported_not_followed() {
    // Following it would send the request, secret headers included, to a host the allow-list
    // never checked.
    let receiver = Receiver::start(vec![Reply {
        headers: vec![(
            "location",
            "http://169.254.169.254/latest/meta-data/".into(),
        )],
        ..reply(302)
    }])
    .await;

    let err = executor(exact_backoff(1), &["127.0.0.1"])
        .execute(&params(receiver.url("/moved")), "k-302")
        .await
        .expect_err("302 is not success");

    assert!(
        matches!(
            err,
            Error::Status {
                status: 302,
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.retryable());
    assert_eq!(receiver.seen().len(), 1);
}
