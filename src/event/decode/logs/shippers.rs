//! The JSON records log shippers write to Kafka: Fluent Bit (`out_kafka`, `format json`:
//! `@timestamp` as epoch seconds, `log`, and the `kubernetes` filter's metadata), Vector (the
//! `kafka` sink with the `json` codec: `timestamp`, `message`, `host`, `source_type`), Filebeat
//! (`output.kafka`: `@timestamp`, `message`, `host.name`, `log.level`, ECS objects).
//!
//! The message is `message`, else `log`, else `msg` (a string); the time `@timestamp`,
//! `timestamp`, `time` or `date` (RFC 3339, or epoch seconds as a number); the host `host` (a
//! string) or `host.name`, else `hostname`; the level `level`, `severity` or `log.level`.
//! The fields used for those are removed and the rest of the record is `fields`, as it was
//! (`fields.kubernetes.pod_name`, `fields.stream`...). `log_format` is `filebeat` when the record
//! has `@metadata.beat` or `agent.type: filebeat`, `vector` when it has `source_type`,
//! `fluent_bit` when its time is a number under `@timestamp` or `date`, else `json`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{LogLine, normalize_level};
use crate::event::decode::parse::{kind_of, parse_time, value_depth};
use crate::event::decode::{DecodeError, Decoding, Origin};
use crate::event::{Event, Format};

const MESSAGE: [&str; 3] = ["message", "log", "msg"];
const TIME: [&str; 4] = ["@timestamp", "timestamp", "time", "date"];

/// The event of one shipper record.
pub(in crate::event::decode) fn build(
    value: Value,
    origin: &Origin<'_>,
) -> Result<Event, DecodeError> {
    let wrong = |reason: String, value: &Value| DecodeError::WrongFormat {
        at: origin.at(),
        expected: Decoding::LogJson,
        reason,
        detected: crate::event::decode::detect(value),
    };
    let Value::Object(mut object) = value else {
        return Err(wrong(
            format!("the value is {}, not a JSON object", kind_of(&value)),
            &value,
        ));
    };
    let Some(message_key) = MESSAGE
        .into_iter()
        .find(|k| object.get(*k).is_some_and(Value::is_string))
    else {
        let value = Value::Object(object);
        return Err(wrong(
            "the record has no `message`, `log` or `msg` string".to_owned(),
            &value,
        ));
    };
    let log_format = shipper(&object);
    let mut line = LogLine::default();
    if let Some(Value::String(message)) = object.remove(message_key) {
        line.message = message;
    }
    if let Some(key) = TIME.into_iter().find(|k| object.contains_key(*k)) {
        let time = &object[key];
        line.timestamp = Some(time_of(time).ok_or_else(|| {
            origin.invalid(
                Format::Log,
                key,
                format!("is {time}, neither an RFC 3339 time nor epoch seconds"),
            )
        })?);
        object.remove(key);
    }
    line.host = host(&mut object);
    line.level = level(&mut object);
    line.fields = object;
    let event = line.into_event(log_format, origin.position_id(), origin);
    // The record's fields sit one level deeper in the event than in the record: a record at
    // the depth limit would otherwise give an event past it.
    if value_depth(&event.payload) > origin.limits.max_depth {
        return Err(DecodeError::TooDeep {
            at: origin.at(),
            max: origin.limits.max_depth,
        });
    }
    Ok(event)
}

fn shipper(object: &Map<String, Value>) -> &'static str {
    let at = |path: [&str; 2]| object.get(path[0]).and_then(|v| v.get(path[1]));
    if at(["@metadata", "beat"]).is_some()
        || at(["agent", "type"]).and_then(Value::as_str) == Some("filebeat")
    {
        "filebeat"
    } else if object.contains_key("source_type") {
        "vector"
    } else if ["@timestamp", "date"]
        .iter()
        .any(|k| object.get(*k).is_some_and(Value::is_number))
    {
        "fluent_bit"
    } else {
        "json"
    }
}

/// RFC 3339 text, or epoch seconds (Fluent Bit's default `double`).
fn time_of(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::String(s) => parse_time(s),
        Value::Number(n) => {
            let seconds = n.as_f64().filter(|s| s.is_finite())?;
            let nanos = (seconds.fract() * 1e9).round() as u32;
            DateTime::from_timestamp(seconds.trunc() as i64, nanos.min(999_999_999))
        }
        _ => None,
    }
}

/// `host` as a string, or `host.name` (ECS), else `hostname`: taken out of the record when it is
/// all the host object holds.
fn host(object: &mut Map<String, Value>) -> Option<String> {
    match object.get("host") {
        Some(Value::String(host)) => {
            let host = host.clone();
            object.remove("host");
            return Some(host);
        }
        Some(Value::Object(host)) => {
            if let Some(name) = host.get("name").and_then(Value::as_str) {
                // Filebeat's host object also carries the OS and addresses: keep it in fields.
                return Some(name.to_owned());
            }
        }
        _ => {}
    }
    match object.remove("hostname") {
        Some(Value::String(host)) => Some(host),
        Some(other) => {
            object.insert("hostname".to_owned(), other);
            None
        }
        None => None,
    }
}

/// `level` or `severity` (taken out), else ECS `log.level` (left in place).
fn level(object: &mut Map<String, Value>) -> Option<String> {
    for key in ["level", "severity"] {
        if let Some(Value::String(level)) = object.get(key) {
            let level = normalize_level(level);
            object.remove(key);
            return level;
        }
    }
    object
        .get("log")
        .and_then(|log| log.get("level"))
        .and_then(Value::as_str)
        .and_then(normalize_level)
}
