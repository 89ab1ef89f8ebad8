//! Proptest strategies shared by the property tests of every parser (decoders, rule loader,
//! conditions, templates, durations): text biased towards what parsers treat specially, JSON
//! documents (random, or real samples with random edits), events, and the test configuration.
//!
//! Purely random input rarely gets past a parser's first check, so each strategy mixes plain
//! arbitrary strings and bytes with input assembled from pieces the parser cares about
//! (delimiters, keywords, escapes, multi-byte characters, extreme numbers).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Number, Value};

use crate::event::{Event, Format, Metadata};

/// The configuration of every property test: proptest's defaults (256 cases, or the number in
/// the `PROPTEST_CASES` environment variable, which proptest reads itself) without failure
/// files: a failure found here becomes a named regression unit test instead.
pub(crate) fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Pieces that trip up hand-written scanners: multi-byte characters (slicing inside one
/// panics), quotes and escapes, control characters, a byte-order mark, extreme numbers.
pub(crate) const TRICKY: &[&str] = &[
    "é",
    "ß",
    "😀",
    "\u{0}",
    "\u{7f}",
    "\u{feff}",
    "\u{10ffff}",
    "\u{200b}",
    "\\",
    "\\u",
    "\\u{",
    "\\uD800",
    "\"",
    "'",
    " ",
    "\n",
    "\r\n",
    "\t",
    "-",
    "+",
    ".",
    "0",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "1e400",
    "1e-400",
    "NaN",
];

/// Text assembled from `pieces`, [`TRICKY`] pieces and arbitrary characters; or an arbitrary
/// string; or arbitrary bytes read as (lossy) UTF-8.
pub(crate) fn text_from(pieces: &'static [&'static str]) -> BoxedStrategy<String> {
    let piece = prop_oneof![
        4 => select(pieces).prop_map(str::to_owned),
        2 => select(TRICKY).prop_map(str::to_owned),
        1 => any::<char>().prop_map(String::from),
        1 => "[a-z0-9_]{1,6}",
    ];
    prop_oneof![
        1 => any::<String>(),
        1 => vec(any::<u8>(), 0..48).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        5 => vec(piece, 0..20).prop_map(|parts| parts.concat()),
    ]
    .boxed()
}

/// Input for a parser with a grammar: mostly `valid` text built from it, some with a random
/// piece from `pieces` spliced in at a random place (near-valid input reaches the deeper error
/// paths), some only random pieces.
pub(crate) fn near_valid(
    valid: BoxedStrategy<String>,
    pieces: &'static [&'static str],
) -> BoxedStrategy<String> {
    let spliced =
        (valid.clone(), any::<usize>(), text_from(pieces)).prop_map(|(text, at, piece)| {
            let mut chars: Vec<char> = text.chars().collect();
            let at = at % (chars.len() + 1);
            chars.splice(at..at, piece.chars());
            chars.into_iter().collect()
        });
    prop_oneof![4 => valid, 2 => spliced, 1 => text_from(pieces)].boxed()
}

/// Object keys events carry: the fields each decoder reads and the paths the shipped rules test.
const KEYS: &[&str] = &[
    "labels",
    "annotations",
    "severity",
    "alertname",
    "namespace",
    "deployment",
    "desiredReplicas",
    "pipeline",
    "status",
    "image",
    "reason",
    "source",
    "host",
    "involvedObject",
    "regarding",
    "metadata",
    "name",
    "uid",
    "kind",
    "apiVersion",
    "output_fields",
    "k8s.ns.name",
    "k8s.pod.name",
    "rule",
    "priority",
    "output",
    "hostname",
    "uuid",
    "time",
    "alerts",
    "version",
    "groupLabels",
    "commonLabels",
    "commonAnnotations",
    "startsAt",
    "endsAt",
    "fingerprint",
    "receiver",
    "groupKey",
    "generatorURL",
    "specversion",
    "id",
    "type",
    "data",
    "data_base64",
    "datacontenttype",
    "lastTimestamp",
    "eventTime",
    "count",
    "summary",
    "",
];

/// String values that steer decoders and conditions down their interesting branches.
const WORDS: &[&str] = &[
    "critical",
    "warning",
    "firing",
    "resolved",
    "4",
    "1.0",
    "0.3",
    "Event",
    "v1",
    "2026-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999+23:59",
    "shop",
    "kube-system",
    "NodeNotReady",
    "Evicted",
    "succeeded",
    "KubePodCrashLooping",
    "application/json",
    "application/cloudevents+json",
    "text/plain",
    "Critical",
    "Zm9v",
    "=",
    "",
];

/// Numbers at the edges of JSON's integer and float ranges, and arbitrary ones.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        select(vec![i64::MIN, -1, 0, 1, i64::MAX]).prop_map(Value::from),
        select(vec![u64::MAX, 1 << 53, (1 << 53) + 1]).prop_map(Value::from),
        select(vec![f64::MAX, f64::MIN, f64::EPSILON, 5e-324, -0.0, 0.5])
            .prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
    ]
}

/// An object key: a known field name or arbitrary text.
pub(crate) fn key() -> BoxedStrategy<String> {
    prop_oneof![3 => select(KEYS).prop_map(str::to_owned), 1 => text_from(WORDS)].boxed()
}

/// A scalar JSON value.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        select(WORDS).prop_map(Value::from),
        text_from(WORDS).prop_map(Value::String),
    ]
}

/// A random JSON document, up to a few levels deep.
pub(crate) fn json_value() -> BoxedStrategy<Value> {
    scalar()
        .prop_recursive(6, 48, 6, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(Value::Array),
                btree_map(key(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

/// A document nested `depth` levels deep (alternating objects and arrays) around `leaf`: the
/// shape that breaks recursive code.
pub(crate) fn nested(depth: usize, leaf: Value) -> Value {
    (0..depth).fold(leaf, |inner, level| {
        if level % 2 == 0 {
            Value::Array(vec![inner])
        } else {
            serde_json::json!({ "labels": inner })
        }
    })
}

/// The sample events in `tests/data/events/`, one per format (and variants).
pub(crate) const SAMPLES: &[&str] = &[
    include_str!("../../../tests/data/events/alertmanager-webhook.json"),
    include_str!("../../../tests/data/events/alertmanager-no-alerts.json"),
    include_str!("../../../tests/data/events/cloudevent-structured.json"),
    include_str!("../../../tests/data/events/cloudevent-data-base64.json"),
    include_str!("../../../tests/data/events/cloudevent-batch.json"),
    include_str!("../../../tests/data/events/kubernetes-event.json"),
    include_str!("../../../tests/data/events/kubernetes-event-events-v1.json"),
    include_str!("../../../tests/data/events/falco-event.json"),
    include_str!("../../../tests/data/events/falco-event-no-uuid.json"),
    include_str!("../../../tests/data/events/plain.json"),
];

/// One random change to a JSON document. The `usize` picks a node (modulo the node count).
#[derive(Debug, Clone)]
pub(crate) enum Edit {
    /// Replace the node with a value.
    Replace(usize, Value),
    /// Remove the node from its parent (the root becomes `null`).
    Remove(usize),
    /// Add a member to an object (or an item to an array; a scalar is replaced).
    Insert(usize, String, Value),
}

/// An [`Edit`] whose new values are drawn from `values` and new member names mostly from
/// `names` (the fields of the document's format).
pub(crate) fn edit(
    names: &'static [&'static str],
    values: BoxedStrategy<Value>,
) -> BoxedStrategy<Edit> {
    let name = prop_oneof![3 => select(names).prop_map(str::to_owned), 1 => key()];
    prop_oneof![
        (any::<usize>(), values.clone()).prop_map(|(at, v)| Edit::Replace(at, v)),
        any::<usize>().prop_map(Edit::Remove),
        (any::<usize>(), name, values).prop_map(|(at, k, v)| Edit::Insert(at, k, v)),
    ]
    .boxed()
}

/// JSON pointers to every node of `doc`, the root (`""`) first.
fn pointers(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(doc, String::new())];
    while let Some((value, at)) = stack.pop() {
        match value {
            Value::Array(items) => {
                stack.extend(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (c, format!("{at}/{i}"))),
                );
            }
            Value::Object(members) => stack.extend(members.iter().map(|(k, c)| {
                (
                    c,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                )
            })),
            _ => {}
        }
        out.push(at);
    }
    out
}

/// Applies `edit` to `doc`.
pub(crate) fn apply(doc: &mut Value, edit: &Edit) {
    let all = pointers(doc);
    let pick = |at: usize| all[at % all.len()].clone();
    match edit {
        Edit::Replace(at, value) => {
            if let Some(node) = doc.pointer_mut(&pick(*at)) {
                *node = value.clone();
            }
        }
        Edit::Insert(at, name, value) => match doc.pointer_mut(&pick(*at)) {
            Some(Value::Object(members)) => {
                members.insert(name.clone(), value.clone());
            }
            Some(Value::Array(items)) => items.push(value.clone()),
            Some(node) => *node = value.clone(),
            None => {}
        },
        Edit::Remove(at) => {
            let target = pick(*at);
            let Some((parent, last)) = target.rsplit_once('/') else {
                *doc = Value::Null;
                return;
            };
            match doc.pointer_mut(parent) {
                Some(Value::Object(members)) => {
                    members.remove(&last.replace("~1", "/").replace("~0", "~"));
                }
                Some(Value::Array(items)) => {
                    if let Ok(i) = last.parse::<usize>()
                        && i < items.len()
                    {
                        items.remove(i);
                    }
                }
                _ => {}
            }
        }
    }
}

/// `doc` with each of `edits` applied in turn.
pub(crate) fn edited(mut doc: Value, edits: &[Edit]) -> Value {
    for e in edits {
        apply(&mut doc, e);
    }
    doc
}

/// A document for an event: random, or a real sample of each format with a few random edits
/// (so it still looks like its format and reaches the format's own checks).
pub(crate) fn document() -> BoxedStrategy<Value> {
    let sample = select(SAMPLES).prop_map(|s| serde_json::from_str(s).expect("sample is JSON"));
    prop_oneof![
        1 => json_value(),
        3 => (sample, vec(edit(KEYS, json_value()), 0..5)).prop_map(|(doc, edits)| edited(doc, &edits)),
    ]
    .boxed()
}

/// Event metadata with arbitrary values, timestamps anywhere in chrono's range included (a
/// Kafka record timestamp can be any 64-bit millisecond count).
pub(crate) fn metadata() -> BoxedStrategy<Metadata> {
    let text = || text_from(WORDS);
    let (first, last) = (
        DateTime::<Utc>::MIN_UTC.timestamp_millis(),
        DateTime::<Utc>::MAX_UTC.timestamp_millis(),
    );
    let timestamp = prop_oneof![
        any::<i64>(),
        first..=last,
        select(vec![first, last, last - 60_000, 0, 1_770_000_000_000]),
    ]
    .prop_map(|ms| DateTime::from_timestamp_millis(ms).unwrap_or_default());
    let headers = btree_map(key(), text(), 0..4);
    let attributes = btree_map(key(), json_value(), 0..4);
    (
        (text(), text(), any::<i32>(), any::<i64>()),
        (proptest::option::of(text()), headers, timestamp),
        (select(Format::ALL.to_vec()), proptest::option::of(text())),
        (proptest::option::of(text()), attributes),
    )
        .prop_map(
            |(
                (id, topic, partition, offset),
                (key, headers, timestamp),
                (format, event_type),
                (source, attributes),
            )| Metadata {
                id,
                topic,
                partition,
                offset,
                key,
                headers: headers.into_iter().collect::<BTreeMap<_, _>>(),
                timestamp,
                format,
                event_type,
                source,
                attributes,
            },
        )
        .boxed()
}

/// An event with an arbitrary document (up to 70 levels deep, past the decoders' bound, since
/// events can also be built without a decoder) and arbitrary metadata.
pub(crate) fn event() -> BoxedStrategy<Event> {
    let payload = prop_oneof![
        8 => document(),
        1 => (0usize..70, scalar()).prop_map(|(depth, leaf)| nested(depth, leaf)),
    ];
    (payload, metadata())
        .prop_map(|(payload, meta)| Event { payload, meta })
        .boxed()
}
