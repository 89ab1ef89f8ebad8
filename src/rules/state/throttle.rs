//! `throttle`: fire once per window per key (`once_within`), or once for a whole burst after it
//! has had time to build up (`once_after`).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::later;
use super::{
    Decision, Firing, KeyState, Keying, Limits, MatchInfo, Resolved, RuleState, StateError,
    compile_window, keep,
};
use crate::event::Event;
use crate::rules::diagnostic::Diagnostics;
use crate::rules::model;

/// Compiled `throttle` block.
#[derive(Debug, Clone)]
pub struct Throttle {
    pub(super) keying: Keying,
    mode: Mode,
}

/// The two throttling modes; a block has exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Fire on the first event, then suppress the key for the window.
    OnceWithin(Duration),
    /// Open a burst on the first event; fire once when the window after it ends.
    OnceAfter(Duration),
}

/// `once_within` state of a key: it fired and is suppressed until `until`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Suppression {
    fired_at: DateTime<Utc>,
    until: DateTime<Utc>,
    /// Events suppressed since the firing (for explain and debugging).
    suppressed: u64,
}

/// `once_after` state of a key: an open burst.
///
/// Contributions are tracked per alert fingerprint so a resolved alert can take its share back.
/// Events without a fingerprint, and alerts beyond [`Limits::max_events_per_key`] distinct
/// fingerprints, are counted in `uncancellable`. Stored events: the first event of each tracked
/// fingerprint plus the first uncancellable event, so at most `max_events_per_key + 1`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Burst {
    first_at: DateTime<Utc>,
    due: DateTime<Utc>,
    /// Events per tracked alert fingerprint.
    by_fingerprint: BTreeMap<String, u64>,
    /// Events that cannot be cancelled by a resolved alert.
    uncancellable: u64,
    /// Set once a fingerprint could not be tracked; from then on no new fingerprint is tracked,
    /// so an alert already counted as uncancellable is never also tracked (resolving it would
    /// then remove the only uncancellable sample).
    #[serde(default)]
    overflowed: bool,
    /// In arrival order: the first event of each tracked fingerprint and the first uncancellable
    /// event. The trigger is the earliest one still live; never empty while the count is not 0.
    samples: Vec<Event>,
}

impl Burst {
    /// An empty burst opened at `now`; [`Burst::add`] gives it its first event.
    fn open(now: DateTime<Utc>, window: Duration) -> Self {
        Self {
            first_at: now,
            due: later(now, window),
            by_fingerprint: BTreeMap::new(),
            uncancellable: 0,
            overflowed: false,
            samples: Vec::new(),
        }
    }

    /// The events kept as samples.
    pub(super) fn events(&self) -> impl Iterator<Item = &Event> {
        self.samples.iter()
    }

    /// Events in the burst.
    fn count(&self) -> u64 {
        self.uncancellable + self.by_fingerprint.values().sum::<u64>()
    }

    /// Counts `event` into the burst, keeping it as a sample when it may become the trigger.
    /// An event to keep that is above the bound is refused and changes nothing; an event only
    /// counted is never refused.
    fn add(&mut self, event: &Event, limit: usize, rule: &str) -> Result<(), StateError> {
        if let Some(fp) = event.alert_fingerprint() {
            if let Some(n) = self.by_fingerprint.get_mut(fp) {
                *n += 1;
                return Ok(());
            }
            if !self.overflowed && self.by_fingerprint.len() < limit {
                let sample = keep(event, rule, "throttle")?;
                self.by_fingerprint.insert(fp.to_owned(), 1);
                self.samples.push(sample);
                return Ok(());
            }
        }
        // One uncancellable sample is enough: it is never removed, so later ones could never
        // become the trigger.
        if self.uncancellable == 0 {
            self.samples.push(keep(event, rule, "throttle")?);
        }
        if event.alert_fingerprint().is_some() {
            self.overflowed = true;
        }
        self.uncancellable += 1;
        Ok(())
    }

    pub(super) fn resolve(&mut self, fingerprint: &str) -> Resolved {
        if self.by_fingerprint.remove(fingerprint).is_none() {
            return Resolved::Untouched;
        }
        self.samples
            .retain(|e| e.alert_fingerprint() != Some(fingerprint));
        if self.count() == 0 {
            Resolved::Emptied
        } else {
            Resolved::Reduced(Some(self.due))
        }
    }
}

impl Throttle {
    pub(super) fn compile(
        rule_name: &str,
        rule: &model::Rule,
        block: &model::Throttle,
        diags: &mut Diagnostics,
    ) -> Option<Self> {
        let keying = Keying::compile(rule_name, block.key.as_ref(), diags);
        let mode = match (&block.once_within, &block.once_after) {
            (Some(w), None) => {
                compile_window(w, "throttle.once_within", diags).map(Mode::OnceWithin)
            }
            (None, Some(w)) => compile_window(w, "throttle.once_after", diags).map(Mode::OnceAfter),
            (Some(_), Some(after)) => {
                diags.error(
                    after.referenced,
                    "`throttle` has both `once_within` and `once_after`",
                    Some(
                        "use `once_within` to fire on the first event and suppress the rest, or \
                         `once_after` to fire once per burst after it settles"
                            .to_owned(),
                    ),
                );
                None
            }
            (None, None) => {
                let at = block
                    .key
                    .as_ref()
                    .map_or(rule.name.referenced, |k| k.referenced);
                diags.error(
                    at,
                    "`throttle` needs `once_within` or `once_after`",
                    Some("e.g. `throttle: {once_within: 10m}`".to_owned()),
                );
                None
            }
        };
        Some(Self {
            keying: keying?,
            mode: mode?,
        })
    }

    pub(super) fn on_event(
        &self,
        state: &mut RuleState,
        event: &Event,
        main_matched: bool,
        now: DateTime<Utc>,
        limits: &Limits,
    ) -> Result<Decision, StateError> {
        if !main_matched {
            return Ok(Decision::NoMatch);
        }
        let key = self.keying.render(event)?;
        let previous = state.keys.remove(&key);
        match self.mode {
            Mode::OnceWithin(window) => {
                if let Some(KeyState::Suppressed(mut s)) = previous
                    && now < s.until
                {
                    s.suppressed += 1;
                    let until = s.until;
                    state.put(key.clone(), KeyState::Suppressed(s), Some(until), limits);
                    return Ok(Decision::Suppressed { key, until });
                }
                let until = later(now, window);
                let suppression = Suppression {
                    fired_at: now,
                    until,
                    suppressed: 0,
                };
                state.put(
                    key.clone(),
                    KeyState::Suppressed(suppression),
                    Some(until),
                    limits,
                );
                Ok(Decision::Fire(Firing {
                    event: event.clone(),
                    info: MatchInfo {
                        key: self.keying.label(&key),
                        count: 1,
                        first_at: Some(now),
                        events: BTreeMap::new(),
                    },
                }))
            }
            Mode::OnceAfter(window) => {
                // An overdue burst (the engine has not ticked yet) still takes the event: it has
                // not fired, and opening a second burst would lose the first.
                let mut burst = match previous {
                    Some(KeyState::Burst(burst)) => burst,
                    _ => Burst::open(now, window),
                };
                if let Err(err) = burst.add(event, limits.events(), &self.keying.rule) {
                    // Put an open burst back as it was: the refused event counts for nothing.
                    if burst.count() > 0 {
                        let due = burst.due;
                        state.keys.restore(key, KeyState::Burst(burst), Some(due));
                    }
                    return Err(err);
                }
                let (count, due) = (burst.count(), burst.due);
                state.put(key.clone(), KeyState::Burst(burst), Some(due), limits);
                Ok(Decision::Buffered { key, count, due })
            }
        }
    }

    /// The firing of a due burst: the earliest live sample as trigger, the burst size as count.
    pub(super) fn fire_burst(&self, key: &str, burst: Burst) -> Option<Firing> {
        if !matches!(self.mode, Mode::OnceAfter(_)) {
            return None;
        }
        let count = burst.count();
        let first_at = burst.first_at;
        // Never empty while count > 0 (see `Burst::samples`); resolve() drops empty bursts.
        let event = burst.samples.into_iter().next()?;
        Some(Firing {
            event,
            info: MatchInfo {
                key: self.keying.label(key),
                count,
                first_at: Some(first_at),
                events: BTreeMap::new(),
            },
        })
    }
}
