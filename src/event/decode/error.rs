//! The decode error: what is wrong, which record, how to fix it.

use std::fmt;

use super::Decoding;
use crate::event::Format;

/// Where a record sits in Kafka; every [`DecodeError`] names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordPosition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

impl fmt::Display for RecordPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "record topic `{}` partition {} offset {}",
            self.topic, self.partition, self.offset
        )
    }
}

/// Why a record could not be decoded: what is wrong, which record, and how to fix it.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The record has no value.
    #[error(
        "{at}: the record has no value (a tombstone), so there is no event to decode; \
         point Reflex at a topic of events, not a compacted state topic"
    )]
    Tombstone {
        /// The record.
        at: RecordPosition,
    },
    /// The record value is empty or only whitespace.
    #[error("{at}: the record value is empty; the producer must send a JSON document")]
    Empty {
        /// The record.
        at: RecordPosition,
    },
    /// The record value is larger than [`DecodeLimits::max_payload_bytes`].
    #[error(
        "{at}: the record value is {size} bytes, more than the limit of {max} bytes; \
         send smaller events or raise `pipeline.max_payload_bytes`"
    )]
    TooLarge {
        /// The record.
        at: RecordPosition,
        /// Size of the value.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The record value is not UTF-8 text.
    #[error(
        "{at}: the record value is not UTF-8 text (invalid byte at position {valid_up_to}); \
         the producer must send JSON encoded as UTF-8"
    )]
    NotUtf8 {
        /// The record.
        at: RecordPosition,
        /// Length of the valid UTF-8 prefix.
        valid_up_to: usize,
    },
    /// The record value is not a JSON document.
    #[error(
        "{at}: the record value is not JSON: {reason}; the producer must send one JSON document"
    )]
    NotJson {
        /// The record.
        at: RecordPosition,
        /// The parser's message, with line and column.
        reason: String,
    },
    /// The record value is not the protobuf message the topic's decoding expects.
    #[error(
        "{at}: the record value is not an OTLP logs export in protobuf \
         (ExportLogsServiceRequest): {reason}; the producer must send the OpenTelemetry \
         Collector's `encoding: otlp_proto` (decode the topic as `otlp_json` if it sends JSON)"
    )]
    NotProtobuf {
        /// The record.
        at: RecordPosition,
        /// The protobuf decoder's message.
        reason: String,
    },
    /// The document nests arrays and objects deeper than [`DecodeLimits::max_depth`].
    #[error(
        "{at}: the JSON nests arrays and objects deeper than {max} levels; \
         flatten the event or raise `pipeline.max_depth`"
    )]
    TooDeep {
        /// The record.
        at: RecordPosition,
        /// The limit.
        max: usize,
    },
    /// The topic is configured for one format and the record is not of that format.
    #[error(
        "{at}: the topic's decoding is `{expected}` but the record is not one: {reason}; {}",
        wrong_format_hint(*detected)
    )]
    WrongFormat {
        /// The record.
        at: RecordPosition,
        /// The configured format.
        expected: Decoding,
        /// What does not fit.
        reason: String,
        /// What auto-detection makes of the record.
        detected: Format,
    },
    /// The record declares itself a CloudEvent (`ce_` headers or a CloudEvents content type) but
    /// lacks required attributes.
    #[error(
        "{at}: the record is a CloudEvent in {mode} mode but lacks the required attribute(s) {}; \
         the producer must set them{}",
        quoted_list(missing),
        if *mode == "binary" { " as `ce_` headers" } else { "" }
    )]
    MissingAttributes {
        /// The record.
        at: RecordPosition,
        /// `binary` or `structured`.
        mode: &'static str,
        /// Names of the missing attributes.
        missing: Vec<&'static str>,
    },
    /// A field of a recognised format has a value the format does not allow.
    #[error("{at}: {format} field `{field}` {problem}; the producer must fix the event")]
    Invalid {
        /// The record.
        at: RecordPosition,
        /// The format being decoded.
        format: Format,
        /// The field, as a path (`alerts[1].startsAt`).
        field: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl DecodeError {
    /// The record that could not be decoded.
    pub fn position(&self) -> &RecordPosition {
        match self {
            DecodeError::Tombstone { at }
            | DecodeError::Empty { at }
            | DecodeError::TooLarge { at, .. }
            | DecodeError::NotUtf8 { at, .. }
            | DecodeError::NotJson { at, .. }
            | DecodeError::NotProtobuf { at, .. }
            | DecodeError::TooDeep { at, .. }
            | DecodeError::WrongFormat { at, .. }
            | DecodeError::MissingAttributes { at, .. }
            | DecodeError::Invalid { at, .. } => at,
        }
    }
}

/// What to do about a [`DecodeError::WrongFormat`], given what the record looks like.
fn wrong_format_hint(detected: Format) -> String {
    match detected {
        Format::Json => "nothing more specific was recognised: set the topic's decoding to `json` \
                         to take records as plain JSON"
            .to_owned(),
        Format::Log => {
            "set the topic's decoding to `log` to take each record as a plain text line".to_owned()
        }
        other => format!(
            "it looks like `{}`: set the topic's decoding to `{}` or `auto`",
            other.as_str(),
            other.as_str()
        ),
    }
}

/// Why a document is not of one format, worded only when someone reads it: auto-detection tries
/// the formats in turn and drops every refusal, and wording each one cost more than the check
/// itself (a tenth of decoding, measured with `reflex bench --backtest`).
pub(super) struct Misfit<'a> {
    value: &'a serde_json::Value,
    why_not: fn(&serde_json::Value) -> String,
}

impl<'a> Misfit<'a> {
    /// `Ok` when `value` is a JSON object `fits` accepts, else a misfit `why_not` words.
    pub(super) fn check(
        value: &'a serde_json::Value,
        fits: impl FnOnce(&serde_json::Map<String, serde_json::Value>) -> bool,
        why_not: fn(&serde_json::Value) -> String,
    ) -> Result<(), Self> {
        match value {
            serde_json::Value::Object(object) if fits(object) => Ok(()),
            _ => Err(Self { value, why_not }),
        }
    }

    /// The reason, in words.
    pub(super) fn reason(&self) -> String {
        (self.why_not)(self.value)
    }
}

/// `` `a`, `b` ``: names for a message.
pub(super) fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
