//! Falco alerts, as Falco's JSON output or Falcosidekick forward them.
//!
//! The payload is the whole alert (`output`, `priority`, `rule`, `time`, `output_fields`,
//! `source`, `tags`, `hostname`). The event type is the `rule`, the source Falco's `source`
//! (`syscall`, `k8saudit`...) else the `hostname`, the time `time`. Attributes: `priority`,
//! `hostname`, `source` and `tags`, when present.
//!
//! Identity is the `uuid` Falcosidekick adds; Falco's own output has none, and then the record
//! position `topic/partition/offset` is used.

use serde_json::{Map, Value};

use super::error::{Misfit, quoted_list};
use super::{DecodeError, Origin, kind_of, str_field, time_field};
use crate::event::{Event, Format};

/// The fields that make a document a Falco alert.
const REQUIRED: [&str; 3] = ["rule", "priority", "output"];

/// Whether a document is a Falco alert; `Err` says why not.
pub(super) fn fits(value: &Value) -> Result<(), Misfit<'_>> {
    Misfit::check(value, |object| missing(object).next().is_none(), why_not)
}

/// The required fields a document lacks (absent or not strings).
fn missing(object: &Map<String, Value>) -> impl Iterator<Item = &'static str> + '_ {
    REQUIRED
        .into_iter()
        .filter(|name| !object.get(*name).is_some_and(Value::is_string))
}

fn why_not(value: &Value) -> String {
    match value {
        Value::Object(object) => format!(
            "the Falco field(s) {} are missing or not strings",
            quoted_list(&missing(object).collect::<Vec<_>>())
        ),
        other => format!("the value is {}, not a JSON object", kind_of(other)),
    }
}

/// The event of a Falco alert.
pub(super) fn build(value: Value, origin: &Origin<'_>) -> Result<Event, DecodeError> {
    let Value::Object(object) = &value else {
        return Err(origin.invalid(
            Format::Falco,
            "(value)",
            format!("is {}, not a JSON object", kind_of(&value)),
        ));
    };
    let timestamp = time_field(object, "time", "time", Format::Falco, origin)?;
    let id = str_field(object, "uuid").map_or_else(|| origin.position_id(), str::to_owned);
    let mut meta = origin.metadata(Format::Falco, id, timestamp);
    meta.event_type = str_field(object, "rule").map(str::to_owned);
    meta.source = str_field(object, "source")
        .or_else(|| str_field(object, "hostname"))
        .map(str::to_owned);
    for name in ["priority", "hostname", "source", "tags"] {
        if let Some(v) = object.get(name).filter(|v| !v.is_null()) {
            meta.attributes.insert(name.to_owned(), v.clone());
        }
    }
    Ok(Event {
        payload: value,
        meta,
    })
}
