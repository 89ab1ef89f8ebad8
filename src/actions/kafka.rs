//! The Kafka executor: publishes a planned `kafka` action's record (optionally as a CloudEvent in
//! the Kafka binding's binary mode) and waits for the broker's acknowledgement.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use serde::{Deserialize, Serialize};

use crate::event::cloudevents;
use crate::rules::action::KafkaAction;

/// Default bound on waiting for the broker's acknowledgement (librdkafka's
/// `message.timeout.ms`, which includes its own internal retries).
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Slack on top of the acknowledgement timeout before giving up on librdkafka's delivery report
/// ourselves: librdkafka reports a timed-out message itself, this only guards against a report
/// that never comes.
const REPORT_SLACK: Duration = Duration::from_secs(5);

/// Longest topic name the broker accepts.
const MAX_TOPIC_LEN: usize = 249;

/// Header carrying the action's idempotency key on records not sent as CloudEvents.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// What a successful publish did; recorded in the outcome's details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishResult {
    /// Topic written to.
    pub topic: String,
    /// Partition the broker stored the record in.
    pub partition: i32,
    /// Offset of the record in that partition.
    pub offset: i64,
    /// The CloudEvent id (`ce_id`), when sent as a CloudEvent.
    pub cloudevent_id: Option<String>,
}

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The planned action's parameters are not a valid Kafka publish.
    #[error("invalid kafka parameters: {0}")]
    InvalidParams(String),
    /// The producer could not be created (configuration).
    #[error("cannot create the Kafka producer")]
    Producer(#[source] KafkaError),
    /// The broker (or librdkafka) refused or could not deliver the record.
    #[error("publishing to topic `{topic}` failed")]
    Publish {
        /// Topic.
        topic: String,
        /// The delivery error.
        #[source]
        source: KafkaError,
    },
    /// Queued records were not all delivered before the flush timeout.
    #[error("flushing the Kafka producer did not finish")]
    Flush(#[source] KafkaError),
    /// No delivery report arrived in time.
    #[error("publishing to topic `{topic}`: no acknowledgement within {timeout_ms} ms")]
    AckTimeout {
        /// Topic.
        topic: String,
        /// The bound waited.
        timeout_ms: u64,
    },
}

impl Error {
    /// True when publishing again later may succeed (broker unavailable, timeouts); false when
    /// it will fail the same way (bad parameters, a topic the broker refuses, a record too large,
    /// no authorization).
    pub fn retryable(&self) -> bool {
        match self {
            Error::InvalidParams(_) | Error::Producer(_) => false,
            Error::AckTimeout { .. } | Error::Flush(_) => true,
            Error::Publish { source, .. } => !source.rdkafka_error_code().is_some_and(permanent),
        }
    }
}

/// Delivery errors that repeat whatever the timing.
fn permanent(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::InvalidTopic
            | C::UnknownTopic
            | C::MessageSizeTooLarge
            | C::InvalidMessageSize
            | C::InvalidMessage
            | C::InvalidRecord
            | C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::InvalidRequiredAcks
            | C::UnsupportedForMessageFormat
            | C::PolicyViolation
            | C::InvalidArgument
            | C::Fatal
    )
}

/// Publishes planned Kafka actions. One per process: it holds the producer.
#[derive(Clone)]
pub struct KafkaExecutor {
    producer: FutureProducer,
    ack_timeout: Duration,
}

impl std::fmt::Debug for KafkaExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaExecutor")
            .field("ack_timeout", &self.ack_timeout)
            .finish_non_exhaustive()
    }
}

impl KafkaExecutor {
    /// Creates the producer from `base` (bootstrap servers, TLS/SASL settings), with the
    /// idempotent producer on (no duplicates or reordering from librdkafka's own retries) and
    /// `acks=all`, waiting at most `ack_timeout` for each acknowledgement.
    pub fn new(base: &ClientConfig, ack_timeout: Duration) -> Result<KafkaExecutor, Error> {
        let mut config = base.clone();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", ack_timeout.as_millis().to_string());
        let producer: FutureProducer = config.create().map_err(Error::Producer)?;
        Ok(KafkaExecutor {
            producer,
            ack_timeout,
        })
    }

    /// Publishes the record described by `params` (a planned action's rendered parameters) and
    /// waits for the broker's acknowledgement.
    ///
    /// With `cloudevent`, the record is a CloudEvent in binary mode: `ce_id` is
    /// `idempotency_key`, so a record published again after a redelivery carries the same id and
    /// consumers can drop the duplicate; `ce_time` is the publishing time.
    pub async fn execute(
        &self,
        params: &KafkaAction,
        idempotency_key: &str,
    ) -> Result<PublishResult, Error> {
        check_topic(&params.topic)?;
        let value = serde_json::to_vec(&params.value)
            .map_err(|e| Error::InvalidParams(format!("value: {e}")))?;
        let (headers, cloudevent_id) = build_headers(params, idempotency_key)?;

        let mut record = FutureRecord::to(&params.topic)
            .payload(&value)
            .headers(headers);
        if let Some(key) = &params.key {
            record = record.key(key);
        }
        let publish_error = |source| Error::Publish {
            topic: params.topic.clone(),
            source,
        };
        // The queue wait is bounded by the acknowledgement timeout too: a full local queue means
        // the broker is not keeping up, the same condition as a slow acknowledgement.
        let delivery = self.producer.send(record, Timeout::After(self.ack_timeout));
        let report = tokio::time::timeout(self.ack_timeout + REPORT_SLACK, delivery).await;
        match report {
            Ok(Ok(delivery)) => {
                tracing::debug!(
                    topic = %params.topic,
                    partition = delivery.partition,
                    offset = delivery.offset,
                    "kafka record published",
                );
                Ok(PublishResult {
                    topic: params.topic.clone(),
                    partition: delivery.partition,
                    offset: delivery.offset,
                    cloudevent_id,
                })
            }
            Ok(Err((err, _message))) => Err(publish_error(err)),
            Err(_) => Err(Error::AckTimeout {
                topic: params.topic.clone(),
                timeout_ms: u64::try_from(self.ack_timeout.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }

    /// Waits (bounded) until queued records are delivered; for shutdown.
    pub fn flush(&self, timeout: Duration) -> Result<(), Error> {
        self.producer.flush(timeout).map_err(Error::Flush)
    }
}

/// The same rule the planner applies, checked again because parameters arrive as JSON.
fn check_topic(topic: &str) -> Result<(), Error> {
    let legal = !topic.is_empty()
        && topic.len() <= MAX_TOPIC_LEN
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if legal {
        Ok(())
    } else {
        Err(Error::InvalidParams(format!(
            "`{topic}` is not a Kafka topic name \
             (1 to {MAX_TOPIC_LEN} letters, digits, `.`, `_`, `-`)"
        )))
    }
}

/// The record's headers: the rule's, then the CloudEvents binding's (`ce_*` and
/// `content-type`) when asked. Returns the CloudEvent id too.
fn build_headers(
    params: &KafkaAction,
    idempotency_key: &str,
) -> Result<(OwnedHeaders, Option<String>), Error> {
    let mut headers = OwnedHeaders::new_with_capacity(params.headers.len() + 7);
    for (name, value) in &params.headers {
        if params.cloudevent.is_some()
            && (name.starts_with(cloudevents::KAFKA_HEADER_PREFIX)
                || name.eq_ignore_ascii_case("content-type"))
        {
            return Err(Error::InvalidParams(format!(
                "header `{name}` collides with the CloudEvents headers the executor writes"
            )));
        }
        headers = headers.insert(Header {
            key: name,
            value: Some(value.as_bytes()),
        });
    }
    let Some(ce) = &params.cloudevent else {
        // What a consumer deduplicates on when a publish is repeated (a redelivery, or an
        // attempt taken over after a crash); a CloudEvent carries it as `ce_id` instead.
        let own = (params.headers.keys()).any(|name| name.eq_ignore_ascii_case(IDEMPOTENCY_HEADER));
        if !own && !idempotency_key.is_empty() {
            headers = headers.insert(Header {
                key: IDEMPOTENCY_HEADER,
                value: Some(idempotency_key.as_bytes()),
            });
        }
        return Ok((headers, None));
    };
    if idempotency_key.is_empty() {
        return Err(Error::InvalidParams(
            "a CloudEvent needs an id, but the idempotency key is empty".into(),
        ));
    }
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut ce_headers: Vec<(&str, &str)> = vec![
        ("ce_specversion", cloudevents::SPEC_VERSION),
        ("ce_id", idempotency_key),
        ("ce_source", &ce.source),
        ("ce_type", &ce.event_type),
        ("ce_time", &time),
        ("content-type", "application/json"),
    ];
    if let Some(subject) = &ce.subject {
        ce_headers.push(("ce_subject", subject));
    }
    for (key, value) in ce_headers {
        headers = headers.insert(Header {
            key,
            value: Some(value.as_bytes()),
        });
    }
    Ok((headers, Some(idempotency_key.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Headers;
    use serde_json::json;

    fn header_pairs(headers: &OwnedHeaders) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|h| {
                (
                    h.key.to_owned(),
                    String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn cloudevent_headers_follow_the_kafka_binary_binding() {
        let params: KafkaAction = serde_json::from_value(json!({
            "topic": "t", "key": null, "value": {"a": 1}, "headers": {"team": "sre"},
            "cloudevent": {"type": "io.reflex.test", "source": "/reflex/r", "subject": "pod/x"},
        }))
        .expect("params");
        let (headers, id) = build_headers(&params, "key-1").expect("headers");
        assert_eq!(id.as_deref(), Some("key-1"));
        let pairs = header_pairs(&headers);
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("team"), Some("sre"));
        assert_eq!(get("ce_specversion"), Some("1.0"));
        assert_eq!(get("ce_id"), Some("key-1"));
        assert_eq!(get("ce_type"), Some("io.reflex.test"));
        assert_eq!(get("ce_source"), Some("/reflex/r"));
        assert_eq!(get("ce_subject"), Some("pod/x"));
        assert_eq!(get("content-type"), Some("application/json"));
        let time = get("ce_time").expect("ce_time");
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
    }

    #[test]
    fn a_plain_record_carries_the_idempotency_key_unless_the_rule_sets_that_header() {
        let mut params: KafkaAction = serde_json::from_value(json!({
            "topic": "t", "key": null, "value": 1, "headers": {"team": "sre"}, "cloudevent": null,
        }))
        .expect("params");
        let (headers, id) = build_headers(&params, "key-7").expect("headers");
        assert_eq!(id, None);
        let pairs = header_pairs(&headers);
        assert!(
            pairs.contains(&("idempotency-key".into(), "key-7".into())),
            "{pairs:?}"
        );
        params
            .headers
            .insert("idempotency-key".into(), "own".into());
        let (headers, _) = build_headers(&params, "key-7").expect("headers");
        let keys: Vec<_> = header_pairs(&headers)
            .into_iter()
            .filter(|(name, _)| name == "idempotency-key")
            .collect();
        assert_eq!(keys, [("idempotency-key".to_owned(), "own".to_owned())]);
    }

    #[test]
    fn a_rule_header_named_like_a_cloudevent_attribute_is_refused() {
        let params: KafkaAction = serde_json::from_value(json!({
            "topic": "t", "key": null, "value": 1, "headers": {"ce_id": "forged"},
            "cloudevent": {"type": "x", "source": "y", "subject": null},
        }))
        .expect("params");
        let err = build_headers(&params, "k").expect_err("collision");
        assert!(!err.retryable(), "{err}");
    }

    #[test]
    fn the_execute_future_can_be_spawned() {
        fn assert_send<T: Send>(_: &T) {}
        let mut config = ClientConfig::new();
        // Creating a producer does not connect; nothing is sent in this test.
        config.set("bootstrap.servers", "127.0.0.1:9");
        let executor = KafkaExecutor::new(&config, DEFAULT_ACK_TIMEOUT).expect("producer");
        let params: KafkaAction =
            serde_json::from_value(json!({"topic": "t", "value": 1, "headers": {}}))
                .expect("params");
        assert_send(&executor.execute(&params, "k"));
    }

    #[test]
    fn topic_names_are_checked_like_the_planner_does() {
        assert!(check_topic("reflex.outcomes-1_x").is_ok());
        for bad in ["", ".", "..", "has space", "slash/topic", &"x".repeat(250)] {
            assert!(check_topic(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn broker_refusals_are_permanent_and_timeouts_are_not() {
        let refused = Error::Publish {
            topic: "t".into(),
            source: KafkaError::MessageProduction(RDKafkaErrorCode::InvalidTopic),
        };
        assert!(!refused.retryable());
        let timed_out = Error::Publish {
            topic: "t".into(),
            source: KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut),
        };
        assert!(timed_out.retryable());
    }
}
