//! Decoders from a Kafka record (bytes + headers) or a JSON document to [`Event`]s.
//!
//! One record gives zero or more events: an Alertmanager notification carries several alerts and
//! becomes one event per alert; a notification with an empty `alerts` list gives no event at all
//! (it is valid and carries nothing to act on, so it is not an error). Every other record gives
//! exactly one event or a [`DecodeError`].
//!
//! Auto-detection tries, in order: CloudEvents binary mode (`ce_` headers), CloudEvents
//! structured mode (`application/cloudevents+json` content type, or a JSON object with
//! `specversion`, `id`, `source` and `type`), Alertmanager (`version` and an `alerts` array),
//! Kubernetes Event (`kind: Event` with `involvedObject` or `regarding`), Falco (`rule`,
//! `priority` and `output`), and finally plain JSON. A topic configured with a fixed
//! [`Decoding`] skips the detection; a record that does not fit the forced format is a
//! [`DecodeError::WrongFormat`].
//!
//! Log lines are never auto-detected: almost any text is a valid plain log line, and a JSON
//! document with a `message` field is as likely an application event as a shipper's envelope.
//! A topic of logs says so with its decoding (`log`, `syslog`, `logfmt`, `log_json`,
//! `otlp_json`, `otlp_proto`); every log shape becomes one [`Format::Log`] event (see [`logs`]).
//!
//! Identity ([`Metadata::id`], the base of action idempotency keys) is stable across
//! redeliveries of the same record and distinct for distinct occurrences; each format module
//! documents its rule. When neither the document nor the record carries a time, the event time
//! is the Unix epoch: deterministic, and obviously wrong to whoever looks.

mod alertmanager;
#[cfg(test)]
pub(crate) mod arbitrary;
mod base64;
mod cdevents;
mod cloudevents;
mod error;
mod falco;
mod json;
mod kubernetes;
pub mod logs;
mod otlp;
mod parse;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Event, Format, Metadata};
use error::Misfit;
pub use error::{DecodeError, RecordPosition};
use parse::{json_len, kind_of, parse_json, parse_text, str_field, text, time_field, value_depth};

/// A Kafka record as the decoder sees it (no rdkafka types: the rule engine is pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// Topic the record was read from.
    pub topic: &'a str,
    /// Partition of the record.
    pub partition: i32,
    /// Offset of the record in its partition.
    pub offset: i64,
    /// Record key, if any.
    pub key: Option<&'a [u8]>,
    /// Record headers in wire order; a header may repeat and may have no value.
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
    /// Record value; `None` is a tombstone.
    pub payload: Option<&'a [u8]>,
    /// Record timestamp (create or log-append time), if the broker gave one.
    pub timestamp: Option<DateTime<Utc>>,
}

/// How to decode a topic: a fixed format or auto-detection.
#[derive(
    Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Decoding {
    /// Recognise the format from headers and content (see the module docs for the order).
    #[default]
    Auto,
    /// Any JSON document, taken as it is.
    Json,
    /// CloudEvents 1.0, binary (`ce_` headers) or structured mode.
    Cloudevents,
    /// Prometheus Alertmanager webhook notification (version 4); one event per alert.
    Alertmanager,
    /// Kubernetes Event, core/v1 or events.k8s.io/v1.
    KubernetesEvent,
    /// Falco alert, as Falco or Falcosidekick emit it.
    Falco,
    /// A plain-text log line: the whole record value is the `message`.
    Log,
    /// A syslog line: RFC 5424, RFC 3164, or rsyslog's file formats (RFC 3339 or BSD time,
    /// host, `tag[pid]:`), with or without the `<PRI>` prefix.
    Syslog,
    /// A logfmt line: `key=value` pairs, values optionally double-quoted.
    Logfmt,
    /// A log shipper's JSON record: Fluent Bit, Vector, Filebeat (or any JSON object with a
    /// `message` or `log` string).
    LogJson,
    /// An OpenTelemetry logs export in OTLP/JSON (the Collector's Kafka exporter with
    /// `encoding: otlp_json`); one event per log record.
    OtlpJson,
    /// An OpenTelemetry logs export in protobuf (the Collector's Kafka exporter with
    /// `encoding: otlp_proto`); the same events as `otlp_json`. A JSON document given for such
    /// a topic (`reflex test`) is read in its OTLP/JSON form.
    OtlpProto,
}

impl Decoding {
    /// The name used in configuration files.
    pub fn as_str(self) -> &'static str {
        match self {
            Decoding::Auto => "auto",
            Decoding::Json => "json",
            Decoding::Cloudevents => "cloudevents",
            Decoding::Alertmanager => "alertmanager",
            Decoding::KubernetesEvent => "kubernetes_event",
            Decoding::Falco => "falco",
            Decoding::Log => "log",
            Decoding::Syslog => "syslog",
            Decoding::Logfmt => "logfmt",
            Decoding::LogJson => "log_json",
            Decoding::OtlpJson => "otlp_json",
            Decoding::OtlpProto => "otlp_proto",
        }
    }
}

impl fmt::Display for Decoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bounds on what one record may cost to decode. Hostile or broken producers must not be able
/// to make the controller allocate without limit or recurse deeply in later path lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub struct DecodeLimits {
    /// Largest record value accepted, in bytes. Default 1 MiB: Kafka's default
    /// `message.max.bytes` is about 1 MB, so a larger value is already unusual on the wire, and
    /// the decoded JSON tree costs several times its text size in memory.
    pub max_payload_bytes: usize,
    /// Deepest nesting of JSON arrays and objects accepted. Default 64: real events (Kubernetes
    /// objects included) stay well under 20 levels; serde_json's own limit is 128, and rule
    /// conditions and templates walk the tree, so a tighter bound keeps them cheap.
    pub max_depth: usize,
}

impl DecodeLimits {
    /// Default [`DecodeLimits::max_payload_bytes`]: 1 MiB.
    pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
    /// Default [`DecodeLimits::max_depth`]: 64 levels.
    pub const DEFAULT_MAX_DEPTH: usize = 64;
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_payload_bytes: Self::DEFAULT_MAX_PAYLOAD_BYTES,
            max_depth: Self::DEFAULT_MAX_DEPTH,
        }
    }
}

/// Decode one record into zero or more events (an Alertmanager notification holds several
/// alerts; one event per alert, group labels (`groupLabels`, `commonLabels`) merged under the
/// alert's own labels).
///
/// Headers go into [`Metadata::headers`] as UTF-8 (lossy; the last value wins; a header without
/// value is an empty string). The key is UTF-8 (lossy).
pub fn decode(
    record: &RawRecord<'_>,
    decoding: Decoding,
    limits: &DecodeLimits,
) -> Result<Vec<Event>, DecodeError> {
    let mut headers = BTreeMap::new();
    for (name, value) in &record.headers {
        let text = value.map(String::from_utf8_lossy).unwrap_or_default();
        headers.insert((*name).to_owned(), text.into_owned());
    }
    let origin = Origin {
        topic: record.topic,
        partition: record.partition,
        offset: record.offset,
        key: record.key.map(|k| String::from_utf8_lossy(k).into_owned()),
        headers,
        timestamp: record.timestamp,
        limits: *limits,
    };
    origin.check_size(record.payload.map_or(0, <[u8]>::len))?;
    // Binary mode carries the event in headers; its value is the data, which may be absent or
    // in any content type, so it is handled before the value is required to be JSON.
    if matches!(decoding, Decoding::Auto | Decoding::Cloudevents)
        && cloudevents::is_binary(&origin.headers)
    {
        return cloudevents::from_binary(&origin, Body::Bytes(record.payload));
    }
    let value = match record.payload {
        None => return Err(DecodeError::Tombstone { at: origin.at() }),
        Some(bytes) if decoding == Decoding::OtlpProto => return otlp::from_proto(bytes, &origin),
        Some(bytes) if logs::is_text(decoding) => {
            return logs::from_text(text(bytes, &origin)?, &origin, decoding);
        }
        Some(bytes) => parse_json(bytes, &origin)?,
    };
    decode_value(value, &origin, decoding)
}

/// Build an event from a JSON document without Kafka (used by `reflex test` and `reflex
/// replay`): same detection and identity rules, with the topic/partition/offset given.
///
/// `headers` play the role of record headers (CloudEvents binary mode works with `ce_` headers
/// and the document as data). The document is checked against the default limits, its size
/// being that of its compact JSON text (what a producer would send), so a test event is refused
/// exactly when `reflex run` would dead-letter it. (`reflex replay` reads records as text and
/// goes through [`decode`] itself.)
#[allow(clippy::too_many_arguments)] // One argument per field of a Kafka record, as in RawRecord.
pub fn decode_json(
    value: Value,
    topic: &str,
    partition: i32,
    offset: i64,
    key: Option<&str>,
    headers: &BTreeMap<String, String>,
    timestamp: Option<DateTime<Utc>>,
    decoding: Decoding,
) -> Result<Vec<Event>, DecodeError> {
    let origin = Origin {
        topic,
        partition,
        offset,
        key: key.map(str::to_owned),
        headers: headers.clone(),
        timestamp,
        limits: DecodeLimits::default(),
    };
    let limits = origin.limits;
    origin.check_size(json_len(&value))?;
    if value_depth(&value) > limits.max_depth {
        return Err(DecodeError::TooDeep {
            at: origin.at(),
            max: limits.max_depth,
        });
    }
    if matches!(decoding, Decoding::Auto | Decoding::Cloudevents)
        && cloudevents::is_binary(&origin.headers)
    {
        return cloudevents::from_binary(&origin, Body::Json(value));
    }
    decode_value(value, &origin, decoding)
}

/// Detection and dispatch for a parsed document (binary-mode CloudEvents already handled).
fn decode_value(
    value: Value,
    origin: &Origin<'_>,
    decoding: Decoding,
) -> Result<Vec<Event>, DecodeError> {
    let forced = |format: Format, fits: Result<(), Misfit<'_>>| {
        fits.map(|()| format)
            .map_err(|misfit| DecodeError::WrongFormat {
                at: origin.at(),
                expected: decoding,
                reason: misfit.reason(),
                detected: detect(&value),
            })
    };
    let chosen = match decoding {
        Decoding::Auto => {
            if cloudevents::declared_structured(&origin.headers).is_some() {
                Format::Cloudevents
            } else {
                detect(&value)
            }
        }
        Decoding::Json => Format::Json,
        Decoding::Cloudevents => forced(
            Format::Cloudevents,
            // A declared content type makes the record a CloudEvent whatever its body; missing
            // attributes are then reported by name.
            if cloudevents::declared_structured(&origin.headers).is_some() {
                Ok(())
            } else {
                cloudevents::fits(&value)
            },
        )?,
        Decoding::Alertmanager => forced(Format::Alertmanager, alertmanager::fits(&value))?,
        Decoding::KubernetesEvent => forced(Format::KubernetesEvent, kubernetes::fits(&value))?,
        Decoding::Falco => forced(Format::Falco, falco::fits(&value))?,
        // Log lines are parsed, not detected: each log decoding has its own entry point.
        Decoding::Log | Decoding::Syslog | Decoding::Logfmt => {
            return logs::from_value(value, origin, decoding);
        }
        Decoding::LogJson => return logs::shippers::build(value, origin).map(|e| vec![e]),
        Decoding::OtlpJson | Decoding::OtlpProto => return otlp::build(&value, origin),
    };
    match chosen {
        Format::Json => Ok(vec![json::build(value, origin)]),
        Format::Cloudevents => cloudevents::from_structured(value, origin),
        Format::Alertmanager => alertmanager::build(value, origin),
        Format::KubernetesEvent => kubernetes::build(value, origin).map(|e| vec![e]),
        Format::Falco => falco::build(value, origin).map(|e| vec![e]),
        Format::Log => unreachable!("detection never picks `log`; the log decodings return above"),
    }
}

/// Auto-detection over a parsed document, in the documented order.
fn detect(value: &Value) -> Format {
    if cloudevents::fits(value).is_ok() {
        Format::Cloudevents
    } else if alertmanager::fits(value).is_ok() {
        Format::Alertmanager
    } else if kubernetes::fits(value).is_ok() {
        Format::KubernetesEvent
    } else if falco::fits(value).is_ok() {
        Format::Falco
    } else {
        Format::Json
    }
}

/// The record fields every decoder needs, with headers and key already turned into text.
struct Origin<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    key: Option<String>,
    headers: BTreeMap<String, String>,
    timestamp: Option<DateTime<Utc>>,
    limits: DecodeLimits,
}

impl Origin<'_> {
    fn at(&self) -> RecordPosition {
        RecordPosition {
            topic: self.topic.to_owned(),
            partition: self.partition,
            offset: self.offset,
        }
    }

    /// The size bound, the one check every path applies (Kafka records, replayed lines, test
    /// events), so the tools refuse exactly what `reflex run` dead-letters as too large.
    fn check_size(&self, size: usize) -> Result<(), DecodeError> {
        if size > self.limits.max_payload_bytes {
            return Err(DecodeError::TooLarge {
                at: self.at(),
                size,
                max: self.limits.max_payload_bytes,
            });
        }
        Ok(())
    }

    /// `topic/partition/offset`: the identity of a record that carries none of its own. Stable
    /// across redeliveries because Kafka never moves a record.
    fn position_id(&self) -> String {
        format!("{}/{}/{}", self.topic, self.partition, self.offset)
    }

    /// Metadata with the record's fields filled in and the format's fields empty; the event
    /// time falls back to the record time, then to the Unix epoch.
    fn metadata(&self, format: Format, id: String, timestamp: Option<DateTime<Utc>>) -> Metadata {
        Metadata {
            id,
            topic: self.topic.to_owned(),
            partition: self.partition,
            offset: self.offset,
            key: self.key.clone(),
            headers: self.headers.clone(),
            timestamp: timestamp.or(self.timestamp).unwrap_or(DateTime::UNIX_EPOCH),
            format,
            event_type: None,
            source: None,
            attributes: BTreeMap::new(),
        }
    }

    fn invalid(
        &self,
        format: Format,
        field: impl Into<String>,
        problem: impl Into<String>,
    ) -> DecodeError {
        DecodeError::Invalid {
            at: self.at(),
            format,
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// A record value before decoding: raw bytes from Kafka, or a document already parsed.
enum Body<'a> {
    Bytes(Option<&'a [u8]>),
    Json(Value),
}
