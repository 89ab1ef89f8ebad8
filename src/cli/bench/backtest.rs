//! `reflex bench --backtest`: how fast `reflex backtest` reads history from Kafka and runs it
//! through the rules. Per `--fire` fraction, `--events` records of the generated workload are
//! produced to a fresh topic; then the slice is read back twice with the backtest's own code
//! ([`crate::cli::backtest::read_kafka`]): once only decoding (the cost of reading), once
//! through a [`Simulation`] of the generated rules (the backtest itself). Counts are
//! cross-checked: every record read once, every firing event fired once.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::measure::cpu_seconds;
use super::phase::delivered;
use super::{Bench, BenchArgs, ppm, with_bench};
use crate::cli::backtest::kafka::Slice;
use crate::cli::backtest::read_kafka;
use crate::cli::backtest::simulate::Simulation;
use crate::cli::replay::input::Decoder;
use crate::config::Config;

/// The `--backtest` report (`--json`).
#[derive(Debug, Serialize)]
pub struct BacktestReport {
    /// Logical CPUs of the machine.
    pub cpus: usize,
    /// Generated rules.
    pub rules: usize,
    /// Partitions of each topic.
    pub partitions: i32,
    /// Threads decoding beside the reading one.
    pub decode_threads: usize,
    /// One run per firing fraction.
    pub runs: Vec<BacktestRun>,
    /// Count mismatches (empty when every count agrees).
    pub problems: Vec<String>,
}

/// One run.
#[derive(Debug, Serialize)]
pub struct BacktestRun {
    /// Fraction of events that fire a rule.
    pub fire_fraction: f64,
    /// Records acknowledged by the broker.
    pub produced: u64,
    /// Reading and decoding only: events, seconds, events/s.
    pub read: Pass,
    /// Reading, decoding and running the rules with the guards simulated.
    pub backtest: Pass,
    /// Firings the simulation counted.
    pub firings: u64,
    /// Firings the generator predicts.
    pub expected_firings: u64,
}

/// One pass over the slice.
#[derive(Debug, Serialize)]
pub struct Pass {
    /// Events decoded.
    pub events: u64,
    /// From opening the reader (offsets looked up) to the last event handled.
    pub seconds: f64,
    /// `events / seconds`.
    pub events_per_sec: f64,
    /// CPU time the process used meanwhile (every thread: reading, decoding, rules).
    pub cpu_seconds: f64,
    /// `events / cpu_seconds`: the rate one core would sustain, whatever else the machine runs.
    pub events_per_cpu_sec: f64,
}

/// Runs the backtest bench; exit 1 when the counts disagree.
pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let report = with_bench(args, async |bench: &mut Bench| {
        let mut report = BacktestReport {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            rules: args.rules,
            partitions: args.partitions,
            decode_threads: args
                .decode_threads
                .unwrap_or(crate::cli::backtest::decode::DEFAULT_THREADS),
            runs: Vec::new(),
            problems: Vec::new(),
        };
        for (n, &fraction) in args.fire.iter().enumerate() {
            let run = bench.backtest_run(n, fraction).await?;
            let name = format!("backtest run {n}");
            for (what, got, want) in [
                ("events read", run.read.events, run.produced),
                ("events backtested", run.backtest.events, run.produced),
                ("firings", run.firings, run.expected_firings),
            ] {
                if got != want {
                    report
                        .problems
                        .push(format!("{name}: {what} = {got}, expected {want}"));
                }
            }
            report.runs.push(run);
        }
        Ok(report)
    })
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    for problem in &report.problems {
        eprintln!("count mismatch: {problem}");
    }
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

impl Bench {
    /// Produces the run's records, then reads them back twice (see the module docs).
    async fn backtest_run(&mut self, n: usize, fraction: f64) -> anyhow::Result<BacktestRun> {
        let topic = format!("{}.backtest-{n}", self.prefix);
        self.create_topic(&topic, self.args.partitions).await?;
        // The records are stamped with their produce time: the slice starts just before.
        let since = chrono::Utc::now() - chrono::Duration::seconds(5);
        let fire_ppm = ppm(fraction);
        let deliveries: Vec<_> = (0..self.args.events)
            .map(|i| self.send(&topic, i, fire_ppm, false))
            .collect();
        let produced = delivered(deliveries).await;
        let mut config = Config::default();
        config
            .kafka
            .bootstrap_servers
            .clone_from(&self.args.bootstrap_servers);
        config
            .kafka
            .client
            .extend(self.args.kafka_client.iter().cloned());
        let slice = Slice {
            topics: vec![topic.clone()],
            since,
            until: None,
            timeout: Duration::from_secs(30),
            progress: false,
            decode_threads: self
                .args
                .decode_threads
                .unwrap_or(crate::cli::backtest::decode::DEFAULT_THREADS),
        };
        let rules = Arc::clone(&self.rules);
        let expected_firings = self.workload.expected_firings(produced, fire_ppm);
        tokio::task::spawn_blocking(move || {
            let decoder = Decoder::new(&config, &topic, None);
            let started = Start::now();
            let mut events = 0;
            read_kafka(&config, &slice, &decoder, |_| events += 1)?;
            let read = started.pass(events);
            let mut simulation = Simulation::new(rules, &config, false);
            let started = Start::now();
            let mut events = 0;
            read_kafka(&config, &slice, &decoder, |event| {
                events += 1;
                simulation.event(event);
            })?;
            simulation.finish(None);
            let backtest = started.pass(events);
            Ok(BacktestRun {
                fire_fraction: fraction,
                produced,
                read,
                backtest,
                firings: simulation.tallies().iter().map(|t| t.firings).sum(),
                expected_firings,
            })
        })
        .await?
    }
}

/// When a pass started, by the clock and by the CPU time used.
struct Start {
    at: Instant,
    cpu: f64,
}

impl Start {
    fn now() -> Self {
        Self {
            at: Instant::now(),
            cpu: cpu_seconds(),
        }
    }

    fn pass(&self, events: u64) -> Pass {
        let seconds = self.at.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - self.cpu;
        Pass {
            events,
            seconds,
            events_per_sec: events as f64 / seconds,
            cpu_seconds: cpu,
            events_per_cpu_sec: events as f64 / cpu,
        }
    }
}

fn render(report: &BacktestReport) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = writeln!(
        out,
        "reflex bench --backtest: {} rules, {} partitions, {} CPUs, {} decoding threads",
        report.rules, report.partitions, report.cpus, report.decode_threads
    );
    for run in &report.runs {
        let _ = writeln!(
            out,
            "{:>5.1}% firing, {} records: read+decode {:.0} events/s ({:.2} s, {:.0} per CPU \
             second); backtest {:.0} events/s ({:.2} s, {:.0} per CPU second), {} firings",
            run.fire_fraction * 100.0,
            run.produced,
            run.read.events_per_sec,
            run.read.seconds,
            run.read.events_per_cpu_sec,
            run.backtest.events_per_sec,
            run.backtest.seconds,
            run.backtest.events_per_cpu_sec,
            run.firings
        );
    }
    out
}
