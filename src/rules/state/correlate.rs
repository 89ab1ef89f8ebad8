//! `correlate`: fire when events sharing a key satisfy every named step within a window.
//!
//! Each step remembers the *latest* event that satisfied it; steps older than the window drop
//! out one by one (a sliding window), so `A, A, B` with the second `A` close to `B` fires even if
//! the first `A` is too old. One event may satisfy several steps.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::later;
use super::{
    Decision, Firing, KeyState, Keying, Limits, MatchInfo, RuleState, StateError, compile_window,
    keep,
};
use crate::event::Event;
use crate::rules::condition::Condition;
use crate::rules::diagnostic::Diagnostics;
use crate::rules::model;

/// Most steps a correlation may have. A key stores one event per step, so this bounds memory per
/// key; real correlations join a handful of signals.
pub const MAX_STEPS: usize = 16;

/// Compiled `correlate` block.
#[derive(Debug, Clone)]
pub struct Correlate {
    pub(super) keying: Keying,
    steps: Vec<Step>,
    within: Duration,
}

/// One named step: the condition an event must satisfy.
#[derive(Debug, Clone)]
pub(super) struct Step {
    pub(super) name: String,
    pub(super) condition: Condition,
}

/// When a step was last satisfied, and by which event.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Seen {
    at: DateTime<Utc>,
    event: Event,
}

/// A key's steps seen within the window, by step name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Partial {
    seen: BTreeMap<String, Seen>,
}

impl Partial {
    /// Drops steps that left the window at `now`; returns the new deadline (when the oldest
    /// remaining step leaves), or `None` when nothing is left.
    pub(super) fn expire(&mut self, now: DateTime<Utc>, within: Duration) -> Option<DateTime<Utc>> {
        self.seen.retain(|_, s| now < s.at + within);
        self.first_at().map(|t| t + within)
    }

    fn first_at(&self) -> Option<DateTime<Utc>> {
        self.seen.values().map(|s| s.at).min()
    }

    /// The events kept, one per step seen.
    pub(super) fn events(&self) -> impl Iterator<Item = &Event> {
        self.seen.values().map(|s| &s.event)
    }
}

/// Step names become `match.events.<name>` in templates, so they must be identifiers.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Compiles one step's `when` and `condition` (ANDed); `what` names it in messages.
pub(super) fn compile_step(
    step: &model::CorrelateStep,
    what: &str,
    diags: &mut Diagnostics,
) -> Option<Step> {
    let mut ok = true;
    if !is_identifier(&step.name.value) {
        diags.error(
            step.name.referenced,
            format!("{what} name `{}` is not an identifier", step.name.value),
            Some(
                "use letters, digits and `_`, starting with a letter (templates read it as \
                 `match.events.<name>`)"
                    .to_owned(),
            ),
        );
        ok = false;
    }
    let mut parts = Vec::new();
    if let Some(when) = &step.when {
        match Condition::compile_expr(when, diags) {
            Some(c) => parts.push(c),
            None => ok = false,
        }
    }
    if let Some(tree) = &step.condition {
        match Condition::compile(tree, diags) {
            Some(c) => parts.push(c),
            None => ok = false,
        }
    }
    if step.when.is_none() && step.condition.is_none() {
        diags.error(
            step.name.referenced,
            format!(
                "{what} `{}` has neither `when` nor `condition`",
                step.name.value
            ),
            Some("add `when: <expression>` or a `condition:` tree".to_owned()),
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    let condition = if parts.len() == 1 {
        parts.pop()?
    } else {
        Condition::all(parts)
    };
    Some(Step {
        name: step.name.value.clone(),
        condition,
    })
}

impl Correlate {
    pub(super) fn compile(
        rule_name: &str,
        block: &model::Correlate,
        diags: &mut Diagnostics,
    ) -> Option<Self> {
        let keying = Keying::compile(rule_name, Some(&block.key), diags);
        let within = compile_window(&block.within, "correlate.within", diags);
        let mut ok = true;
        if block.all.len() < 2 || block.all.len() > MAX_STEPS {
            diags.error(
                block.key.referenced,
                format!(
                    "`correlate.all` has {} step(s); it needs between 2 and {MAX_STEPS}",
                    block.all.len()
                ),
                Some(if block.all.len() < 2 {
                    "for a single condition use `when`/`condition` with `threshold` or \
                     `throttle` instead"
                        .to_owned()
                } else {
                    "split the correlation into several rules".to_owned()
                }),
            );
            ok = false;
        }
        let mut names: HashMap<&str, u64> = HashMap::new();
        let mut steps = Vec::new();
        for step in &block.all {
            if let Some(line) = names.get(step.name.value.as_str()) {
                diags.error(
                    step.name.referenced,
                    format!("duplicate correlation step name `{}`", step.name.value),
                    Some(format!(
                        "already used on line {line}; step names must be unique within the rule"
                    )),
                );
                ok = false;
            } else {
                names.insert(&step.name.value, step.name.referenced.line());
            }
            match compile_step(step, "correlation step", diags) {
                Some(s) => steps.push(s),
                None => ok = false,
            }
        }
        let (keying, within) = (keying?, within?);
        ok.then_some(Self {
            keying,
            steps,
            within,
        })
    }

    /// The window.
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
        let matched: Vec<&Step> = self
            .steps
            .iter()
            .filter(|s| s.condition.eval(event))
            .collect();
        if matched.is_empty() {
            return Ok(Decision::NoMatch);
        }
        let key = self.keying.render(event)?;
        let mut partial = match state.keys.remove(&key) {
            Some(KeyState::Correlate(p)) => p,
            _ => Partial {
                seen: BTreeMap::new(),
            },
        };
        // Steps of an earlier version of the rule (restored state) no longer count.
        partial
            .seen
            .retain(|name, _| self.steps.iter().any(|s| &s.name == name));
        let expires = partial.expire(now, self.within);
        let completes = self.steps.iter().all(|s| {
            partial.seen.contains_key(&s.name) || matched.iter().any(|m| m.name == s.name)
        });
        // An event that completes the correlation fires at once and is not kept.
        let kept = if completes {
            event.clone()
        } else {
            match keep(event, &self.keying.rule, "correlate") {
                Ok(kept) => kept,
                Err(err) => {
                    // Put the steps seen so far back: the refused event counts for nothing.
                    if let Some(deadline) = expires {
                        state
                            .keys
                            .restore(key, KeyState::Correlate(partial), Some(deadline));
                    }
                    return Err(err);
                }
            }
        };
        for step in matched {
            partial.seen.insert(
                step.name.clone(),
                Seen {
                    at: now,
                    event: kept.clone(),
                },
            );
        }
        let first_at = partial.first_at();
        if partial.seen.len() == self.steps.len() {
            // Complete: fire and reset the key (it stays removed).
            let events = partial
                .seen
                .into_iter()
                .map(|(name, s)| (name, s.event.payload))
                .collect();
            return Ok(Decision::Fire(Firing {
                event: event.clone(),
                info: MatchInfo {
                    key: self.keying.label(&key),
                    count: self.steps.len() as u64,
                    first_at,
                    events,
                },
            }));
        }
        let (seen, missing): (Vec<&Step>, Vec<&Step>) = self
            .steps
            .iter()
            .partition(|s| partial.seen.contains_key(&s.name));
        let names = |steps: Vec<&Step>| steps.into_iter().map(|s| s.name.clone()).collect();
        let expires = later(first_at.unwrap_or(now), self.within);
        let decision = Decision::Waiting {
            key: key.clone(),
            seen: names(seen),
            missing: names(missing),
            expires,
        };
        state.put(key, KeyState::Correlate(partial), Some(expires), limits);
        Ok(decision)
    }
}
