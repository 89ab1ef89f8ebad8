//! Running one case: the clock, the events, the engine's timers and the remediations' looks,
//! in time order.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, Utc};
use serde_json::Value;

use super::closed_loop::{ClosedLoop, Outcome};
use super::{DEFAULT_TOPIC, Step, TestCase, default_start};
use crate::event::decode::{DecodeLimits, RawRecord, decode, decode_json};
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
    let mut skew = 0i64;
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
        let Some(records) = records(base, step).map_err(|e| at(&e))? else {
            continue;
        };
        let topic = step.topic.as_deref().unwrap_or(DEFAULT_TOPIC);
        // Each record has an offset of its own (a log line's identity is its position); a
        // case without `lines` keeps one offset per step, its index.
        let offset = index as i64 + skew;
        let events = match records {
            Records::Document(value) => decode_json(
                value,
                topic,
                0,
                offset,
                step.key.as_deref(),
                &step.headers,
                Some(now),
                step.decoding,
            )
            .map_err(|e| at(&e.to_string()))?,
            Records::Lines(lines) => {
                skew += lines.len().saturating_sub(1) as i64;
                decode_lines(&lines, topic, offset, step, now).map_err(|e| at(&e))?
            }
        };
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

/// What a step's records are given as.
enum Records {
    /// One record value as a JSON document (`payload`, `file`).
    Document(Value),
    /// Raw record values, one per line (`lines`, `lines_file`).
    Lines(Vec<String>),
}

/// The step's records; `None` when the step only moves the clock or sets objects.
fn records(base: &Path, step: &Step) -> Result<Option<Records>, String> {
    let given = [
        step.payload.is_some(),
        step.file.is_some(),
        step.lines.is_some(),
        step.lines_file.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err("give one of `payload`, `file`, `lines`, `lines_file`".to_owned());
    }
    let read = |f: &str| {
        let path = base.join(f);
        std::fs::read_to_string(&path)
            .map(|text| (path.display().to_string(), text))
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    if let Some(v) = &step.payload {
        return Ok(Some(Records::Document(v.clone())));
    }
    if let Some(f) = &step.file {
        let (path, text) = read(f)?;
        return serde_json::from_str(&text)
            .map(|v| Some(Records::Document(v)))
            .map_err(|e| format!("{path} is not JSON: {e}"));
    }
    if let Some(lines) = &step.lines {
        if lines.is_empty() {
            return Err("`lines` is empty; give at least one line".to_owned());
        }
        return Ok(Some(Records::Lines(lines.clone())));
    }
    if let Some(f) = &step.lines_file {
        let (path, text) = read(f)?;
        let lines: Vec<String> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect();
        if lines.is_empty() {
            return Err(format!("{path} has no line"));
        }
        return Ok(Some(Records::Lines(lines)));
    }
    if step.advance.is_some() || step.at.is_some() || !step.objects.is_empty() {
        Ok(None)
    } else {
        Err(
            "a step needs `payload`, `file`, `advance`, `at` or `objects` (or raw records: \
             `lines`, `lines_file`)"
                .to_owned(),
        )
    }
}

/// The events of raw lines, each decoded from its bytes as `reflex run` decodes a Kafka record
/// of a topic with the step's decoding (and the default limits), at offsets from `offset` on.
fn decode_lines(
    lines: &[String],
    topic: &str,
    offset: i64,
    step: &Step,
    now: DateTime<Utc>,
) -> Result<Vec<crate::event::Event>, String> {
    let mut events = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let record = RawRecord {
            topic,
            partition: 0,
            offset: offset + i as i64,
            key: step.key.as_deref().map(str::as_bytes),
            headers: step
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), Some(value.as_bytes())))
                .collect(),
            payload: Some(line.as_bytes()),
            timestamp: Some(now),
        };
        let decoded = decode(&record, step.decoding, &DecodeLimits::default())
            .map_err(|e| format!("line {}: {e}", i + 1))?;
        events.extend(decoded);
    }
    Ok(events)
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
