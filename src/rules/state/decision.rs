//! What a behaviour decides for an event ([`Decision`]) and what a firing carries ([`Firing`],
//! [`MatchInfo`]).

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::Event;

/// What a firing carries to templates (`match.*`). Serializable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MatchInfo {
    /// The rendered group key; `None` when the rule has no key template (or is stateless).
    pub key: Option<String>,
    /// How many events the firing stands for: 1 for stateless and `once_within` rules, the burst
    /// size for `once_after`, the threshold count, the number of correlated steps, the number of
    /// triggering events seen while an absence was armed.
    pub count: u64,
    /// When the first of those events arrived (the caller's `now` at the time).
    pub first_at: Option<DateTime<Utc>>,
    /// Correlation: step name -> payload of the event that satisfied it.
    pub events: BTreeMap<String, serde_json::Value>,
}

/// One decision to fire: the triggering event (for idempotency + templates) and match info.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Firing {
    /// The event the actions are planned for: its id makes the idempotency key and templates see
    /// it as `event` / `meta`.
    pub event: Event,
    /// What templates see as `match`.
    pub info: MatchInfo,
}

/// What a behaviour made of one event: fire now, or why not (for `reflex replay --explain`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[expect(
    clippy::large_enum_variant,
    reason = "a decision is returned once per event and consumed at once; boxing the firing \
              would cost an allocation per firing and make it awkward to match on"
)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Plan the rule's actions now.
    Fire(Firing),
    /// The event is not relevant: the rule's condition did not hold (and, for correlate and
    /// absence, no step or `expect` matched either).
    NoMatch,
    /// `throttle.once_within`: the key already fired; events are suppressed until `until`.
    Suppressed {
        /// The group key.
        key: String,
        /// When the suppression ends.
        until: DateTime<Utc>,
    },
    /// `throttle.once_after`: the event was counted into the key's burst, which fires at `due`.
    Buffered {
        /// The group key.
        key: String,
        /// Events in the burst so far, this one included.
        count: u64,
        /// When the burst fires.
        due: DateTime<Utc>,
    },
    /// `threshold`: not enough events in the window yet.
    Counting {
        /// The group key.
        key: String,
        /// Events in the window, this one included.
        seen: u64,
        /// Events needed to fire.
        needed: u64,
    },
    /// `correlate`: some steps are still missing.
    Waiting {
        /// The group key.
        key: String,
        /// Steps seen within the window, in rule order.
        seen: Vec<String>,
        /// Steps still missing, in rule order.
        missing: Vec<String>,
        /// When the oldest seen step drops out of the window.
        expires: DateTime<Utc>,
    },
    /// `absence`: the key is armed and fires at `deadline` unless the expected event arrives.
    Armed {
        /// The group key.
        key: String,
        /// When the absence fires.
        deadline: DateTime<Utc>,
        /// Triggering events seen while armed, this one included (1 = newly armed). Re-arming
        /// does not move the deadline.
        triggers: u64,
    },
    /// `absence`: the expected event arrived in time; the key is disarmed.
    Disarmed {
        /// The group key.
        key: String,
    },
    /// `absence`: the expected event arrived but nothing was waiting for it.
    NotArmed {
        /// The group key.
        key: String,
    },
    /// `absence`: the expected event arrived after the deadline, before the timer fired; the
    /// absence still fires on the next tick.
    Late {
        /// The group key.
        key: String,
        /// The deadline that had already passed.
        deadline: DateTime<Utc>,
    },
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Fire(firing) => match &firing.info.key {
                Some(key) => write!(f, "fired for key `{key}` (count {})", firing.info.count),
                None => write!(f, "fired (count {})", firing.info.count),
            },
            Decision::NoMatch => f.write_str("condition did not hold"),
            Decision::Suppressed { key, until } => write!(
                f,
                "throttled: key `{key}` already fired, suppressed until {}",
                until.to_rfc3339()
            ),
            Decision::Buffered { key, count, due } => write!(
                f,
                "buffered: key `{key}` has {count} event(s), fires at {}",
                due.to_rfc3339()
            ),
            Decision::Counting { key, seen, needed } => {
                write!(
                    f,
                    "counting: key `{key}` has {seen} of {needed} event(s) in the window"
                )
            }
            Decision::Waiting {
                key,
                seen,
                missing,
                expires,
            } => write!(
                f,
                "correlating: key `{key}` has seen [{}], still missing [{}], window ends {}",
                seen.join(", "),
                missing.join(", "),
                expires.to_rfc3339()
            ),
            Decision::Armed {
                key,
                deadline,
                triggers,
            } => write!(
                f,
                "armed: key `{key}` fires at {} unless the expected event arrives \
                 ({triggers} trigger(s))",
                deadline.to_rfc3339()
            ),
            Decision::Disarmed { key } => {
                write!(f, "disarmed: the expected event arrived for key `{key}`")
            }
            Decision::NotArmed { key } => {
                write!(
                    f,
                    "expected event for key `{key}`, but nothing was waiting for it"
                )
            }
            Decision::Late { key, deadline } => write!(
                f,
                "expected event for key `{key}` arrived after the deadline {}; the absence fires",
                deadline.to_rfc3339()
            ),
        }
    }
}
