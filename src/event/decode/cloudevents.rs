//! CloudEvents 1.0 in the Kafka protocol binding: binary mode (attributes in `ce_` headers, the
//! record value is the data) and structured mode (the whole event is a JSON object, content type
//! `application/cloudevents+json`, or `application/cloudevents-batch+json` for an array of them).
//!
//! The payload is the event's `data`: JSON when it is JSON, else text, else (bytes that are not
//! UTF-8) the base64 text of those bytes. Every context attribute, required and extension,
//! goes into `attributes` (binary-mode attributes are strings, as the binding carries them).
//!
//! Identity is the CloudEvents `id`. The spec makes only `source` + `id` unique; producers
//! almost always use UUIDs, and `@id` equal to the CloudEvent's own id is what rule authors
//! expect, so the id alone is used.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::error::{Misfit, quoted_list};
use super::{Body, DecodeError, Origin, base64, kind_of, parse_text, text, time_field};
use crate::event::{Event, Format};

use crate::event::cloudevents::{
    BATCH_CONTENT_TYPE as BATCH, KAFKA_HEADER_PREFIX as HEADER_PREFIX,
    REQUIRED_ATTRIBUTES as REQUIRED, REQUIRED_KAFKA_HEADERS as REQUIRED_HEADERS,
    STRUCTURED_CONTENT_TYPE as STRUCTURED,
};

/// How a record's content type declares a structured-mode CloudEvent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Declared {
    /// One event.
    Single,
    /// A JSON array of events.
    Batch,
}

/// The media type of the record's `content-type` header (name matched case-insensitively,
/// parameters such as `charset` dropped, lower-cased).
fn content_type(headers: &BTreeMap<String, String>) -> Option<String> {
    headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|media| !media.is_empty())
}

/// Whether the content type declares structured mode.
pub(super) fn declared_structured(headers: &BTreeMap<String, String>) -> Option<Declared> {
    match content_type(headers)?.as_str() {
        STRUCTURED => Some(Declared::Single),
        BATCH => Some(Declared::Batch),
        _ => None,
    }
}

/// Binary mode: a required attribute header is present and the content type does not declare
/// structured mode (the binding gives the content type precedence).
pub(super) fn is_binary(headers: &BTreeMap<String, String>) -> bool {
    REQUIRED_HEADERS.iter().any(|h| headers.contains_key(*h))
        && !content_type(headers).is_some_and(|ct| ct.starts_with("application/cloudevents"))
}

/// Whether a document is a structured-mode CloudEvent; `Err` says why not.
pub(super) fn fits(value: &Value) -> Result<(), Misfit<'_>> {
    // Presence is enough to claim the document: one with all four names is meant to be a
    // CloudEvent, and a wrongly typed attribute then gets its own precise error.
    Misfit::check(value, |object| absent(object).next().is_none(), why_not)
}

/// The required attributes a document lacks (absent or null).
fn absent(object: &Map<String, Value>) -> impl Iterator<Item = &'static str> + '_ {
    REQUIRED
        .into_iter()
        .filter(|name| object.get(*name).is_none_or(Value::is_null))
}

fn why_not(value: &Value) -> String {
    match value {
        Value::Object(object) => format!(
            "the required CloudEvents attribute(s) {} are missing",
            quoted_list(&absent(object).collect::<Vec<_>>())
        ),
        other => format!("the value is {}, not a JSON object", kind_of(other)),
    }
}

/// Events of a structured-mode record (one, or a batch).
pub(super) fn from_structured(
    value: Value,
    origin: &Origin<'_>,
) -> Result<Vec<Event>, DecodeError> {
    if declared_structured(&origin.headers) != Some(Declared::Batch) {
        return structured_event(value, "", origin).map(|e| vec![e]);
    }
    let Value::Array(items) = value else {
        return Err(origin.invalid(
            Format::Cloudevents,
            "(value)",
            format!(
                "is {}, but content type `{BATCH}` requires an array of events",
                kind_of(&value)
            ),
        ));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| structured_event(item, &format!("[{i}]."), origin))
        .collect()
}

/// One structured-mode event; `path` prefixes field names in errors (for batches).
fn structured_event(value: Value, path: &str, origin: &Origin<'_>) -> Result<Event, DecodeError> {
    let Value::Object(mut object) = value else {
        return Err(origin.invalid(
            Format::Cloudevents,
            format!("{path}(event)"),
            format!("is {}, not a JSON object", kind_of(&value)),
        ));
    };
    let mut found: [Option<String>; 4] = Default::default();
    for (slot, name) in found.iter_mut().zip(REQUIRED) {
        match object.get(name) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if !s.is_empty() => *slot = Some(s.clone()),
            Some(other) => {
                return Err(origin.invalid(
                    Format::Cloudevents,
                    format!("{path}{name}"),
                    format!("is {}, but must be a non-empty string", describe(other)),
                ));
            }
        }
    }
    let [Some(specversion), Some(id), Some(source), Some(event_type)] = found else {
        return Err(DecodeError::MissingAttributes {
            at: origin.at(),
            mode: "structured",
            missing: missing(&found, REQUIRED),
        });
    };
    check_specversion(&specversion, &format!("{path}specversion"), origin)?;
    let timestamp = time_field(
        &object,
        "time",
        format_args!("{path}time"),
        Format::Cloudevents,
        origin,
    )?;

    let data = object.remove("data");
    let data_base64 = object.remove("data_base64");
    let payload = match (data, data_base64) {
        (Some(_), Some(_)) => {
            return Err(origin.invalid(
                Format::Cloudevents,
                format!("{path}data_base64"),
                "is present together with `data`; an event carries one or the other",
            ));
        }
        (Some(data), None) => data,
        (None, Some(Value::String(encoded))) => match base64::decode(&encoded) {
            Some(bytes) => lenient_data(&bytes, &encoded, origin)?,
            None => {
                return Err(origin.invalid(
                    Format::Cloudevents,
                    format!("{path}data_base64"),
                    "is not valid base64",
                ));
            }
        },
        (None, Some(other)) => {
            return Err(origin.invalid(
                Format::Cloudevents,
                format!("{path}data_base64"),
                format!("is {}, not a base64 string", kind_of(&other)),
            ));
        }
        (None, None) => Value::Null,
    };
    let mut meta = origin.metadata(Format::Cloudevents, id, timestamp);
    meta.event_type = Some(event_type);
    meta.source = Some(source);
    meta.attributes = object.into_iter().collect();
    super::cdevents::annotate(&mut meta, &payload);
    Ok(Event { payload, meta })
}

/// The event of a binary-mode record.
pub(super) fn from_binary(origin: &Origin<'_>, body: Body<'_>) -> Result<Vec<Event>, DecodeError> {
    let mut attributes: Map<String, Value> = origin
        .headers
        .iter()
        .filter_map(|(name, value)| {
            let attribute = name.strip_prefix(HEADER_PREFIX)?;
            Some((attribute.to_owned(), Value::String(value.clone())))
        })
        .collect();
    let mut found: [Option<String>; 4] = Default::default();
    for (slot, name) in found.iter_mut().zip(REQUIRED) {
        *slot = attributes
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
    }
    let [Some(specversion), Some(id), Some(source), Some(event_type)] = found else {
        return Err(DecodeError::MissingAttributes {
            at: origin.at(),
            mode: "binary",
            missing: missing(&found, REQUIRED_HEADERS),
        });
    };
    check_specversion(&specversion, "ce_specversion", origin)?;
    let timestamp = time_field(&attributes, "time", "ce_time", Format::Cloudevents, origin)?;
    let content_type = content_type(&origin.headers);
    if let Some(ct) = &content_type {
        attributes.insert("datacontenttype".to_owned(), Value::String(ct.clone()));
    }
    let payload = match body {
        Body::Json(value) => value,
        // The binding allows an event without data: no value, or an empty one.
        Body::Bytes(None | Some([])) => Value::Null,
        Body::Bytes(Some(bytes)) => binary_data(bytes, content_type.as_deref(), origin)?,
    };
    let mut meta = origin.metadata(Format::Cloudevents, id, timestamp);
    meta.event_type = Some(event_type);
    meta.source = Some(source);
    meta.attributes = attributes.into_iter().collect();
    super::cdevents::annotate(&mut meta, &payload);
    Ok(vec![Event { payload, meta }])
}

/// Binary-mode data by content type: a JSON type must hold JSON (anything else is an error the
/// producer should hear about); no content type means JSON if it parses; other types are text,
/// or base64 text when the bytes are not UTF-8.
fn binary_data(
    bytes: &[u8],
    content_type: Option<&str>,
    origin: &Origin<'_>,
) -> Result<Value, DecodeError> {
    match content_type {
        Some(ct) if is_json(ct) => {
            let text = text(bytes, origin)?;
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            parse_text(text, origin)
        }
        None => lenient_data(bytes, &base64::encode(bytes), origin),
        Some(_) => Ok(match std::str::from_utf8(bytes) {
            Ok(text) => Value::String(text.to_owned()),
            Err(_) => Value::String(base64::encode(bytes)),
        }),
    }
}

/// Data of unknown type: JSON if it parses, else the text, else (not UTF-8) `encoded`, the
/// base64 form. A document too deep is still refused rather than passed on as text.
fn lenient_data(bytes: &[u8], encoded: &str, origin: &Origin<'_>) -> Result<Value, DecodeError> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok(Value::String(encoded.to_owned()));
    };
    match parse_text(text, origin) {
        Ok(value) => Ok(value),
        Err(too_deep @ DecodeError::TooDeep { .. }) => Err(too_deep),
        Err(_) => Ok(Value::String(text.to_owned())),
    }
}

/// `application/json`, `text/json` and any `+json` structured suffix.
fn is_json(media_type: &str) -> bool {
    matches!(media_type, "application/json" | "text/json") || media_type.ends_with("+json")
}

/// Reflex reads CloudEvents 1.x; 0.3 differs in how data is encoded.
fn check_specversion(version: &str, field: &str, origin: &Origin<'_>) -> Result<(), DecodeError> {
    if version.starts_with("1.") {
        Ok(())
    } else {
        Err(origin.invalid(
            Format::Cloudevents,
            field,
            format!("is `{version}`; Reflex reads CloudEvents 1.x (send `1.0`)"),
        ))
    }
}

/// The names (from `names`) of the attributes not found.
fn missing(found: &[Option<String>; 4], names: [&'static str; 4]) -> Vec<&'static str> {
    names
        .into_iter()
        .zip(found)
        .filter(|(_, value)| value.is_none())
        .map(|(name, _)| name)
        .collect()
}

/// A value for an error message: short ones shown, long ones by kind.
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) if s.is_empty() => "empty".to_owned(),
        Value::Number(n) => format!("the number {n}"),
        other => kind_of(other).to_owned(),
    }
}
