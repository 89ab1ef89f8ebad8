//! Shared pieces of decoding: text and JSON parsing within the limits, nesting depth, and
//! reading typed fields out of a JSON object.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{DecodeError, Origin};
use crate::event::Format;

/// Text of a record value: UTF-8 checked, a leading byte-order mark dropped (some Windows tools
/// write one; it carries no meaning in UTF-8).
pub(super) fn text<'b>(bytes: &'b [u8], origin: &Origin<'_>) -> Result<&'b str, DecodeError> {
    let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::NotUtf8 {
        at: origin.at(),
        valid_up_to: e.valid_up_to(),
    })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// Parses a record value as one JSON document within the depth bound.
pub(super) fn parse_json(bytes: &[u8], origin: &Origin<'_>) -> Result<Value, DecodeError> {
    let text = text(bytes, origin)?;
    if text.trim().is_empty() {
        return Err(DecodeError::Empty { at: origin.at() });
    }
    parse_text(text, origin)
}

/// Parses non-empty text as JSON; the depth scan runs first so a hostile document is refused
/// before any tree is built.
pub(super) fn parse_text(text: &str, origin: &Origin<'_>) -> Result<Value, DecodeError> {
    if nesting_exceeds(text.as_bytes(), origin.limits.max_depth) {
        return Err(DecodeError::TooDeep {
            at: origin.at(),
            max: origin.limits.max_depth,
        });
    }
    serde_json::from_str(text).map_err(|e| DecodeError::NotJson {
        at: origin.at(),
        reason: e.to_string(),
    })
}

/// Whether JSON text opens more than `max` arrays/objects at once. One pass over the bytes,
/// skipping string contents (where brackets mean nothing); on text that is not JSON the answer
/// does not matter, the parser rejects it next.
pub(super) fn nesting_exceeds(bytes: &[u8], max: usize) -> bool {
    // A document cannot nest deeper than the brackets it opens in all. Counting them is one
    // vectorised pass, several times cheaper than the scan below, and settles almost every
    // real record (an Alertmanager notification opens a few dozen at most).
    let opened = bytes.iter().filter(|&&b| b == b'[' || b == b'{').count();
    if opened <= max {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Nesting depth of a parsed document (a scalar is 0, `[]` is 1). Iterative: a document built
/// in code has no parser limit behind it, so recursion could overflow the stack.
pub(super) fn value_depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|c| (c, depth + 1))),
            Value::Object(map) => stack.extend(map.values().map(|c| (c, depth + 1))),
            _ => continue,
        }
        deepest = deepest.max(depth + 1);
    }
    deepest
}

/// Length of a document's compact JSON text (what a producer sending it puts on the wire),
/// counted without building the text.
pub(super) fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // A `Value` always serializes, and the counter never fails.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// A time field: absent or null is `None`; otherwise it must be an RFC 3339 string.
pub(super) fn time_field(
    object: &serde_json::Map<String, Value>,
    name: &str,
    path: impl std::fmt::Display,
    format: Format,
    origin: &Origin<'_>,
) -> Result<Option<DateTime<Utc>>, DecodeError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => parse_time(s).map(Some).ok_or_else(|| {
            origin.invalid(
                format,
                path.to_string(),
                format!("is `{s}`, not an RFC 3339 time"),
            )
        }),
        Some(other) => Err(origin.invalid(
            format,
            path.to_string(),
            format!("is {}, not an RFC 3339 time string", kind_of(other)),
        )),
    }
}

/// RFC 3339 to UTC (any offset, any sub-second precision up to nanoseconds).
pub(super) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A non-empty string field, if there is one.
pub(super) fn str_field<'v>(
    object: &'v serde_json::Map<String, Value>,
    name: &str,
) -> Option<&'v str> {
    object
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// "an array", "a number"...: for messages about a value of the wrong kind.
pub(super) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nesting_scan_counts_open_containers_and_ignores_string_contents() {
        assert!(!nesting_exceeds(br#"{"a": [1, {"b": 2}]}"#, 3));
        assert!(nesting_exceeds(br#"{"a": [1, {"b": [2]}]}"#, 3));
        assert!(!nesting_exceeds(br#"{"a": "[[[[{{{{", "b": "\"[[[["}"#, 1));
        // An escaped backslash ends the escape, so the quote after it closes the string.
        assert!(nesting_exceeds(br#"{"a": "\\", "b": [[1]]}"#, 2));
        assert!(!nesting_exceeds(b"\"no containers\"", 0));
    }

    #[test]
    fn json_len_is_the_length_of_the_compact_text() {
        let value = json!({"a": [1, "é"], "b": null});
        assert_eq!(json_len(&value), value.to_string().len());
    }

    #[test]
    fn value_depth_counts_containers_not_scalars() {
        assert_eq!(value_depth(&json!(1)), 0);
        assert_eq!(value_depth(&json!([])), 1);
        assert_eq!(value_depth(&json!({"a": [1, {"b": {}}], "c": 2})), 4);
    }
}
