//! `threshold`: fire when `count` matching events for a key fall within a sliding window.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{
    Decision, Firing, KeyState, Keying, Limits, MatchInfo, Resolved, RuleState, StateError,
    compile_window,
};
use crate::event::Event;
use crate::rules::diagnostic::Diagnostics;
use crate::rules::model;

/// Largest `count` accepted. A key keeps one timestamp per event until it fires, so the count
/// bounds memory per key; counting thousands of events is rate computation, better done by
/// Prometheus (alert on `rate(...)`) than by a remediation rule.
pub const MAX_COUNT: u32 = 1000;

/// Compiled `threshold` block.
#[derive(Debug, Clone)]
pub struct Threshold {
    pub(super) keying: Keying,
    count: u32,
    within: Duration,
}

/// One matching event in the window.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Hit {
    at: DateTime<Utc>,
    /// The alert's fingerprint, so a resolved alert can take its hits back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fingerprint: Option<String>,
}

/// A key's recent matching events, oldest first (at most `count - 1`: the key resets on firing).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Hits {
    hits: VecDeque<Hit>,
}

impl Hits {
    /// Drops hits that left the window at `now`; returns the new deadline (when the oldest hit
    /// leaves), or `None` when nothing is left.
    pub(super) fn expire(&mut self, now: DateTime<Utc>, within: Duration) -> Option<DateTime<Utc>> {
        while self.hits.front().is_some_and(|h| h.at + within <= now) {
            self.hits.pop_front();
        }
        self.deadline(within)
    }

    fn deadline(&self, within: Duration) -> Option<DateTime<Utc>> {
        self.hits.front().map(|h| h.at + within)
    }

    pub(super) fn resolve(&mut self, fingerprint: &str, within: Duration) -> Resolved {
        let before = self.hits.len();
        self.hits
            .retain(|h| h.fingerprint.as_deref() != Some(fingerprint));
        if self.hits.len() == before {
            Resolved::Untouched
        } else if self.hits.is_empty() {
            Resolved::Emptied
        } else {
            Resolved::Reduced(self.deadline(within))
        }
    }
}

impl Threshold {
    pub(super) fn compile(
        rule_name: &str,
        block: &model::Threshold,
        diags: &mut Diagnostics,
    ) -> Option<Self> {
        let keying = Keying::compile(rule_name, block.key.as_ref(), diags);
        let within = compile_window(&block.within, "threshold.within", diags);
        let mut count_ok = true;
        if block.count == 0 || block.count > MAX_COUNT {
            // `count` is a plain number without a location; point at the block's window.
            diags.error(
                block.within.referenced,
                format!(
                    "`threshold.count` is {}; it must be between 1 and {MAX_COUNT}",
                    block.count
                ),
                Some(if block.count == 0 {
                    "use `count: 1` to fire on every matching event, or remove `threshold`"
                        .to_owned()
                } else {
                    "alert on a rate in Prometheus and react to that alert instead".to_owned()
                }),
            );
            count_ok = false;
        }
        let (keying, within) = (keying?, within?);
        count_ok.then_some(Self {
            keying,
            count: block.count,
            within,
        })
    }

    /// The sliding window.
    pub(super) fn within(&self) -> Duration {
        self.within
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
        let mut hits = match state.keys.remove(&key) {
            Some(KeyState::Threshold(hits)) => hits,
            _ => Hits {
                hits: VecDeque::new(),
            },
        };
        hits.expire(now, self.within);
        hits.hits.push_back(Hit {
            at: now,
            fingerprint: event.alert_fingerprint().map(str::to_owned),
        });
        let seen = hits.hits.len() as u64;
        if seen >= u64::from(self.count) {
            // Reset the key (it stays removed): the next firing needs `count` new events.
            let first_at = hits.hits.front().map(|h| h.at);
            return Ok(Decision::Fire(Firing {
                event: event.clone(),
                info: MatchInfo {
                    key: self.keying.label(&key),
                    count: seen,
                    first_at,
                    events: BTreeMap::new(),
                },
            }));
        }
        let deadline = hits.deadline(self.within);
        state.put(key.clone(), KeyState::Threshold(hits), deadline, limits);
        Ok(Decision::Counting {
            key,
            seen,
            needed: u64::from(self.count),
        })
    }
}
