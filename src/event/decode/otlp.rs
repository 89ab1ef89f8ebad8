//! OpenTelemetry logs as the OpenTelemetry Collector's Kafka exporter writes them: an
//! `ExportLogsServiceRequest`, `resourceLogs[].scopeLogs[].logRecords[]`, in OTLP/JSON
//! (`encoding: otlp_json`) or protobuf (`encoding: otlp_proto`). A protobuf export is decoded with
//! the `opentelemetry-proto` types and turned into its OTLP/JSON form (their serde mapping follows
//! the OTLP JSON encoding: hex ids, `intValue` as a string, camelCase names), so both encodings
//! go through one mapping and give the same events. One [`Format::Log`] event per log record
//! (`log_format: otlp`), in the common log shape (see [`super::logs`]):
//!
//! - `message`: the body when it is a string, else the body as JSON text (the structured body
//!   itself is `fields.body`);
//! - `level`: `severityText` normalised, else the level of `severityNumber` (1-4 trace, 5-8
//!   debug, 9-12 info, 13-16 warning, 17-20 error, 21-24 critical);
//! - `host`: the resource attribute `host.name`, else `k8s.pod.name`;
//! - `timestamp`: `timeUnixNano`, else `observedTimeUnixNano`, else the record time;
//! - `fields`: `attributes` (the record's), `resource` (the resource attributes), `scope`
//!   (`name`, `version`, `attributes`), and `trace_id`, `span_id`, `severity_number`,
//!   `severity_text`, `event_name` when set. OTLP's key/value lists are flattened into maps, so
//!   `fields.resource["service.name"]` and `fields.attributes["http.status_code"]` are paths.
//!
//! Identity is `topic/partition/offset#N`, N the record's index in the export.

use chrono::DateTime;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message as _;
use serde_json::{Map, Value};

use super::logs::{LogLine, normalize_level};
use super::{DecodeError, Decoding, Origin, detect, json_len, kind_of, value_depth};
use crate::event::{Event, Format};

/// How many times `pipeline.max_payload_bytes` the copies of resource and scope attributes
/// into the events of one export may add up to. Every event carries its resource's and
/// scope's attributes, so an export of thousands of records under one large resource would
/// otherwise turn a 1 MiB record into gigabytes of events; a real export (the Collector's
/// batches of a few thousand records, a few hundred bytes of attributes) stays far below.
pub(super) const MAX_COPY_FACTOR: usize = 8;

/// The events of a protobuf export: decoded (prost bounds its recursion at 100 nested
/// messages), turned into OTLP/JSON, held to the depth limit like a JSON export, then mapped
/// as one. The size limit was checked on the record before.
pub(super) fn from_proto(bytes: &[u8], origin: &Origin<'_>) -> Result<Vec<Event>, DecodeError> {
    let request =
        ExportLogsServiceRequest::decode(bytes).map_err(|err| DecodeError::NotProtobuf {
            at: origin.at(),
            reason: err.to_string(),
        })?;
    let value = serde_json::to_value(&request).map_err(|err| DecodeError::NotProtobuf {
        at: origin.at(),
        reason: format!("cannot map the export to OTLP/JSON: {err}"),
    })?;
    if value_depth(&value) > origin.limits.max_depth {
        return Err(DecodeError::TooDeep {
            at: origin.at(),
            max: origin.limits.max_depth,
        });
    }
    build(&value, origin)
}

/// The events of one export.
pub(super) fn build(value: &Value, origin: &Origin<'_>) -> Result<Vec<Event>, DecodeError> {
    let Some(resource_logs) = value.get("resourceLogs").and_then(Value::as_array) else {
        return Err(DecodeError::WrongFormat {
            at: origin.at(),
            expected: Decoding::OtlpJson,
            reason: format!(
                "the value is {} without a `resourceLogs` array",
                kind_of(value)
            ),
            detected: detect(value),
        });
    };
    let mut events = Vec::new();
    let most_copied = origin
        .limits
        .max_payload_bytes
        .saturating_mul(MAX_COPY_FACTOR);
    let mut copied = 0usize;
    for (r, resource_log) in resource_logs.iter().enumerate() {
        let resource = Value::Object(attributes(
            resource_log
                .get("resource")
                .and_then(|r| r.get("attributes")),
        ));
        let resource_len = json_len(&resource);
        let host = ["host.name", "k8s.pod.name"]
            .iter()
            .find_map(|k| resource.get(*k).and_then(Value::as_str))
            .map(str::to_owned);
        let scope_logs = list(
            resource_log,
            "scopeLogs",
            &format!("resourceLogs[{r}]"),
            origin,
        )?;
        for (s, scope_log) in scope_logs.iter().enumerate() {
            let scope = scope_log.get("scope");
            let mut scope_fields = Map::new();
            for key in ["name", "version"] {
                // Empty is unset: protobuf cannot tell them apart, so neither encoding does.
                if let Some(v) = scope
                    .and_then(|s| s.get(key))
                    .filter(|v| !v.is_null() && *v != "")
                {
                    scope_fields.insert(key.to_owned(), v.clone());
                }
            }
            scope_fields.insert(
                "attributes".to_owned(),
                Value::Object(attributes(scope.and_then(|s| s.get("attributes")))),
            );
            let scope_fields = Value::Object(scope_fields);
            let shared_len = resource_len + json_len(&scope_fields);
            let path = format!("resourceLogs[{r}].scopeLogs[{s}]");
            for (l, record) in list(scope_log, "logRecords", &path, origin)?
                .iter()
                .enumerate()
            {
                let path = format!("{path}.logRecords[{l}]");
                copied = copied.saturating_add(shared_len);
                if copied > most_copied {
                    return Err(origin.invalid(
                        Format::Log,
                        path,
                        format!(
                            "would make the export's events repeat its resource and scope \
                             attributes past {most_copied} bytes ({MAX_COPY_FACTOR} times \
                             `pipeline.max_payload_bytes`); export smaller batches (the \
                             Collector's batch processor `send_batch_max_size`)"
                        ),
                    ));
                }
                let mut line = log_record(record, &path, origin)?;
                line.host.clone_from(&host);
                line.fields.insert("resource".to_owned(), resource.clone());
                line.fields.insert("scope".to_owned(), scope_fields.clone());
                let id = format!("{}#{}", origin.position_id(), events.len());
                events.push(line.into_event("otlp", id, origin));
            }
        }
    }
    Ok(events)
}

/// An optional array field; present but not an array is an error naming its path.
fn list<'v>(
    parent: &'v Value,
    name: &str,
    path: &str,
    origin: &Origin<'_>,
) -> Result<&'v [Value], DecodeError> {
    match parent.get(name) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(origin.invalid(
            Format::Log,
            format!("{path}.{name}"),
            format!("is {}, not an array", kind_of(other)),
        )),
    }
}

fn log_record(record: &Value, path: &str, origin: &Origin<'_>) -> Result<LogLine, DecodeError> {
    let mut line = LogLine::default();
    let body = record.get("body").map(any_value).unwrap_or(Value::Null);
    line.message = match &body {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => {
            line.fields.insert("body".to_owned(), other.clone());
            other.to_string()
        }
    };
    let text = record
        .get("severityText")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let number = record.get("severityNumber").and_then(Value::as_u64);
    line.level = text
        .and_then(normalize_level)
        .or_else(|| number.and_then(severity_level).map(str::to_owned));
    for key in ["timeUnixNano", "observedTimeUnixNano"] {
        if let Some(time) = nanos(record.get(key), &format!("{path}.{key}"), origin)? {
            line.timestamp = Some(time);
            break;
        }
    }
    line.fields.insert(
        "attributes".to_owned(),
        Value::Object(attributes(record.get("attributes"))),
    );
    for (key, field) in [
        ("traceId", "trace_id"),
        ("spanId", "span_id"),
        ("severityText", "severity_text"),
        ("severityNumber", "severity_number"),
        ("eventName", "event_name"),
    ] {
        // Empty and 0 (`SEVERITY_NUMBER_UNSPECIFIED`) are unset, as in protobuf.
        if let Some(v) = record
            .get(key)
            .filter(|v| !v.is_null() && *v != "" && *v != 0)
        {
            line.fields.insert(field.to_owned(), v.clone());
        }
    }
    Ok(line)
}

/// The OTLP `SeverityNumber` ranges, by level.
fn severity_level(number: u64) -> Option<&'static str> {
    Some(match number {
        1..=4 => "trace",
        5..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warning",
        17..=20 => "error",
        21..=24 => "critical",
        _ => return None,
    })
}

/// A `fixed64` nanosecond time: a decimal string in OTLP/JSON (a number is accepted too); 0 or
/// absent is unset.
fn nanos(
    value: Option<&Value>,
    path: &str,
    origin: &Origin<'_>,
) -> Result<Option<DateTime<chrono::Utc>>, DecodeError> {
    let parsed = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.parse::<u64>().ok(),
        Some(Value::Number(n)) => n.as_u64(),
        Some(_) => None,
    };
    match parsed {
        Some(0) => Ok(None),
        Some(n) => Ok(Some(DateTime::from_timestamp_nanos(
            i64::try_from(n).unwrap_or(i64::MAX),
        ))),
        None => Err(origin.invalid(
            Format::Log,
            path,
            "is not a count of nanoseconds since the Unix epoch (a decimal string)",
        )),
    }
}

/// A `KeyValue` list as a map (key → plain JSON value); entries without a string key are
/// skipped, a repeated key keeps its last value.
fn attributes(list: Option<&Value>) -> Map<String, Value> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|kv| {
            let key = kv.get("key")?.as_str()?;
            Some((
                key.to_owned(),
                kv.get("value").map(any_value).unwrap_or(Value::Null),
            ))
        })
        .collect()
}

/// An `AnyValue` as plain JSON: strings, booleans and doubles as they are, `intValue` (a string
/// in OTLP/JSON) as a number, arrays and key/value lists recursively, `bytesValue` as its base64
/// text. The recursion is bounded by the document's depth, which the parser limited.
fn any_value(value: &Value) -> Value {
    let Value::Object(object) = value else {
        return Value::Null;
    };
    let Some((kind, inner)) = object.iter().next() else {
        return Value::Null;
    };
    match kind.as_str() {
        "intValue" => match inner {
            Value::String(s) => s.parse::<i64>().map_or_else(|_| inner.clone(), Value::from),
            other => other.clone(),
        },
        "arrayValue" => Value::Array(
            inner
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(any_value)
                .collect(),
        ),
        "kvlistValue" => Value::Object(attributes(inner.get("values"))),
        _ => inner.clone(),
    }
}
