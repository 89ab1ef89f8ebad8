//! `reflex bench`: end-to-end throughput, latency and memory of the real pipeline against the
//! real Kafka.
//!
//! The bench generates `--rules` rules over a mix of five event formats (Alertmanager,
//! Kubernetes Event, Falco, CloudEvents, plain JSON; built from the decoders' sample payloads),
//! then runs the same components as `reflex run` — [`KafkaSource`] feeding a [`Pipeline`] with
//! its audit store and outcomes topic, `log` actions — in this process, on fresh topics:
//!
//! - **latency**: the pipeline is started and joined first, then events are produced at
//!   `--rate` for `--duration`, each stamped with its send time in a header; a record's latency
//!   ends when the pipeline returns from it, i.e. when every outcome of the record is durable
//!   (store row final and published, outcomes topic acknowledged) — measured in-process.
//! - **throughput**, once per `--fire` fraction: `--events` records are produced first (a
//!   backlog), then the pipeline consumes them; throughput counts from the start of the first
//!   record to the end of the last one (every outcome durable), and separately to the moment
//!   the consumer group's committed offsets cover every record.
//!
//! Counts are cross-checked (produced = handled = committed; outcomes on the topic = firing
//! events × one action) and the command fails when they disagree. The topics are deleted at
//! the end.

mod backtest;
mod kafka;
mod measure;
mod phase;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::FutureProducer;
use serde::Serialize;

use self::measure::{Clock, Memory, Percentiles};
use self::workload::Workload;
use crate::config::Config;
use crate::rules::RuleSet;
use crate::store::{Backend, Store};

/// How long a phase may take to consume what was produced before the bench gives up: far more
/// than any healthy run needs (200,000 records at even 2,000/s take 100 s), bounded so a stuck
/// pipeline ends the bench with an error instead of hanging it.
const CONSUME_TIMEOUT: Duration = Duration::from_secs(600);

/// How long the consumer may take to join its group and get every partition.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

/// How long after the last record the committed offsets may take to cover it: the commit
/// interval (1 s) plus a broker round trip, with a wide margin.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Timeout of one admin or metadata request to the broker.
const BROKER_TIMEOUT: Duration = Duration::from_secs(15);

/// How often progress is checked while waiting.
const POLL_EVERY: Duration = Duration::from_millis(5);

/// Arguments of `reflex bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "localhost:9092"
    )]
    pub bootstrap_servers: String,
    /// Records pre-produced for each throughput run.
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    /// Rules generated (a mix over five formats).
    #[arg(long, default_value_t = 100)]
    pub rules: usize,
    /// One rule in this many is stateful: a `threshold` of one keyed per rule, so a rule's
    /// events share one group key across every partition (3: a third of the firing rules;
    /// 0: none).
    #[arg(long, default_value_t = workload::STATEFUL_EVERY, value_name = "N")]
    pub stateful_every: usize,
    /// Every rule closes the loop (`verify: {within: 1h, no_refire: true}`), so each firing
    /// also opens a remediation in the store: measures what following actions up costs.
    #[arg(long)]
    pub closed_loop: bool,
    /// Fractions of the events that fire a rule (one `log` action each); one throughput run
    /// per value, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0,0.01,0.1")]
    pub fire: Vec<f64>,
    /// Events per second produced during the latency run.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Length of the latency run (`30s`, `2m`); `0s` skips it.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Fraction of the events that fire a rule during the latency run.
    #[arg(long, default_value_t = 0.01)]
    pub latency_fire: f64,
    /// Partitions of each events topic (the pipeline's concurrency).
    #[arg(long, default_value_t = 8)]
    pub partitions: i32,
    /// Records queued between the consumer and each partition's worker
    /// (`consumer.partition_queue` of `reflex run`); default: the configuration's default.
    #[arg(long, value_name = "RECORDS")]
    pub partition_queue: Option<usize>,
    /// A librdkafka property for the pipeline's clients, `name=value` (`kafka.client` of
    /// `reflex run`); repeatable.
    #[arg(long = "kafka-client", value_name = "NAME=VALUE", value_parser = parse_property)]
    pub kafka_client: Vec<(String, String)>,
    /// Audit store URL (`sqlite://...` or `postgres://...`). Default: a fresh SQLite file in a
    /// temporary directory, as `reflex run` uses by default.
    #[arg(long, value_name = "URL")]
    pub store_url: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Measure `reflex backtest` instead: per `--fire` fraction, `--events` records on a fresh
    /// topic of `--partitions` partitions, read back by time and run through the `--rules`
    /// generated rules with the guardrails simulated (see docs/performance.md).
    #[arg(long)]
    pub backtest: bool,
    /// With `--backtest`: threads decoding records beside the reading one (default 0: the
    /// thread running the rules decodes).
    #[arg(long, value_name = "N")]
    pub decode_threads: Option<usize>,
    /// Also print the process's Prometheus metrics (what `/metrics` of `reflex run` would show
    /// after the same work) to standard error at the end.
    #[arg(long)]
    pub metrics: bool,
}

/// The whole report (`--json`).
#[derive(Debug, Serialize)]
pub struct Report {
    /// Logical CPUs of the machine.
    pub cpus: usize,
    /// Generated rules.
    pub rules: usize,
    /// One rule in this many is stateful (`--stateful-every`; 0: none).
    pub stateful_every: usize,
    /// Every rule closes the loop (`--closed-loop`).
    pub closed_loop: bool,
    /// Partitions per events topic.
    pub partitions: i32,
    /// `sqlite` or `postgres`.
    pub store: &'static str,
    /// Memory once the pipeline had started and joined, before any event.
    pub at_rest: Memory,
    /// The fixed-rate run, if any.
    pub latency: Option<LatencyRun>,
    /// One backlog run per firing fraction.
    pub throughput: Vec<ThroughputRun>,
    /// Count mismatches found (empty when every count agrees).
    pub problems: Vec<String>,
}

/// Counts every run reports.
#[derive(Debug, Default, Serialize)]
pub struct Counts {
    /// Fraction of events that fire a rule.
    pub fire_fraction: f64,
    /// Records acknowledged by the broker.
    pub produced: u64,
    /// Records the pipeline finished.
    pub handled: u64,
    /// Sum of the committed offsets of the consumer group.
    pub committed: u64,
    /// Outcomes the pipeline reported recording.
    pub outcomes: u64,
    /// Records on the outcomes topic.
    pub outcomes_on_topic: u64,
    /// Outcomes the generator predicts (firing events × one action).
    pub expected_outcomes: u64,
    /// Records dead-lettered (none expected).
    pub dead_letters: u64,
    /// Peak memory during the run.
    pub peak: Memory,
    /// Time the pipeline spent on each record that recorded outcomes.
    pub firing_handle: Percentiles,
}

/// The fixed-rate run.
#[derive(Debug, Serialize)]
pub struct LatencyRun {
    /// Counts.
    #[serde(flatten)]
    pub counts: Counts,
    /// Target rate, events/s.
    pub rate: u64,
    /// Seconds of producing.
    pub seconds: f64,
    /// Produce-to-durable-outcome latency of every record.
    pub all: Percentiles,
    /// The same for the records that fired an action.
    pub firing: Percentiles,
}

/// One backlog run.
#[derive(Debug, Serialize)]
pub struct ThroughputRun {
    /// Counts.
    #[serde(flatten)]
    pub counts: Counts,
    /// From the first record's start to the last record's end (outcomes durable), seconds.
    pub seconds: f64,
    /// `handled / seconds`.
    pub events_per_sec: f64,
    /// From the first record's start until the committed offsets covered every record.
    pub seconds_to_commit: f64,
    /// `handled / seconds_to_commit`.
    pub events_per_sec_committed: f64,
}

/// Runs the bench; fails (exit code 1) when the counts disagree.
pub fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    validate(args)?;
    let runtime = tokio::runtime::Runtime::new()?;
    if args.backtest {
        return runtime.block_on(backtest::run(args));
    }
    let report = runtime.block_on(bench(args))?;
    if args.metrics {
        eprint!("{}", crate::metrics::global().encode());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", phase::render(&report));
    }
    if report.problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for problem in &report.problems {
            eprintln!("count mismatch: {problem}");
        }
        Ok(ExitCode::FAILURE)
    }
}

/// Parses `30s`, `2m`, `1h30m` (the rule files' syntax) into a standard duration.
fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::rules::duration::parse(text)?
        .to_std()
        .map_err(|_| format!("`{text}` is negative; give a duration such as `30s`"))
}

/// Parses `name=value`.
fn parse_property(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .filter(|(name, _)| !name.is_empty())
        .ok_or_else(|| format!("`{text}` is not `name=value` (e.g. `fetch.wait.max.ms=10`)"))
}

fn validate(args: &BenchArgs) -> anyhow::Result<()> {
    for fraction in args.fire.iter().chain([&args.latency_fire]) {
        if !(0.0..=1.0).contains(fraction) {
            bail!("--fire and --latency-fire take fractions between 0 and 1 (got {fraction})");
        }
    }
    if args.partitions < 1 {
        bail!("--partitions must be at least 1");
    }
    if args.rules == 0 {
        bail!("--rules must be at least 1");
    }
    Ok(())
}

/// What every phase shares.
struct Bench {
    args: BenchArgs,
    prefix: String,
    clock: Clock,
    workload: Workload,
    rules: Arc<RuleSet>,
    store: Store,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    topics: Vec<String>,
}

async fn bench(args: &BenchArgs) -> anyhow::Result<Report> {
    with_bench(args, async |bench: &mut Bench| bench.run_phases().await).await
}

/// Prepares the bench, runs `body`, then deletes the topics it created, closes the store and
/// removes the temporary directory, whatever `body` returned.
async fn with_bench<T>(
    args: &BenchArgs,
    body: impl AsyncFnOnce(&mut Bench) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S");
    let prefix = format!("reflex-bench-{stamp}-{}", std::process::id());
    let dir = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    let result = prepare(args, prefix, dir.clone()).await;
    let report = match result {
        Ok(mut bench) => {
            let result = body(&mut bench).await;
            bench.delete_topics().await;
            bench.store.close().await;
            result
        }
        Err(err) => Err(err),
    };
    // Best effort: a leftover directory in the temporary folder harms nothing.
    let _ = std::fs::remove_dir_all(&dir);
    report
}

/// Loads the generated rules, opens the store, creates the producer.
async fn prepare(args: &BenchArgs, prefix: String, dir: PathBuf) -> anyhow::Result<Bench> {
    let mut config = Config::default();
    config
        .kafka
        .bootstrap_servers
        .clone_from(&args.bootstrap_servers);
    let admin = crate::app::connect_kafka(&config).await?;
    let workload = Workload::new(args.rules, args.stateful_every, args.closed_loop)?;
    config.rules.dir = dir.join("rules");
    std::fs::create_dir_all(&config.rules.dir)?;
    std::fs::write(config.rules.dir.join("bench.yaml"), workload.rules_yaml())?;
    let rules = crate::app::load_rules(&config)?;
    let url = args
        .store_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.join("audit.db").display()));
    config.store.url = url;
    let store = crate::app::connect_store(&config)
        .await
        .context("cannot open the audit store")?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap_servers)
        // A producer that sends at once (latency run) yet batches a backlog well.
        .set("linger.ms", "1")
        // Bounds what the backlog run queues in librdkafka before waiting for acknowledgements.
        .set("queue.buffering.max.messages", "500000")
        .create()
        .context("cannot create the bench producer")?;
    Ok(Bench {
        args: args.clone(),
        prefix,
        clock: Clock::start(),
        workload,
        rules,
        store,
        producer,
        admin,
        topics: Vec::new(),
    })
}

impl Bench {
    async fn run_phases(&mut self) -> anyhow::Result<Report> {
        let mut report = Report {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            rules: self.args.rules,
            stateful_every: self.args.stateful_every,
            closed_loop: self.args.closed_loop,
            partitions: self.args.partitions,
            store: match self.store.backend() {
                Backend::Sqlite => "sqlite",
                Backend::Postgres => "postgres",
            },
            at_rest: Memory::default(),
            latency: None,
            throughput: Vec::new(),
            problems: Vec::new(),
        };
        // Shared by the runs; none expected (every generated record decodes).
        let dead_letters = format!("{}.dead-letters", self.prefix);
        self.create_topic(&dead_letters, 1).await?;
        if self.args.rate > 0 && !self.args.duration.is_zero() {
            let (run, at_rest) = self.latency_run().await?;
            check(&mut report.problems, "latency run", &run.counts);
            report.at_rest = at_rest;
            report.latency = Some(run);
        }
        for (n, &fraction) in self.args.fire.clone().iter().enumerate() {
            let (run, at_rest) = self.throughput_run(n, fraction).await?;
            check(
                &mut report.problems,
                &format!("throughput run {n}"),
                &run.counts,
            );
            if report.latency.is_none() && n == 0 {
                report.at_rest = at_rest;
            }
            report.throughput.push(run);
        }
        Ok(report)
    }
}

/// Records every disagreement between the counts of a run.
fn check(problems: &mut Vec<String>, run: &str, counts: &Counts) {
    let pairs = [
        ("handled", counts.handled, "produced", counts.produced),
        ("committed", counts.committed, "produced", counts.produced),
        (
            "outcomes",
            counts.outcomes,
            "expected",
            counts.expected_outcomes,
        ),
        (
            "outcomes on the topic",
            counts.outcomes_on_topic,
            "expected",
            counts.expected_outcomes,
        ),
        ("dead letters", counts.dead_letters, "expected", 0),
    ];
    for (name, got, other, want) in pairs {
        if got != want {
            problems.push(format!("{run}: {name} = {got}, {other} = {want}"));
        }
    }
}

/// The fraction as parts per million.
fn ppm(fraction: f64) -> u64 {
    (fraction * 1e6).round() as u64
}
