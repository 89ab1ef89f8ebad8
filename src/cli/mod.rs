//! The subcommands behind the `reflex` binary; each lives in its own file.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub mod audit;
pub mod backtest;
pub mod bench;
pub mod completion;
pub mod config;
pub mod history;
pub mod import;
pub mod rbac;
pub mod release;
pub mod replay;
pub mod run;
pub mod schema;
pub mod table;
pub mod test;
pub mod validate;
pub mod version;

/// Reflex: event-driven automation for Kubernetes. Kafka events in, YAML rules, safe actions,
/// audited outcomes.
#[derive(Debug, Parser)]
#[command(name = "reflex", version = crate::build_info::long_version(), about, long_about = None)]
pub struct Cli {
    /// Log format for the process's own logs.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "REFLEX_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Report format for the checking commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// JSON, for machines and CI annotations.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller: consume events, evaluate rules, execute actions, record outcomes.
    Run(run::RunArgs),
    /// Check a rules directory and report every problem with file:line:column.
    Validate(validate::ValidateArgs),
    /// Run the rule test files (`*.test.yaml`) kept next to the rules.
    Test(test::TestArgs),
    /// Show what the rules would do for each event of a JSON-lines file.
    Replay(replay::ReplayArgs),
    /// What the rules would have done over past events (Kafka history by time, or a file),
    /// guardrails simulated; with `--against OLD_DIR`, only what a rule change changes.
    Backtest(backtest::BacktestArgs),
    /// Query the audit store for past outcomes (or one remediation's story, or remediations).
    History(history::HistoryArgs),
    /// Release the loop guard's quarantines of a target, so its rules act on it again.
    Release(release::ReleaseArgs),
    /// List the targets the loop guard quarantined (active ones; `--all` for every one).
    Quarantines(release::QuarantinesArgs),
    /// Print the RBAC rules (ClusterRole/Role) the rules' actions need.
    Rbac(rbac::RbacArgs),
    /// Print the JSON Schema of the rule file format (for editors and CI).
    Schema(schema::SchemaArgs),
    /// Convert rules written for another tool (an Event-Driven Ansible rulebook) into a rules file.
    Import(import::ImportArgs),
    /// Measure end-to-end throughput, latency and memory against the real Kafka.
    Bench(bench::BenchArgs),
    /// Check, print or describe the `reflex run` configuration file.
    Config(config::ConfigArgs),
    /// Print the version, commit and build date of this binary.
    Version(version::VersionArgs),
    /// Print a shell completion script (bash, zsh or fish).
    Completion(completion::CompletionArgs),
}

/// The exit codes of every command (docs/cli.md lists them), so scripts and CI can tell a
/// finding from a typo from an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Done, and nothing was wrong.
    Ok = 0,
    /// The command ran and found problems or failures: invalid rules or configuration, failing
    /// rule tests, nothing to release, a partial import.
    Findings = 1,
    /// The command line is wrong (clap's own errors exit 2 as well).
    Usage = 2,
    /// The command could not do its job: Kafka or the database unreachable, a file unreadable.
    Runtime = 3,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// Errors the commands raise themselves (most come from the library through `anyhow`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A mistake in the command line that only shows after parsing (values that contradict
    /// each other, an empty name); exits with [`Exit::Usage`].
    #[error("{0} (see `reflex help`)")]
    Usage(String),
}

/// The exit code for an error a command returned: a usage mistake anywhere in its chain
/// exits 2, anything else is a runtime error (3).
pub fn exit_code_of(err: &anyhow::Error) -> Exit {
    if err
        .chain()
        .any(|cause| matches!(cause.downcast_ref::<Error>(), Some(Error::Usage(_))))
    {
        Exit::Usage
    } else {
        Exit::Runtime
    }
}

/// Prints the located problems a check found on stdout (they are the data the command was
/// asked for, not diagnostics about running it) and returns [`Exit::Findings`].
pub fn print_problems(problems: &[crate::rules::Diagnostic], format: OutputFormat) -> ExitCode {
    match format {
        OutputFormat::Text => {
            for p in problems {
                println!("{p}");
            }
            println!("{} problem(s) found", problems.len());
        }
        OutputFormat::Json => println!(
            "{}",
            serde_json::json!({"valid": false, "problems": problems})
        ),
    }
    Exit::Findings.into()
}

/// Sets up `tracing` with `RUST_LOG` (default `info`) in the chosen format.
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in files or log collectors.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // A second initialisation (tests calling main twice) is harmless, so the error is ignored.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs one parsed command line; the exit code says whether the check passed ([`Exit`]); an
/// error maps to one through [`exit_code_of`].
pub fn main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(run::run(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate(args) => validate::run(&args),
        Command::Test(args) => test::run(&args),
        Command::Replay(args) => replay::run(&args),
        Command::Backtest(args) => backtest::run(&args),
        Command::Schema(args) => schema::run(&args),
        Command::History(args) => history::run(&args),
        Command::Release(args) => release::run_release(&args),
        Command::Quarantines(args) => release::run_list(&args),
        Command::Rbac(args) => rbac::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Import(args) => import::run(&args),
        Command::Config(args) => config::run(&args),
        Command::Version(args) => version::run(&args),
        Command::Completion(args) => completion::run(&args),
    }
}
