//! Decoder tests over the payloads in `tests/data/events/` (see its README), one file per
//! concern; this file holds the samples and helpers they share.

mod alertmanager;
mod bad_input;
mod cloudevents;
mod detection;
mod falco;
mod forced;
mod kubernetes;
mod log_bounds;
mod logs;
mod otlp;
mod props;
mod record;

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use super::*;

const ALERTMANAGER: &str = include_str!("../../../../tests/data/events/alertmanager-webhook.json");
const ALERTMANAGER_EMPTY: &str =
    include_str!("../../../../tests/data/events/alertmanager-no-alerts.json");
const CE_STRUCTURED: &str =
    include_str!("../../../../tests/data/events/cloudevent-structured.json");
const CE_BINARY: &str = include_str!("../../../../tests/data/events/cloudevent-binary-kafka.txt");
const CE_BASE64: &str = include_str!("../../../../tests/data/events/cloudevent-data-base64.json");
const CE_BATCH: &str = include_str!("../../../../tests/data/events/cloudevent-batch.json");
const K8S_CORE: &str = include_str!("../../../../tests/data/events/kubernetes-event.json");
const K8S_EVENTS_V1: &str =
    include_str!("../../../../tests/data/events/kubernetes-event-events-v1.json");
const FALCO: &str = include_str!("../../../../tests/data/events/falco-event.json");
const FALCO_NO_UUID: &str = include_str!("../../../../tests/data/events/falco-event-no-uuid.json");
const PLAIN: &str = include_str!("../../../../tests/data/events/plain.json");
const SYSLOG: &str = include_str!("../../../../tests/data/events/syslog-rsyslog.log");
const LOGFMT: &str = include_str!("../../../../tests/data/events/logfmt.log");
const FLUENT_BIT: &str = include_str!("../../../../tests/data/events/fluent-bit-record.json");
const VECTOR: &str = include_str!("../../../../tests/data/events/vector-record.json");
const FILEBEAT: &str = include_str!("../../../../tests/data/events/filebeat-record.json");
const OTLP: &str = include_str!("../../../../tests/data/events/otlp-logs.json");
/// `otlp-logs.json` encoded as protobuf (`otlp_proto`); `otlp::the_committed_protobuf_sample_*`
/// checks (and with `REFLEX_WRITE_TEST_DATA=1` rewrites) it.
const OTLP_PROTO: &[u8] = include_bytes!("../../../../tests/data/events/otlp-logs.pb");
const CDEVENT: &str =
    include_str!("../../../../tests/data/events/cdevent-pipelinerun-finished.json");

/// Every way a topic can be configured to decode JSON records.
const DECODINGS: [Decoding; 8] = [
    Decoding::Auto,
    Decoding::Json,
    Decoding::Cloudevents,
    Decoding::Alertmanager,
    Decoding::KubernetesEvent,
    Decoding::Falco,
    Decoding::LogJson,
    Decoding::OtlpJson,
];

/// The decodings that read a record as a line of text (any text is a plain log line).
const TEXT_DECODINGS: [Decoding; 3] = [Decoding::Log, Decoding::Syslog, Decoding::Logfmt];

const TOPIC: &str = "events";
const PARTITION: i32 = 2;
const OFFSET: i64 = 42;

fn record_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 11, 0, 0).unwrap()
}

fn time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn record<'a>(payload: &'a [u8], headers: &[(&'a str, &'a str)]) -> RawRecord<'a> {
    RawRecord {
        topic: TOPIC,
        partition: PARTITION,
        offset: OFFSET,
        key: None,
        headers: headers
            .iter()
            .map(|(n, v)| (*n, Some(v.as_bytes())))
            .collect(),
        payload: Some(payload),
        timestamp: Some(record_time()),
    }
}

fn decode_with(
    payload: &str,
    headers: &[(&str, &str)],
    decoding: Decoding,
) -> Result<Vec<Event>, DecodeError> {
    decode(
        &record(payload.as_bytes(), headers),
        decoding,
        &DecodeLimits::default(),
    )
}

/// Decodes a record expected to give exactly one event.
fn one(payload: &str, headers: &[(&str, &str)], decoding: Decoding) -> Event {
    let mut events = decode_with(payload, headers, decoding).unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    events.remove(0)
}

fn auto(payload: &str) -> Event {
    one(payload, &[], Decoding::Auto)
}

fn error(payload: &str, headers: &[(&str, &str)], decoding: Decoding) -> String {
    decode_with(payload, headers, decoding)
        .unwrap_err()
        .to_string()
}

fn doc(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn attr<'e>(event: &'e Event, name: &str) -> &'e Value {
    event
        .meta
        .attributes
        .get(name)
        .unwrap_or_else(|| panic!("no attribute {name}: {:?}", event.meta))
}

/// The binary-mode sample: `headers:` then indented `name: value` lines, `key:`, `value:`.
struct BinarySample {
    headers: Vec<(String, String)>,
    key: String,
    value: String,
}

fn binary_sample() -> BinarySample {
    let mut sample = BinarySample {
        headers: Vec::new(),
        key: String::new(),
        value: String::new(),
    };
    for line in CE_BINARY
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (name, value) = line.split_once(':').unwrap();
        let value = value.trim().to_owned();
        if line.starts_with(' ') {
            sample.headers.push((name.trim().to_owned(), value));
        } else if name == "key" {
            sample.key = value;
        } else if name == "value" {
            sample.value = value;
        }
    }
    sample
}

/// The four required CloudEvents attributes as binary-mode headers.
const CE_HEADERS: [(&str, &str); 4] = [
    ("ce_specversion", "1.0"),
    ("ce_id", "evt-1"),
    ("ce_source", "/tests"),
    ("ce_type", "dev.reflex.test"),
];

/// [`CE_HEADERS`] plus more headers.
fn ce_headers_with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    CE_HEADERS
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .collect()
}

/// A structured-mode CloudEvent with the required attributes, plus (or overridden by) `extra`.
fn ce_with(extra: Value) -> String {
    let mut base = json!({"specversion": "1.0", "id": "x-1", "source": "/s", "type": "t"});
    base.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    base.to_string()
}
