//! Dead letters of undecodable records, sized so that they are always accepted.
//!
//! The copy of a record (its key, value and headers, plus Reflex's headers) is larger than the
//! record itself. Were it refused as too large, the record's partition would retry it forever
//! (every replica taking the partition over too). So the copy is fitted to a size budget: whole
//! when it fits, otherwise the value is cut (and, should they not fit either, the record's own
//! headers and key are dropped), with `reflex-dlq-truncated` saying what was cut and
//! `reflex-dlq-original-bytes` the value's size; the `reflex-source-*` headers always name the
//! original record, which stays in its topic while retention keeps it. The budget is the
//! producer's `message.max.bytes` (see [`producer_max_message_bytes`]); should the broker still
//! refuse (the dead-letter topic's `max.message.bytes` is lower), a copy within
//! [`FALLBACK_BUDGET_BYTES`] is sent instead.

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;

use super::{
    Error, HEADER_ERROR, HEADER_REASON, HEADER_SOURCE_OFFSET, HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC, MAX_ERROR_HEADER_BYTES, Publisher, QUEUE_TIMEOUT, Result, truncate,
};
use crate::event::decode::RawRecord;

/// Header saying what a dead letter's copy lacks: `value` (cut), `headers` (the record's own
/// headers dropped), `key` (dropped), comma-separated. Absent when the copy is whole.
pub const HEADER_TRUNCATED: &str = "reflex-dlq-truncated";
/// Header with the size in bytes of the original value, on a cut copy.
pub const HEADER_ORIGINAL_BYTES: &str = "reflex-dlq-original-bytes";

/// Headroom over `pipeline.max_payload_bytes` for a dead letter's key, headers (the record's
/// and Reflex's, whose error text is at most 2 KiB) and framing: a record within the decode
/// limit is then copied whole unless its own key and headers are unusually large.
const OVERHEAD_BYTES: usize = 64 * 1024;

/// librdkafka's default `message.max.bytes`; the producer's limit is never set below it.
const LIBRDKAFKA_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// Budget of the second attempt, after the broker refused a copy as too large: far below any
/// sensible topic limit, and 64 KiB of a value are plenty to see what the record was.
pub const FALLBACK_BUDGET_BYTES: usize = 64 * 1024;

/// What librdkafka counts besides key, value and headers (record batch header: 61 bytes; a
/// record's varints: 36 bytes at most), plus the truncation headers, rounded up generously.
const RECORD_FRAMING_BYTES: usize = 1024;

/// librdkafka's count per header besides its name and value (two varints).
const HEADER_FRAMING_BYTES: usize = 10;

/// The `message.max.bytes` the outcome producer needs so that a dead-letter copy of any record
/// within the decode limit (`pipeline.max_payload_bytes`) goes out whole.
pub fn producer_max_message_bytes(max_payload_bytes: usize) -> usize {
    max_payload_bytes
        .saturating_add(OVERHEAD_BYTES)
        .max(LIBRDKAFKA_MESSAGE_MAX_BYTES)
}

/// A record's dead-letter copy within a budget.
#[derive(Debug, PartialEq, Eq)]
struct Copy<'a> {
    key: Option<&'a [u8]>,
    /// The record's own headers, or none when they were dropped.
    headers: &'a [(&'a str, Option<&'a [u8]>)],
    value: Option<&'a [u8]>,
    /// What was cut or dropped (`value`, `headers`, `key`).
    cut: Vec<&'static str>,
}

fn headers_size<'a>(headers: impl IntoIterator<Item = (&'a str, usize)>) -> usize {
    headers
        .into_iter()
        .map(|(name, value)| name.len() + value + HEADER_FRAMING_BYTES)
        .sum()
}

/// Fits `record` into `budget` bytes as librdkafka counts them, `reserved` of which are taken
/// by Reflex's own headers. Priority: the value (what the operator needs most) gets what the
/// key and the record's headers leave; a key or header set that alone takes more than half of
/// what is left is dropped.
fn fit<'a>(record: &'a RawRecord<'a>, reserved: usize, budget: usize) -> Copy<'a> {
    let mut left = budget.saturating_sub(reserved + RECORD_FRAMING_BYTES);
    let mut cut = Vec::new();
    let mut key = record.key;
    if let Some(k) = key {
        if k.len() > left / 2 {
            key = None;
            cut.push("key");
        } else {
            left -= k.len();
        }
    }
    let mut headers = &record.headers[..];
    let own = headers_size(
        headers
            .iter()
            .map(|(name, value)| (*name, value.map_or(0, <[u8]>::len))),
    );
    if own > left / 2 {
        headers = &[];
        cut.push("headers");
    } else {
        left -= own;
    }
    let value = record.payload.map(|v| {
        if v.len() > left {
            cut.insert(0, "value");
            &v[..left]
        } else {
            v
        }
    });
    Copy {
        key,
        headers,
        value,
        cut,
    }
}

impl Publisher {
    /// Copies a record to the dead-letter topic: its key, value and headers followed by
    /// Reflex's (`reflex-dlq-reason`, `reflex-dlq-error`, `reflex-source-topic`, `-partition`,
    /// `-offset`), fitted to the producer's limit (see the module docs), and waits for the
    /// acknowledgement.
    pub async fn dead_letter(
        &self,
        record: &RawRecord<'_>,
        reason: &str,
        error: &str,
    ) -> Result<()> {
        let partition = record.partition.to_string();
        let offset = record.offset.to_string();
        let reference = [
            (HEADER_REASON, reason),
            (HEADER_ERROR, truncate(error, MAX_ERROR_HEADER_BYTES)),
            (HEADER_SOURCE_TOPIC, record.topic),
            (HEADER_SOURCE_PARTITION, partition.as_str()),
            (HEADER_SOURCE_OFFSET, offset.as_str()),
        ];
        let reserved = headers_size(reference.iter().map(|(name, value)| (*name, value.len())));
        let original = record.payload.map_or(0, <[u8]>::len).to_string();
        let budgets = [self.max_message_bytes, FALLBACK_BUDGET_BYTES];
        for (attempt, budget) in budgets.into_iter().enumerate() {
            let copy = fit(record, reserved, budget);
            let cut = copy.cut.join(",");
            let mut headers = OwnedHeaders::new_with_capacity(copy.headers.len() + 7);
            for (key, value) in copy.headers {
                headers = headers.insert(Header { key, value: *value });
            }
            let truncation = [
                (HEADER_TRUNCATED, cut.as_str()),
                (HEADER_ORIGINAL_BYTES, original.as_str()),
            ];
            let extra = if copy.cut.is_empty() {
                &[][..]
            } else {
                &truncation[..]
            };
            for (key, value) in reference.iter().chain(extra) {
                headers = headers.insert(Header {
                    key,
                    value: Some(*value),
                });
            }
            let mut out: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&self.dead_letters).headers(headers);
            if let Some(key) = copy.key {
                out = out.key(key);
            }
            if let Some(value) = copy.value {
                out = out.payload(value);
            }
            let source = match self.producer.send(out, QUEUE_TIMEOUT).await {
                Ok(_) => return Ok(()),
                Err((source, _)) => source,
            };
            let too_large = matches!(
                source,
                KafkaError::MessageProduction(
                    RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::MessageBatchTooLarge
                )
            );
            if too_large && attempt + 1 < budgets.len() {
                tracing::warn!(
                    topic = record.topic,
                    partition = record.partition,
                    offset = record.offset,
                    dead_letters = %self.dead_letters,
                    budget,
                    fallback = FALLBACK_BUDGET_BYTES,
                    "dead letter refused as too large (the dead-letter topic's max.message.bytes \
                     or kafka.client message.max.bytes is lower); sending a shorter copy"
                );
                continue;
            }
            return Err(Error::Delivery {
                what: "dead letter",
                topic: self.dead_letters.clone(),
                source,
            });
        }
        unreachable!("the last attempt returns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(
        key: Option<&'a [u8]>,
        headers: Vec<(&'a str, Option<&'a [u8]>)>,
        value: Option<&'a [u8]>,
    ) -> RawRecord<'a> {
        RawRecord {
            topic: "events",
            partition: 0,
            offset: 7,
            key,
            headers,
            payload: value,
            timestamp: None,
        }
    }

    #[test]
    fn a_record_within_the_decode_limit_is_copied_whole() {
        let value = vec![b'x'; 1_048_576];
        let headers = vec![("trace-id", Some(&b"abc"[..]))];
        let raw = record(Some(b"k"), headers.clone(), Some(&value));
        let budget = producer_max_message_bytes(1_048_576);
        let copy = fit(&raw, 2_300, budget);
        assert_eq!(copy.value.map(<[u8]>::len), Some(1_048_576));
        assert_eq!(copy.headers, &headers[..]);
        assert_eq!(copy.key, Some(&b"k"[..]));
        assert!(copy.cut.is_empty());
    }

    #[test]
    fn a_larger_value_is_cut_to_the_budget_keeping_key_and_headers() {
        let value = vec![b'x'; 3_000_000];
        let raw = record(Some(b"k"), vec![("h", Some(&b"v"[..]))], Some(&value));
        let copy = fit(&raw, 2_300, 1_000_000);
        let kept = copy.value.map_or(0, <[u8]>::len);
        assert!(kept > 990_000 && kept + 1 + 1 + 2_300 + RECORD_FRAMING_BYTES < 1_000_000);
        assert_eq!(copy.cut, vec!["value"]);
        assert_eq!(copy.key, Some(&b"k"[..]));
        assert_eq!(copy.headers.len(), 1);
    }

    #[test]
    fn a_key_or_headers_too_large_for_the_budget_are_dropped() {
        let big = vec![b'h'; 40_000];
        let raw = record(Some(&big), vec![("h", Some(&big))], Some(b"not json"));
        let copy = fit(&raw, 2_300, FALLBACK_BUDGET_BYTES);
        assert_eq!(copy.key, None);
        assert!(copy.headers.is_empty());
        assert_eq!(copy.value, Some(&b"not json"[..]));
        assert_eq!(copy.cut, vec!["key", "headers"]);
    }

    #[test]
    fn a_tombstone_stays_without_value_and_the_limit_never_drops_below_librdkafkas() {
        let raw = record(None, vec![], None);
        assert_eq!(fit(&raw, 100, 1_000).value, None);
        assert_eq!(producer_max_message_bytes(10), LIBRDKAFKA_MESSAGE_MAX_BYTES);
        assert_eq!(
            producer_max_message_bytes(4_000_000),
            4_000_000 + OVERHEAD_BYTES
        );
    }
}
