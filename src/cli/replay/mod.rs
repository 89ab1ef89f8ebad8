//! `reflex replay --rules DIR EVENTS.jsonl`: what the rules would do for each event, and with
//! `--explain`, why each rule did or did not fire and, for a rule with a closed loop, the
//! chain its firing would follow ([`chain`]).

mod chain;

use std::borrow::Cow;
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
use crate::config::Config;
use crate::event::decode::{DecodeLimits, Decoding, RawRecord, decode};
use crate::rules::engine::{Evaluation, Verdict};
use crate::rules::testing::run_timers;
use crate::rules::{Engine, LoadError, RuleSet, load_dir};

/// Longest input line read, at least: a line holds one event (bounded by the decode limits,
/// which `decode` applies as `reflex run` does) plus its envelope; this bound keeps a stray
/// binary file from being read into memory as one line. Raised to twice
/// `pipeline.max_payload_bytes` when that is larger, for escaped payloads in envelopes.
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
    /// `reflex run`'s configuration file: its decode limits (`pipeline.max_payload_bytes`,
    /// `max_depth`) and per-topic decoding apply, so replay refuses what run dead-letters.
    /// Without it, the defaults apply.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Force a decoder instead of the configured one (`pipeline.decoding`) or auto-detection.
    #[arg(long, value_enum)]
    pub decoding: Option<ReplayDecoding>,
    /// For every event, show every rule's verdict and its condition's evaluation, and for a
    /// firing rule with a closed loop what it would verify, escalate to, guard and undo.
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

/// How lines become records: what `reflex run` would do with them.
struct Decoder<'a> {
    args: &'a ReplayArgs,
    limits: DecodeLimits,
    decoding: BTreeMap<String, Decoding>,
}

/// Replays the file; exit 0 unless the rules are invalid or the file unreadable. Lines that
/// cannot be decoded are reported and skipped.
pub fn run(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => Config::load(Some(path))
            .with_context(|| format!("cannot load the configuration {}", path.display()))?,
        None => Config::default(),
    };
    let decoder = Decoder {
        args,
        limits: config.pipeline.decode_limits(),
        decoding: config.pipeline.decoding,
    };
    let max_line = MAX_LINE_BYTES.max(decoder.limits.max_payload_bytes.saturating_mul(2));
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
    let mut reader: Box<dyn BufRead> = if args.events.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(&args.events)
            .with_context(|| format!("cannot open {}", args.events.display()))?;
        Box::new(BufReader::new(file))
    };
    let mut engine = Engine::new(Arc::clone(&rules));
    let mut clock: Option<DateTime<Utc>> = None;
    let (mut events, mut planned, mut bad) = (0usize, 0usize, 0usize);
    let mut line = Vec::new();
    for number in 1.. {
        let fits = match read_line(&mut reader, max_line, &mut line)
            .with_context(|| format!("reading line {number}"))?
        {
            None => break,
            Some(fits) => fits,
        };
        if !fits {
            eprintln!(
                "line {number}: skipped, longer than {max_line} bytes (an event is at most \
                 {} bytes: pipeline.max_payload_bytes)",
                decoder.limits.max_payload_bytes
            );
            bad += 1;
            continue;
        }
        if line.trim_ascii().is_empty() {
            continue;
        }
        let batch = match decoder.events(&line, number) {
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
            report(args, &rules, number, None, &eval);
            planned += eval.planned.len();
            let eval = if args.explain {
                engine.process_traced(&event, now)
            } else {
                engine.process(&event, now)
            };
            planned += eval.planned.len();
            report(args, &rules, number, Some(&event), &eval);
            clock = Some(now);
        }
    }
    eprintln!("replayed {events} event(s): {planned} planned action(s), {bad} line(s) skipped");
    Ok(ExitCode::SUCCESS)
}

impl Decoder<'_> {
    /// The events of one line, decoded by the function `reflex run` uses, with the same limits:
    /// a bare line is a record value; an envelope's payload is the value serialized as JSON.
    /// The record's offset is the line number.
    fn events(&self, line: &[u8], number: usize) -> Result<Vec<crate::event::Event>, String> {
        let envelope = serde_json::from_slice::<Value>(line).ok().filter(|value| {
            value.get("topic").is_some_and(Value::is_string) && value.get("payload").is_some()
        });
        let envelope: Option<Envelope> = envelope
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| format!("bad envelope: {e}"))?;
        let payload = match &envelope {
            Some(env) => Cow::Owned(
                serde_json::to_vec(&env.payload).map_err(|e| format!("bad payload: {e}"))?,
            ),
            None => Cow::Borrowed(line),
        };
        let env = envelope.as_ref();
        let record = RawRecord {
            topic: env.map_or(self.args.topic.as_str(), |e| e.topic.as_str()),
            partition: 0,
            offset: i64::try_from(number).unwrap_or(i64::MAX),
            key: env.and_then(|e| e.key.as_deref()).map(str::as_bytes),
            headers: env
                .map(|e| {
                    e.headers
                        .iter()
                        .map(|(name, value)| (name.as_str(), Some(value.as_bytes())))
                        .collect()
                })
                .unwrap_or_default(),
            payload: Some(&*payload),
            timestamp: env.and_then(|e| e.timestamp),
        };
        decode(&record, self.decoding_of(record.topic), &self.limits).map_err(|e| e.to_string())
    }

    /// `--decoding`, else the topic's `pipeline.decoding`, else auto-detection.
    fn decoding_of(&self, topic: &str) -> Decoding {
        self.args
            .decoding
            .map(Decoding::from)
            .or_else(|| self.decoding.get(topic).copied())
            .unwrap_or_default()
    }
}

/// Reads one line (without its `\n`) into `line`, keeping at most `max` bytes: `Some(true)`
/// for a line within the bound, `Some(false)` for a longer one (read to its end and dropped,
/// never held whole in memory), `None` at the end of the input.
fn read_line(
    reader: &mut dyn BufRead,
    max: usize,
    line: &mut Vec<u8>,
) -> std::io::Result<Option<bool>> {
    line.clear();
    let (mut read_any, mut fits) = (false, true);
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(read_any.then_some(fits));
        }
        read_any = true;
        let newline = chunk.iter().position(|&b| b == b'\n');
        let part = &chunk[..newline.unwrap_or(chunk.len())];
        if fits && line.len() + part.len() <= max {
            line.extend_from_slice(part);
        } else {
            fits = false;
            line.clear();
        }
        let used = newline.map_or(chunk.len(), |i| i + 1);
        reader.consume(used);
        if newline.is_some() {
            return Ok(Some(fits));
        }
    }
}

fn report(
    args: &ReplayArgs,
    rules: &RuleSet,
    line: usize,
    event: Option<&crate::event::Event>,
    eval: &Evaluation,
) {
    // Timer firings have a chain too: a closed loop starts however the rule fired.
    let chains: Vec<chain::Chain> = if args.explain {
        eval.fired
            .iter()
            .filter_map(|fired| chain::chain(rules.get(&fired.rule)?, fired))
            .collect()
    } else {
        Vec::new()
    };
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
            let mut object = serde_json::json!({
                "line": line,
                "event_id": event.map(|e| e.meta.id.clone()),
                "timer": event.is_none(),
                "planned": eval.planned,
                "failures": eval.failures,
                "trace": trace,
            });
            if args.explain {
                object["remediations"] = serde_json::json!(chains);
            }
            println!("{object}");
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
                println!(
                    "  → {} {}{dry}: {}",
                    p.rule,
                    p.kind().as_str(),
                    p.action.params_json()
                );
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
            for l in chains.iter().flat_map(chain::Chain::lines) {
                println!("  {l}");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_over_the_bound_is_skipped_without_being_kept_and_the_next_one_is_read() {
        let input = format!("{}\nshort\r\nlast", "x".repeat(100));
        let mut reader = std::io::BufReader::with_capacity(8, input.as_bytes());
        let mut line = Vec::new();
        assert_eq!(read_line(&mut reader, 10, &mut line).unwrap(), Some(false));
        assert!(line.is_empty());
        assert_eq!(read_line(&mut reader, 10, &mut line).unwrap(), Some(true));
        assert_eq!(line, b"short\r");
        assert_eq!(read_line(&mut reader, 10, &mut line).unwrap(), Some(true));
        assert_eq!(line, b"last");
        assert_eq!(read_line(&mut reader, 10, &mut line).unwrap(), None);
    }
}
