//! Stateful behaviour: throttle, threshold, correlation and absence windows per group key.
//!
//! A rule has at most one stateful block. [`Behaviour::compile`] turns it into a [`Behaviour`];
//! the engine keeps one [`RuleState`] per rule and drives it with three calls:
//! [`Behaviour::on_event`] for each event that passed the rule's selector,
//! [`Behaviour::on_resolved`] for each resolved Alertmanager alert, and [`Behaviour::on_tick`]
//! whenever [`Behaviour::next_deadline`] has passed.
//!
//! Time is always the `now` the caller passes in: windows, deadlines and `match.first_at` are
//! measured in it, never in the wall clock or in event timestamps. The engine decides what `now`
//! means (processing time live, event time in replay), and tests stay deterministic.
//!
//! Semantics shared by every behaviour:
//! - State is kept per *group key*, the rule's `key` template rendered for the event. No template
//!   means one key (`""`) for the whole rule, and `match.key` is then null.
//! - Windows are half-open: an entry recorded at `t` with window `W` is live while `now < t + W`.
//! - Deadlines (`once_after`, `absence`) fire from [`Behaviour::on_tick`] only. The engine should
//!   tick whenever `next_deadline() <= now` *before* handing over an event at that `now`; if it
//!   does not, an overdue `once_after` burst still counts the late event and an overdue `absence`
//!   is not disarmed by a late `expect` (see [`Decision::Late`]).
//! - The number of keys is bounded by [`Limits::max_keys`]; a new key beyond it evicts the least
//!   recently updated key (its pending burst or timeout is lost) and counts it in
//!   [`RuleState::evictions`].
//! - Events kept for later (`once_after` samples, correlation steps, the event that armed an
//!   absence) are bounded by [`MAX_STORED_EVENT_BYTES`]; a larger one is refused with
//!   [`StateError::EventTooLarge`] and changes nothing.
//! - A [`RuleState`] records which keys changed ([`RuleState::take_changed_keys`]), so the
//!   pipeline serializes and saves those keys only: a record's cost does not grow with the
//!   number of keys a rule holds. A call that turns an event away (its condition failed, no step
//!   or `expect` matched) changes no key.

pub mod absence;
pub mod correlate;
mod decision;
mod keying;
mod limits;
mod persist;
mod store;
pub mod threshold;
pub mod throttle;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::diagnostic::Diagnostics;
use super::model::{self, SpannedString};
use crate::event::Event;
pub use decision::{Decision, Firing, MatchInfo};
use keying::Keying;
pub use limits::{Limits, MAX_STORED_EVENT_BYTES};
use limits::{keep, too_large};
pub use persist::UnreadableKey;
use store::KeyStore;

/// Why a behaviour could not handle an event. The engine records it for the rule; nothing panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The group key template failed for this event (e.g. a label it uses is missing).
    #[error("rule `{rule}`: group key could not be rendered: {message}")]
    KeyRender {
        /// The rule.
        rule: String,
        /// The template error.
        message: String,
    },
    /// The event would be kept in state but is larger than [`MAX_STORED_EVENT_BYTES`].
    #[error(
        "rule `{rule}`: `{block}` keeps the event until its window ends, but the event is more \
         than {MAX_STORED_EVENT_BYTES} bytes of JSON, the most a stateful rule keeps per event; \
         keep such events out of the rule with `select:` or `when:` (nothing was counted for \
         this event)"
    )]
    EventTooLarge {
        /// The rule.
        rule: String,
        /// The stateful block that keeps events (`throttle`, `correlate`, `absence`).
        block: &'static str,
    },
    /// The group key rendered longer than [`MAX_KEY_LEN`].
    #[error(
        "rule `{rule}`: group key is {len} bytes long (at most {MAX_KEY_LEN}); \
         key on names (namespace, workload), not on whole payloads"
    )]
    KeyTooLong {
        /// The rule.
        rule: String,
        /// The rendered length in bytes.
        len: usize,
    },
}

/// Longest group key accepted, in bytes. Keys are names such as `namespace/deployment`
/// (Kubernetes names are at most 253 characters); a longer key is almost certainly a template
/// that renders a payload, and every key is held in memory and persisted.
pub const MAX_KEY_LEN: usize = 1024;

/// The state of one group key. Tagged so persisted state says what it is, and so state restored
/// for a rule whose stateful block changed kind is recognised and dropped.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum KeyState {
    /// `throttle.once_within`: fired, suppressing.
    Suppressed(throttle::Suppression),
    /// `throttle.once_after`: a burst waiting for its deadline.
    Burst(throttle::Burst),
    /// `threshold`: recent matching events.
    Threshold(threshold::Hits),
    /// `correlate`: steps seen so far.
    Correlate(correlate::Partial),
    /// `absence`: waiting for the expected event.
    Armed(absence::Armed),
}

impl KeyState {
    /// The events this state keeps.
    fn events(&self) -> Vec<&Event> {
        match self {
            KeyState::Suppressed(_) | KeyState::Threshold(_) => Vec::new(),
            KeyState::Burst(burst) => burst.events().collect(),
            KeyState::Correlate(partial) => partial.events().collect(),
            KeyState::Armed(armed) => vec![armed.event()],
        }
    }
}

/// Per-rule mutable state. Serializable (serde_json) so the pipeline can persist it and restore
/// it across restarts; deadlines are stored as absolute times, so a restored state keeps them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RuleState {
    /// Per-key state, least recently updated first.
    keys: KeyStore<KeyState>,
    /// Keys evicted because the rule reached [`Limits::max_keys`].
    #[serde(default)]
    pub evictions: u64,
}

impl RuleState {
    /// Empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of group keys holding state.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key holds state.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys holding state, least recently updated first (for explain and debugging).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.keys.keys()
    }

    /// True when `key` holds state.
    pub fn holds(&self, key: &str) -> bool {
        self.keys.entry(key).is_some()
    }

    /// The next deadline of `key` (when a burst or absence fires or its window expires), if
    /// the key holds state that has one.
    pub fn deadline_of(&self, key: &str) -> Option<DateTime<Utc>> {
        self.keys.entry(key).and_then(|(deadline, _)| deadline)
    }

    /// The keys whose state changed (set, updated, removed, expired, fired or evicted) since
    /// the last call, forgetting them: keys holding state least recently updated first, then
    /// keys removed. A key not listed has exactly the state it had at the previous call.
    pub fn take_changed_keys(&mut self) -> Vec<String> {
        self.keys.take_changed()
    }

    /// Earliest time [`Behaviour::on_tick`] has something to do (fire or expire), if any.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.keys.next_deadline()
    }

    /// Stores `value` under `key` as the most recently updated key, evicting (and counting) the
    /// least recently updated one if the rule is at its key bound.
    fn put(
        &mut self,
        key: String,
        value: KeyState,
        deadline: Option<DateTime<Utc>>,
        limits: &Limits,
    ) {
        if self.keys.insert(key, value, deadline, limits.keys()) {
            self.evictions += 1;
        }
    }
}

/// Compiled behaviour of one rule. Clone + Debug + Send + Sync.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// No stateful block: every matching event fires.
    Stateless,
    /// `throttle`: `once_within` or `once_after`.
    Throttle(throttle::Throttle),
    /// `threshold`: N events within a window.
    Threshold(threshold::Threshold),
    /// `correlate`: all named steps within a window.
    Correlate(correlate::Correlate),
    /// `absence`: a trigger not followed by the expected event within a window.
    Absence(absence::Absence),
}

impl Behaviour {
    /// Validates and compiles the rule's stateful block: at most one block; windows longer than
    /// zero; `count` at least 1; correlation needs at least two uniquely named steps; each step
    /// has `when` and/or `condition`; key templates compile in the key scope. Pushes every
    /// problem and returns `None` if there was any.
    pub fn compile(rule: &model::Rule, diags: &mut Diagnostics) -> Option<Behaviour> {
        let name = rule.name.value.as_str();
        let mut blocks = Vec::new();
        if let Some(t) = &rule.throttle {
            let at = [&t.once_within, &t.once_after, &t.key]
                .into_iter()
                .flatten()
                .next()
                .map_or(rule.name.referenced, |s| s.referenced);
            blocks.push(("throttle", at));
        }
        if let Some(t) = &rule.threshold {
            blocks.push(("threshold", t.within.referenced));
        }
        if let Some(c) = &rule.correlate {
            blocks.push(("correlate", c.key.referenced));
        }
        if let Some(a) = &rule.absence {
            blocks.push(("absence", a.key.referenced));
        }
        let mut ok = true;
        if blocks.len() > 1 {
            let names: Vec<String> = blocks.iter().map(|(n, _)| format!("`{n}`")).collect();
            diags.error(
                blocks[1].1,
                format!(
                    "the rule has {}; a rule may have at most one of `throttle`, `threshold`, \
                     `correlate`, `absence`",
                    names.join(" and ")
                ),
                Some("split it into one rule per stateful block".to_owned()),
            );
            ok = false;
        }
        // Compile every block present, even after the error above, so all problems are reported.
        let mut compiled = None;
        if let Some(t) = &rule.throttle {
            compiled = throttle::Throttle::compile(name, rule, t, diags).map(Behaviour::Throttle);
            ok &= compiled.is_some();
        }
        if let Some(t) = &rule.threshold {
            compiled = threshold::Threshold::compile(name, t, diags).map(Behaviour::Threshold);
            ok &= compiled.is_some();
        }
        if let Some(c) = &rule.correlate {
            compiled = correlate::Correlate::compile(name, c, diags).map(Behaviour::Correlate);
            ok &= compiled.is_some();
        }
        if let Some(a) = &rule.absence {
            compiled = absence::Absence::compile(name, a, diags).map(Behaviour::Absence);
            ok &= compiled.is_some();
        }
        if !ok {
            return None;
        }
        Some(compiled.unwrap_or(Behaviour::Stateless))
    }

    /// True for rules without a stateful block (they keep no [`RuleState`]).
    pub fn is_stateless(&self) -> bool {
        matches!(self, Behaviour::Stateless)
    }

    /// The block's name as written in rule files (`throttle`, ...), or `stateless`.
    pub fn kind(&self) -> &'static str {
        match self {
            Behaviour::Stateless => "stateless",
            Behaviour::Throttle(_) => "throttle",
            Behaviour::Threshold(_) => "threshold",
            Behaviour::Correlate(_) => "correlate",
            Behaviour::Absence(_) => "absence",
        }
    }

    /// The group key `event` falls in, for a rule with state (`None` for a stateless rule, or
    /// the error the key template gives). The pipeline locks this key before the event is
    /// handed to [`Behaviour::on_event`], so one key is decided by one process at a time.
    pub fn key_of(&self, event: &Event) -> Option<Result<String, StateError>> {
        let keying = match self {
            Behaviour::Stateless => return None,
            Behaviour::Throttle(t) => &t.keying,
            Behaviour::Threshold(t) => &t.keying,
            Behaviour::Correlate(c) => &c.keying,
            Behaviour::Absence(a) => &a.keying,
        };
        Some(keying.render(event))
    }

    /// Whether [`Behaviour::on_event`] may read or change a key for this event (`main_matched`
    /// as there): throttle, threshold and correlate look only at events whose condition held;
    /// absence also at events its `expect` matches.
    pub fn reaches_state(&self, event: &Event, main_matched: bool) -> bool {
        match self {
            Behaviour::Stateless => false,
            Behaviour::Throttle(_) | Behaviour::Threshold(_) | Behaviour::Correlate(_) => {
                main_matched
            }
            Behaviour::Absence(a) => main_matched || a.expects(event),
        }
    }

    /// The event passed the rule's selector; `main_matched` says whether the rule's own condition
    /// held (`true` when it has none).
    ///
    /// Throttle and threshold only look at events whose condition held. Correlate requires it too
    /// (the rule's condition filters every step) and then checks each step. Absence treats the
    /// rule's condition as the trigger and checks `expect` on every event.
    pub fn on_event(
        &self,
        state: &mut RuleState,
        event: &Event,
        main_matched: bool,
        now: DateTime<Utc>,
        limits: &Limits,
    ) -> Result<Decision, StateError> {
        match self {
            Behaviour::Stateless => Ok(if main_matched {
                Decision::Fire(Firing {
                    event: event.clone(),
                    info: MatchInfo {
                        key: None,
                        count: 1,
                        first_at: Some(now),
                        events: BTreeMap::new(),
                    },
                })
            } else {
                Decision::NoMatch
            }),
            Behaviour::Throttle(t) => t.on_event(state, event, main_matched, now, limits),
            Behaviour::Threshold(t) => t.on_event(state, event, main_matched, now, limits),
            Behaviour::Correlate(c) => c.on_event(state, event, main_matched, now, limits),
            Behaviour::Absence(a) => a.on_event(state, event, main_matched, now, limits),
        }
    }

    /// A resolved Alertmanager alert with this fingerprint: removes its contributions to pending
    /// threshold counts and `once_after` bursts; an entry left with no contributions is dropped.
    /// Returns how many pending entries were dropped (firings that will no longer happen).
    pub fn on_resolved(&self, state: &mut RuleState, fingerprint: &str) -> usize {
        let mut cancelled = 0;
        for key in state.keys.keys().map(str::to_owned).collect::<Vec<_>>() {
            let Some(value) = state.keys.get_mut(&key) else {
                continue;
            };
            let outcome = match (self, value) {
                (Behaviour::Throttle(_), KeyState::Burst(burst)) => burst.resolve(fingerprint),
                (Behaviour::Threshold(t), KeyState::Threshold(hits)) => {
                    hits.resolve(fingerprint, t.within())
                }
                _ => Resolved::Untouched,
            };
            match outcome {
                Resolved::Untouched => {}
                Resolved::Reduced(deadline) => state.keys.set_deadline(&key, deadline),
                Resolved::Emptied => {
                    state.keys.remove(&key);
                    cancelled += 1;
                }
            }
        }
        cancelled
    }

    /// Time passes: fires due `once_after` bursts and due `absence` timeouts, and expires entries
    /// whose window has passed. Firings come out in deadline order.
    pub fn on_tick(&self, state: &mut RuleState, now: DateTime<Utc>) -> Vec<Firing> {
        let mut firings = Vec::new();
        for key in state.keys.due(now) {
            let Some(value) = state.keys.remove(&key) else {
                continue;
            };
            match (self, value) {
                (Behaviour::Throttle(t), KeyState::Burst(burst)) => {
                    firings.extend(t.fire_burst(&key, burst));
                }
                (Behaviour::Absence(a), KeyState::Armed(armed)) => {
                    firings.push(a.fire(&key, armed));
                }
                (Behaviour::Threshold(t), KeyState::Threshold(mut hits)) => {
                    if let Some(deadline) = hits.expire(now, t.within()) {
                        state
                            .keys
                            .restore(key, KeyState::Threshold(hits), Some(deadline));
                    }
                }
                (Behaviour::Correlate(c), KeyState::Correlate(mut partial)) => {
                    if let Some(deadline) = partial.expire(now, c.within()) {
                        state
                            .keys
                            .restore(key, KeyState::Correlate(partial), Some(deadline));
                    }
                }
                // A `once_within` suppression that ended, or state left by an earlier version of
                // the rule with a different stateful block: drop it.
                _ => {}
            }
        }
        firings
    }
}

/// What removing a resolved alert's contributions did to one entry.
enum Resolved {
    /// The fingerprint did not contribute.
    Untouched,
    /// Contributions were removed; the entry remains, with this deadline.
    Reduced(Option<DateTime<Utc>>),
    /// Nothing remains: drop the entry.
    Emptied,
}

/// `t + d`, saturating at the end of chrono's range. The engine's clock is the wall clock in
/// `reflex run` but the event time in `reflex replay`, which can be near the end of the range,
/// where `+` would panic; a deadline at the end of time simply never comes.
pub(crate) fn later(t: DateTime<Utc>, d: chrono::Duration) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Checks that a window is longer than zero, pushing a diagnostic if not.
fn compile_window(
    src: &SpannedString,
    what: &str,
    diags: &mut Diagnostics,
) -> Option<chrono::Duration> {
    let d = super::duration::compile(src, diags)?;
    if d <= chrono::Duration::zero() {
        diags.error(
            src.referenced,
            format!("`{what}` must be longer than zero"),
            Some("write a window such as `30s`, `5m` or `1h`".to_owned()),
        );
        return None;
    }
    Some(d)
}
