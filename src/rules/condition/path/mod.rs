//! Paths into an event: dotted payload paths, JSONPath queries and `@` metadata paths.
//!
//! - `labels.severity`, `labels["app.kubernetes.io/name"]`, `alerts[0].status`, `items[-1]`:
//!   the payload, walked with direct map and array lookups (the fast route, no JSONPath
//!   machinery). A dotted segment made only of digits (`alerts.0`) is an array index when the
//!   value there is an array and an object key otherwise.
//! - `$…`: an RFC 9535 JSONPath into the payload, parsed once here. A JSONPath made only of
//!   names and indexes (`$.labels.severity`) is turned into the fast route.
//! - `@topic`, `@headers.trace-id`, `@attributes.status`…: the event metadata.
//! - `event.labels.severity`, `event["a.b"]`, `event`: the same payload paths with the
//!   `event` prefix that templates (`{{ event.x }}`) and Event-Driven Ansible rulebooks use;
//!   the prefix is dropped, and `event` alone is the whole payload. A payload's own top-level
//!   field named `event` is then reached as `event.event`, `["event"]` or `$.event`.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use jsonpath_rust::parser::model::JpQuery;
use serde_json::Value;

use super::value::Val;
use crate::event::Event;

mod parse;

use parse::{parse_meta, parse_query, parse_segments, render_meta, render_segments};

/// A path is one short line in a rule; anything longer is a mistake, and the bound keeps the
/// parse (and the JSONPath parser's recursion) small.
pub const MAX_PATH_CHARS: usize = 1024;

/// Why a path does not parse, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PathError {
    /// Character offset of the problem inside the path text (0-based).
    pub offset: usize,
    /// What is wrong, with the fix when we can tell.
    pub message: String,
}

impl PathError {
    fn new(offset: usize, message: impl Into<String>) -> Self {
        PathError {
            offset,
            message: message.into(),
        }
    }
}

/// A parsed path. Compared and hashed by its normalised text, so `labels['severity']`,
/// `labels.severity` and `$.labels.severity` are the same path.
#[derive(Clone)]
pub struct Path {
    text: Arc<str>,
    kind: Kind,
}

/// What a path addresses.
#[derive(Clone)]
pub(crate) enum Kind {
    /// A walk through the payload by keys and indexes.
    Payload(Box<[Seg]>),
    /// A metadata field.
    Meta(Meta),
    /// A general JSONPath into the payload (can select several values).
    Query(Arc<JpQuery>),
}

/// One step of a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// Object key (`.name` or `["name"]`).
    Key(Box<str>),
    /// Array index (`[3]`; negative counts from the end).
    Index(i64),
    /// A digits-only dotted segment (`.0`): index into an array, key into an object.
    KeyOrIndex(Box<str>, usize),
}

/// The metadata fields a path can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Meta {
    Id,
    Topic,
    Partition,
    Offset,
    Key,
    Timestamp,
    Format,
    Type,
    Source,
    /// `@headers` (the whole map) or `@headers.<name>`.
    Headers(Option<Box<str>>),
    /// `@attributes` (the whole map) or a walk into it.
    Attributes(Box<[Seg]>),
}

const META_NAMES: [&str; 11] = [
    "id",
    "topic",
    "partition",
    "offset",
    "key",
    "timestamp",
    "format",
    "type",
    "source",
    "headers",
    "attributes",
];

/// Words of the expression language, and the `event` prefix; a first key spelled like one is
/// rendered in brackets so the normalised text parses back as the same path (inside an
/// expression too).
const RESERVED: [&str; 10] = [
    "and", "or", "not", "in", "true", "false", "null", "exists", "lower", "event",
];

/// The prefix templates and Event-Driven Ansible conditions put before a payload path.
const EVENT_PREFIX: &str = "event";

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Path").field(&&*self.text).finish()
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Path {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Path {}

impl Hash for Path {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl Path {
    /// Parses a path (see the module docs for the forms).
    pub fn parse(text: &str) -> Result<Path, PathError> {
        let chars: Vec<char> = text.chars().collect();
        if chars.is_empty() {
            return Err(PathError::new(0, "empty path"));
        }
        if chars.len() > MAX_PATH_CHARS {
            return Err(PathError::new(
                MAX_PATH_CHARS,
                format!("path is longer than {MAX_PATH_CHARS} characters"),
            ));
        }
        match chars[0] {
            '$' => parse_query(text),
            '@' => parse_meta(&chars),
            _ => {
                let start = parse::event_prefix_len(&chars)?;
                if start == chars.len() && chars.last() != Some(&'.') {
                    // `event` alone: the whole payload (an empty walk).
                    return Ok(Path::from_kind(Kind::Payload(Box::default())));
                }
                let segs = parse_segments(&chars, start, true)?;
                Ok(Path::from_kind(Kind::Payload(segs.into_boxed_slice())))
            }
        }
    }

    fn from_kind(kind: Kind) -> Path {
        let text = match &kind {
            Kind::Payload(segs) if segs.is_empty() => EVENT_PREFIX.to_owned(),
            Kind::Payload(segs) => render_segments(segs, true),
            Kind::Meta(meta) => render_meta(meta),
            // Only reached with the source text; see `parse_query`.
            Kind::Query(_) => String::new(),
        };
        Path {
            text: text.into(),
            kind,
        }
    }

    /// The normalised text (`labels.severity`, `labels["a.b"]`, `@topic`, `event` for the whole
    /// payload, or the JSONPath as written).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the path can select at most one value (dotted and metadata paths); false for
    /// a general JSONPath.
    pub fn is_single(&self) -> bool {
        !matches!(self.kind, Kind::Query(_))
    }

    /// True for `@timestamp`, whose value is an instant rather than a string.
    pub(crate) fn is_timestamp(&self) -> bool {
        matches!(self.kind, Kind::Meta(Meta::Timestamp))
    }

    /// First (or only) value at this path; metadata values are built, hence `Cow`.
    pub fn resolve_one<'a>(&self, event: &'a Event) -> Option<Cow<'a, Value>> {
        match &self.kind {
            Kind::Query(query) => query_values(query, &event.payload)
                .into_iter()
                .next()
                .map(Cow::Borrowed),
            _ => self.resolve_single(event).map(Val::into_json),
        }
    }

    /// All values at this path: a JSONPath can select several, other paths give 0 or 1.
    pub fn resolve_all<'a>(&self, event: &'a Event) -> Vec<Cow<'a, Value>> {
        match &self.kind {
            Kind::Query(query) => query_values(query, &event.payload)
                .into_iter()
                .map(Cow::Borrowed)
                .collect(),
            _ => self
                .resolve_single(event)
                .map(Val::into_json)
                .into_iter()
                .collect(),
        }
    }

    /// The value as a borrowed string, when it is one, without allocating (also for string
    /// metadata such as `@topic`). For indexing on the hot path.
    pub fn resolve_str<'a>(&self, event: &'a Event) -> Option<&'a str> {
        match &self.kind {
            Kind::Query(query) => query_values(query, &event.payload)
                .into_iter()
                .next()
                .and_then(Value::as_str),
            _ => match self.resolve_single(event)? {
                Val::Json(v) => v.as_str(),
                Val::Str(s) => Some(s),
                _ => None,
            },
        }
    }

    /// Every value at this path, for explanations.
    pub(crate) fn values<'a>(&self, event: &'a Event) -> Vec<Val<'a>> {
        match &self.kind {
            Kind::Query(query) => query_values(query, &event.payload)
                .into_iter()
                .map(Val::Json)
                .collect(),
            _ => self.resolve_single(event).into_iter().collect(),
        }
    }

    /// Applies `test` to the values at this path: `None` when there are none, else whether
    /// ANY value passed. Dotted and metadata paths do not allocate.
    pub(crate) fn any_value(
        &self,
        event: &Event,
        mut test: impl FnMut(&Val<'_>) -> bool,
    ) -> Option<bool> {
        match &self.kind {
            Kind::Query(query) => {
                let values = query_values(query, &event.payload);
                if values.is_empty() {
                    return None;
                }
                Some(values.into_iter().any(|v| test(&Val::Json(v))))
            }
            _ => self.resolve_single(event).map(|v| test(&v)),
        }
    }

    /// Resolves a payload or metadata path (not a JSONPath).
    fn resolve_single<'a>(&self, event: &'a Event) -> Option<Val<'a>> {
        let meta = &event.meta;
        match &self.kind {
            Kind::Payload(segs) => walk(&event.payload, segs).map(Val::Json),
            Kind::Meta(field) => match field {
                Meta::Id => Some(Val::Str(&meta.id)),
                Meta::Topic => Some(Val::Str(&meta.topic)),
                Meta::Partition => Some(Val::Int(i64::from(meta.partition))),
                Meta::Offset => Some(Val::Int(meta.offset)),
                Meta::Key => meta.key.as_deref().map(Val::Str),
                Meta::Timestamp => Some(Val::Time(meta.timestamp)),
                Meta::Format => Some(Val::Str(meta.format.as_str())),
                Meta::Type => meta.event_type.as_deref().map(Val::Str),
                Meta::Source => meta.source.as_deref().map(Val::Str),
                Meta::Headers(None) => Some(Val::Owned(Value::Object(
                    meta.headers
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect(),
                ))),
                Meta::Headers(Some(name)) => meta.headers.get(&**name).map(|v| Val::Str(v)),
                Meta::Attributes(segs) => match segs.split_first() {
                    None => Some(Val::Owned(Value::Object(
                        meta.attributes
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    ))),
                    Some((first, rest)) => {
                        let key = match first {
                            Seg::Key(k) | Seg::KeyOrIndex(k, _) => k,
                            Seg::Index(_) => return None,
                        };
                        walk(meta.attributes.get(&**key)?, rest).map(Val::Json)
                    }
                },
            },
            Kind::Query(query) => query_values(query, &event.payload)
                .into_iter()
                .next()
                .map(Val::Json),
        }
    }
}

/// Walks `segs` from `value` with direct lookups.
fn walk<'a>(mut value: &'a Value, segs: &[Seg]) -> Option<&'a Value> {
    for seg in segs {
        value = match (seg, value) {
            (Seg::Key(k) | Seg::KeyOrIndex(k, _), Value::Object(map)) => map.get(&**k)?,
            (Seg::KeyOrIndex(_, i), Value::Array(items)) => items.get(*i)?,
            (Seg::Index(i), Value::Array(items)) => {
                let index = if *i < 0 {
                    items
                        .len()
                        .checked_sub(usize::try_from(i.unsigned_abs()).ok()?)?
                } else {
                    usize::try_from(*i).ok()?
                };
                items.get(index)?
            }
            _ => return None,
        };
    }
    Some(value)
}

/// The values a JSONPath selects; a query that yields a computed value rather than references
/// into the payload selects nothing.
fn query_values<'a>(query: &JpQuery, payload: &'a Value) -> Vec<&'a Value> {
    match jsonpath_rust::query::js_path_process(query, payload) {
        Ok(refs) => refs.into_iter().map(|r| r.val()).collect(),
        Err(_) => Vec::new(),
    }
}
