//! What a stateful rule may keep: the events it stores (bounded in size) and its keys and
//! events per key (bounded in number).

use super::StateError;
use crate::event::Event;

/// Most bytes of JSON (payload and metadata) an event kept in state may take.
///
/// `once_after` keeps up to `max_events_per_key + 1` events per key, `correlate` one per step,
/// `absence` the arming event, for up to `max_keys` keys, and the pipeline holds each key's
/// saved document besides. Events may reach the decode limit (1 MiB): 10,000 armed keys would
/// then hold 10 GiB twice over. 64 KiB, the most a template may render
/// ([`crate::rules::template::MAX_OUTPUT`]), is far above the alerts and Kubernetes Events
/// stateful rules are written for (1–5 KB) and bounds 10,000 keys of one event to 640 MiB.
///
/// Why a bound rather than keeping only the fields the actions' templates read: templates may
/// read whole objects (`{{ event | tojson }}`, `{% for k, v in event.labels | items %}`) or
/// computed paths, so a projection could silently drop what a template needs at firing time,
/// minutes later; a bound fails at once, for the event concerned, with an error saying why.
pub const MAX_STORED_EVENT_BYTES: usize = 64 * 1024;

/// A copy of `event` to keep in the state of `rule`'s `block`, or the error saying it is larger
/// than [`MAX_STORED_EVENT_BYTES`].
pub(super) fn keep(event: &Event, rule: &str, block: &'static str) -> Result<Event, StateError> {
    if too_large(event) {
        return Err(StateError::EventTooLarge {
            rule: rule.to_owned(),
            block,
        });
    }
    Ok(event.clone())
}

/// True when `event` serializes to more than [`MAX_STORED_EVENT_BYTES`] of JSON. Serialization
/// stops at the bound, so the check costs at most that much work whatever the event's size.
pub(super) fn too_large(event: &Event) -> bool {
    /// A writer that fails once more than its budget has been written.
    struct Budget(usize);
    impl std::io::Write for Budget {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 = self
                .0
                .checked_sub(buf.len())
                .ok_or_else(|| std::io::Error::other("over the bound"))?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(Budget(MAX_STORED_EVENT_BYTES), event).is_err()
}

/// Bounds on the state one rule may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Distinct group keys per rule. A key template that accidentally includes something unique
    /// (an event id, a timestamp) would otherwise grow the state without end; beyond the bound
    /// the least recently updated key is evicted and counted.
    pub max_keys: usize,
    /// Distinct alerts a `once_after` burst tracks per key, keeping each one's first event, so a
    /// resolved alert can take its contributions back and the trigger can move to a live alert.
    /// Further alerts are still counted but can no longer be cancelled one by one (the burst
    /// keeps at most this many events plus one). Correlation keeps exactly one event per step,
    /// bounded by [`correlate::MAX_STEPS`]; threshold keeps timestamps only, bounded by
    /// [`threshold::MAX_COUNT`]; absence keeps the arming event.
    pub max_events_per_key: usize,
}

impl Default for Limits {
    /// 10 000 keys covers one key per workload in a large cluster; 16 distinct alerts per burst
    /// covers a deployment's pods flapping together, while keeping memory per key to a few
    /// events.
    fn default() -> Self {
        Self {
            max_keys: 10_000,
            max_events_per_key: 16,
        }
    }
}

impl Limits {
    /// `max_keys`, at least 1 (a rule with state needs somewhere to keep it).
    pub(super) fn keys(&self) -> usize {
        self.max_keys.max(1)
    }

    /// `max_events_per_key`, at least 1 (a burst must keep its trigger).
    pub(super) fn events(&self) -> usize {
        self.max_events_per_key.max(1)
    }
}
