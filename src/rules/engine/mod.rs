//! Running a rule set: one event (or the passing of time) in, an ordered list of planned actions
//! out. The engine owns the rules' mutable state; the rule set itself is immutable and shared.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::action::{Action, ActionKind};
use super::condition::Explanation;
use super::ruleset::{Rule, RuleSet, SelectorMiss};
use super::state::{Behaviour, Decision, Firing, Limits, MatchInfo, RuleState};
use super::template::RenderContext;
use crate::event::Event;

/// One action the rules decided on, fully rendered, ready for an executor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedAction {
    /// The rule that fired.
    pub rule: String,
    /// Position of the action in the rule's `actions:` list.
    pub action_index: usize,
    /// What to do: the kind with its rendered, type-checked parameters (serialized as the
    /// `kind` and `params` fields).
    #[serde(flatten)]
    pub action: Action,
    /// Deterministic key (event id + rule + action index): redelivery of the same event plans the
    /// same key, so downstream code can execute it at most once.
    pub idempotency_key: String,
    /// Identity of the event that triggered the firing.
    pub event_id: String,
    /// The rule is in dry-run mode: record, don't act.
    pub dry_run: bool,
    /// The stateful group key, if the rule has one.
    pub group_key: Option<String>,
    /// The escalation step this action belongs to (`None` for the rule's own `actions`, whose
    /// remediation the pipeline derives from the event and rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<crate::rules::remediation::StepRef>,
}

impl PlannedAction {
    /// The kind of action.
    pub fn kind(&self) -> ActionKind {
        self.action.kind()
    }
}

/// Something that went wrong for one rule or action while handling an event. The other rules and
/// actions still run; the pipeline records these as failed outcomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleFailure {
    /// The rule concerned.
    pub rule: String,
    /// The action concerned, if the failure was rendering one action's parameters.
    pub action_index: Option<usize>,
    /// Its kind.
    pub kind: Option<ActionKind>,
    /// Identity of the event being handled.
    pub event_id: String,
    /// Deterministic key of the action that could not be planned.
    pub idempotency_key: Option<String>,
    /// What went wrong.
    pub message: String,
}

/// What happened to one rule for one event (only collected when tracing).
#[derive(Debug, Clone)]
pub struct RuleTrace {
    /// The rule.
    pub rule: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The condition's explanation, when the condition was evaluated.
    pub condition: Option<Explanation>,
}

/// A rule's verdict for one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The rule is disabled.
    Disabled,
    /// An earlier rule with `stop: true` matched.
    Stopped {
        /// The rule that stopped evaluation.
        by: String,
    },
    /// The `select:` block turned the event away.
    NotSelected(SelectorMiss),
    /// The condition is false.
    ConditionFalse,
    /// The condition held but the stateful behaviour did not fire (throttled, counting, waiting).
    Held(String),
    /// The rule fired and planned this many actions.
    Fired(usize),
    /// The rule failed for this event (e.g. its key template could not render).
    Failed(String),
}

/// Result of handling one event or one tick.
#[derive(Debug, Default)]
pub struct Evaluation {
    /// Planned actions, in rule order then action order.
    pub planned: Vec<PlannedAction>,
    /// Per-rule / per-action failures.
    pub failures: Vec<RuleFailure>,
    /// Per-rule verdicts (empty unless tracing was asked for).
    pub trace: Vec<RuleTrace>,
    /// Pending stateful firings cancelled by a resolved alert.
    pub cancelled: usize,
    /// Firings a rule's `throttle.once_within` suppressed (the pipeline records them).
    pub throttled: Vec<Throttled>,
    /// Firings of rules with a closed loop ([`Rule::remediation`]): the pipeline follows each
    /// up as one remediation of the actions planned for it.
    pub fired: Vec<Fired>,
    /// Positions in the rule set of the rules the event matched (selector and condition held,
    /// whether or not the rule fired), in evaluation order; `reflex backtest` counts them.
    pub matched: Vec<usize>,
}

/// A firing of a rule with a closed loop.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    /// The rule.
    pub rule: String,
    /// The triggering event and match info (later steps render from them).
    pub firing: Firing,
}

/// A firing suppressed by `throttle.once_within`: the condition held, the key had fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throttled {
    /// The rule.
    pub rule: String,
    /// The suppressed event.
    pub event_id: String,
    /// The throttle's group key.
    pub key: String,
    /// When the key may fire again.
    pub until: DateTime<Utc>,
}

/// The rules' mutable state, serializable so the pipeline can persist it and restore it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EngineState {
    /// State per rule name. Rules absent from the current rule set are dropped on restore.
    pub rules: BTreeMap<String, RuleState>,
}

/// A rule set plus its state.
#[derive(Debug)]
pub struct Engine {
    rules: Arc<RuleSet>,
    state: EngineState,
    /// Keys the current record was already applied to (a redelivery): their rules hold the
    /// event back instead of counting it again (see [`Engine::skip_applied`]).
    applied: BTreeSet<StateKey>,
    scratch: Vec<u32>,
    /// Rules whose state an event or tick reached since the last [`Engine::take_dirty`]: where
    /// to look for changed keys (each [`RuleState`] records its own) without visiting every
    /// stateful rule per event.
    dirty: BTreeSet<String>,
}

/// The deterministic idempotency key of action `index` of `rule` for event `event_id`.
pub fn idempotency_key(event_id: &str, rule: &str, index: usize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(event_id.as_bytes());
    hasher.update([0]);
    hasher.update(rule.as_bytes());
    hasher.update([0]);
    hasher.update(index.to_string().as_bytes());
    // 128 bits: collisions are not a practical concern and the key stays short in indexes.
    hex::encode(&hasher.finalize()[..16])
}

impl Engine {
    /// An engine with empty state.
    pub fn new(rules: Arc<RuleSet>) -> Self {
        Self::with_state(rules, EngineState::default())
    }

    /// An engine restored from saved state; state of rules that no longer exist is dropped.
    pub fn with_state(rules: Arc<RuleSet>, mut state: EngineState) -> Self {
        state.rules.retain(|name, _| rules.get(name).is_some());
        Self {
            rules,
            state,
            applied: BTreeSet::new(),
            scratch: Vec::new(),
            dirty: BTreeSet::new(),
        }
    }

    /// The rule set.
    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// The current state (to persist).
    pub fn state(&self) -> &EngineState {
        &self.state
    }

    /// The keys whose state changed since the last call, per rule (see
    /// [`RuleState::take_changed_keys`] for the order), and forgets them. A rule or key not
    /// listed has exactly the state it had at the previous call; an event that passed a rule's
    /// selector and failed its condition lists nothing. The pipeline serializes and saves exactly these
    /// keys, so a record's cost does not grow with the number of keys held.
    pub fn take_dirty(&mut self) -> BTreeMap<String, Vec<String>> {
        let mut changed = BTreeMap::new();
        for rule in std::mem::take(&mut self.dirty) {
            let Some(state) = self.state.rules.get_mut(&rule) else {
                continue;
            };
            let keys = state.take_changed_keys();
            if !keys.is_empty() {
                changed.insert(rule, keys);
            }
        }
        changed
    }

    /// Swaps in a new rule set, keeping the state of rules that still exist by name.
    pub fn replace_rules(&mut self, rules: Arc<RuleSet>) {
        self.state.rules.retain(|name, _| rules.get(name).is_some());
        self.rules = rules;
    }

    /// Handles one event at time `now`. Callers run [`Engine::tick`] first whenever
    /// [`Engine::next_deadline`] is at or before `now`, so a due burst or timeout fires before a
    /// later event can join it (the rule test runner and `reflex replay` do).
    pub fn process(&mut self, event: &Event, now: DateTime<Utc>) -> Evaluation {
        self.evaluate(event, now, false)
    }

    /// Handles one event and records, for every rule, what happened and why.
    pub fn process_traced(&mut self, event: &Event, now: DateTime<Utc>) -> Evaluation {
        self.evaluate(event, now, true)
    }

    /// Lets time pass: fires due `once_after` bursts and `absence` timeouts.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Evaluation {
        let mut out = Evaluation::default();
        let rules = Arc::clone(&self.rules);
        for rule in rules.rules().iter().filter(|r| r.enabled) {
            let Some(state) = self.state.rules.get_mut(&rule.name) else {
                continue;
            };
            mark_dirty(&mut self.dirty, &rule.name);
            for firing in rule.behaviour.on_tick(state, now) {
                plan(rule, &firing, &mut out);
            }
        }
        out
    }

    /// The earliest time [`Engine::tick`] has work to do.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        // Called before every event: visit only the rules holding state, not every rule by name
        // (100 lookups per event cost a backtest with 100 rules a quarter of its speed once a
        // rule held state). A disabled rule's deadline is not reported: `tick` would not clear it.
        self.state
            .rules
            .iter()
            .filter(|(name, _)| self.rules.is_enabled(name))
            .filter_map(|(_, state)| state.next_deadline())
            .min()
    }

    fn evaluate(&mut self, event: &Event, now: DateTime<Utc>, trace: bool) -> Evaluation {
        let mut out = Evaluation::default();
        let rules = Arc::clone(&self.rules);
        let mut scratch = std::mem::take(&mut self.scratch);
        if trace {
            // Explanations cover every rule, not only the index's candidates.
            scratch.clear();
            scratch.extend(0..rules.len() as u32);
        } else {
            rules.candidates(event, &mut scratch);
        }
        if let Some(fingerprint) = event
            .alert_fingerprint()
            .filter(|_| event.alert_status() == Some("resolved"))
        {
            out.cancelled += self.cancel_resolved(event, fingerprint);
        }
        let mut stopped_by: Option<&str> = None;
        for &pos in &scratch {
            let rule = &rules.rules()[pos as usize];
            let skipped = if rule.enabled {
                stopped_by.map(|by| Verdict::Stopped { by: by.to_owned() })
            } else {
                Some(Verdict::Disabled)
            };
            if let Some(verdict) = skipped {
                if trace {
                    out.trace.push(RuleTrace {
                        rule: rule.name.clone(),
                        verdict,
                        condition: None,
                    });
                }
                continue;
            }
            let (verdict, condition, matched) =
                self.evaluate_rule(rule, event, now, trace, &mut out);
            if matched {
                out.matched.push(pos as usize);
            }
            // `stop` means "this rule handles the event": it fired, or its condition held and only
            // its throttle or threshold held it back. Correlation and absence rules consume the
            // event only when they fire: a half-built correlation must not hide the event.
            let handled = match verdict {
                Verdict::Fired(_) => true,
                Verdict::Held(_) => {
                    matched
                        && matches!(
                            rule.behaviour,
                            Behaviour::Throttle(_) | Behaviour::Threshold(_)
                        )
                }
                _ => false,
            };
            if rule.stop && handled {
                stopped_by = Some(&rule.name);
            }
            if trace {
                out.trace.push(RuleTrace {
                    rule: rule.name.clone(),
                    verdict,
                    condition,
                });
            }
        }
        self.scratch = scratch;
        out
    }

    /// A resolved alert cancels what its firing started in every stateful rule holding state,
    /// whatever the rule's status filter and whether or not the index would pick the rule (its
    /// condition may well be false for the resolved alert, e.g. `status == "firing"`).
    fn cancel_resolved(&mut self, event: &Event, fingerprint: &str) -> usize {
        let mut cancelled = 0;
        for (name, state) in &mut self.state.rules {
            let Some(rule) = self.rules.get(name) else {
                continue;
            };
            if rule.enabled
                && matches!(
                    rule.selector.check(event),
                    Ok(()) | Err(SelectorMiss::AlertStatus)
                )
            {
                mark_dirty(&mut self.dirty, name);
                cancelled += rule.behaviour.on_resolved(state, fingerprint);
            }
        }
        cancelled
    }

    fn evaluate_rule(
        &mut self,
        rule: &Rule,
        event: &Event,
        now: DateTime<Utc>,
        trace: bool,
        out: &mut Evaluation,
    ) -> (Verdict, Option<Explanation>, bool) {
        let selected = rule.selector.check(event);
        if let Err(miss) = selected {
            return (Verdict::NotSelected(miss), None, false);
        }
        let (matched, explanation) = match &rule.condition {
            None => (true, None),
            Some(c) if trace => {
                let e = c.explain(event);
                (e.holds, Some(e))
            }
            Some(c) => (c.eval(event), None),
        };
        if rule.behaviour.is_stateless() {
            if !matched {
                return (Verdict::ConditionFalse, explanation, false);
            }
            let firing = Firing {
                event: event.clone(),
                info: MatchInfo::default(),
            };
            return (Verdict::Fired(plan(rule, &firing, out)), explanation, true);
        }
        if !self.applied.is_empty()
            && let Some(Ok(key)) = rule.behaviour.key_of(event)
        {
            let state_key = StateKey {
                rule: rule.name.clone(),
                key,
            };
            if self.applied.contains(&state_key) {
                let verdict = Verdict::Held(format!(
                    "already applied to key `{}`: the record is a redelivery",
                    state_key.key
                ));
                // `matched` as the first time, so `stop` hides the event from later rules
                // again when this rule's throttle or threshold handled it then.
                return (verdict, explanation, matched);
            }
        }
        let limits = Limits {
            max_keys: rule.max_keys,
            ..Limits::default()
        };
        mark_dirty(&mut self.dirty, &rule.name);
        let state = self.state.rules.entry(rule.name.clone()).or_default();
        let verdict = match rule.behaviour.on_event(state, event, matched, now, &limits) {
            Ok(Decision::Fire(firing)) => Verdict::Fired(plan(rule, &firing, out)),
            Ok(Decision::NoMatch) => Verdict::ConditionFalse,
            Ok(decision @ Decision::Suppressed { .. }) => {
                let verdict = Verdict::Held(decision.to_string());
                if let Decision::Suppressed { key, until } = decision {
                    out.throttled.push(Throttled {
                        rule: rule.name.clone(),
                        event_id: event.meta.id.clone(),
                        key,
                        until,
                    });
                }
                verdict
            }
            Ok(other) => Verdict::Held(other.to_string()),
            Err(err) => {
                out.failures.push(RuleFailure {
                    rule: rule.name.clone(),
                    action_index: None,
                    kind: None,
                    event_id: event.meta.id.clone(),
                    idempotency_key: None,
                    message: err.to_string(),
                });
                Verdict::Failed(err.to_string())
            }
        };
        (verdict, explanation, matched)
    }
}

/// Adds `rule` to the dirty set, allocating only the first time per round.
fn mark_dirty(dirty: &mut BTreeSet<String>, rule: &str) {
    if !dirty.contains(rule) {
        dirty.insert(rule.to_owned());
    }
}

/// Renders every action of a firing; returns how many were planned.
fn plan(rule: &Rule, firing: &Firing, out: &mut Evaluation) -> usize {
    // A shadow rule's firings are recorded, not followed up: nothing ran.
    if rule.remediation.is_some() && !rule.shadow {
        out.fired.push(Fired {
            rule: rule.name.clone(),
            firing: firing.clone(),
        });
    }
    let ctx = RenderContext::new(&firing.event, &rule.name, Some(&firing.info));
    let event_id = &firing.event.meta.id;
    let mut planned = 0;
    for (index, action) in rule.actions.iter().enumerate() {
        let key = idempotency_key(event_id, &rule.name, index);
        match action.render(&ctx) {
            Ok(rendered) => {
                planned += 1;
                out.planned.push(PlannedAction {
                    rule: rule.name.clone(),
                    action_index: index,
                    action: rendered,
                    idempotency_key: key,
                    event_id: event_id.clone(),
                    dry_run: rule.dry_run,
                    group_key: firing.info.key.clone(),
                    remediation: None,
                });
            }
            Err(err) => out.failures.push(RuleFailure {
                rule: rule.name.clone(),
                action_index: Some(index),
                kind: Some(action.kind),
                event_id: event_id.clone(),
                idempotency_key: Some(key),
                message: err.to_string(),
            }),
        }
    }
    planned
}

mod keys;
#[cfg(test)]
mod tests;

pub use keys::StateKey;
