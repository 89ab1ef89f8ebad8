//! Which state keys a record reaches, so the pipeline can lock them before the engine runs,
//! and which of them a redelivered record was already applied to.

use std::collections::BTreeSet;

use super::Engine;
use crate::event::Event;
use crate::rules::ruleset::SelectorMiss;

/// One (stateful rule, group key): the unit of rule state that is stored, locked and decided
/// on its own (see [`Engine::state_keys`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StateKey {
    /// The rule's name.
    pub rule: String,
    /// The rendered group key (`""` for a rule without a key template).
    pub key: String,
}

impl Engine {
    /// Every (rule, group key) whose state handling `events` may read or change: for each
    /// enabled stateful rule the event reaches as [`Engine::process`] would reach it (the
    /// index's candidates, the selector, then the condition — or, for an `absence`, its
    /// `expect`), the key the event renders to; and for a resolved Alertmanager alert, the key
    /// of every stateful rule whose selector lets it through, since it cancels what its firing
    /// started whatever the condition says. An event whose key template fails is left out (the
    /// rule records that failure when it runs). `stop:` is not applied, so this may list a key
    /// the record then leaves unchanged.
    ///
    /// The pipeline locks exactly these keys, loads their state and hands it to a fresh engine
    /// ([`Engine::with_state`]) for the record: the decision for one key is then made by one
    /// process at a time, whichever replica consumed the event. A record reaching no stateful
    /// rule (most records) lists nothing and locks nothing.
    pub fn state_keys<'a>(
        &self,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> BTreeSet<StateKey> {
        let mut keys = BTreeSet::new();
        let mut scratch = Vec::new();
        for event in events {
            let resolved =
                event.alert_fingerprint().is_some() && event.alert_status() == Some("resolved");
            if resolved {
                scratch.clear();
                scratch.extend(0..self.rules.len() as u32);
            } else {
                self.rules.candidates(event, &mut scratch);
            }
            for &pos in &scratch {
                let rule = &self.rules.rules()[pos as usize];
                if !rule.enabled || rule.behaviour.is_stateless() {
                    continue;
                }
                let reached = match rule.selector.check(event) {
                    Ok(()) => {
                        resolved || {
                            let matched = rule.condition.as_ref().is_none_or(|c| c.eval(event));
                            rule.behaviour.reaches_state(event, matched)
                        }
                    }
                    Err(SelectorMiss::AlertStatus) => resolved,
                    Err(_) => false,
                };
                if reached && let Some(Ok(key)) = rule.behaviour.key_of(event) {
                    keys.insert(StateKey {
                        rule: rule.name.clone(),
                        key,
                    });
                }
            }
        }
        keys
    }

    /// The record being handled was already applied to these keys (their stored state says so:
    /// it is a redelivery after a crash or a rebalance). Their rules hold the record's events
    /// back with a verdict saying so, instead of counting them into a window twice. Holds for
    /// the following calls until replaced.
    pub fn skip_applied(&mut self, keys: BTreeSet<StateKey>) {
        self.applied = keys;
    }
}
