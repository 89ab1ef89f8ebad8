//! `POST /v1/alertmanager` and `POST /v1/events`: accept what Alertmanager and CloudEvents
//! producers post (and, in [`git`], GitHub and GitLab webhooks) and write it to Kafka, answering 200 only once the broker acknowledged the
//! record (durable first: a sender that gets no 200 retries, so nothing is lost in between).
//!
//! Every accepted request is checked with the very decoder the consumer will run on the record
//! (same format, same limits), so a request this endpoint accepts never ends on the dead-letter
//! topic, and a bad one is refused to its sender with the decoder's explanation instead.
//!
//! Answers: 200 `{"topic", "records": [{"partition", "offset"}], "events"}`; 400 bad payload;
//! 401 missing or wrong token; 404 ingest off (the body says why); 413 body over
//! `server.ingest.max_body_bytes` (or over what Kafka accepts); 415 a CloudEvents format other
//! than JSON; 503 Kafka did not acknowledge within `server.ingest.ack_timeout` (retry later).
//! A batch whose records were partly acknowledged answers 503 too: the retry writes the
//! acknowledged ones again, which the rules' idempotency keys (event id based) make harmless.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use serde::Serialize;

use super::AppState;
use super::auth::Token;
use super::problem::ApiError;
use crate::config::Config;
use crate::event::decode::{self, DecodeError, DecodeLimits, Decoding, RawRecord};
use crate::metrics::IngestLabels;

mod git;
mod produce;

/// Why ingest could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The token or a webhook secret could not be read.
    #[error("server.ingest: cannot read a token or secret")]
    Token(#[source] super::auth::Error),
    /// The Kafka producer could not be created.
    #[error("server.ingest: invalid Kafka producer configuration")]
    Producer(#[source] KafkaError),
}

/// Headroom over `max_body_bytes` for a record's key, headers and framing, so the producer's
/// own `message.max.bytes` never refuses a body the endpoint accepted.
const RECORD_OVERHEAD_BYTES: usize = 64 * 1024;

/// librdkafka's default `message.max.bytes`; the producer limit is never set below it.
const LIBRDKAFKA_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// The ingest endpoints, configured.
#[derive(Debug)]
pub enum IngestState {
    /// Serving.
    On(Arc<Ingest>),
    /// Not serving; requests get 404 with this reason.
    Off {
        /// Why (and how to turn it on).
        why: String,
    },
}

/// Who may post to `/v1/alertmanager` and `/v1/events`.
#[derive(Debug)]
enum Bearer {
    /// Callers send this token.
    Token(Token),
    /// `allow_unauthenticated: true`.
    Open,
    /// No token is configured: those two endpoints are off (the webhook sources, which carry
    /// their own secrets, still serve); why.
    Off(String),
}

/// What the ingest endpoints need: a producer, their topics, the token and the limits.
pub struct Ingest {
    producer: FutureProducer,
    alertmanager_topic: String,
    events_topic: String,
    bearer: Bearer,
    /// `POST /v1/github` and `/v1/gitlab`.
    git: git::Sources,
    max_body_bytes: usize,
    ack_timeout: Duration,
    limits: DecodeLimits,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("alertmanager_topic", &self.alertmanager_topic)
            .field("events_topic", &self.events_topic)
            .field("bearer", &self.bearer)
            .field("git", &self.git)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("ack_timeout", &self.ack_timeout)
            .finish_non_exhaustive()
    }
}

impl IngestState {
    /// Sets ingest up from `config.server.ingest`: off when disabled, or when no token and no
    /// webhook source is configured and `allow_unauthenticated` is not set. `client` is the Kafka client
    /// configuration (bootstrap servers and pass-through settings); `env` looks up the token
    /// variable.
    pub fn configure(
        config: &Config,
        client: &ClientConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        let ingest = &config.server.ingest;
        if !ingest.enabled {
            return Ok(Self::Off {
                why: "server.ingest.enabled is false".to_owned(),
            });
        }
        let token = Token::from_config(ingest, &env).map_err(Error::Token)?;
        let git = git::Sources::configure(config, &env).map_err(Error::Token)?;
        let no_token = "no bearer token is configured; set server.ingest.token_file or \
                        server.ingest.token_env (or allow_unauthenticated: true on a listener \
                        only trusted clients reach)";
        let bearer = match token {
            Some(token) => Bearer::Token(token),
            None if ingest.allow_unauthenticated => Bearer::Open,
            None if git.is_empty() => {
                return Ok(Self::Off {
                    why: format!("{no_token}, or a webhook source (server.ingest.github, gitlab)"),
                });
            }
            None => Bearer::Off(no_token.to_owned()),
        };
        let (Some(alertmanager_topic), Some(events_topic)) = (
            ingest.alertmanager_topic(&config.kafka),
            ingest.events_topic(&config.kafka),
        ) else {
            // Config::validate refuses this; an Off state keeps a hand-built config harmless.
            return Ok(Self::Off {
                why: "no ingest topic is configured".to_owned(),
            });
        };
        let mut client = client.clone();
        // Durable first: idempotence implies acks=all, and a retried send after a lost
        // acknowledgement is not written twice.
        client.set("enable.idempotence", "true").set(
            "message.timeout.ms",
            ingest.ack_timeout.as_millis().max(1).to_string(),
        );
        if client.get("message.max.bytes").is_none() {
            let max =
                (ingest.max_body_bytes + RECORD_OVERHEAD_BYTES).max(LIBRDKAFKA_MESSAGE_MAX_BYTES);
            client.set("message.max.bytes", max.to_string());
        }
        let producer = client.create().map_err(Error::Producer)?;
        Ok(Self::On(Arc::new(Ingest {
            producer,
            alertmanager_topic: alertmanager_topic.to_owned(),
            events_topic: events_topic.to_owned(),
            bearer,
            git,
            max_body_bytes: ingest.max_body_bytes,
            ack_timeout: ingest.ack_timeout,
            limits: config.pipeline.decode_limits(),
        })))
    }
}

/// Which endpoint, for metrics and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Alertmanager,
    Events,
    Git(git::Provider),
}

impl Endpoint {
    fn as_str(self) -> &'static str {
        match self {
            Endpoint::Alertmanager => "alertmanager",
            Endpoint::Events => "events",
            Endpoint::Git(git::Provider::Github) => "github",
            Endpoint::Git(git::Provider::Gitlab) => "gitlab",
        }
    }
}

/// One record to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OutRecord {
    /// The record key.
    pub key: Option<String>,
    /// Record headers.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The record value.
    pub value: Bytes,
}

/// Where one record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
struct Position {
    partition: i32,
    offset: i64,
}

/// The 200 answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Accepted {
    topic: String,
    records: Vec<Position>,
    /// Events the consumer will decode from them (an Alertmanager notification gives one per
    /// alert).
    events: usize,
}

/// `POST /v1/alertmanager`.
pub(super) async fn alertmanager(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(&state, Endpoint::Alertmanager, &headers, body).await
}

/// `POST /v1/events`.
pub(super) async fn events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(&state, Endpoint::Events, &headers, body).await
}

/// `POST /v1/github`.
pub(super) async fn github(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(&state, Endpoint::Git(git::Provider::Github), &headers, body).await
}

/// `POST /v1/gitlab`.
pub(super) async fn gitlab(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(&state, Endpoint::Git(git::Provider::Gitlab), &headers, body).await
}

async fn answer(state: &AppState, endpoint: Endpoint, headers: &HeaderMap, body: Body) -> Response {
    let response = match accept(state, endpoint, headers, body).await {
        Ok(accepted) => (StatusCode::OK, Json(accepted)).into_response(),
        Err(err) => {
            tracing::debug!(endpoint = endpoint.as_str(), status = %err.status, error = %err.error, "ingest request refused");
            err.into_response()
        }
    };
    state
        .metrics
        .ingest_requests
        .get_or_create(&IngestLabels {
            endpoint: endpoint.as_str().to_owned(),
            code: response.status().as_u16(),
        })
        .inc();
    response
}

async fn accept(
    state: &AppState,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: Body,
) -> Result<Accepted, ApiError> {
    if let Endpoint::Git(provider) = endpoint {
        // Webhooks carry their source's secret instead of the bearer token.
        return git::accept(state, provider, headers, body).await;
    }
    let ingest = match &state.ingest {
        IngestState::On(ingest) => ingest,
        IngestState::Off { why } => return Err(off(why)),
    };
    match &ingest.bearer {
        Bearer::Token(token) => token.verify(headers)?,
        Bearer::Open => {}
        Bearer::Off(why) => return Err(off(why)),
    }
    let body = ingest.read_body(headers, body).await?;
    let (topic, records, decoding) = match endpoint {
        Endpoint::Alertmanager => (
            &ingest.alertmanager_topic,
            vec![alertmanager_record(body)?],
            Decoding::Alertmanager,
        ),
        Endpoint::Events => (
            &ingest.events_topic,
            super::cloudevents::records(headers, body)?,
            Decoding::Cloudevents,
        ),
        Endpoint::Git(_) => unreachable!("webhooks returned above"),
    };
    let mut events = 0;
    for record in &records {
        events += ingest.check(topic, record, decoding)?;
    }
    let positions = ingest.produce(topic, &records).await?;
    Ok(Accepted {
        topic: topic.clone(),
        records: positions,
        events,
    })
}

/// The 404 of an endpoint that is off, saying why.
fn off(why: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("ingest is off: {why}"),
        "see server.ingest in the configuration (docs/operations.md)",
    )
}

/// The Alertmanager notification, unchanged, keyed by its `groupKey` (one alert group's
/// notifications stay in order on one partition).
fn alertmanager_record(body: Bytes) -> Result<OutRecord, ApiError> {
    let key = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("groupKey")?.as_str().map(str::to_owned));
    Ok(OutRecord {
        key,
        headers: Vec::new(),
        value: body,
    })
}

impl Ingest {
    /// Reads the body, refusing it (413) past `max_body_bytes`: from `Content-Length` before
    /// reading anything, else while reading.
    async fn read_body(&self, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
        let max = self.max_body_bytes;
        let too_large = |size: Option<usize>| {
            let size = size.map_or_else(|| "more".to_owned(), |s| s.to_string());
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is {size} bytes; the limit is {max}"),
                "send smaller payloads (Alertmanager: lower max_alerts in the receiver) or raise \
                 server.ingest.max_body_bytes (and pipeline.max_payload_bytes)",
            )
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        if declared.is_some_and(|len| len > max) {
            return Err(too_large(declared));
        }
        // Reading stops at the limit; a body cut off by a disconnect fails here too, but then
        // nobody reads the answer.
        axum::body::to_bytes(body, max)
            .await
            .map_err(|_| too_large(None))
    }

    /// Decodes `record` as the consumer will; returns how many events it holds.
    fn check(
        &self,
        topic: &str,
        record: &OutRecord,
        decoding: Decoding,
    ) -> Result<usize, ApiError> {
        let raw = RawRecord {
            topic,
            partition: 0,
            offset: 0,
            key: record.key.as_deref().map(str::as_bytes),
            headers: record
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), Some(value.as_slice())))
                .collect(),
            payload: Some(&record.value),
            timestamp: Some(Utc::now()),
        };
        decode::decode(&raw, decoding, &self.limits)
            .map(|events| events.len())
            .map_err(|err| refused(&err, decoding))
    }
}

/// A decode error as the sender should read it: 413 for size, 400 otherwise, without the
/// record position (there is none yet) and with a hint in HTTP terms.
fn refused(err: &DecodeError, decoding: Decoding) -> ApiError {
    let text = err.to_string();
    let prefix = format!("{}: ", err.position());
    let message = text.strip_prefix(&prefix).unwrap_or(&text).to_owned();
    let status = match err {
        DecodeError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    let hint = match decoding {
        Decoding::Alertmanager => {
            "POST Alertmanager's webhook notification (version 4: a JSON object with an \
             `alerts` array); point a webhook_configs receiver at this URL"
        }
        _ => {
            "POST one CloudEvent as `Content-Type: application/cloudevents+json` (structured), \
             a batch as `application/cloudevents-batch+json`, or the data with `ce-specversion`, \
             `ce-id`, `ce-source` and `ce-type` headers (binary)"
        }
    };
    ApiError::new(status, message, hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable_kafka(ack_timeout: Duration) -> Ingest {
        let producer = ClientConfig::new()
            // Nothing listens on port 1: the record can never be acknowledged.
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("message.timeout.ms", ack_timeout.as_millis().to_string())
            .create()
            .expect("producer");
        Ingest {
            producer,
            alertmanager_topic: "alerts".to_owned(),
            events_topic: "events".to_owned(),
            bearer: Bearer::Open,
            git: git::Sources::default(),
            max_body_bytes: 1024,
            ack_timeout,
            limits: DecodeLimits::default(),
        }
    }

    #[tokio::test]
    async fn kafka_not_acknowledging_answers_503_with_retry_after() {
        let ingest = unreachable_kafka(Duration::from_millis(300));
        let record = OutRecord {
            key: None,
            headers: Vec::new(),
            value: Bytes::from_static(b"{}"),
        };
        let err = ingest
            .produce("alerts", &[record])
            .await
            .expect_err("no broker");
        assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(err.error.contains("did not acknowledge"), "{err:?}");
        let response = err.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
    }

    #[test]
    fn the_decoder_checks_the_payload_and_its_message_drops_the_record_position() {
        let ingest = unreachable_kafka(Duration::from_millis(300));
        let record = |value: &'static str| OutRecord {
            key: None,
            headers: Vec::new(),
            value: Bytes::from_static(value.as_bytes()),
        };
        let err = ingest
            .check(
                "alerts",
                &record(r#"{"version":"4"}"#),
                Decoding::Alertmanager,
            )
            .expect_err("no alerts array");
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(!err.error.contains("offset"), "{err:?}");
        assert!(err.error.contains("alerts"), "{err:?}");
        let events = ingest
            .check(
                "alerts",
                &record(r#"{"version":"4","status":"firing","alerts":[]}"#),
                Decoding::Alertmanager,
            )
            .expect("an empty notification is valid");
        assert_eq!(events, 0);
    }
}
