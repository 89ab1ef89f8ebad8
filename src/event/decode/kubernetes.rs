//! Kubernetes Events, core/v1 (`involvedObject`) or events.k8s.io/v1 (`regarding`), as the API
//! server returns them (event exporters and `kubectl get events -o json` items).
//!
//! The payload is the whole Event object. The event type is `reason`; the source is
//! `source.component`, else `reportingComponent` (core/v1) or `reportingController`
//! (events.k8s.io/v1). Attributes: `involvedObject` (`kind`, `namespace`, `name` of the
//! `involvedObject` or `regarding` object, whichever API wrote it), `type` (`Normal`/`Warning`)
//! and `count`. The time is the most recent one the Event carries: `series.lastObservedTime`,
//! `lastTimestamp`, `deprecatedLastTimestamp`, `eventTime`, `firstTimestamp`,
//! `deprecatedFirstTimestamp`, `metadata.creationTimestamp`, in that order.
//!
//! Identity is `metadata.uid/count`. The API server updates one Event object in place when the
//! same thing happens again (it raises `count`, or `series.count`), so the uid alone would make
//! every repetition look like a redelivery. The `resourceVersion` would separate repetitions
//! too, but it also changes on writes that are not a new occurrence (label or annotation edits,
//! a re-sent update), which would then fire actions twice; the count changes exactly once per
//! occurrence. Without `count` or `series.count` (the first occurrence of an events.k8s.io
//! Event) the count is 1. Without a uid the Event's `namespace/name/count` is used, without a
//! name the record position.

use serde_json::{Map, Value};

use super::error::Misfit;
use super::{DecodeError, Origin, kind_of, str_field, time_field};
use crate::event::{Event, Format};

/// Whether a document is a Kubernetes Event; `Err` says why not.
pub(super) fn fits(value: &Value) -> Result<(), Misfit<'_>> {
    Misfit::check(
        value,
        |object| {
            object.get("kind").and_then(Value::as_str) == Some("Event")
                && involved(object).is_some()
        },
        why_not,
    )
}

fn why_not(value: &Value) -> String {
    let Value::Object(object) = value else {
        return format!("the value is {}, not a JSON object", kind_of(value));
    };
    match object.get("kind").and_then(Value::as_str) {
        Some("Event") => "it has neither an `involvedObject` (core/v1) nor a `regarding` \
                          (events.k8s.io/v1) object"
            .to_owned(),
        Some(kind) => format!("its `kind` is `{kind}`, not `Event`"),
        None => "it has no `kind: Event`".to_owned(),
    }
}

fn involved(object: &Map<String, Value>) -> Option<&Map<String, Value>> {
    ["involvedObject", "regarding"]
        .into_iter()
        .find_map(|name| object.get(name).and_then(Value::as_object))
}

/// The event of a Kubernetes Event object.
pub(super) fn build(value: Value, origin: &Origin<'_>) -> Result<Event, DecodeError> {
    let Value::Object(object) = &value else {
        return Err(origin.invalid(
            Format::KubernetesEvent,
            "(value)",
            format!("is {}, not a JSON object", kind_of(&value)),
        ));
    };
    let empty = Map::new();
    let metadata = object
        .get("metadata")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let series = object
        .get("series")
        .and_then(Value::as_object)
        .unwrap_or(&empty);

    let count = ["count", "deprecatedCount"]
        .into_iter()
        .filter_map(|name| object.get(name))
        .chain(series.get("count"))
        .filter_map(Value::as_u64)
        .max()
        .unwrap_or(1);
    let id = match (str_field(metadata, "uid"), str_field(metadata, "name")) {
        (Some(uid), _) => format!("{uid}/{count}"),
        (None, Some(name)) => {
            let namespace = str_field(metadata, "namespace").unwrap_or_default();
            format!("{namespace}/{name}/{count}")
        }
        (None, None) => origin.position_id(),
    };

    let candidates = [
        (series, "lastObservedTime", "series.lastObservedTime"),
        (object, "lastTimestamp", "lastTimestamp"),
        (object, "deprecatedLastTimestamp", "deprecatedLastTimestamp"),
        (object, "eventTime", "eventTime"),
        (object, "firstTimestamp", "firstTimestamp"),
        (
            object,
            "deprecatedFirstTimestamp",
            "deprecatedFirstTimestamp",
        ),
        (metadata, "creationTimestamp", "metadata.creationTimestamp"),
    ];
    let mut timestamp = None;
    for (map, name, path) in candidates {
        timestamp = time_field(map, name, path, Format::KubernetesEvent, origin)?;
        if timestamp.is_some() {
            break;
        }
    }

    let mut meta = origin.metadata(Format::KubernetesEvent, id, timestamp);
    meta.event_type = str_field(object, "reason").map(str::to_owned);
    let component = object
        .get("source")
        .and_then(Value::as_object)
        .and_then(|source| str_field(source, "component"));
    meta.source = component
        .or_else(|| str_field(object, "reportingComponent"))
        .or_else(|| str_field(object, "reportingController"))
        .map(str::to_owned);
    if let Some(target) = involved(object) {
        let summary: Map<String, Value> = ["kind", "namespace", "name"]
            .into_iter()
            .filter_map(|k| target.get(k).map(|v| (k.to_owned(), v.clone())))
            .collect();
        meta.attributes
            .insert("involvedObject".to_owned(), Value::Object(summary));
    }
    if let Some(kind) = str_field(object, "type") {
        meta.attributes
            .insert("type".to_owned(), Value::String(kind.to_owned()));
    }
    meta.attributes
        .insert("count".to_owned(), Value::from(count));
    Ok(Event {
        payload: value,
        meta,
    })
}
