//! Prometheus Alertmanager webhook notifications (payload version 4): one event per alert.
//!
//! Each alert's payload is the alert object with the notification's `groupLabels` and
//! `commonLabels` merged under its own `labels` (the alert's own value wins), `commonAnnotations`
//! merged under its `annotations`, its effective `status` (its own, else the notification's),
//! and the notification's `receiver` and `externalURL`. Attributes: `status`, `fingerprint`,
//! `receiver`, `groupKey`. The event type is the `alertname` label, the source the
//! `generatorURL`, the time `startsAt` for a firing alert and `endsAt` for a resolved one.
//!
//! Identity is `fingerprint/startsAt/status`: a redelivered notification gives the same id, the
//! same alert firing and then resolving gives two ids, and an alert that fires again later (a new
//! `startsAt`) is a new occurrence. An alert without `fingerprint` (a hand-written payload) gets
//! one derived from its sorted labels, so it still keeps one identity across notifications.
//!
//! A notification with an empty `alerts` list decodes to no event (not an error).

use std::fmt;

use chrono::{DateTime, SecondsFormat};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::error::Misfit;
use super::{DecodeError, Origin, kind_of, str_field, time_field};
use crate::event::{Event, Format};

/// Whether a document is an Alertmanager notification; `Err` says why not.
pub(super) fn fits(value: &Value) -> Result<(), Misfit<'_>> {
    Misfit::check(
        value,
        |object| {
            object.contains_key("version") && object.get("alerts").is_some_and(Value::is_array)
        },
        why_not,
    )
}

fn why_not(value: &Value) -> String {
    let Value::Object(object) = value else {
        return format!("the value is {}, not a JSON object", kind_of(value));
    };
    match object.get("alerts") {
        Some(Value::Array(_)) => "it has no `version` field".to_owned(),
        Some(other) => format!("its `alerts` is {}, not an array", kind_of(other)),
        None => "it has no `alerts` array".to_owned(),
    }
}

/// The notification's fields that every alert of it shares.
struct Group {
    labels: Map<String, Value>,
    annotations: Map<String, Value>,
    status: Option<String>,
    receiver: Option<String>,
    external_url: Option<String>,
    group_key: Option<String>,
}

/// One event per alert of the notification.
pub(super) fn build(value: Value, origin: &Origin<'_>) -> Result<Vec<Event>, DecodeError> {
    let invalid =
        |field: &str, problem: String| origin.invalid(Format::Alertmanager, field, problem);
    let Value::Object(mut notification) = value else {
        return Err(invalid(
            "(value)",
            format!("is {}, not a JSON object", kind_of(&value)),
        ));
    };
    let alerts = match notification.remove("alerts") {
        Some(Value::Array(alerts)) => alerts,
        Some(other) => {
            return Err(invalid(
                "alerts",
                format!("is {}, not an array", kind_of(&other)),
            ));
        }
        None => return Err(invalid("alerts", "is missing".to_owned())),
    };
    // Common labels are the labels every alert of the group shares, a superset of the group
    // labels, so they are applied second.
    let mut labels = string_map(&mut notification, "groupLabels", origin)?;
    labels.extend(string_map(&mut notification, "commonLabels", origin)?);
    let annotations = string_map(&mut notification, "commonAnnotations", origin)?;
    let text = |name: &str| str_field(&notification, name).map(str::to_owned);
    let group = Group {
        labels,
        annotations,
        status: text("status"),
        receiver: text("receiver"),
        external_url: text("externalURL"),
        group_key: text("groupKey"),
    };
    alerts
        .into_iter()
        .enumerate()
        .map(|(i, alert)| alert_event(alert, i, &group, origin))
        .collect()
}

fn alert_event(
    alert: Value,
    index: usize,
    group: &Group,
    origin: &Origin<'_>,
) -> Result<Event, DecodeError> {
    let path = |field: &'static str| AlertField { index, field };
    let Value::Object(mut alert) = alert else {
        return Err(origin.invalid(
            Format::Alertmanager,
            format!("alerts[{index}]"),
            format!("is {}, not an alert object", kind_of(&alert)),
        ));
    };
    let mut labels = group.labels.clone();
    labels.extend(take_map(&mut alert, "labels", path("labels"), origin)?);
    let mut annotations = group.annotations.clone();
    annotations.extend(take_map(
        &mut alert,
        "annotations",
        path("annotations"),
        origin,
    )?);
    let Some(status) = str_field(&alert, "status")
        .map(str::to_owned)
        .or_else(|| group.status.clone())
    else {
        return Err(origin.invalid(
            Format::Alertmanager,
            path("status").to_string(),
            "is missing, and the notification has no `status` either",
        ));
    };
    let starts_at = time_field(
        &alert,
        "startsAt",
        path("startsAt"),
        Format::Alertmanager,
        origin,
    )?;
    // Alertmanager writes the zero time `0001-01-01T00:00:00Z` for "not ended yet".
    let ends_at = time_field(
        &alert,
        "endsAt",
        path("endsAt"),
        Format::Alertmanager,
        origin,
    )?
    .filter(|t| *t > DateTime::UNIX_EPOCH);
    let timestamp = if status == "resolved" {
        ends_at.or(starts_at)
    } else {
        starts_at
    };
    let fingerprint = str_field(&alert, "fingerprint")
        .map(str::to_owned)
        .unwrap_or_else(|| derived_fingerprint(&labels));
    // Normalised so that `...:31.000Z` and `...:31Z` (both seen from Alertmanager versions) give
    // one identity.
    let starts = starts_at
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_default();
    let id = format!("{fingerprint}/{starts}/{status}");

    let mut meta = origin.metadata(Format::Alertmanager, id, timestamp);
    meta.event_type = labels
        .get("alertname")
        .and_then(Value::as_str)
        .map(str::to_owned);
    meta.source = str_field(&alert, "generatorURL").map(str::to_owned);
    let attributes = &mut meta.attributes;
    attributes.insert("status".to_owned(), Value::String(status.clone()));
    attributes.insert("fingerprint".to_owned(), Value::String(fingerprint));
    if let Some(receiver) = &group.receiver {
        attributes.insert("receiver".to_owned(), Value::String(receiver.clone()));
    }
    if let Some(key) = &group.group_key {
        attributes.insert("groupKey".to_owned(), Value::String(key.clone()));
    }

    alert.insert("labels".to_owned(), Value::Object(labels));
    alert.insert("annotations".to_owned(), Value::Object(annotations));
    alert.insert("status".to_owned(), Value::String(status));
    if let Some(receiver) = &group.receiver {
        alert.insert("receiver".to_owned(), Value::String(receiver.clone()));
    }
    if let Some(url) = &group.external_url {
        alert.insert("externalURL".to_owned(), Value::String(url.clone()));
    }
    Ok(Event {
        payload: Value::Object(alert),
        meta,
    })
}

/// A label or annotation map of the notification: absent or null is empty.
fn string_map(
    object: &mut Map<String, Value>,
    name: &'static str,
    origin: &Origin<'_>,
) -> Result<Map<String, Value>, DecodeError> {
    take_map(object, name, name, origin)
}

/// Takes a map out of `object` (it is put back merged, so no copy is needed).
fn take_map(
    object: &mut Map<String, Value>,
    name: &str,
    path: impl fmt::Display,
    origin: &Origin<'_>,
) -> Result<Map<String, Value>, DecodeError> {
    match object.remove(name) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(other) => Err(origin.invalid(
            Format::Alertmanager,
            path.to_string(),
            format!("is {}, not a map of names to values", kind_of(&other)),
        )),
    }
}

/// `alerts[i].field` in an error, worded only when one is reported.
struct AlertField {
    index: usize,
    field: &'static str,
}

impl fmt::Display for AlertField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "alerts[{}].{}", self.index, self.field)
    }
}

/// A stand-in for Alertmanager's fingerprint (a 64-bit hash of the label set): 16 hex digits of
/// SHA-256 over the labels in name order, so the same labels always give the same value.
fn derived_fingerprint(labels: &Map<String, Value>) -> String {
    let mut sorted: Vec<(&String, &Value)> = labels.iter().collect();
    sorted.sort_by_key(|(name, _)| *name);
    let mut hasher = Sha256::new();
    for (name, value) in sorted {
        hasher.update(name.as_bytes());
        hasher.update([0xff]); // A byte that never occurs in UTF-8 separates name and value.
        match value {
            Value::String(s) => hasher.update(s.as_bytes()),
            other => hasher.update(other.to_string().as_bytes()),
        }
        hasher.update([0xfe]);
    }
    hex::encode(&hasher.finalize()[..8])
}
