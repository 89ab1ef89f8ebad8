//! Bounds of the log decodings: the field counts of logfmt and syslog structured data, the
//! copies an OTLP export makes of its resource attributes, and a property over every log
//! decoding: any bytes give events within a bounded size, or an error naming the record,
//! never a panic.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use super::super::arbitrary::{self, edit, edited, json_value, near_valid, text_from};
use super::super::logs::{MAX_FIELDS, MAX_LINE_BYTES, is_text};
use super::super::otlp::MAX_COPY_FACTOR;
use super::super::parse::{json_len, value_depth};
use super::*;

/// Every decoding that gives [`Format::Log`] events.
const LOG_DECODINGS: [Decoding; 5] = [
    Decoding::Log,
    Decoding::Syslog,
    Decoding::Logfmt,
    Decoding::LogJson,
    Decoding::OtlpJson,
];

#[test]
fn a_logfmt_line_with_more_keys_than_the_bound_is_refused_with_the_reason() {
    let pairs = |n: usize| {
        (0..n)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let event = one(&pairs(MAX_FIELDS), &[], Decoding::Logfmt);
    assert_eq!(
        event.payload["fields"].as_object().unwrap().len(),
        MAX_FIELDS
    );
    let err = error(&pairs(MAX_FIELDS + 1), &[], Decoding::Logfmt);
    assert!(
        err.contains("decoding is `logfmt`") && err.contains("more than 1000 keys"),
        "{err}"
    );
    // Bare keys count too: they are map entries as much as pairs are.
    let bare = format!("msg=x {}", "k ".repeat(MAX_FIELDS));
    assert!(error(&bare, &[], Decoding::Logfmt).contains("more than 1000 keys"));
}

#[test]
fn syslog_structured_data_past_the_bound_is_refused_with_the_reason() {
    let params = |n: usize| (0..n).map(|i| format!(" p{i}=\"v\"")).collect::<String>();
    let line = |n: usize| format!("<34>1 - host app - - [id{}] message", params(n));
    // The element counts as one.
    let event = one(&line(MAX_FIELDS - 1), &[], Decoding::Syslog);
    assert_eq!(
        event.payload["fields"]["structured_data"]["id"]
            .as_object()
            .unwrap()
            .len(),
        MAX_FIELDS - 1
    );
    let err = error(&line(MAX_FIELDS), &[], Decoding::Syslog);
    assert!(
        err.contains("decoding is `syslog`")
            && err.contains("more than 1000 elements and parameters"),
        "{err}"
    );
    let elements = format!("<34>1 - h a - - {} m", "[e]".repeat(MAX_FIELDS + 1));
    assert!(error(&elements, &[], Decoding::Syslog).contains("more than 1000 elements"));
}

/// An export of `records` empty log records under one resource with `resource_bytes` of
/// attributes.
fn otlp_export(records: usize, resource_bytes: usize) -> String {
    json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "pad", "value": {"stringValue": "x".repeat(resource_bytes)}}]},
        "scopeLogs": [{"logRecords": vec![json!({}); records]}],
    }]})
    .to_string()
}

#[test]
fn an_otlp_export_cannot_multiply_its_resource_past_the_bound() {
    let limits = DecodeLimits::default();
    // 2,000 records share a 100-byte resource: a real batch, decoded.
    let fine = otlp_export(2000, 100);
    let events = decode(&record(fine.as_bytes(), &[]), Decoding::OtlpJson, &limits).unwrap();
    assert_eq!(events.len(), 2000);
    // 100,000 records (3 bytes each) under a 100 KiB resource would copy ~10 GB.
    let hostile = otlp_export(100_000, 100 * 1024);
    assert!(hostile.len() < limits.max_payload_bytes);
    let err = decode(
        &record(hostile.as_bytes(), &[]),
        Decoding::OtlpJson,
        &limits,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("repeat its resource and scope attributes past 8388608 bytes")
            && err.contains("send_batch_max_size"),
        "{err}"
    );
}

/// Field names of the log shapes, so edits of real samples reach the decoders' branches.
const LOG_KEYS: &[&str] = &[
    "message",
    "log",
    "msg",
    "@timestamp",
    "timestamp",
    "time",
    "host",
    "hostname",
    "level",
    "severity",
    "resourceLogs",
    "scopeLogs",
    "logRecords",
    "body",
    "attributes",
    "resource",
    "timeUnixNano",
    "severityNumber",
];

/// The JSON log samples, each one record.
const JSON_SAMPLES: [&str; 4] = [FLUENT_BIT, VECTOR, FILEBEAT, OTLP];

/// Pieces of the line grammars.
const LINE_PIECES: &[&str] = &[
    "<34>",
    "<13>1 ",
    "[id k=\"v\"]",
    "[",
    "]",
    "\"",
    "\\",
    "=",
    "=\"",
    " ",
    "- ",
    "k=v ",
    "Dec  4 23:10:01 ",
    "2026-12-04T23:10:01Z ",
    "app[1]: ",
    "\n",
    "\r",
];

/// Record values: arbitrary bytes, lines near the shipped samples, or edited JSON samples.
fn log_payload() -> BoxedStrategy<Vec<u8>> {
    let lines: Vec<String> = SYSLOG
        .lines()
        .chain(LOGFMT.lines())
        .map(str::to_owned)
        .collect();
    let line = select(lines).boxed();
    let json = (
        select(JSON_SAMPLES.to_vec()),
        vec(edit(LOG_KEYS, json_value()), 0..4),
    )
        .prop_map(|(sample, edits)| {
            let doc: Value = serde_json::from_str(sample).unwrap();
            serde_json::to_vec(&edited(doc, &edits)).unwrap()
        });
    prop_oneof![
        1 => vec(any::<u8>(), 0..256),
        2 => near_valid(line, LINE_PIECES).prop_map(String::into_bytes),
        1 => text_from(LINE_PIECES).prop_map(String::into_bytes),
        2 => json,
    ]
    .boxed()
}

proptest! {
    #![proptest_config(arbitrary::config())]

    #[test]
    fn every_log_decoding_gives_bounded_events_or_an_error_naming_the_record(
        payload in log_payload(),
        decoding in select(LOG_DECODINGS.to_vec()),
    ) {
        let limits = DecodeLimits::default();
        match decode(&record(&payload, &[]), decoding, &limits) {
            Ok(events) => {
                // A text line is one event; its JSON is at most the line escaped (a control
                // byte becomes `\u00XX`) plus the shape's fixed members.
                if is_text(decoding) {
                    prop_assert_eq!(events.len(), 1);
                    prop_assert!(payload.len() <= MAX_LINE_BYTES);
                    prop_assert!(json_len(&events[0].payload) <= 6 * payload.len() + 512);
                }
                // An export's events copy its resource and scope within the bound.
                let total: usize = events.iter().map(|e| json_len(&e.payload)).sum();
                prop_assert!(
                    total <= MAX_COPY_FACTOR * limits.max_payload_bytes
                        + 6 * payload.len()
                        + 512 * events.len()
                );
                for event in &events {
                    prop_assert_eq!(event.meta.format, Format::Log);
                    prop_assert!(event.payload["message"].is_string());
                    prop_assert!(value_depth(&event.payload) <= limits.max_depth);
                }
            }
            Err(err) => {
                let text = err.to_string();
                prop_assert!(text.starts_with("record topic `events` partition 2 offset 42: "), "{}", text);
                prop_assert!(text.len() > 60, "{}", text);
            }
        }
    }
}
