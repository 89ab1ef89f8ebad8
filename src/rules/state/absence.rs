//! `absence`: fire when an event matching the rule is not followed, for the same key, by an event
//! matching `expect` within the window.
//!
//! The rule's own condition is the trigger: it arms the key with a deadline of `now + within`.
//! Re-arming an armed key does not move the deadline (a steady stream of triggers must not
//! postpone the alarm forever); it only counts the trigger. An `expect` event before the deadline
//! disarms the key; one that also satisfies the trigger condition never arms (it is the evidence,
//! not a new question). At the deadline, [`super::Behaviour::on_tick`] fires with the arming
//! event as trigger. Both trigger and `expect` events must pass the rule's selector (`select:`).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::correlate::{Step, compile_step};
use super::later;
use super::{
    Decision, Firing, KeyState, Keying, Limits, MatchInfo, RuleState, StateError, compile_window,
    keep,
};
use crate::event::Event;
use crate::rules::diagnostic::Diagnostics;
use crate::rules::model;

/// Compiled `absence` block.
#[derive(Debug, Clone)]
pub struct Absence {
    pub(super) keying: Keying,
    expect: Step,
    within: Duration,
}

/// An armed key: waiting for the expected event until `deadline`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Armed {
    armed_at: DateTime<Utc>,
    deadline: DateTime<Utc>,
    /// Triggering events seen while armed, the arming one included.
    triggers: u64,
    /// The arming event: the trigger of the firing.
    event: Event,
}

impl Armed {
    /// The arming event.
    pub(super) fn event(&self) -> &Event {
        &self.event
    }
}

impl Absence {
    pub(super) fn compile(
        rule_name: &str,
        block: &model::Absence,
        diags: &mut Diagnostics,
    ) -> Option<Self> {
        let keying = Keying::compile(rule_name, Some(&block.key), diags);
        let expect = compile_step(&block.expect, "`absence.expect`", diags);
        let within = compile_window(&block.within, "absence.within", diags);
        Some(Self {
            keying: keying?,
            expect: expect?,
            within: within?,
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
        let expected = self.expect.condition.eval(event);
        if !expected && !main_matched {
            return Ok(Decision::NoMatch);
        }
        let key = self.keying.render(event)?;
        let previous = match state.keys.remove(&key) {
            Some(KeyState::Armed(armed)) => Some(armed),
            // Nothing, or state of an earlier version of the rule: start afresh.
            _ => None,
        };
        if expected {
            return Ok(match previous {
                Some(armed) if now < armed.deadline => Decision::Disarmed { key },
                Some(armed) => {
                    // Too late: the absence happened; the next tick fires it.
                    let deadline = armed.deadline;
                    state.put(key.clone(), KeyState::Armed(armed), Some(deadline), limits);
                    Decision::Late { key, deadline }
                }
                None => Decision::NotArmed { key },
            });
        }
        let armed = match previous {
            Some(mut armed) => {
                armed.triggers += 1;
                armed
            }
            // Nothing was armed for the key, so refusing the event changes nothing.
            None => Armed {
                armed_at: now,
                deadline: later(now, self.within),
                triggers: 1,
                event: keep(event, &self.keying.rule, "absence")?,
            },
        };
        let (deadline, triggers) = (armed.deadline, armed.triggers);
        state.put(key.clone(), KeyState::Armed(armed), Some(deadline), limits);
        Ok(Decision::Armed {
            key,
            deadline,
            triggers,
        })
    }

    /// The firing of a key whose deadline passed.
    pub(super) fn fire(&self, key: &str, armed: Armed) -> Firing {
        Firing {
            event: armed.event,
            info: MatchInfo {
                key: self.keying.label(key),
                count: armed.triggers,
                first_at: Some(armed.armed_at),
                events: BTreeMap::new(),
            },
        }
    }
}
