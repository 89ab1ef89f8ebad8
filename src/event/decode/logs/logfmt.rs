//! logfmt lines: `key=value` pairs separated by spaces, values double-quoted when they hold
//! spaces (`msg="disk full" level=error`); a bare `key` is `true`. Values stay strings (logfmt
//! has no types).
//!
//! `msg`/`message` is the message, `level`/`lvl`/`severity` the level, `ts`/`time`/`timestamp`
//! the time when it is RFC 3339 (else it stays in `fields`), `host`/`hostname` the host; every
//! other pair goes to `fields`. A line without a single `key=value` pair is not logfmt.

use serde_json::Value;

use super::syslog::quoted;
use super::{LogLine, MAX_FIELDS, normalize_level};
use crate::event::decode::parse::parse_time;

/// Parses one logfmt line; `Err` says why it is not one.
pub(super) fn parse(line: &str) -> Result<LogLine, String> {
    let mut out = LogLine::default();
    let (mut pairs, mut keys) = (0usize, 0usize);
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        keys += 1;
        if keys > MAX_FIELDS {
            return Err(format!(
                "the line has more than {MAX_FIELDS} keys; a log line carries tens, so this \
                 is likely not logfmt, or split the record"
            ));
        }
        let key_end = rest.find(['=', ' ']).unwrap_or(rest.len());
        let key = &rest[..key_end];
        if key.is_empty() || key.contains('"') {
            return Err(format!(
                "`{}` is not a logfmt key (a key has no quotes and is followed by `=`)",
                rest.split(' ').next().unwrap_or(rest)
            ));
        }
        rest = &rest[key_end..];
        let value = match rest.strip_prefix('=') {
            None => Value::Bool(true),
            Some(after) => {
                pairs += 1;
                if let Some(inside) = after.strip_prefix('"') {
                    let (value, after) = quoted(inside)
                        .ok_or_else(|| format!("the value of `{key}` has no closing quote"))?;
                    rest = after;
                    Value::String(value)
                } else {
                    let end = after.find(' ').unwrap_or(after.len());
                    rest = &after[end..];
                    Value::String(after[..end].to_owned())
                }
            }
        };
        take(key, value, &mut out);
        rest = rest.trim_start();
    }
    if pairs == 0 {
        return Err("the line has no `key=value` pair".to_owned());
    }
    Ok(out)
}

/// Puts one pair where the common shape wants it: a recognised name fills its slot once (the
/// first wins); everything else, and repeats, go to `fields`.
fn take(key: &str, value: Value, out: &mut LogLine) {
    let text = value.as_str().unwrap_or_default();
    match key {
        "msg" | "message" if out.message.is_empty() => out.message = text.to_owned(),
        "level" | "lvl" | "severity" if out.level.is_none() => out.level = normalize_level(text),
        "host" | "hostname" if out.host.is_none() && !text.is_empty() => {
            out.host = Some(text.to_owned());
        }
        "ts" | "time" | "timestamp" if out.timestamp.is_none() && parse_time(text).is_some() => {
            out.timestamp = parse_time(text);
        }
        _ => {
            out.fields.insert(key.to_owned(), value);
        }
    }
}
