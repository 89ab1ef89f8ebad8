//! Publishing to Kafka: outcome records to the outcomes topic, undecodable records to the
//! dead-letter topic. Every send awaits the broker's acknowledgement, because the caller stores
//! the source offset only after it (the producer's `message.timeout.ms` bounds the wait).

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::record::OutcomeMessage;
use crate::event::decode::RawRecord;

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
    /// A publisher writing to the given topics.
    pub fn new(producer: FutureProducer, outcomes: &str, dead_letters: &str) -> Self {
        Publisher {
            producer,
            outcomes: outcomes.to_owned(),
            dead_letters: dead_letters.to_owned(),
        }
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

    /// Copies a record to the dead-letter topic: same key and value, its own headers followed
    /// by Reflex's (`reflex-dlq-reason`, `reflex-dlq-error`, `reflex-source-topic`,
    /// `-partition`, `-offset`), and waits for the acknowledgement.
    pub async fn dead_letter(
        &self,
        record: &RawRecord<'_>,
        reason: &str,
        error: &str,
    ) -> Result<()> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len() + 5);
        for (name, value) in &record.headers {
            headers = headers.insert(Header {
                key: name,
                value: *value,
            });
        }
        let partition = record.partition.to_string();
        let offset = record.offset.to_string();
        let error = truncate(error, MAX_ERROR_HEADER_BYTES);
        for (key, value) in [
            (HEADER_REASON, reason),
            (HEADER_ERROR, error),
            (HEADER_SOURCE_TOPIC, record.topic),
            (HEADER_SOURCE_PARTITION, partition.as_str()),
            (HEADER_SOURCE_OFFSET, offset.as_str()),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut out: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.dead_letters).headers(headers);
        if let Some(key) = record.key {
            out = out.key(key);
        }
        if let Some(payload) = record.payload {
            out = out.payload(payload);
        }
        self.producer
            .send(out, QUEUE_TIMEOUT)
            .await
            .map(drop)
            .map_err(|(source, _)| Error::Delivery {
                what: "dead letter",
                topic: self.dead_letters.clone(),
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
