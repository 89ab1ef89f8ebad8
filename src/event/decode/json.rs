//! Plain JSON: any document no more specific decoder claimed, taken as it is.
//!
//! Identity is the record position `topic/partition/offset` (the document has no id Reflex can
//! trust to be unique); the event type is a top-level string `type`, if there is one; the time is
//! the record time.

use serde_json::Value;

use super::Origin;
use crate::event::{Event, Format};

/// The event for a plain JSON document (any JSON value, not only objects).
pub(super) fn build(value: Value, origin: &Origin<'_>) -> Event {
    let mut meta = origin.metadata(Format::Json, origin.position_id(), None);
    meta.event_type = value.get("type").and_then(Value::as_str).map(str::to_owned);
    Event {
        payload: value,
        meta,
    }
}
