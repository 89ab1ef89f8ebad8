//! Parsing path text (dotted, bracketed, `@` metadata, `$` JSONPath) and rendering the
//! normalised text that paths compare by.

use std::sync::Arc;

use jsonpath_rust::parser::errors::JsonPathError;
use jsonpath_rust::parser::model::{Segment, Selector};

use super::{EVENT_PREFIX, Kind, META_NAMES, Meta, Path, PathError, RESERVED, Seg};
use crate::rules::diagnostic::closest;

pub(super) fn parse_query(text: &str) -> Result<Path, PathError> {
    let query = jsonpath_rust::parser::parse_json_path(text).map_err(|e| query_error(text, &e))?;
    // A query of plain names and indexes selects at most one value: walk it directly.
    let simple: Option<Vec<Seg>> = query
        .segments
        .iter()
        .map(|segment| match segment {
            Segment::Selector(Selector::Name(name)) => Some(Seg::Key(name.as_str().into())),
            Segment::Selector(Selector::Index(i)) => Some(Seg::Index(*i)),
            _ => None,
        })
        .collect();
    match simple {
        Some(segs) if !segs.is_empty() => {
            Ok(Path::from_kind(Kind::Payload(segs.into_boxed_slice())))
        }
        _ => Ok(Path {
            text: text.trim().into(),
            kind: Kind::Query(Arc::new(query)),
        }),
    }
}

/// Turns a jsonpath-rust error into a message and a character offset (best effort: the parser
/// reports a byte position for syntax errors only, and only through its `Debug` output since
/// its location type lives in a crate we do not depend on).
fn query_error(text: &str, err: &JsonPathError) -> PathError {
    match err {
        JsonPathError::PestError(pest) => {
            let location = format!("{:?}", pest.location);
            let byte: usize = location
                .trim_start_matches(|c: char| !c.is_ascii_digit())
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let offset = text
                .get(..byte.min(text.len()))
                .map_or(0, |prefix| prefix.chars().count());
            let found = text[text
                .char_indices()
                .nth(offset)
                .map_or(text.len(), |(i, _)| i)..]
                .chars()
                .next()
                .map_or_else(|| "the end".to_owned(), |c| format!("`{c}`"));
            PathError::new(
                offset,
                format!(
                    "invalid JSONPath `{text}`: unexpected {found} at character {}",
                    offset + 1
                ),
            )
        }
        other => PathError::new(0, format!("invalid JSONPath `{text}`: {other}")),
    }
}

pub(super) fn parse_meta(chars: &[char]) -> Result<Path, PathError> {
    let name_len = ident_len(chars, 1);
    let name: String = chars[1..1 + name_len].iter().collect();
    let valid = META_NAMES.join(", @");
    if name.is_empty() {
        return Err(PathError::new(
            1,
            format!("expected a metadata field after `@` (one of @{valid})"),
        ));
    }
    let segs = parse_segments(chars, 1 + name_len, false)?;
    let no_segments = |field: &str| -> Result<(), PathError> {
        if segs.is_empty() {
            Ok(())
        } else {
            Err(PathError::new(
                1 + name_len,
                format!("`@{field}` is a single value; nothing is below it"),
            ))
        }
    };
    let meta = match name.as_str() {
        "id" => no_segments("id").map(|()| Meta::Id)?,
        "topic" => no_segments("topic").map(|()| Meta::Topic)?,
        "partition" => no_segments("partition").map(|()| Meta::Partition)?,
        "offset" => no_segments("offset").map(|()| Meta::Offset)?,
        "key" => no_segments("key").map(|()| Meta::Key)?,
        "timestamp" => no_segments("timestamp").map(|()| Meta::Timestamp)?,
        "format" => no_segments("format").map(|()| Meta::Format)?,
        "type" => no_segments("type").map(|()| Meta::Type)?,
        "source" => no_segments("source").map(|()| Meta::Source)?,
        "headers" => match segs.as_slice() {
            [] => Meta::Headers(None),
            [Seg::Key(k) | Seg::KeyOrIndex(k, _)] => Meta::Headers(Some(k.clone())),
            [Seg::Index(_), ..] => {
                return Err(PathError::new(
                    1 + name_len,
                    "headers are named, not numbered: write `@headers.<name>` or `@headers[\"<name>\"]`",
                ));
            }
            _ => {
                return Err(PathError::new(
                    1 + name_len,
                    "header values are strings; nothing is below `@headers.<name>`",
                ));
            }
        },
        "attributes" => Meta::Attributes(segs.into_boxed_slice()),
        other => {
            let hint = closest(other, META_NAMES)
                .map(|c| format!("; did you mean `@{c}`?"))
                .unwrap_or_else(|| format!("; valid: @{valid}"));
            return Err(PathError::new(
                1,
                format!("unknown metadata field `@{other}`{hint}"),
            ));
        }
    };
    Ok(Path::from_kind(Kind::Meta(meta)))
}

/// Length of a leading `event` prefix (`event`, `event.…`, `event[…]`), 0 when there is none.
/// After `event.` a key follows; after `event[` the bracket is the first step.
pub(super) fn event_prefix_len(chars: &[char]) -> Result<usize, PathError> {
    let n = EVENT_PREFIX.len();
    if ident_len(chars, 0) != n || !chars[..n].iter().copied().eq(EVENT_PREFIX.chars()) {
        return Ok(0);
    }
    match chars.get(n) {
        Some('.') if chars.get(n + 1) == Some(&'[') => Err(PathError::new(
            n + 1,
            "write `event[…]` (no dot) for a bracketed key or index after `event`",
        )),
        Some('.') => Ok(n + 1),
        _ => Ok(n),
    }
}

/// Length of the key-name characters starting at `start`: letters, digits, `_` and `-`.
fn ident_len(chars: &[char], start: usize) -> usize {
    chars[start.min(chars.len())..]
        .iter()
        .take_while(|c| c.is_alphanumeric() || **c == '_' || **c == '-')
        .count()
}

/// Parses `.key`, `["key"]` and `[index]` steps from `pos`; `leading_key` allows a bare key first.
pub(super) fn parse_segments(
    chars: &[char],
    mut pos: usize,
    leading_key: bool,
) -> Result<Vec<Seg>, PathError> {
    let mut segs = Vec::new();
    if leading_key && chars.get(pos) != Some(&'[') {
        let len = ident_len(chars, pos);
        if len == 0 {
            return Err(unexpected(chars, pos));
        }
        segs.push(key_segment(&chars[pos..pos + len]));
        pos += len;
    }
    while pos < chars.len() {
        match chars[pos] {
            '.' => {
                let len = ident_len(chars, pos + 1);
                if len == 0 {
                    return Err(PathError::new(
                        pos + 1,
                        "expected a key after `.`; keys with other characters need brackets: [\"key\"]",
                    ));
                }
                segs.push(key_segment(&chars[pos + 1..pos + 1 + len]));
                pos += 1 + len;
            }
            '[' => {
                let (seg, next) = parse_bracket(chars, pos)?;
                segs.push(seg);
                pos = next;
            }
            _ => return Err(unexpected(chars, pos)),
        }
    }
    Ok(segs)
}

fn unexpected(chars: &[char], pos: usize) -> PathError {
    match chars.get(pos) {
        Some(c) => PathError::new(
            pos,
            format!(
                "unexpected `{c}` in path; keys with special characters need brackets: [\"key\"]"
            ),
        ),
        None => PathError::new(pos, "expected a key"),
    }
}

fn key_segment(chars: &[char]) -> Seg {
    let key: String = chars.iter().collect();
    match key.parse::<usize>() {
        Ok(index) if key.bytes().all(|b| b.is_ascii_digit()) => {
            Seg::KeyOrIndex(key.into_boxed_str(), index)
        }
        _ => Seg::Key(key.into_boxed_str()),
    }
}

/// Parses `[…]` at `open`; returns the step and the position after `]`.
fn parse_bracket(chars: &[char], open: usize) -> Result<(Seg, usize), PathError> {
    let mut pos = open + 1;
    match chars.get(pos) {
        Some(&quote @ ('"' | '\'')) => {
            pos += 1;
            let mut key = String::new();
            loop {
                match chars.get(pos) {
                    None => {
                        return Err(PathError::new(
                            open + 1,
                            format!("unterminated key; close it with {quote}]"),
                        ));
                    }
                    Some('\\') => {
                        match chars.get(pos + 1) {
                            Some(c @ ('\\' | '"' | '\'')) => key.push(*c),
                            _ => {
                                return Err(PathError::new(
                                    pos,
                                    "only \\\\, \\\" and \\' escapes are allowed in a bracketed key",
                                ));
                            }
                        }
                        pos += 2;
                    }
                    Some(c) if *c == quote => {
                        pos += 1;
                        break;
                    }
                    Some(c) => {
                        key.push(*c);
                        pos += 1;
                    }
                }
            }
            close_bracket(chars, pos).map(|next| (Seg::Key(key.into_boxed_str()), next))
        }
        Some(c) if c.is_ascii_digit() || *c == '-' => {
            let start = pos;
            pos += 1;
            while chars.get(pos).is_some_and(char::is_ascii_digit) {
                pos += 1;
            }
            let digits: String = chars[start..pos].iter().collect();
            let index: i64 = digits
                .parse()
                .map_err(|_| PathError::new(start, format!("invalid index `{digits}`")))?;
            close_bracket(chars, pos).map(|next| (Seg::Index(index), next))
        }
        Some('*') => Err(PathError::new(
            pos,
            "wildcards need a JSONPath, e.g. `$.items[*].status`",
        )),
        _ => Err(PathError::new(
            pos,
            "expected a quoted key or an index after `[`, e.g. [\"app.kubernetes.io/name\"] or [0]",
        )),
    }
}

fn close_bracket(chars: &[char], pos: usize) -> Result<usize, PathError> {
    if chars.get(pos) == Some(&']') {
        Ok(pos + 1)
    } else {
        Err(PathError::new(pos, "expected `]`"))
    }
}

/// A key that can be written after a dot and parses back as a key (not an index).
fn is_plain_key(key: &str, first: bool) -> bool {
    let mut chars = key.chars();
    let Some(c0) = chars.next() else {
        return false;
    };
    let lead_ok = if first {
        c0.is_alphabetic() || c0 == '_'
    } else {
        c0.is_alphanumeric() || c0 == '_' || c0 == '-'
    };
    lead_ok
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        && !key.bytes().all(|b| b.is_ascii_digit())
        && !(first && RESERVED.contains(&key))
}

pub(super) fn render_segments(segs: &[Seg], at_start: bool) -> String {
    let mut out = String::new();
    for (i, seg) in segs.iter().enumerate() {
        let first = at_start && i == 0;
        match seg {
            Seg::Key(k) if is_plain_key(k, first) => {
                if !first {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Key(k) => {
                // Only the escapes `parse_bracket` reads back (`\\`, `\"`): JSON's `\n` or
                // `\u0000` for a control character would not parse as the same key.
                out.push_str("[\"");
                for c in k.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push_str("\"]");
            }
            Seg::KeyOrIndex(k, _) if !first => {
                out.push('.');
                out.push_str(k);
            }
            Seg::KeyOrIndex(k, _) => out.push_str(k),
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

pub(super) fn render_meta(meta: &Meta) -> String {
    let name = match meta {
        Meta::Id => "@id",
        Meta::Topic => "@topic",
        Meta::Partition => "@partition",
        Meta::Offset => "@offset",
        Meta::Key => "@key",
        Meta::Timestamp => "@timestamp",
        Meta::Format => "@format",
        Meta::Type => "@type",
        Meta::Source => "@source",
        Meta::Headers(None) => "@headers",
        Meta::Headers(Some(name)) => {
            return format!(
                "@headers{}",
                render_segments(&[Seg::Key(name.clone())], false)
            );
        }
        Meta::Attributes(segs) => return format!("@attributes{}", render_segments(segs, false)),
    };
    name.to_owned()
}
