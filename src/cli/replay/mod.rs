//! `reflex replay --rules DIR EVENTS.jsonl`: what the rules would do for each event, and with
//! `--explain`, why each rule did or did not fire and, for a rule with a closed loop, the
//! chain its firing would follow ([`chain`]).

mod chain;
pub mod input;

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::Value;

use super::OutputFormat;
use crate::event::decode::Decoding;
use crate::rules::RuleSet;
use crate::rules::engine::{Engine, Evaluation, Verdict};
use input::{Decoder, EventClock};

/// Arguments of `reflex replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Rules directory or file.
    #[arg(long, default_value = "rules")]
    pub rules: PathBuf,
    /// Events file, one record per line: a bare record value (a JSON document, or a raw log
    /// line under a log decoding: `--decoding syslog`, or the topic's `pipeline.decoding`) or an
    /// envelope `{"topic": ..., "payload": ..., "key"?, "headers"?, "timestamp"?}` (under a
    /// text decoding a string payload is the line itself). `-` reads stdin.
    pub events: PathBuf,
    /// Topic for bare payload lines.
    #[arg(long, default_value = "events")]
    pub topic: String,
    /// `reflex run`'s configuration file: its decode limits (`pipeline.max_payload_bytes`,
    /// `max_depth`) and per-topic decoding apply, so replay refuses what run dead-letters.
    /// Without it, the defaults apply.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Force a decoder instead of the configured one (`pipeline.decoding`) or auto-detection;
    /// the log decodings (`log`, `syslog`, `logfmt`, `log-json`, `otlp-json`) read raw log
    /// lines as `reflex run` reads records of a topic configured with them.
    #[arg(long, value_enum)]
    pub decoding: Option<ReplayDecoding>,
    /// For every event, show every rule's verdict and its condition's evaluation, and for a
    /// firing rule with a closed loop what it would verify, escalate to, guard and undo.
    #[arg(long)]
    pub explain: bool,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
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
    #[value(alias = "kubernetes_event")]
    KubernetesEvent,
    /// Falco alert.
    Falco,
    /// Plain-text log lines: each line is the `message`.
    Log,
    /// Syslog lines (RFC 5424, RFC 3164, rsyslog's file formats).
    Syslog,
    /// logfmt lines (`key=value` pairs).
    Logfmt,
    /// A log shipper's JSON record per line (Fluent Bit, Vector, Filebeat).
    #[value(alias = "log_json")]
    LogJson,
    /// An OpenTelemetry logs export in OTLP/JSON per line.
    #[value(alias = "otlp_json")]
    OtlpJson,
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
            ReplayDecoding::Log => Decoding::Log,
            ReplayDecoding::Syslog => Decoding::Syslog,
            ReplayDecoding::Logfmt => Decoding::Logfmt,
            ReplayDecoding::LogJson => Decoding::LogJson,
            ReplayDecoding::OtlpJson => Decoding::OtlpJson,
        }
    }
}

/// Replays the file; exit 0 unless the rules are invalid or the file unreadable. Lines that
/// cannot be decoded are reported and skipped.
pub fn run(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let config = input::load_config(args.config.as_deref())?;
    let decoder = Decoder::new(&config, &args.topic, args.decoding.map(Decoding::from));
    let Some(rules) = input::load_rules(&args.rules)? else {
        return Ok(ExitCode::FAILURE);
    };
    let mut engine = Engine::new(std::sync::Arc::clone(&rules));
    let mut clock = EventClock::default();
    let (mut events, mut planned) = (0usize, 0usize);
    let bad = input::read_events(&args.events, &decoder, |number, event| {
        events += 1;
        let (now, timers) = clock.advance(&mut engine, event.meta.timestamp);
        report(args, &rules, number, None, &timers);
        planned += timers.planned.len();
        let eval = if args.explain {
            engine.process_traced(&event, now)
        } else {
            engine.process(&event, now)
        };
        planned += eval.planned.len();
        report(args, &rules, number, Some(&event), &eval);
        Ok(())
    })?;
    eprintln!("replayed {events} event(s): {planned} planned action(s), {bad} line(s) skipped");
    Ok(ExitCode::SUCCESS)
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
