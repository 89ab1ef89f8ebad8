//! `POST /v1/github` and `POST /v1/gitlab`: Git and CI webhooks, verified with the source's
//! secret and written to its topic as one CloudEvent each (Kafka binary mode: `ce_*` headers,
//! the provider's JSON body unchanged as the value), through the same size bound, decoder
//! check and producer as the other ingest endpoints.
//!
//! - GitHub: `X-Hub-Signature-256` must be the HMAC-SHA256 of the raw body under the secret
//!   (constant-time comparison); type `com.github.<X-GitHub-Event>`, id `X-GitHub-Delivery`.
//! - GitLab: `X-Gitlab-Token` must be the secret (compared as SHA-256 digests, in constant
//!   time); type `com.gitlab.<X-Gitlab-Event>` normalised (`Pipeline Hook` → `pipeline`),
//!   id `X-Gitlab-Event-UUID`.
//!
//! Without an id header the id is the SHA-256 of the body, so a redelivered body keeps its id
//! (and the rules' idempotency keys). The source is the repository's web URL and the record key
//! its full name (`owner/repo`, GitLab's `path_with_namespace`): one repository's events stay
//! in order on one partition. A request that fails verification gets 401 and nothing is
//! written. GitHub's `ping` (sent when a webhook is created) is verified and answered 200
//! without writing anything: it carries no event of the repository, only the proof that URL
//! and secret are right.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Accepted, Ingest, IngestState, OutRecord};
use crate::actions::webhook::sign::verify_signature_header;
use crate::config::{Config, GitWebhookConfig};
use crate::event::cloudevents::{KAFKA_HEADER_PREFIX, SPEC_VERSION};
use crate::event::decode::Decoding;
use crate::server::AppState;
use crate::server::auth::{self, SecretSource, Token};
use crate::server::problem::ApiError;

/// Longest event name accepted from `X-GitHub-Event` / `X-Gitlab-Event`. Real names are under
/// 30 characters; the bound keeps a hostile header out of the type and the metrics' messages.
const MAX_EVENT_NAME: usize = 64;

/// Where the webhooks come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Provider {
    /// GitHub (github.com or GitHub Enterprise Server).
    Github,
    /// GitLab (gitlab.com or self-managed).
    Gitlab,
}

impl Provider {
    fn name(self) -> &'static str {
        match self {
            Provider::Github => "github",
            Provider::Gitlab => "gitlab",
        }
    }

    fn field(self) -> &'static str {
        match self {
            Provider::Github => "server.ingest.github",
            Provider::Gitlab => "server.ingest.gitlab",
        }
    }

    fn event_header(self) -> &'static str {
        match self {
            Provider::Github => "x-github-event",
            Provider::Gitlab => "x-gitlab-event",
        }
    }

    fn id_header(self) -> &'static str {
        match self {
            Provider::Github => "x-github-delivery",
            Provider::Gitlab => "x-gitlab-event-uuid",
        }
    }

    /// The event name of the request: the header, normalised to `[a-z0-9_]`.
    fn event(self, headers: &HeaderMap) -> Result<String, ApiError> {
        let header = self.event_header();
        let raw = headers
            .get(header)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request(
                    format!("the request has no {header} header"),
                    format!("only {} webhooks are accepted here", self.name()),
                )
            })?;
        let lower = raw.to_ascii_lowercase();
        // GitLab names its events `Pipeline Hook`, `Merge Request Hook`...
        let name = lower.strip_suffix(" hook").unwrap_or(&lower).trim();
        let name = name.replace([' ', '-'], "_");
        let valid = !name.is_empty()
            && name.len() <= MAX_EVENT_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(ApiError::bad_request(
                format!("{header} `{raw}` is not an event name"),
                "event names are letters, digits, spaces and underscores",
            ));
        }
        Ok(name)
    }

    /// The repository's web URL and full name, when the payload names one.
    fn repository(self, payload: &Value) -> (Option<&str>, Option<&str>) {
        let (object, url, name) = match self {
            Provider::Github => ("repository", "html_url", "full_name"),
            Provider::Gitlab => ("project", "web_url", "path_with_namespace"),
        };
        let text = |field| payload.get(object)?.get(field)?.as_str();
        (text(url), text(name))
    }
}

/// How a source's requests prove they come from the provider.
enum Secret {
    /// GitHub signs the body with the secret (HMAC-SHA256).
    Hmac(Vec<u8>),
    /// GitLab sends the secret itself.
    Token(Token),
}

/// One configured webhook source.
struct Source {
    topic: String,
    secret: Secret,
}

/// The configured webhook sources.
#[derive(Default)]
pub(super) struct Sources {
    github: Option<Source>,
    gitlab: Option<Source>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let topic = |s: &Option<Source>| s.as_ref().map(|s| s.topic.clone());
        f.debug_struct("Sources")
            .field("github", &topic(&self.github))
            .field("gitlab", &topic(&self.gitlab))
            .finish()
    }
}

impl Sources {
    /// The sources `server.ingest.github` / `gitlab` configure, their secrets read.
    pub(super) fn configure(
        config: &Config,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, auth::Error> {
        let ingest = &config.server.ingest;
        let source = |provider: Provider, settings: &Option<GitWebhookConfig>| {
            let Some(settings) = settings else {
                return Ok(None);
            };
            let read = SecretSource {
                what: match provider {
                    Provider::Github => "the GitHub webhook secret",
                    Provider::Gitlab => "the GitLab webhook secret",
                },
                noun: "secret",
                field: match provider {
                    Provider::Github => "server.ingest.github.secret",
                    Provider::Gitlab => "server.ingest.gitlab.secret",
                },
                file: settings.secret_file.as_deref(),
                env: settings.secret_env.as_deref(),
            };
            // Config::validate refuses a source without a secret or a topic; skipping one here
            // keeps a hand-built config from serving it unauthenticated.
            let (Some(text), Some(topic)) =
                (read.read(&env)?, ingest.git_topic(settings, &config.kafka))
            else {
                return Ok(None);
            };
            let secret = match provider {
                Provider::Github => Secret::Hmac(text.into_bytes()),
                // `read` returns trimmed, non-empty text, which is always a token.
                Provider::Gitlab => Secret::Token(Token::new(&text).expect("a non-empty secret")),
            };
            Ok(Some(Source {
                topic: topic.to_owned(),
                secret,
            }))
        };
        Ok(Self {
            github: source(Provider::Github, &ingest.github)?,
            gitlab: source(Provider::Gitlab, &ingest.gitlab)?,
        })
    }

    /// Whether no source is configured.
    pub(super) fn is_empty(&self) -> bool {
        self.github.is_none() && self.gitlab.is_none()
    }

    fn get(&self, provider: Provider) -> Option<&Source> {
        match provider {
            Provider::Github => self.github.as_ref(),
            Provider::Gitlab => self.gitlab.as_ref(),
        }
    }
}

/// Handles one webhook request.
pub(super) async fn accept(
    state: &AppState,
    provider: Provider,
    headers: &HeaderMap,
    body: Body,
) -> Result<Accepted, ApiError> {
    let ingest: &Arc<Ingest> = match &state.ingest {
        IngestState::On(ingest) => ingest,
        IngestState::Off { why } => return Err(super::off(why)),
    };
    let Some(source) = ingest.git.get(provider) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "POST /v1/{} is off: {} is not configured",
                provider.name(),
                provider.field()
            ),
            format!(
                "set {0}.secret_file (or secret_env) to the webhook's secret, and optionally \
                 {0}.topic (docs/sources.md)",
                provider.field()
            ),
        ));
    };
    let body = ingest.read_body(headers, body).await?;
    verify(provider, &source.secret, headers, &body)?;
    let event = provider.event(headers)?;
    if provider == Provider::Github && event == "ping" {
        return Ok(Accepted {
            topic: source.topic.clone(),
            records: Vec::new(),
            events: 0,
        });
    }
    let record = record(provider, &event, headers, body)?;
    let events = ingest.check(&source.topic, &record, Decoding::Cloudevents)?;
    let records = ingest.produce(&source.topic, &[record]).await?;
    Ok(Accepted {
        topic: source.topic.clone(),
        records,
        events,
    })
}

/// Checks the request's signature or token; the error is a 401 saying what was wrong.
fn verify(
    provider: Provider,
    secret: &Secret,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), ApiError> {
    let header = match secret {
        Secret::Hmac(_) => "x-hub-signature-256",
        Secret::Token(_) => "x-gitlab-token",
    };
    let unauthorized = |error: String| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            error,
            format!(
                "configure the webhook at {} with the secret Reflex reads from {}.secret_file \
                 or secret_env",
                match provider {
                    Provider::Github => "GitHub (Settings → Webhooks → Secret)",
                    Provider::Gitlab => "GitLab (Settings → Webhooks → Secret token)",
                },
                provider.field()
            ),
        )
    };
    let Some(value) = headers.get(header) else {
        return Err(unauthorized(format!("the request has no {header} header")));
    };
    let value = String::from_utf8_lossy(value.as_bytes());
    let (valid, wrong) = match secret {
        Secret::Hmac(key) => (
            verify_signature_header(key, body, &value),
            "is not the body's signature under the secret",
        ),
        Secret::Token(token) => (token.matches(value.trim()), "is not the configured secret"),
    };
    if valid {
        Ok(())
    } else {
        Err(unauthorized(format!("{header} {wrong}")))
    }
}

/// The CloudEvent record of a verified webhook: binary mode, the body unchanged as the data.
fn record(
    provider: Provider,
    event: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<OutRecord, ApiError> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    if media.as_deref() == Some("application/x-www-form-urlencoded") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the webhook is form-encoded",
            "set the webhook's content type to application/json",
        ));
    }
    let payload: Value = serde_json::from_slice(&body).map_err(|err| {
        ApiError::bad_request(
            format!("the body is not JSON: {err}"),
            "set the webhook's content type to application/json",
        )
    })?;
    if !payload.is_object() {
        return Err(ApiError::bad_request(
            "the body is not a JSON object",
            format!("POST the payload {} sends", provider.name()),
        ));
    }
    let id = headers
        .get(provider.id_header())
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map_or_else(
            || format!("sha256:{}", hex::encode(Sha256::digest(&body))),
            str::to_owned,
        );
    let (url, full_name) = provider.repository(&payload);
    let source = url.map_or_else(|| format!("/v1/{}", provider.name()), str::to_owned);
    let attribute = |name: &str, value: String| (format!("{KAFKA_HEADER_PREFIX}{name}"), value);
    let headers = [
        attribute("specversion", SPEC_VERSION.to_owned()),
        attribute("id", id),
        attribute("source", source),
        attribute("type", format!("com.{}.{event}", provider.name())),
        ("content-type".to_owned(), "application/json".to_owned()),
    ];
    Ok(OutRecord {
        key: full_name.map(str::to_owned),
        headers: headers
            .into_iter()
            .map(|(name, value)| (name, value.into_bytes()))
            .collect(),
        value: body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::cloudevents::tests::headers;

    #[test]
    fn event_names_are_normalised_and_strange_ones_refused() {
        let gitlab = |v| Provider::Gitlab.event(&headers(&[("x-gitlab-event", v)]));
        assert_eq!(gitlab("Pipeline Hook").expect("valid"), "pipeline");
        assert_eq!(
            gitlab("Merge Request Hook").expect("valid"),
            "merge_request"
        );
        let github = |v| Provider::Github.event(&headers(&[("x-github-event", v)]));
        assert_eq!(github("workflow_run").expect("valid"), "workflow_run");
        assert!(github("push; rm").is_err());
        assert!(github(&"a".repeat(65)).is_err());
        let err = Provider::Github
            .event(&HeaderMap::new())
            .expect_err("missing");
        assert!(err.error.contains("x-github-event"), "{err:?}");
    }

    #[test]
    fn a_webhook_becomes_a_binary_mode_cloudevent_keyed_by_the_repository() {
        let body = Bytes::from_static(
            br#"{"project":{"web_url":"https://gitlab.example.org/shop/checkout","path_with_namespace":"shop/checkout"}}"#,
        );
        let out = record(
            Provider::Gitlab,
            "pipeline",
            &headers(&[("x-gitlab-event-uuid", "uuid-1")]),
            body.clone(),
        )
        .expect("valid");
        assert_eq!(out.key.as_deref(), Some("shop/checkout"));
        let header = |name: &str| {
            out.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(header("ce_type").as_deref(), Some("com.gitlab.pipeline"));
        assert_eq!(header("ce_id").as_deref(), Some("uuid-1"));
        assert_eq!(
            header("ce_source").as_deref(),
            Some("https://gitlab.example.org/shop/checkout")
        );
        assert_eq!(out.value, body);
        // Without an id header: the body's digest, the same for the same body.
        let again = record(
            Provider::Gitlab,
            "pipeline",
            &HeaderMap::new(),
            body.clone(),
        )
        .expect("valid");
        let id = |r: &OutRecord| r.headers[1].1.clone();
        assert!(String::from_utf8_lossy(&id(&again)).starts_with("sha256:"));
        let twice = record(Provider::Gitlab, "pipeline", &HeaderMap::new(), body).expect("valid");
        assert_eq!(id(&again), id(&twice));
        let form = headers(&[("content-type", "application/x-www-form-urlencoded")]);
        let err = record(
            Provider::Github,
            "push",
            &form,
            Bytes::from_static(b"payload=%7B%7D"),
        )
        .expect_err("form-encoded");
        assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn a_wrong_or_missing_signature_or_token_is_401() {
        let github = Secret::Hmac(b"s3cret".to_vec());
        let body = b"{}";
        let signed = crate::actions::webhook::sign::signature_header(b"s3cret", body);
        let with = |name, value: &str| headers(&[(name, value)]);
        assert!(
            verify(
                Provider::Github,
                &github,
                &with("x-hub-signature-256", &signed),
                body
            )
            .is_ok()
        );
        let wrong = crate::actions::webhook::sign::signature_header(b"other", body);
        let err = verify(
            Provider::Github,
            &github,
            &with("x-hub-signature-256", &wrong),
            body,
        )
        .expect_err("wrong secret");
        assert_eq!(err.status, StatusCode::UNAUTHORIZED);
        let err = verify(Provider::Github, &github, &HeaderMap::new(), body).expect_err("none");
        assert!(err.error.contains("no x-hub-signature-256"), "{err:?}");

        let gitlab = Secret::Token(Token::new("s3cret").expect("token"));
        assert!(
            verify(
                Provider::Gitlab,
                &gitlab,
                &with("x-gitlab-token", "s3cret"),
                body
            )
            .is_ok()
        );
        let err = verify(
            Provider::Gitlab,
            &gitlab,
            &with("x-gitlab-token", "s3cre"),
            body,
        )
        .expect_err("wrong token");
        assert!(err.error.contains("not the configured secret"), "{err:?}");
    }
}
