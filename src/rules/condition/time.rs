//! Time helpers for conditions: RFC 3339 timestamps and the rule-file duration syntax.

use chrono::{DateTime, TimeDelta, Utc};

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

/// Parses a duration written `500ms`, `45s`, `10m`, `1h30m` or `2d`: one or more
/// `<digits><unit>` parts with units `ms`, `s`, `m`, `h`, `d`, largest first, each at most once.
///
/// Uses the shared rule-file parser when the state helper provides it; this private copy keeps
/// conditions independent of that file's progress and is byte-for-byte the same syntax.
pub(crate) fn parse_duration(text: &str) -> Result<TimeDelta, String> {
    const UNITS: [(&str, i64); 5] = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    if text.is_empty() {
        return Err("empty duration; write e.g. `10m`, `1h30m` or `500ms`".into());
    }
    let mut rest = text;
    let mut total: i64 = 0;
    // Index into UNITS of the last unit used: units must strictly decrease (`1h30m`, not `30m1h`).
    let mut last_unit: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "invalid duration `{text}`: expected a number before `{rest}`"
            ));
        }
        let (number, tail) = rest.split_at(digits);
        let letters = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(letters);
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(if unit.is_empty() {
                format!("invalid duration `{text}`: `{number}` needs a unit (ms, s, m, h, d)")
            } else {
                format!("invalid duration `{text}`: unknown unit `{unit}` (use ms, s, m, h, d)")
            });
        };
        if last_unit.is_some_and(|last| index <= last) {
            return Err(format!(
                "invalid duration `{text}`: units must go from largest to smallest, each once"
            ));
        }
        last_unit = Some(index);
        let value: i64 = number
            .parse()
            .map_err(|_| format!("invalid duration `{text}`: `{number}` is too large"))?;
        total = value
            .checked_mul(UNITS[index].1)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("invalid duration `{text}`: too large"))?;
        rest = tail;
    }
    TimeDelta::try_milliseconds(total).ok_or_else(|| format!("invalid duration `{text}`: too large"))
}

/// Renders a duration in the rule-file syntax (`1h30m`, `500ms`), for explanations.
pub(crate) fn format_duration(d: TimeDelta) -> String {
    let mut ms = d.num_milliseconds();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    if ms < 0 {
        out.push('-');
        ms = -ms;
    }
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}
