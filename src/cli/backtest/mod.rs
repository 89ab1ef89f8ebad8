//! `reflex backtest`: what the rules would have done over history — read from Kafka by time
//! ([`kafka`], joining no consumer group and committing nothing) or from a JSON-lines file —
//! run through the real engine on the events' own time with the guardrails simulated
//! ([`simulate`]), reported per rule ([`report`]); with `--against OLD_DIR`, only what
//! changes between two rule sets ([`diff`]).

pub mod decode;
pub mod diff;
pub mod kafka;
pub mod report;
pub mod simulate;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::ValueEnum;

use super::replay::ReplayDecoding;
use super::replay::input::{self, Decoder};
use crate::event::Event;
use crate::event::decode::Decoding;
use diff::Diff;
use report::{Read, Report};
use simulate::Simulation;

/// Exit code when `--against` finds differences.
const EXIT_DIFFERENT: u8 = 1;
/// Exit code when the backtest could not run (invalid rules, unreachable Kafka): the CLI's
/// runtime-error code, kept apart from `EXIT_DIFFERENT` so a CI job can tell "the change does
/// something" from "the check itself broke".
const EXIT_ERROR: u8 = crate::cli::Exit::Runtime as u8;

/// Arguments of `reflex backtest`.
#[derive(Debug, clap::Args)]
pub struct BacktestArgs {
    /// Rules directory or file to try.
    #[arg(long, default_value = "rules")]
    pub rules: PathBuf,
    /// Topic to read (repeat for several). Default: the configuration's `kafka.topics.events`.
    /// With `--file`: the topic of bare payload lines.
    #[arg(long = "topic", value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// Start of the history: a duration back from now (`24h`, `7d`, `90m`) or an RFC 3339 time.
    /// Required when reading Kafka; with `--file`, events before it are left out.
    #[arg(long)]
    pub since: Option<String>,
    /// End of the history (same forms as `--since`). Default: what the topics hold when the
    /// backtest starts (or the end of the file).
    #[arg(long)]
    pub until: Option<String>,
    /// Read events from this JSON-lines file (as `reflex replay` does, `-` for stdin) instead of
    /// Kafka.
    #[arg(long, value_name = "EVENTS.jsonl")]
    pub file: Option<PathBuf>,
    /// Also run this (older) rules directory over the same events and report only the
    /// differences; exit 1 when there are any, 0 when none.
    #[arg(long, value_name = "OLD_DIR")]
    pub against: Option<PathBuf>,
    /// `reflex run`'s configuration file: Kafka connection, per-topic decoding and limits, and
    /// the guardrails (`actions:`) the simulation applies. Without it, the defaults apply.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Kafka brokers (overrides the configuration's `kafka.bootstrap_servers`).
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS")]
    pub bootstrap_servers: Option<String>,
    /// Force a decoder instead of the configured one (`pipeline.decoding`) or auto-detection.
    #[arg(long, value_enum)]
    pub decoding: Option<ReplayDecoding>,
    /// Report format.
    #[arg(long, short = 'o', value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Print reading progress to stderr even when it is not a terminal.
    #[arg(long)]
    pub progress: bool,
    /// Threads decoding Kafka records beside the reading one (default 0: the thread running
    /// the rules decodes while another reads, the fastest on 2 cores; see docs/performance.md).
    #[arg(long, value_name = "N")]
    pub decode_threads: Option<usize>,
    /// Longest wait for Kafka metadata, offsets, or the next record, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub timeout: u64,
}

/// Report format of `reflex backtest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ReportFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// JSON, for machines and CI.
    Json,
    /// A self-contained HTML page with a plot of firings over time per rule.
    Html,
}

/// Runs the backtest: exit 0 when it ran (with `--against`: and nothing changed), 1 when
/// `--against` found differences, 2 for a usage mistake (`--since`/`--until`), 3 when it could
/// not run.
pub fn run(args: &BacktestArgs) -> anyhow::Result<ExitCode> {
    match backtest(args) {
        Ok(code) => Ok(code),
        Err(err) => {
            eprintln!("reflex backtest: {err:#}");
            Ok(ExitCode::from(crate::cli::exit_code_of(&err) as u8))
        }
    }
}

fn backtest(args: &BacktestArgs) -> anyhow::Result<ExitCode> {
    let started = Utc::now();
    let mut config = input::load_config(args.config.as_deref())?;
    if let Some(servers) = &args.bootstrap_servers {
        config.kafka.bootstrap_servers.clone_from(servers);
    }
    let since = args
        .since
        .as_deref()
        .map(|s| instant(s, started))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|s| instant(s, started))
        .transpose()?;
    if let (Some(since), Some(until)) = (since, until)
        && until < since
    {
        return Err(usage(format!(
            "--until ({until}) is before --since ({since})"
        )));
    }
    let Some(rules) = input::load_rules(&args.rules)? else {
        return Ok(ExitCode::from(EXIT_ERROR));
    };
    let old = match &args.against {
        Some(dir) => match input::load_rules(dir)? {
            Some(old) => Some(Simulation::new(old, &config, true)),
            None => return Ok(ExitCode::from(EXIT_ERROR)),
        },
        None => None,
    };
    let mut run = Run {
        new: Simulation::new(rules, &config, old.is_some()),
        old,
        events: 0,
        skipped: 0,
        from: None,
        last: None,
    };
    let topics = if args.topics.is_empty() {
        config.kafka.topics.events.clone()
    } else {
        args.topics.clone()
    };
    let bare_topic = topics.first().map_or("events", String::as_str);
    let decoder = Decoder::new(&config, bare_topic, args.decoding.map(Decoding::from));
    let (source, end) = match &args.file {
        Some(path) => {
            run.skipped = input::read_events(path, &decoder, |_, event| {
                let ts = event.meta.timestamp;
                if since.is_none_or(|s| ts >= s) && until.is_none_or(|u| ts <= u) {
                    run.event(&event);
                }
                Ok(())
            })? as u64;
            (format!("file {}", path.display()), until)
        }
        None => {
            let Some(since) = since else {
                return Err(usage(
                    "--since is required when reading Kafka (e.g. --since 24h), or use --file"
                        .into(),
                ));
            };
            let slice = kafka::Slice {
                topics: topics.clone(),
                since,
                until,
                timeout: Duration::from_secs(args.timeout),
                progress: args.progress,
                decode_threads: args.decode_threads.unwrap_or(decode::DEFAULT_THREADS),
            };
            run.skipped = read_kafka(&config, &slice, &decoder, |event| run.event(event))?;
            (
                format!("Kafka topics {}", topics.join(", ")),
                Some(until.unwrap_or(started)),
            )
        }
    };
    run.new.finish(end);
    if let Some(old) = &mut run.old {
        old.finish(end);
    }
    let read = Read {
        source,
        events: run.events,
        skipped: run.skipped,
        from: run.from,
        to: end.or(run.last),
    };
    if let Some(mut old) = run.old.take() {
        let diff = Diff::new(run.events, old.take_planned(), run.new.take_planned());
        print!(
            "{}",
            match args.format {
                ReportFormat::Text => diff.text(),
                ReportFormat::Json => format!("{}\n", serde_json::to_string_pretty(&diff)?),
                ReportFormat::Html => diff.html(),
            }
        );
        return Ok(if diff.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_DIFFERENT)
        });
    }
    let report = Report::new(&read, &run.new);
    print!(
        "{}",
        match args.format {
            ReportFormat::Text => report::text::render(&report),
            ReportFormat::Json => format!("{}\n", serde_json::to_string_pretty(&report)?),
            ReportFormat::Html => report::html::render(&report),
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// The events fed to one or two rule sets.
struct Run {
    new: Simulation,
    old: Option<Simulation>,
    events: u64,
    skipped: u64,
    from: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
}

impl Run {
    fn event(&mut self, event: &Event) {
        self.events += 1;
        let ts = event.meta.timestamp;
        self.from = Some(self.from.map_or(ts, |f| f.min(ts)));
        self.last = Some(self.last.map_or(ts, |l| l.max(ts)));
        self.new.event(event);
        if let Some(old) = &mut self.old {
            old.event(event);
        }
    }
}

/// Reads the slice and hands every decoded event to `each`, in time order (decoding on every
/// core, [`decode`]); undecodable records are counted and skipped (`reflex run` dead-letters
/// them), the first few named on stderr. Returns how many were skipped.
pub fn read_kafka(
    config: &crate::config::Config,
    slice: &kafka::Slice,
    decoder: &Decoder,
    mut each: impl FnMut(&Event),
) -> anyhow::Result<u64> {
    /// Undecodable records named on stderr; the rest are only counted.
    const NAMED: u64 = 10;
    let opening = std::time::Instant::now();
    let history = kafka::History::open(config, slice)?;
    tracing::debug!(
        group = history.group(),
        opened_in_ms = opening.elapsed().as_millis(),
        "reading history"
    );
    let mut skipped = 0;
    decode::in_order(
        history,
        decoder,
        slice.decode_threads,
        |decoded| match decoded {
            Ok(batch) => batch.iter().for_each(&mut each),
            Err(skip) => {
                skipped += 1;
                if skipped <= NAMED {
                    eprintln!(
                        "{}/{} offset {}: skipped, {}",
                        skip.topic, skip.partition, skip.offset, skip.why
                    );
                }
            }
        },
    )?;
    Ok(skipped)
}

/// `--since`/`--until`: an RFC 3339 time, or a duration back from `now`.
fn instant(text: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    crate::rules::duration::parse(text)
        .map(|ago| now - ago)
        .map_err(|why| {
            usage(format!(
                "`{text}` is neither an RFC 3339 time (2026-01-31T08:00:00Z) nor a duration \
                 back from now: {why}"
            ))
        })
}

fn usage(message: String) -> anyhow::Error {
    crate::cli::Error::Usage(message).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_is_a_duration_back_from_now_or_an_rfc3339_instant() {
        let now = DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            instant("90m", now).unwrap(),
            now - chrono::Duration::minutes(90)
        );
        assert_eq!(
            instant("2026-02-28T00:00:00+01:00", now)
                .unwrap()
                .to_rfc3339(),
            "2026-02-27T23:00:00+00:00"
        );
        let err = instant("yesterday", now).unwrap_err().to_string();
        assert!(err.contains("RFC 3339"), "{err}");
    }
}
