//! Syslog lines: RFC 5424 (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG`), RFC 3164
//! (`<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG`), and rsyslog's file formats, which drop the
//! `<PRI>` and may use an RFC 3339 time (`RSYSLOG_FileFormat`, omkafka's default template).
//!
//! The severity becomes `level` (`emergency` ... `debug`); `fields` holds `facility` (its name,
//! `local0`...), `app`, `procid`, `msgid` when the line has them (RFC 5424's `-` means absent)
//! and `structured_data` as `{SD-ID: {param: value}}`. A BSD time has no year and no zone: it
//! is read as UTC in the record time's year (the previous year if that puts it more than a day
//! ahead of the record, as for a December line read in January); without a record time the
//! line has no time of its own.

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use super::{LogLine, MAX_FIELDS};
use crate::event::decode::parse::parse_time;

const SEVERITIES: [&str; 8] = [
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "info",
    "debug",
];

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

/// Parses one syslog line; `Err` says why it is not one.
pub(super) fn parse(line: &str, record_time: Option<DateTime<Utc>>) -> Result<LogLine, String> {
    let mut out = LogLine::default();
    let rest = match line.strip_prefix('<') {
        Some(after) => {
            let end = after
                .find('>')
                .filter(|&end| (1..=3).contains(&end))
                .ok_or("the line starts with `<` but has no `<PRI>` priority of 1 to 3 digits")?;
            let pri: u8 = after[..end]
                .parse()
                .ok()
                .filter(|&p| p <= 191 && after[..end].bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| format!("`<{}>` is not a priority from 0 to 191", &after[..end]))?;
            out.level = Some(SEVERITIES[usize::from(pri % 8)].to_owned());
            out.fields.insert(
                "facility".to_owned(),
                Value::from(FACILITIES[usize::from(pri / 8)]),
            );
            let rest = &after[end + 1..];
            if let Some(rfc5424) = rest.strip_prefix("1 ") {
                rfc5424_header(rfc5424, &mut out)?;
                return Ok(out);
            }
            rest
        }
        None => line,
    };
    bsd_header(rest, record_time, &mut out, line.starts_with('<'))?;
    Ok(out)
}

/// The rest of an RFC 5424 line after `<PRI>1 `.
fn rfc5424_header(line: &str, out: &mut LogLine) -> Result<(), String> {
    let mut parts = line.splitn(6, ' ');
    let mut next = |name: &str| {
        parts
            .next()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| format!("the RFC 5424 header has no {name}"))
    };
    let time = next("TIMESTAMP")?;
    let host = next("HOSTNAME")?;
    let app = next("APP-NAME")?;
    let procid = next("PROCID")?;
    let msgid = next("MSGID")?;
    let rest = parts
        .next()
        .ok_or("the RFC 5424 header has no STRUCTURED-DATA")?;
    if time != "-" {
        out.timestamp =
            Some(parse_time(time).ok_or_else(|| format!("`{time}` is not an RFC 3339 TIMESTAMP"))?);
    }
    out.host = present(host).map(str::to_owned);
    for (name, value) in [("app", app), ("procid", procid), ("msgid", msgid)] {
        if let Some(value) = present(value) {
            out.fields.insert(name.to_owned(), Value::from(value));
        }
    }
    let (sd, message) = structured_data(rest)?;
    if !sd.is_empty() {
        out.fields
            .insert("structured_data".to_owned(), Value::Object(sd));
    }
    let message = message.strip_prefix(' ').unwrap_or(message);
    out.message = message
        .strip_prefix('\u{feff}')
        .unwrap_or(message)
        .to_owned();
    Ok(())
}

/// RFC 5424's NILVALUE `-` is absence.
fn present(value: &str) -> Option<&str> {
    Some(value).filter(|v| *v != "-")
}

/// `-` or `[id name="value" ...]...`, and what follows it.
fn structured_data(text: &str) -> Result<(Map<String, Value>, &str), String> {
    let mut elements = Map::new();
    if let Some(rest) = text.strip_prefix('-') {
        return Ok((elements, rest));
    }
    let mut rest = text;
    let mut count = 0usize;
    while let Some(element) = rest.strip_prefix('[') {
        one_more(&mut count)?;
        let id_end = element
            .find([' ', ']'])
            .ok_or("a STRUCTURED-DATA element has no closing `]`")?;
        let id = &element[..id_end];
        if id.is_empty() {
            return Err("a STRUCTURED-DATA element has an empty SD-ID".to_owned());
        }
        let mut params = Map::new();
        rest = &element[id_end..];
        while let Some(param) = rest.strip_prefix(' ') {
            one_more(&mut count)?;
            let (name, after) = param
                .split_once("=\"")
                .ok_or_else(|| format!("SD-ID `{id}` has a parameter without `=\"value\"`"))?;
            let (value, after) = quoted(after)
                .ok_or_else(|| format!("SD-ID `{id}` parameter `{name}` has no closing quote"))?;
            params.insert(name.to_owned(), Value::String(value));
            rest = after;
        }
        rest = rest
            .strip_prefix(']')
            .ok_or_else(|| format!("SD-ID `{id}` has no closing `]`"))?;
        elements.insert(id.to_owned(), Value::Object(params));
    }
    if elements.is_empty() {
        return Err("STRUCTURED-DATA is neither `-` nor `[...]`".to_owned());
    }
    Ok((elements, rest))
}

/// Counts one more STRUCTURED-DATA element or parameter, within [`MAX_FIELDS`].
fn one_more(count: &mut usize) -> Result<(), String> {
    *count += 1;
    if *count > MAX_FIELDS {
        return Err(format!(
            "the STRUCTURED-DATA has more than {MAX_FIELDS} elements and parameters; split the \
             record"
        ));
    }
    Ok(())
}

/// The value of a quoted string whose opening quote is already consumed (escapes `\"`, `\\`,
/// `\]`), and what follows the closing quote; `None` if it never closes.
pub(super) fn quoted(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[i + 1..])),
            '\\' => match chars.next() {
                Some((_, escaped @ ('"' | '\\' | ']'))) => value.push(escaped),
                Some((_, 'n')) => value.push('\n'),
                Some((_, 't')) => value.push('\t'),
                Some((_, other)) => {
                    value.push('\\');
                    value.push(other);
                }
                None => return None,
            },
            other => value.push(other),
        }
    }
    None
}

/// The RFC 3164 / rsyslog file format header: a time (RFC 3339 or BSD), a host, and an optional
/// `tag[pid]:` before the message. After a `<PRI>`, a line without a time is the message alone.
fn bsd_header(
    line: &str,
    record_time: Option<DateTime<Utc>>,
    out: &mut LogLine,
    had_pri: bool,
) -> Result<(), String> {
    let first = line.split(' ').next().unwrap_or_default();
    let rest = if let Some(time) = parse_time(first) {
        out.timestamp = Some(time);
        &line[first.len()..]
    } else if let Some((time, rest)) = bsd_time(line, record_time) {
        out.timestamp = time;
        rest
    } else if had_pri {
        out.message = line.to_owned();
        return Ok(());
    } else {
        return Err(
            "the line has neither a `<PRI>` priority nor a syslog time at its start \
                    (RFC 3339, or `Mmm dd hh:mm:ss`)"
                .to_owned(),
        );
    };
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let (host, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if !host.is_empty() {
        out.host = Some(host.to_owned());
    }
    out.message = match tag(rest) {
        Some((app, procid, message)) => {
            out.fields.insert("app".to_owned(), Value::from(app));
            if let Some(procid) = procid {
                out.fields.insert("procid".to_owned(), Value::from(procid));
            }
            message.to_owned()
        }
        None => rest.to_owned(),
    };
    Ok(())
}

/// `Mmm dd hh:mm:ss` (the day space-padded) at the start of a line: the time (if a year can be
/// inferred) and what follows.
fn bsd_time(
    line: &str,
    record_time: Option<DateTime<Utc>>,
) -> Option<(Option<DateTime<Utc>>, &str)> {
    let text = line.get(..15)?;
    let normalized = text.split_whitespace().collect::<Vec<_>>().join(" ");
    // Checked against a leap year so `Feb 29` is a valid shape whatever the record's year.
    NaiveDateTime::parse_from_str(&format!("2024 {normalized}"), "%Y %b %d %H:%M:%S").ok()?;
    let time = record_time.and_then(|record| {
        let at = |year: i32| {
            NaiveDateTime::parse_from_str(&format!("{year} {normalized}"), "%Y %b %d %H:%M:%S")
                .ok()
                .map(|t| t.and_utc())
        };
        match at(record.year()) {
            Some(t) if t <= record + Duration::days(1) => Some(t),
            _ => at(record.year() - 1),
        }
    });
    Some((time, &line[15..]))
}

/// `app[pid]: message` or `app: message`: the tag is at most 48 characters without spaces.
fn tag(text: &str) -> Option<(&str, Option<&str>, &str)> {
    let (tag, message) = text
        .split_once(": ")
        .or_else(|| text.strip_suffix(':').map(|t| (t, "")))?;
    if tag.is_empty() || tag.len() > 48 || tag.contains(' ') {
        return None;
    }
    match tag.strip_suffix(']').and_then(|t| t.split_once('[')) {
        Some((app, pid)) if !app.is_empty() => Some((app, Some(pid), message)),
        _ => Some((tag, None, message)),
    }
}
