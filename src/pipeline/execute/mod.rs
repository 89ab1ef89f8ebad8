//! Claiming, executing and recording one planned action (`act.rs`); recording rule failures,
//! duplicates, `throttled` and `no_match` outcomes and publishing final rows (`record.rs`). The
//! protocol is described in the module docs of [`super`].

mod act;
mod record;

use std::collections::HashSet;
use std::sync::Mutex;

use serde::Serialize;

use super::{Error, Pipeline};
use crate::rules::engine::Fired;
use crate::rules::engine::{Verdict, idempotency_key};
use crate::rules::{Evaluation, PlannedAction, RuleFailure, Throttled};

/// `action_kind` of outcomes that concern no action (`no_match`, rule-level failures).
pub(super) const NO_KIND: &str = "none";

/// Where the record behind an outcome sits in Kafka (absent for timer firings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct Source {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// One outcome to produce.
#[derive(Debug)]
pub(super) enum Work {
    Action {
        // Boxed: its typed parameters make an action several times larger than the other
        // variants.
        action: Box<PlannedAction>,
        source: Option<Source>,
    },
    Failure {
        failure: RuleFailure,
        source: Option<Source>,
    },
    NoMatch {
        event_id: String,
        source: Source,
    },
    Throttled {
        throttled: Throttled,
        source: Option<Source>,
    },
    /// The actions of one firing of a rule with a closed loop: run as step 0 of a remediation
    /// (`super::remediate`).
    Remediation {
        fired: Box<Fired>,
        actions: Vec<PlannedAction>,
        /// An action of the firing could not be rendered (its failure is recorded apart).
        render_failed: bool,
        source: Option<Source>,
    },
}

/// Appends the outcomes an evaluation calls for: planned actions, then failures.
pub(super) fn collect(work: &mut Vec<Work>, evaluation: Evaluation, source: Option<&Source>) {
    let mut planned = evaluation.planned;
    // A closed-loop firing's actions run together, as one remediation step.
    for fired in evaluation.fired {
        let of_firing = |rule: &str, event_id: &str| {
            rule == fired.rule && event_id == fired.firing.event.meta.id
        };
        let (actions, rest): (Vec<_>, Vec<_>) = planned
            .into_iter()
            .partition(|a| of_firing(&a.rule, &a.event_id));
        planned = rest;
        let render_failed = evaluation
            .failures
            .iter()
            .any(|f| f.action_index.is_some() && of_firing(&f.rule, &f.event_id));
        work.push(Work::Remediation {
            fired: Box::new(fired),
            actions,
            render_failed,
            source: source.cloned(),
        });
    }
    for action in planned {
        work.push(Work::Action {
            action: Box::new(action),
            source: source.cloned(),
        });
    }
    for failure in evaluation.failures {
        work.push(Work::Failure {
            failure,
            source: source.cloned(),
        });
    }
    for throttled in evaluation.throttled {
        work.push(Work::Throttled {
            throttled,
            source: source.cloned(),
        });
    }
}

/// True when no rule fired, held, or failed for the event (a traced evaluation).
pub(super) fn matched_nothing(evaluation: &Evaluation) -> bool {
    evaluation.planned.is_empty()
        && evaluation.failures.is_empty()
        && evaluation.trace.iter().all(|t| {
            matches!(
                t.verdict,
                Verdict::Disabled
                    | Verdict::Stopped { .. }
                    | Verdict::NotSelected(_)
                    | Verdict::ConditionFalse
            )
        })
}

/// A key for an outcome that is not an action's, derived from the event like action keys (so
/// a redelivery derives the same one) and unable to collide with them (action keys hash a rule
/// name, which cannot contain a NUL byte, where these hash the tag after one).
pub(super) fn derived_key(event_id: &str, tag: &str) -> String {
    idempotency_key(event_id, &format!("\0{tag}"), 0)
}

/// Keys this process is executing right now; a `started` row of this instance whose key is
/// not here was left by a failed attempt and may be taken over at once.
#[derive(Debug, Default)]
pub(super) struct InFlight(Mutex<HashSet<String>>);

/// Removes its key from the in-flight set when dropped.
struct InFlightGuard<'a> {
    set: &'a InFlight,
    key: String,
}

impl InFlight {
    /// Registers `key`; `None` if it is already in flight here.
    fn enter(&self, key: &str) -> Option<InFlightGuard<'_>> {
        let mut set = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        set.insert(key.to_owned()).then(|| InFlightGuard {
            set: self,
            key: key.to_owned(),
        })
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        let mut set = self.set.0.lock().unwrap_or_else(|p| p.into_inner());
        set.remove(&self.key);
    }
}

impl Pipeline {
    /// Whether `rule` runs in `mode: shadow`.
    fn is_shadow(&self, rule: &str) -> bool {
        self.rules().get(rule).is_some_and(|r| r.shadow)
    }

    /// Produces every outcome of `work`, in order; returns how many were recorded.
    pub(super) async fn run(&self, work: Vec<Work>) -> Result<usize, Error> {
        let mut count = 0;
        for item in work {
            count += match item {
                Work::Action { action, source } if self.is_shadow(&action.rule) => {
                    self.record_shadow(&action, source.as_ref()).await?
                }
                Work::Action { action, source } => self.act(&action, source.as_ref()).await?,
                Work::Failure { failure, source } => {
                    self.record_failure(&failure, source.as_ref()).await?
                }
                Work::NoMatch { event_id, source } => {
                    self.record_no_match(&event_id, &source).await?
                }
                Work::Throttled { throttled, source } => {
                    self.refired(&throttled).await?;
                    if self.record_throttled {
                        self.record_throttled(&throttled, source.as_ref()).await?
                    } else {
                        0
                    }
                }
                Work::Remediation {
                    fired,
                    actions,
                    render_failed,
                    source,
                } => {
                    self.remediate(&fired, actions, render_failed, source.as_ref())
                        .await?
                }
            };
        }
        Ok(count)
    }
}
