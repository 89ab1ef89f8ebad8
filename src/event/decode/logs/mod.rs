//! Log lines and log records: plain text, syslog, logfmt, the JSON envelopes of log shippers,
//! and (in [`super::otlp`]) OpenTelemetry log records, all as ONE event shape so one rule reads
//! any of them:
//!
//! ```json
//! {"message": "...", "level": "error", "host": "web-1", "timestamp": "2026-12-04T23:10:01Z",
//!  "fields": {...}}
//! ```
//!
//! `message` is always a string; `level` is normalised to `trace`, `debug`, `info`, `notice`,
//! `warning`, `error`, `critical`, `alert` or `emergency` when the line names one of those (or a
//! common alias: `warn`, `err`, `fatal`...), else kept lower-cased, and `null` when the line has
//! none; `host` is `null` when unknown; `timestamp` is the event time (the line's own, else the
//! record's) in RFC 3339; `fields` holds everything else the shape carries. The event format is
//! [`Format::Log`] and `meta.attributes.log_format` names the shape (`plain`, `syslog`,
//! `logfmt`, `fluent_bit`, `vector`, `filebeat`, `json`, `otlp`), so rules select
//! `formats: [log]`, and a rule that cares about one shape tests `@attributes.log_format`.
//!
//! Identity is the record position `topic/partition/offset`: a log line has no id of its own.
//! A record is one line; a trailing newline is dropped, inner newlines (a stack trace shipped as
//! one record) stay in the message.

mod logfmt;
pub(super) mod shippers;
mod syslog;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::{DecodeError, Decoding, Origin, kind_of};
use crate::event::{Event, Format};

/// Longest line the structured parsers (syslog, logfmt) accept, and the longest plain line: far
/// above any real log line (rsyslog's default `maxMessageSize` is 8 KiB, Docker splits at
/// 16 KiB), low enough that a binary blob sent to a log topic is refused with a clear reason.
pub const MAX_LINE_BYTES: usize = 256 * 1024;

/// Most `key=value` pairs in a logfmt line, and most parameters in a syslog line's structured
/// data: real lines carry tens; the line-length bound alone would admit some 60,000 (`a=1 `),
/// each a map entry in the event that every rule's condition may walk.
pub const MAX_FIELDS: usize = 1000;

/// One log line, decoded: the fields of the common event shape.
#[derive(Debug, Default)]
pub(super) struct LogLine {
    pub message: String,
    pub level: Option<String>,
    pub host: Option<String>,
    pub timestamp: Option<DateTime<Utc>>,
    pub fields: Map<String, Value>,
}

impl LogLine {
    /// The event of this line; `log_format` goes to `meta.attributes.log_format`, `id` is the
    /// event identity.
    pub fn into_event(self, log_format: &str, id: String, origin: &Origin<'_>) -> Event {
        let mut meta = origin.metadata(Format::Log, id, self.timestamp);
        meta.event_type = self.level.clone();
        meta.source = self.host.clone();
        meta.attributes
            .insert("log_format".to_owned(), Value::from(log_format));
        let payload = json!({
            "message": self.message,
            "level": self.level,
            "host": self.host,
            "timestamp": meta.timestamp.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            "fields": self.fields,
        });
        Event { payload, meta }
    }
}

/// Whether a decoding reads the record value as text rather than JSON (`reflex replay` and
/// `reflex test` hand such a decoding the line itself).
pub fn is_text(decoding: Decoding) -> bool {
    matches!(
        decoding,
        Decoding::Log | Decoding::Syslog | Decoding::Logfmt
    )
}

/// The event of one text line under a text decoding (`log`, `syslog`, `logfmt`).
pub(super) fn from_text(
    text: &str,
    origin: &Origin<'_>,
    decoding: Decoding,
) -> Result<Vec<Event>, DecodeError> {
    if text.len() > MAX_LINE_BYTES {
        return Err(origin.invalid(
            Format::Log,
            "(line)",
            format!(
                "is {} bytes long, more than the {MAX_LINE_BYTES} bytes a log line may have; \
                 split the record into lines",
                text.len()
            ),
        ));
    }
    let line = text.strip_suffix('\n').unwrap_or(text);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let wrong = |reason: String| DecodeError::WrongFormat {
        at: origin.at(),
        expected: decoding,
        reason,
        detected: Format::Log,
    };
    let (parsed, log_format) = match decoding {
        Decoding::Syslog => (
            syslog::parse(line, origin.timestamp).map_err(wrong)?,
            "syslog",
        ),
        Decoding::Logfmt => (logfmt::parse(line).map_err(wrong)?, "logfmt"),
        _ => (
            LogLine {
                message: line.to_owned(),
                ..LogLine::default()
            },
            "plain",
        ),
    };
    Ok(vec![parsed.into_event(
        log_format,
        origin.position_id(),
        origin,
    )])
}

/// A text decoding given a JSON document (`reflex test` steps, which are YAML): a string is
/// the line; anything else is not a line.
pub(super) fn from_value(
    value: Value,
    origin: &Origin<'_>,
    decoding: Decoding,
) -> Result<Vec<Event>, DecodeError> {
    match value {
        Value::String(line) => from_text(&line, origin, decoding),
        other => Err(DecodeError::WrongFormat {
            at: origin.at(),
            expected: decoding,
            reason: format!("the value is {}, not a line of text", kind_of(&other)),
            detected: super::detect(&other),
        }),
    }
}

/// The common name of a log level (see the module docs); unknown names are kept lower-cased.
pub(super) fn normalize_level(level: &str) -> Option<String> {
    let lower = level.trim().to_ascii_lowercase();
    let known = match lower.as_str() {
        "" => return None,
        "trace" | "trc" | "finest" | "finer" => "trace",
        "debug" | "dbg" | "fine" => "debug",
        "info" | "inf" | "information" | "informational" => "info",
        "notice" => "notice",
        "warn" | "warning" | "wrn" => "warning",
        "err" | "error" | "eror" => "error",
        "crit" | "critical" | "fatal" | "severe" => "critical",
        "alert" => "alert",
        "emerg" | "emergency" | "panic" => "emergency",
        _ => return Some(lower),
    };
    Some(known.to_owned())
}
