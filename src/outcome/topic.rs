//! Publishing to Kafka: outcome records to the outcomes topic, undecodable records to the
//! dead-letter topic. Every send awaits the broker's acknowledgement, because the caller stores
//! the source offset only after it (the producer's `message.timeout.ms` bounds the wait).

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::record::OutcomeMessage;

mod dead_letter;

pub use dead_letter::{
    FALLBACK_BUDGET_BYTES, HEADER_ORIGINAL_BYTES, HEADER_TRUNCATED, producer_max_message_bytes,
};

/// How long a send may wait for room in the producer's local queue. The queue fills only when
/// the brokers are unreachable; failing after a few seconds hands the record back to the
/// consumer's retry (with back-off) instead of blocking a worker indefinitely.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest `reflex-dlq-error` header. Decode errors quote parser messages, which are short,
/// but the header travels with every dead letter: 2 KiB keeps it readable and bounded.
const MAX_ERROR_HEADER_BYTES: usize = 2048;

/// Header naming why a record was dead-lettered (a short code such as `not_json`).
pub const HEADER_REASON: &str = "reflex-dlq-reason";
/// Header with the full, human-readable error.
pub const HEADER_ERROR: &str = "reflex-dlq-error";
/// Header with the source topic.
pub const HEADER_SOURCE_TOPIC: &str = "reflex-source-topic";
/// Header with the source partition.
pub const HEADER_SOURCE_PARTITION: &str = "reflex-source-partition";
/// Header with the source offset.
pub const HEADER_SOURCE_OFFSET: &str = "reflex-source-offset";
/// Header naming the rule whose action failed (action dead letters).
pub const HEADER_RULE: &str = "reflex-rule";
/// Header naming the kind of the action that failed (action dead letters).
pub const HEADER_ACTION_KIND: &str = "reflex-action-kind";
/// `reflex-dlq-reason` of an action that failed after its retries.
pub const REASON_ACTION_FAILED: &str = "action_failed";

/// What an action dead letter says: the failed action and where its event came from. The
/// source record itself stays in its topic; this is a reference to it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ActionDeadLetter<'a> {
    /// The rule.
    pub rule: &'a str,
    /// The action kind.
    pub action_kind: &'a str,
    /// The event.
    pub event_id: &'a str,
    /// The action's idempotency key (also the record key).
    pub idempotency_key: &'a str,
    /// The object acted on.
    pub target: Option<&'a str>,
    /// Attempts made.
    pub attempts: i32,
    /// The last error.
    pub error: &'a str,
    /// Source topic, partition and offset (absent for timer firings).
    pub source: Option<(&'a str, i32, i64)>,
}

/// Why a publication failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The broker did not acknowledge the record.
    #[error("cannot publish {what} to Kafka topic `{topic}`")]
    Delivery {
        /// `outcome record` or `dead letter`.
        what: &'static str,
        /// The destination topic.
        topic: String,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// The outcome record could not be serialized (a bug).
    #[error("cannot serialize the outcome record")]
    Serialize(#[source] serde_json::Error),
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Sends outcome records and dead letters.
#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
    outcomes: String,
    dead_letters: String,
    /// The producer's `message.max.bytes`: what a dead-letter copy is fitted to.
    max_message_bytes: usize,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("outcomes", &self.outcomes)
            .field("dead_letters", &self.dead_letters)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher writing to the given topics, with a producer of librdkafka's default
    /// `message.max.bytes`.
    pub fn new(producer: FutureProducer, outcomes: &str, dead_letters: &str) -> Self {
        Publisher {
            producer,
            outcomes: outcomes.to_owned(),
            dead_letters: dead_letters.to_owned(),
            max_message_bytes: producer_max_message_bytes(0),
        }
    }

    /// Tells the publisher its producer's `message.max.bytes`, the size dead-letter copies are
    /// fitted to (see [`producer_max_message_bytes`]).
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// The outcomes topic.
    pub fn outcomes_topic(&self) -> &str {
        &self.outcomes
    }

    /// The dead-letter topic.
    pub fn dead_letter_topic(&self) -> &str {
        &self.dead_letters
    }

    /// Publishes one outcome record, keyed by its subject, and waits for the acknowledgement.
    pub async fn publish_outcome(&self, message: &OutcomeMessage) -> Result<()> {
        let payload = serde_json::to_vec(message).map_err(Error::Serialize)?;
        let headers = OwnedHeaders::new().insert(Header {
            key: "content-type",
            value: Some("application/cloudevents+json"),
        });
        let record = FutureRecord::to(&self.outcomes)
            .key(message.key())
            .payload(&payload)
            .headers(headers);
        self.producer
            .send(record, QUEUE_TIMEOUT)
            .await
            .map(drop)
            .map_err(|(source, _)| Error::Delivery {
                what: "outcome record",
                topic: self.outcomes.clone(),
                source,
            })
    }
}

impl Publisher {
    /// Publishes an action that failed for good to the dead-letter topic: a JSON reference to
    /// the action and its source record, keyed by the idempotency key, with the headers
    /// `reflex-dlq-reason: action_failed`, `reflex-dlq-error`, `reflex-rule`,
    /// `reflex-action-kind` and (when known) `reflex-source-topic`, `-partition`, `-offset`.
    pub async fn dead_letter_action(&self, letter: &ActionDeadLetter<'_>) -> Result<()> {
        let payload = serde_json::to_vec(letter).map_err(Error::Serialize)?;
        let error = truncate(letter.error, MAX_ERROR_HEADER_BYTES);
        let mut pairs = vec![
            (HEADER_REASON, REASON_ACTION_FAILED.to_owned()),
            (HEADER_ERROR, error.to_owned()),
            (HEADER_RULE, letter.rule.to_owned()),
            (HEADER_ACTION_KIND, letter.action_kind.to_owned()),
        ];
        if let Some((topic, partition, offset)) = letter.source {
            pairs.push((HEADER_SOURCE_TOPIC, topic.to_owned()));
            pairs.push((HEADER_SOURCE_PARTITION, partition.to_string()));
            pairs.push((HEADER_SOURCE_OFFSET, offset.to_string()));
        }
        let mut headers = OwnedHeaders::new_with_capacity(pairs.len() + 1);
        headers = headers.insert(Header {
            key: "content-type",
            value: Some("application/json"),
        });
        for (key, value) in &pairs {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_str()),
            });
        }
        let record = FutureRecord::to(&self.dead_letters)
            .key(letter.idempotency_key)
            .payload(&payload)
            .headers(headers);
        self.send(record, "action dead letter", &self.dead_letters)
            .await
    }

    /// Publishes a structured-mode CloudEvent (JSON) to `topic` and waits for the
    /// acknowledgement (guardrail announcements).
    pub async fn publish_event(
        &self,
        topic: &str,
        key: &str,
        event: &serde_json::Value,
    ) -> Result<()> {
        let payload = serde_json::to_vec(event).map_err(Error::Serialize)?;
        let headers = OwnedHeaders::new().insert(Header {
            key: "content-type",
            value: Some("application/cloudevents+json"),
        });
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(&payload)
            .headers(headers);
        self.send(record, "guard announcement", topic).await
    }

    async fn send(
        &self,
        record: FutureRecord<'_, str, Vec<u8>>,
        what: &'static str,
        topic: &str,
    ) -> Result<()> {
        self.producer
            .send(record, QUEUE_TIMEOUT)
            .await
            .map(drop)
            .map_err(|(source, _)| Error::Delivery {
                what,
                topic: topic.to_owned(),
                source,
            })
    }
}

/// The longest prefix of `text` within `max` bytes, cut at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("short", 100), "short");
    }
}
