//! Property tests: no record, whatever its payload bytes, header bytes, key or timestamp, makes a
//! decoder panic (errors are fine), and the base64 and nesting helpers agree with their inverses.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use super::super::arbitrary::{self, document, json_value, text_from};
use super::super::base64;
use super::super::parse::{nesting_exceeds, value_depth};
use super::*;

/// Header names the decoders look at, so random headers reach binary-mode CloudEvents.
const HEADER_NAMES: &[&str] = &[
    "ce_specversion",
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_time",
    "ce_subject",
    "ce_datacontenttype",
    "ce_dataschema",
    "ce_extension",
    "content-type",
    "Content-Type",
    "traceparent",
];

/// A record as owned parts; [`Parts::record`] borrows them as the decoder's input.
#[derive(Debug, Clone)]
struct Parts {
    payload: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    key: Option<Vec<u8>>,
    partition: i32,
    offset: i64,
    timestamp_ms: Option<i64>,
}

impl Parts {
    fn record(&self) -> RawRecord<'_> {
        RawRecord {
            topic: TOPIC,
            partition: self.partition,
            offset: self.offset,
            key: self.key.as_deref(),
            headers: self
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_deref()))
                .collect(),
            payload: self.payload.as_deref(),
            timestamp: self.timestamp_ms.and_then(DateTime::from_timestamp_millis),
        }
    }
}

/// Payload bytes: arbitrary, or a (possibly edited) sample document with some bytes replaced.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    let json = document().prop_map(|doc| serde_json::to_vec(&doc).expect("a Value serializes"));
    prop_oneof![
        1 => vec(any::<u8>(), 0..256),
        3 => json.clone(),
        1 => (json, vec((any::<usize>(), any::<u8>()), 1..4)).prop_map(|(mut bytes, flips)| {
            for (at, byte) in flips {
                if !bytes.is_empty() {
                    let i = at % bytes.len();
                    bytes[i] = byte;
                }
            }
            bytes
        }),
    ]
}

/// A header value: arbitrary bytes, or text the decoders recognise.
fn header_value() -> impl Strategy<Value = Option<Vec<u8>>> {
    proptest::option::weighted(
        0.9,
        prop_oneof![
            vec(any::<u8>(), 0..32),
            text_from(&[
                "1.0",
                "0.3",
                "2026-01-01T00:00:00Z",
                "application/json",
                "application/cloudevents+json",
                "application/cloudevents-batch+json",
                "text/plain",
                "; charset=utf-8",
            ])
            .prop_map(String::into_bytes),
        ],
    )
}

fn parts() -> impl Strategy<Value = Parts> {
    let name = prop_oneof![
        3 => select(HEADER_NAMES).prop_map(str::to_owned),
        1 => any::<String>(),
    ];
    // A quarter of the records carry the four required binary-mode CloudEvents headers, so
    // random extras and payloads reach the binary decoder.
    let binary = proptest::bool::weighted(0.25).prop_map(|on| {
        let required = [
            ("ce_specversion", "1.0"),
            ("ce_id", "id-1"),
            ("ce_source", "/s"),
            ("ce_type", "t"),
        ];
        if on {
            required
                .iter()
                .map(|(n, v)| ((*n).to_owned(), Some(v.as_bytes().to_vec())))
                .collect()
        } else {
            Vec::new()
        }
    });
    let headers = (binary, vec((name, header_value()), 0..6)).prop_map(|(mut required, extra)| {
        required.extend(extra);
        required
    });
    (
        proptest::option::weighted(0.95, payload()),
        headers,
        proptest::option::of(vec(any::<u8>(), 0..16)),
        any::<i32>(),
        any::<i64>(),
        proptest::option::of(any::<i64>()),
    )
        .prop_map(
            |(payload, headers, key, partition, offset, timestamp_ms)| Parts {
                payload,
                headers,
                key,
                partition,
                offset,
                timestamp_ms,
            },
        )
}

/// JSON and text decodings together.
fn all_decodings() -> Vec<Decoding> {
    DECODINGS.iter().chain(&TEXT_DECODINGS).copied().collect()
}

proptest! {
    #![proptest_config(arbitrary::config())]

    #[test]
    fn no_record_panics_any_decoder(parts in parts(), decoding in select(all_decodings())) {
        let limits = DecodeLimits::default();
        if let Ok(events) = decode(&parts.record(), decoding, &limits) {
            for event in events {
                prop_assert_eq!(event.meta.topic.as_str(), TOPIC);
                prop_assert!(value_depth(&event.payload) <= limits.max_depth);
            }
        }
    }

    #[test]
    fn tight_limits_are_errors_not_panics(parts in parts(), max_depth in 0usize..4, max_bytes in 0usize..64) {
        let limits = DecodeLimits { max_payload_bytes: max_bytes, max_depth };
        let _ = decode(&parts.record(), Decoding::Auto, &limits);
    }

    #[test]
    fn no_document_panics_decode_json(
        doc in document(),
        headers in vec((select(HEADER_NAMES).prop_map(str::to_owned), text_from(&["1.0", "application/json"])), 0..5),
        decoding in select(all_decodings()),
    ) {
        let headers = headers.into_iter().collect();
        let _ = decode_json(doc, TOPIC, PARTITION, OFFSET, Some("k"), &headers, None, decoding);
    }

    #[test]
    fn base64_decodes_what_it_encodes(bytes in vec(any::<u8>(), 0..64)) {
        prop_assert_eq!(base64::decode(&base64::encode(&bytes)), Some(bytes));
    }

    #[test]
    fn base64_decode_of_any_text_does_not_panic(text in text_from(&["=", "==", "+", "/", "QUJD", "Zm9v"])) {
        let _ = base64::decode(&text);
    }

    #[test]
    fn the_nesting_scan_agrees_with_the_parsed_depth(doc in json_value(), max in 0usize..8) {
        let text = serde_json::to_string(&doc).expect("a Value serializes");
        prop_assert_eq!(nesting_exceeds(text.as_bytes(), max), value_depth(&doc) > max);
    }
}

#[test]
fn documents_nested_past_the_bound_are_refused_at_every_depth() {
    let limits = DecodeLimits::default();
    for depth in [limits.max_depth, limits.max_depth + 1, 1000] {
        let doc = arbitrary::nested(depth, Value::Null);
        let bytes = serde_json::to_vec(&doc).expect("serializes");
        let result = decode(&record(&bytes, &[]), Decoding::Auto, &limits);
        assert_eq!(
            matches!(result, Err(DecodeError::TooDeep { .. })),
            depth > limits.max_depth,
            "depth {depth}: {result:?}"
        );
    }
}
