//! `reflex replay --rules DIR EVENTS.jsonl`: what the rules would do for each event, and with
//! `--explain`, why each rule did or did not fire.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::OutputFormat;
use crate::event::decode::{Decoding, decode_json};
use crate::rules::engine::{Evaluation, Verdict};
use crate::rules::testing::run_timers;
use crate::rules::{Engine, LoadError, load_dir};

/// Longest input line accepted. Events are bounded at decode time too; this keeps a stray binary
/// file from being read into memory as one line.
const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// Arguments of `reflex replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Rules directory or file.
    #[arg(long, default_value = "rules")]
    pub rules: PathBuf,
    /// JSON-lines file: one event per line, either a bare payload or an envelope
    /// `{"topic": ..., "payload": ..., "key"?, "headers"?, "timestamp"?}`. `-` reads stdin.
    pub events: PathBuf,
    /// Topic for bare payload lines.
    #[arg(long, default_value = "events")]
    pub topic: String,
    /// Force a decoder instead of auto-detection.
    #[arg(long, value_enum, default_value_t = ReplayDecoding::Auto)]
    pub decoding: ReplayDecoding,
    /// For every event, show every rule's verdict and its condition's evaluation.
    #[arg(long)]
    pub explain: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// Decoder choice on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplayDecoding {
    /// Detect the format.
    Auto,
    /// Plain JSON.
    Json,
    /// CloudEvents.
    Cloudevents,
    /// Alertmanager webhook payload.
    Alertmanager,
    /// Kubernetes Event.
    KubernetesEvent,
    /// Falco alert.
    Falco,
}

impl From<ReplayDecoding> for Decoding {
    fn from(d: ReplayDecoding) -> Self {
        match d {
            ReplayDecoding::Auto => Decoding::Auto,
            ReplayDecoding::Json => Decoding::Json,
            ReplayDecoding::Cloudevents => Decoding::Cloudevents,
            ReplayDecoding::Alertmanager => Decoding::Alertmanager,
            ReplayDecoding::KubernetesEvent => Decoding::KubernetesEvent,
            ReplayDecoding::Falco => Decoding::Falco,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Envelope {
    topic: String,
    payload: Value,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    timestamp: Option<DateTime<Utc>>,
}

/// Replays the file; exit 0 unless the rules are invalid or the file unreadable. Lines that
/// cannot be decoded are reported and skipped.
pub fn run(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let rules = match load_dir(&args.rules) {
        Ok(r) => Arc::new(r),
        Err(LoadError::Invalid(problems)) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!(
                "{} problem(s) in the rules; fix them first (reflex validate)",
                problems.len()
            );
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e.into()),
    };
    let reader: Box<dyn BufRead> = if args.events.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(&args.events)
            .with_context(|| format!("cannot open {}", args.events.display()))?;
        Box::new(BufReader::new(file))
    };
    let mut engine = Engine::new(rules);
    let mut clock: Option<DateTime<Utc>> = None;
    let (mut events, mut planned, mut bad) = (0usize, 0usize, 0usize);
    for (number, line) in reader.lines().enumerate() {
        let number = number + 1;
        let line = line.with_context(|| format!("reading line {number}"))?;
        if line.trim().is_empty() {
            continue;
        }
        if line.len() > MAX_LINE_BYTES {
            eprintln!("line {number}: skipped, longer than {MAX_LINE_BYTES} bytes");
            bad += 1;
            continue;
        }
        let decoded = serde_json::from_str::<Value>(&line)
            .map_err(|e| format!("not JSON: {e}"))
            .and_then(|value| to_events(value, args, number));
        let batch = match decoded {
            Ok(batch) => batch,
            Err(why) => {
                eprintln!("line {number}: skipped, {why}");
                bad += 1;
                continue;
            }
        };
        for event in batch {
            events += 1;
            // Replay runs on event time, so windows behave as they did when the events happened.
            let now = clock.map_or(event.meta.timestamp, |c| c.max(event.meta.timestamp));
            let mut eval = Evaluation::default();
            run_timers(&mut engine, now, &mut eval);
            report(args, number, None, &eval);
            planned += eval.planned.len();
            let eval = if args.explain {
                engine.process_traced(&event, now)
            } else {
                engine.process(&event, now)
            };
            planned += eval.planned.len();
            report(args, number, Some(&event), &eval);
            clock = Some(now);
        }
    }
    eprintln!("replayed {events} event(s): {planned} planned action(s), {bad} line(s) skipped");
    Ok(ExitCode::SUCCESS)
}

fn to_events(
    value: Value,
    args: &ReplayArgs,
    number: usize,
) -> Result<Vec<crate::event::Event>, String> {
    let is_envelope =
        value.get("topic").is_some_and(Value::is_string) && value.get("payload").is_some();
    let (payload, topic, key, headers, timestamp) = if is_envelope {
        let env: Envelope =
            serde_json::from_value(value).map_err(|e| format!("bad envelope: {e}"))?;
        (env.payload, env.topic, env.key, env.headers, env.timestamp)
    } else {
        (value, args.topic.clone(), None, BTreeMap::new(), None)
    };
    decode_json(
        payload,
        &topic,
        0,
        number as i64,
        key.as_deref(),
        &headers,
        timestamp,
        args.decoding.into(),
    )
    .map_err(|e| e.to_string())
}

fn report(args: &ReplayArgs, line: usize, event: Option<&crate::event::Event>, eval: &Evaluation) {
    match args.format {
        OutputFormat::Json => {
            let trace: Vec<Value> = eval
                .trace
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "rule": t.rule,
                        "verdict": verdict_text(&t.verdict),
                        "condition": t.condition.as_ref().map(|c| c.to_string()),
                    })
                })
                .collect();
            if event.is_none() && eval.planned.is_empty() && eval.failures.is_empty() {
                return;
            }
            println!(
                "{}",
                serde_json::json!({
                    "line": line,
                    "event_id": event.map(|e| e.meta.id.clone()),
                    "timer": event.is_none(),
                    "planned": eval.planned,
                    "failures": eval.failures,
                    "trace": trace,
                })
            );
        }
        OutputFormat::Text => {
            match event {
                Some(e) => println!(
                    "line {line}: event {} ({}, type {}) on {}",
                    e.meta.id,
                    e.meta.format.as_str(),
                    e.meta.event_type.as_deref().unwrap_or("-"),
                    e.meta.topic
                ),
                None if eval.planned.is_empty() && eval.failures.is_empty() => return,
                None => println!("before line {line}: timers fired"),
            }
            for p in &eval.planned {
                let dry = if p.dry_run { " (dry run)" } else { "" };
                println!("  → {} {}{dry}: {}", p.rule, p.kind.as_str(), p.params);
            }
            for f in &eval.failures {
                println!("  ✗ {}: {}", f.rule, f.message);
            }
            if event.is_some()
                && eval.planned.is_empty()
                && eval.failures.is_empty()
                && !args.explain
            {
                println!("  (no action)");
            }
            for t in &eval.trace {
                println!("  rule {}: {}", t.rule, verdict_text(&t.verdict));
                if let Some(c) = &t.condition {
                    for l in c.to_string().lines() {
                        println!("      {l}");
                    }
                }
            }
        }
    }
}

fn verdict_text(v: &Verdict) -> String {
    match v {
        Verdict::Disabled => "disabled".into(),
        Verdict::Stopped { by } => {
            format!("not evaluated: rule `{by}` matched first and has stop: true")
        }
        Verdict::NotSelected(miss) => format!(
            "not selected: {}",
            match miss {
                crate::rules::ruleset::SelectorMiss::Topic => "topic not in `select.topics`",
                crate::rules::ruleset::SelectorMiss::Format => "format not in `select.formats`",
                crate::rules::ruleset::SelectorMiss::Type => "event type not in `select.types`",
                crate::rules::ruleset::SelectorMiss::AlertStatus =>
                    "alert status filtered by `select.alert_status`",
            }
        ),
        Verdict::ConditionFalse => "condition false".into(),
        Verdict::Held(why) => format!("matched, not fired: {why}"),
        Verdict::Fired(n) => format!("fired: {n} action(s) planned"),
        Verdict::Failed(why) => format!("failed: {why}"),
    }
}
