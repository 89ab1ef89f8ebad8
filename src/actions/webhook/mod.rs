//! The webhook executor: sends a planned `webhook` action's HTTP request, with retries, an
//! allow-list of destination hosts, secret headers and an optional HMAC-SHA256 body signature.

mod allow;
mod error;
mod prepare;
mod retry;
pub(crate) mod sign;

pub use allow::HostAllowList;
pub use error::Error;
pub use retry::BackoffPolicy;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use backon::Retryable;
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde::{Deserialize, Serialize};

use super::secrets::Secret;
use crate::rules::action::WebhookAction;
use error::retryable_status;
use prepare::Prepared;

/// Most response bytes kept in results and errors: enough for an error message or a ticket id,
/// small enough that outcomes stay small whatever the receiver sends back.
pub const RESPONSE_EXCERPT_BYTES: usize = 2 * 1024;

/// Header carrying the action's idempotency key, so a receiver can drop the duplicate that a
/// redelivered event produces (the draft IETF `Idempotency-Key` header, as Stripe uses it).
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// Bound on establishing a connection, below any per-attempt timeout a rule would set: a dead
/// host should fail fast and be retried, not eat the whole attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle pooled connections are closed after this long; receivers usually close theirs after
/// 60–120 s, and reusing a connection the server just closed costs a failed attempt.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// Most retries honoured, whatever the parameters say: the planner already caps `retries` at 10,
/// but parameters arrive here as JSON, and an unbounded count would hold an event forever.
const MAX_RETRIES: u32 = 10;

/// Longest per-attempt timeout honoured (the planner's cap, enforced again for the same reason).
const MAX_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Configuration of the webhook executor (from Reflex's configuration file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Hosts webhooks may reach: `hooks.example.com` or `*.example.com`. Empty: any host written
    /// literally in a rule.
    pub allowed_hosts: Vec<String>,
    /// Retry timing.
    pub backoff: BackoffPolicy,
}

/// What a successful webhook call did; recorded in the outcome's details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookResult {
    /// HTTP status of the successful attempt.
    pub status: u16,
    /// Attempts made, the successful one included.
    pub attempts: u32,
    /// Time from the first attempt to the end of the last, milliseconds.
    pub elapsed_ms: u64,
    /// Start of the response body (at most [`RESPONSE_EXCERPT_BYTES`] bytes, lossy UTF-8), with
    /// any secret value the receiver echoed replaced by `***`.
    pub response_excerpt: String,
}

/// Sends planned webhook actions. One per process: it holds the pooled HTTP client.
#[derive(Debug, Clone)]
pub struct WebhookExecutor {
    client: reqwest::Client,
    allow: HostAllowList,
    backoff: BackoffPolicy,
}

/// The result of one attempt that did not succeed.
#[derive(Debug)]
enum AttemptError {
    Timeout,
    Connect(reqwest::Error),
    Transport(reqwest::Error),
    Status {
        status: u16,
        retry_after: Option<Duration>,
        excerpt: String,
    },
}

impl AttemptError {
    fn retryable(&self) -> bool {
        match self {
            AttemptError::Timeout | AttemptError::Connect(_) | AttemptError::Transport(_) => true,
            AttemptError::Status { status, .. } => retryable_status(*status),
        }
    }

    /// Short description for logs (no response body: it may be large and is in the outcome).
    fn summary(&self) -> String {
        match self {
            AttemptError::Timeout => "timed out".into(),
            AttemptError::Connect(e) => format!("cannot connect: {}", error_chain(e)),
            AttemptError::Transport(e) => format!("request failed: {}", error_chain(e)),
            AttemptError::Status { status, .. } => format!("status {status}"),
        }
    }
}

/// `error: cause: cause` on one line, for logs.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl WebhookExecutor {
    /// Builds the executor and its HTTP client (rustls; installs the `ring` crypto provider if
    /// the process has not installed one yet).
    pub fn new(config: WebhookConfig) -> Result<WebhookExecutor, Error> {
        let allow = HostAllowList::parse(&config.allowed_hosts).map_err(Error::BadAllowList)?;
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Err means another thread installed one in between, which is as good.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("reflex/", env!("CARGO_PKG_VERSION")))
            // A redirect would send the request (and its secret headers) to a host the
            // allow-list never saw; a 3xx is reported instead.
            .redirect(reqwest::redirect::Policy::none())
            // Proxies from the environment would route around the allow-list's intent too.
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build()
            .map_err(Error::Client)?;
        Ok(WebhookExecutor {
            client,
            allow,
            backoff: config.backoff,
        })
    }

    /// Sends the webhook described by `params` (a planned action's rendered parameters),
    /// retrying transient failures, and returns what the receiver answered.
    ///
    /// `idempotency_key` is sent as `Idempotency-Key` (unless the rule sets that header itself),
    /// so a receiver can recognise the repeat a redelivered event causes.
    pub async fn execute(
        &self,
        params: &WebhookAction,
        idempotency_key: &str,
    ) -> Result<WebhookResult, Error> {
        let prepared = prepare::prepare(&self.allow, params, idempotency_key)?;

        let attempts = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let send = || async {
            let attempt = attempts.fetch_add(1, Ordering::Relaxed) + 1;
            self.attempt(&prepared, params, attempt).await
        };
        let outcome = send
            .retry(self.backoff.schedule(params.retries.min(MAX_RETRIES)))
            .sleep(tokio::time::sleep)
            .when(AttemptError::retryable)
            .adjust(|err, ceiling| {
                let retry_after = match err {
                    AttemptError::Status { retry_after, .. } => *retry_after,
                    _ => None,
                };
                // `None` means the retries are used up, whatever the server asked.
                ceiling.map(|c| self.backoff.delay(c, retry_after))
            })
            .notify(|err, delay| {
                tracing::debug!(
                    request = %prepared.target,
                    attempt = attempts.load(Ordering::Relaxed),
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    error = %err.summary(),
                    "webhook attempt failed; retrying",
                );
            })
            .await;
        let attempts = attempts.load(Ordering::Relaxed);
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match outcome {
            Ok((status, response_excerpt)) => {
                tracing::debug!(
                    request = %prepared.target,
                    status,
                    attempts,
                    elapsed_ms,
                    "webhook sent",
                );
                Ok(WebhookResult {
                    status,
                    attempts,
                    elapsed_ms,
                    response_excerpt,
                })
            }
            Err(err) => {
                tracing::debug!(
                    request = %prepared.target,
                    attempts,
                    elapsed_ms,
                    error = %err.summary(),
                    "webhook failed",
                );
                let target = prepared.target;
                Err(match err {
                    AttemptError::Timeout => Error::Timeout {
                        target,
                        timeout_ms: params.timeout_ms,
                        attempts,
                    },
                    AttemptError::Connect(source) => Error::Connect {
                        target,
                        attempts,
                        source: source.without_url(),
                    },
                    AttemptError::Transport(source) => Error::Transport {
                        target,
                        attempts,
                        source: source.without_url(),
                    },
                    AttemptError::Status {
                        status, excerpt, ..
                    } => Error::Status {
                        target,
                        status,
                        attempts,
                        excerpt,
                    },
                })
            }
        }
    }

    /// One attempt: send, classify the answer, keep the start of the body.
    async fn attempt(
        &self,
        request: &Prepared,
        params: &WebhookAction,
        attempt: u32,
    ) -> Result<(u16, String), AttemptError> {
        let mut builder = self
            .client
            .request(request.method.clone(), request.url.clone())
            .headers(request.headers.clone())
            .timeout(request.timeout);
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let mut response = match builder.send().await {
            Ok(response) => response,
            Err(e) if e.is_timeout() => return Err(AttemptError::Timeout),
            // Without the URL: its path or query may be a secret, and these errors are logged.
            Err(e) if e.is_connect() => return Err(AttemptError::Connect(e.without_url())),
            Err(e) => return Err(AttemptError::Transport(e.without_url())),
        };
        let status = response.status();
        tracing::debug!(
            request = %request.target,
            attempt,
            status = status.as_u16(),
            "webhook attempt answered",
        );
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
        let excerpt = read_excerpt(&mut response, &request.secrets).await;
        let code = status.as_u16();
        if params.success_status.iter().any(|r| r.contains(code)) {
            Ok((code, excerpt))
        } else {
            Err(AttemptError::Status {
                status: code,
                // Only meaningful where the status asks to come back later.
                retry_after: retry_after.filter(|_| {
                    status == StatusCode::TOO_MANY_REQUESTS
                        || status == StatusCode::SERVICE_UNAVAILABLE
                }),
                excerpt,
            })
        }
    }
}

/// Reads at most [`RESPONSE_EXCERPT_BYTES`] of the body and scrubs secrets from it. The rest is
/// not read: dropping the response closes that connection, cheaper than draining a large body.
async fn read_excerpt(response: &mut reqwest::Response, secrets: &[Secret]) -> String {
    let mut bytes = Vec::new();
    let mut truncated = false;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = RESPONSE_EXCERPT_BYTES - bytes.len();
                if chunk.len() > room {
                    bytes.extend_from_slice(&chunk[..room]);
                    truncated = true;
                    break;
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            // The status already decided the attempt; a body cut short is only noted.
            Err(_) => {
                truncated = true;
                break;
            }
        }
    }
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    for secret in secrets {
        text = text.replace(secret.expose(), "***");
    }
    if truncated {
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_statuses_are_429_and_5xx_only() {
        for status in [429, 500, 502, 503, 599] {
            assert!(retryable_status(status), "{status}");
        }
        for status in [200, 301, 400, 401, 403, 404, 409, 422] {
            assert!(!retryable_status(status), "{status}");
        }
    }

    #[test]
    fn the_execute_future_can_be_spawned() {
        fn assert_send<T: Send>(_: &T) {}
        let executor = WebhookExecutor::new(WebhookConfig::default()).expect("executor");
        let params: WebhookAction = serde_json::from_value(serde_json::json!({
            "method": "POST", "url": "http://x", "headers": {}, "secret_headers": {},
            "timeout_ms": 1000, "retries": 0, "success_status": [],
        }))
        .expect("params");
        assert_send(&executor.execute(&params, "k"));
    }

    #[test]
    fn an_invalid_allow_list_entry_is_refused_at_construction() {
        let err = WebhookExecutor::new(WebhookConfig {
            allowed_hosts: vec!["a.*.example.com".into()],
            ..WebhookConfig::default()
        })
        .expect_err("malformed");
        assert!(matches!(err, Error::BadAllowList(ref e) if e == "a.*.example.com"));
        assert!(!err.retryable());
    }
}
