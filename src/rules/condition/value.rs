//! Values seen by predicates and the comparison rules between them.
//!
//! Equality is JSON equality with one normalisation: numbers compare by value (`1 == 1.0`).
//! It never converts between types (`"1" != 1`). Ordering (`gt`/`lt`…) does convert, because
//! Prometheus and Alertmanager carry sample values as strings: see [`Bound`].

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Number, Value};

/// One value at a path, borrowed from the event where possible so evaluation does not allocate.
/// Metadata fields are not JSON in the event, hence the non-JSON variants.
#[derive(Debug, Clone)]
pub(crate) enum Val<'a> {
    /// A value inside the payload or the metadata attributes.
    Json(&'a Value),
    /// A string metadata field (`@topic`, `@id`, a header…).
    Str(&'a str),
    /// An integer metadata field (`@partition`, `@offset`).
    Int(i64),
    /// `@timestamp`.
    Time(DateTime<Utc>),
    /// A whole metadata map (`@headers`, `@attributes`), built on demand; rare.
    Owned(Value),
}

impl<'a> Val<'a> {
    /// The value as JSON (metadata values become strings and numbers; time is RFC 3339).
    pub(crate) fn into_json(self) -> Cow<'a, Value> {
        match self {
            Val::Json(v) => Cow::Borrowed(v),
            Val::Str(s) => Cow::Owned(Value::String(s.to_owned())),
            Val::Int(i) => Cow::Owned(Value::from(i)),
            Val::Time(t) => Cow::Owned(Value::String(format_time(t))),
            Val::Owned(v) => Cow::Owned(v),
        }
    }

    /// The string, if this is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Val::Json(Value::String(s)) => Some(s),
            Val::Str(s) => Some(s),
            Val::Owned(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// The value as a timestamp: `@timestamp`, or a string holding an RFC 3339 date-time.
    pub(crate) fn as_time(&self) -> Option<DateTime<Utc>> {
        match self {
            Val::Time(t) => Some(*t),
            other => other.as_str().and_then(parse_timestamp),
        }
    }

    /// Short human rendering for explanations, bounded in length.
    pub(crate) fn describe(&self) -> String {
        match self {
            Val::Json(v) => describe_json(v),
            Val::Str(s) => describe_json(&Value::String((*s).to_owned())),
            Val::Int(i) => i.to_string(),
            Val::Time(t) => format!("\"{}\"", format_time(*t)),
            Val::Owned(v) => describe_json(v),
        }
    }
}

/// Parses an RFC 3339 timestamp (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00.5+02:00`).
///
/// Only full RFC 3339 date-times count as timestamps; a bare date or an epoch number does not,
/// so a string is never mistaken for a time by accident.
pub(crate) fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    // Cheap shape check first: every RFC 3339 date-time starts with `dddd-dd-dd`, and most strings
    // compared on a hot path (severities, names) fail it at the first character without the
    // full parser running.
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !bytes[0].is_ascii_digit() || bytes[4] != b'-' {
        return None;
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// RFC 3339 with a `Z` suffix, the form templates and outcomes use.
pub(crate) fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Explanations quote event values; a huge payload field must not flood `reflex replay` output,
/// and 120 characters is enough to recognise a value.
const DESCRIBE_MAX_CHARS: usize = 120;

/// Compact JSON, cut at [`DESCRIBE_MAX_CHARS`].
pub(crate) fn describe_json(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() <= DESCRIBE_MAX_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(DESCRIBE_MAX_CHARS).collect();
    cut.push('…');
    cut
}

/// A literal from the rule, prepared once at load: its lowercase form for `ignore_case`.
#[derive(Debug, Clone)]
pub(crate) struct Literal {
    /// The value as written.
    pub(crate) value: Value,
    /// Lowercased string when the predicate ignores case and the value is a string.
    folded: Option<Box<str>>,
    /// The instant, when the value is a string holding an RFC 3339 date-time (compared against
    /// `@timestamp`, which is not a string).
    time: Option<DateTime<Utc>>,
}

impl Literal {
    /// Prepares `value`; `ignore_case` precomputes the lowercase form.
    pub(crate) fn new(value: Value, ignore_case: bool) -> Self {
        let folded = match (&value, ignore_case) {
            (Value::String(s), true) => Some(s.to_lowercase().into_boxed_str()),
            _ => None,
        };
        let time = value.as_str().and_then(parse_timestamp);
        Literal {
            value,
            folded,
            time,
        }
    }

    /// Whether `val` equals this literal (numbers by value; strings case-folded when prepared so).
    pub(crate) fn equals(&self, val: &Val<'_>) -> bool {
        match val {
            Val::Json(v) => self.equals_json(v),
            Val::Owned(v) => self.equals_json(v),
            Val::Str(s) => self.equals_str(s),
            Val::Int(i) => match &self.value {
                Value::Number(n) => n.as_i64() == Some(*i) || n.as_f64() == Some(*i as f64),
                _ => false,
            },
            Val::Time(t) => self.time == Some(*t),
        }
    }

    /// Whether JSON `v` equals this literal.
    pub(crate) fn equals_json(&self, v: &Value) -> bool {
        match (v, &self.value) {
            (Value::String(s), _) => self.equals_str(s),
            _ => json_equal(v, &self.value, self.folded.is_some()),
        }
    }

    fn equals_str(&self, s: &str) -> bool {
        match (&self.folded, &self.value) {
            (Some(folded), _) => eq_folded(s, folded),
            (None, Value::String(lit)) => s == lit,
            _ => false,
        }
    }
}

/// `s` equals `folded` (already lowercase) ignoring case, without allocating.
pub(crate) fn eq_folded(s: &str, folded: &str) -> bool {
    if s.is_ascii() && folded.is_ascii() {
        return s.eq_ignore_ascii_case(folded);
    }
    s.chars().flat_map(char::to_lowercase).eq(folded.chars())
}

/// JSON equality, numbers by value; `ignore_case` compares strings (also nested) case-insensitively.
pub(crate) fn json_equal(a: &Value, b: &Value, ignore_case: bool) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => number_cmp(x, y) == Some(Ordering::Equal),
        (Value::String(x), Value::String(y)) => {
            if ignore_case {
                x.to_lowercase() == y.to_lowercase()
            } else {
                x == y
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y, ignore_case))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, xv)| y.get(k).is_some_and(|yv| json_equal(xv, yv, ignore_case)))
        }
        _ => false,
    }
}

/// Orders two JSON numbers: exactly when both are integers, else as `f64`.
pub(crate) fn number_cmp(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

/// The right-hand side of `gt`/`gte`/`lt`/`lte`, checked at load.
#[derive(Debug, Clone)]
pub(crate) enum Bound {
    /// A number. Event numbers compare by value; event strings that parse as a number
    /// (`"0.93"`, `"1e3"`, `"+Inf"`) are converted first; anything else does not compare.
    Number(Number),
    /// An RFC 3339 timestamp. Event strings that are RFC 3339 timestamps and `@timestamp`
    /// compare as instants; numbers never do (their unit would be a guess).
    Time(DateTime<Utc>),
}

impl Bound {
    /// Orders `val` against this bound; `None` when they do not compare (a type mismatch).
    pub(crate) fn compare(&self, val: &Val<'_>) -> Option<Ordering> {
        match self {
            Bound::Number(bound) => match val {
                Val::Json(Value::Number(n)) | Val::Owned(Value::Number(n)) => number_cmp(n, bound),
                Val::Int(i) => number_cmp(&Number::from(*i), bound),
                other => {
                    let parsed: f64 = other.as_str()?.parse().ok()?;
                    parsed.partial_cmp(&bound.as_f64()?)
                }
            },
            Bound::Time(bound) => Some(val.as_time()?.cmp(bound)),
        }
    }

    /// The bound as written in an expression.
    pub(crate) fn render(&self) -> String {
        match self {
            Bound::Number(n) => n.to_string(),
            Bound::Time(t) => format!("\"{}\"", format_time(*t)),
        }
    }
}

/// A key that is equal for two values exactly when [`json_equal`] (without `ignore_case`) says
/// they are equal, so an index keyed by it agrees with `equals`/`in`: numbers are normalised
/// (`1` and `1.0` give the same key), other values keep their JSON text, type-tagged.
pub fn equality_key(value: &Value) -> String {
    let mut out = String::new();
    write_key(value, &mut out);
    out
}

fn write_key(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push('z'),
        Value::Bool(b) => out.push_str(if *b { "t" } else { "f" }),
        Value::Number(n) => {
            out.push('n');
            // Integers print exactly; other numbers print through f64 so that 1.0 matches 1.
            match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => {
                    let _ = write!(out, "{i}");
                }
                (None, Some(u), _) => {
                    let _ = write!(out, "{u}");
                }
                // Integral floats inside the i64 range print as the integer they equal.
                (None, None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.2e18 => {
                    let _ = write!(out, "{}", f as i64);
                }
                (None, None, Some(f)) => {
                    let _ = write!(out, "{f:?}");
                }
                (None, None, None) => out.push_str(&n.to_string()),
            }
        }
        Value::String(s) => {
            out.push('s');
            out.push_str(&serde_json::to_string(s).unwrap_or_default());
        }
        Value::Array(items) => {
            out.push('[');
            for item in items {
                write_key(item, out);
                out.push(',');
            }
            out.push(']');
        }
        Value::Object(map) => {
            // serde_json maps iterate in key order (no `preserve_order` feature), so equal
            // objects write equal keys.
            out.push('{');
            for (k, v) in map {
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push(':');
                write_key(v, out);
                out.push(',');
            }
            out.push('}');
        }
    }
}
