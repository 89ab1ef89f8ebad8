//! Running one case: the clock, the events, the engine's timers and the remediations' looks,
//! in time order.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, Utc};
use serde_json::Value;

use super::closed_loop::{ClosedLoop, Outcome};
use super::{DEFAULT_TOPIC, Step, TestCase, default_start};
use crate::event::decode::decode_json;
use crate::rules::RuleSet;
use crate::rules::engine::{Engine, Evaluation};

/// Bound on timer firings and remediation looks between two steps. A Kubernetes check is read
/// every `verify.every` (5 s by default) for at most 7 days: about 121,000 looks for one
/// remediation; the bound stops a case that would never settle instead of hanging.
const MAX_WAKE_UPS: usize = 1_000_000;

/// Runs a case's steps and returns everything the engine and the remediations produced.
pub(super) fn execute(
    base: &Path,
    case: &TestCase,
    rules: &Arc<RuleSet>,
) -> Result<Outcome, String> {
    let mut engine = Engine::new(Arc::clone(rules));
    let mut closed = ClosedLoop::new(Arc::clone(rules));
    let mut out = Outcome::default();
    let mut now = case.start.unwrap_or_else(default_start);
    check_year(now).map_err(|e| format!("`start`: {e}"))?;
    for (index, step) in case.steps.iter().enumerate() {
        let at = |what: &str| format!("step {}: {what}", index + 1);
        if let Some(at_time) = step.at {
            check_year(at_time).map_err(|e| at(&format!("`at`: {e}")))?;
            if step.advance.is_some() {
                return Err(at("give `advance` or `at`, not both"));
            }
            if at_time < now {
                return Err(at(&format!("`at: {at_time}` is before the clock ({now})")));
            }
            pass_time(&mut engine, &mut closed, at_time, &mut out).map_err(|e| at(&e))?;
            now = at_time;
        }
        if let Some(advance) = &step.advance {
            let by = crate::rules::duration::parse(&advance.value).map_err(|e| at(&e))?;
            if by < Duration::zero() {
                return Err(at("`advance` cannot go back in time"));
            }
            let until = now
                .checked_add_signed(by)
                .filter(|t| check_year(*t).is_ok())
                .ok_or_else(|| {
                    at(&format!(
                        "advancing {} from {now} leaves {YEARS}",
                        advance.value
                    ))
                })?;
            pass_time(&mut engine, &mut closed, until, &mut out).map_err(|e| at(&e))?;
            now = until;
        }
        for object in &step.objects {
            closed.set_object(object).map_err(|e| at(&e))?;
        }
        let Some(value) = record_value(base, step).map_err(|e| at(&e))? else {
            continue;
        };
        let topic = step.topic.as_deref().unwrap_or(DEFAULT_TOPIC);
        let events = decode_json(
            value,
            topic,
            0,
            index as i64,
            step.key.as_deref(),
            &step.headers,
            Some(now),
            step.decoding,
        )
        .map_err(|e| at(&e.to_string()))?;
        for event in &events {
            closed.arrived(event, now, &mut out);
            let eval = engine.process(event, now);
            closed.admit(eval, now, &mut out);
        }
        look_now(&mut closed, now, &mut out).map_err(|e| at(&e))?;
    }
    closed.finish(now, &mut out);
    Ok(out)
}

/// The step's record value; `None` when the step only moves the clock or sets objects.
fn record_value(base: &Path, step: &Step) -> Result<Option<Value>, String> {
    match (&step.payload, &step.file) {
        (Some(_), Some(_)) => Err("give `payload` or `file`, not both".to_owned()),
        (Some(v), None) => Ok(Some(v.clone())),
        (None, Some(f)) => {
            let path = base.join(f);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| format!("{} is not JSON: {e}", path.display()))
        }
        (None, None) if step.advance.is_some() || step.at.is_some() || !step.objects.is_empty() => {
            Ok(None)
        }
        (None, None) => {
            Err("a step needs `payload`, `file`, `advance`, `at` or `objects`".to_owned())
        }
    }
}

/// Lets time pass up to `until`: engine timers fire and remediations are looked at when due,
/// each at its own time, earliest first (a timer before a look due at the same instant).
fn pass_time(
    engine: &mut Engine,
    closed: &mut ClosedLoop,
    until: DateTime<Utc>,
    out: &mut Outcome,
) -> Result<(), String> {
    for _ in 0..MAX_WAKE_UPS {
        let timer = engine.next_deadline().filter(|t| *t <= until);
        let look = closed.next_due().filter(|t| *t <= until);
        match (timer, look) {
            (Some(timer), look) if look.is_none_or(|look| timer <= look) => {
                let eval = engine.tick(timer);
                closed.admit(eval, timer, out);
            }
            (_, Some(look)) => closed.look_due(look, out),
            (_, None) => return Ok(()),
        }
    }
    Err(format!(
        "time does not settle before {until}: more than {MAX_WAKE_UPS} timer firings and \
         verification looks (a long `verify.within` with a short `verify.every`?)"
    ))
}

/// Looks at the remediations that want it right away (a Kubernetes check reads its object as
/// soon as the step's actions end), as the pipeline's sweep does within a second, so a case
/// that ends with its event still sees them.
fn look_now(closed: &mut ClosedLoop, now: DateTime<Utc>, out: &mut Outcome) -> Result<(), String> {
    for _ in 0..MAX_WAKE_UPS {
        match closed.next_due().filter(|due| *due <= now) {
            Some(due) => closed.look_due(due, out),
            None => return Ok(()),
        }
    }
    Err(format!("remediations do not settle at {now}"))
}

/// The clock range of a test case: the years RFC 3339 can write. Rule windows are added to the
/// clock, so a clock near the end of chrono's range (year 262142) would overflow.
const YEARS: &str = "the years 0000 to 9999 a test clock must stay in";

fn check_year(t: DateTime<Utc>) -> Result<(), String> {
    if (0..=9999).contains(&t.year()) {
        Ok(())
    } else {
        Err(format!("{t} is outside {YEARS}"))
    }
}

/// Fires every timer due up to `until`, each at its own deadline (so a firing sees the clock at
/// the moment it was due, as the pipeline's timer would). Remediations are not followed here
/// (`reflex replay` plans, it does not verify).
pub fn run_timers(engine: &mut Engine, until: DateTime<Utc>, all: &mut Evaluation) {
    // Each tick consumes at least one due deadline; the bound guards against a behaviour bug
    // that would report a deadline it never clears.
    for _ in 0..100_000 {
        match engine.next_deadline() {
            Some(due) if due <= until => {
                let eval = engine.tick(due);
                all.planned.extend(eval.planned);
                all.failures.extend(eval.failures);
            }
            _ => break,
        }
    }
}
