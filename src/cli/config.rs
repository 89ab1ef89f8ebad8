//! `reflex config check|print|schema`: the `reflex run` configuration file checked (every
//! problem at once, `file:line:column`), shown as `reflex run` would use it (defaults and
//! environment applied, secrets masked), and described as a JSON Schema.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;

use super::OutputFormat;
use super::schema::{SchemaKind, schema_json};
use crate::config::{self, Config};

/// Arguments of `reflex config`.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// What to do with the configuration.
    #[command(subcommand)]
    pub action: ConfigAction,
}

/// The `reflex config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigAction {
    /// Report every problem of a configuration file at once, with file:line:column (exit 1
    /// when there is one).
    Check(CheckArgs),
    /// Print the configuration `reflex run` would use: defaults, the file, then environment
    /// overrides; secrets masked.
    Print(PrintArgs),
    /// Print the JSON Schema of the configuration file (for editors, CI and the chart).
    Schema,
}

/// Arguments of `reflex config check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Configuration file (YAML); without it, the defaults with environment overrides.
    #[arg(env = "REFLEX_CONFIG", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Report format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// Arguments of `reflex config print`.
#[derive(Debug, clap::Args)]
pub struct PrintArgs {
    /// Configuration file (YAML); without it, the defaults with environment overrides.
    #[arg(env = "REFLEX_CONFIG", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = PrintFormat::Yaml)]
    pub format: PrintFormat,
}

/// Output format of `reflex config print`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrintFormat {
    /// YAML, the configuration file's own format.
    Yaml,
    /// JSON.
    Json,
}

/// Runs the chosen `reflex config` subcommand.
pub fn run(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    match &args.action {
        ConfigAction::Check(check) => run_check(check),
        ConfigAction::Print(print) => {
            let config = Config::load(print.file.as_deref())?.redacted();
            print!("{}", render(&config, print.format)?);
            Ok(ExitCode::SUCCESS)
        }
        ConfigAction::Schema => {
            println!("{}", schema_json(SchemaKind::Config));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The configuration as YAML or JSON, with a final newline.
pub fn render(config: &Config, format: PrintFormat) -> anyhow::Result<String> {
    Ok(match format {
        PrintFormat::Yaml => serde_saphyr::to_string(config)?,
        PrintFormat::Json => format!("{}\n", serde_json::to_string_pretty(config)?),
    })
}

/// Exit 0 when the configuration is valid, 1 when it has problems, 3 when it cannot be read.
fn run_check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let (text, origin) = match &args.file {
        Some(path) => (
            config::read_file(path).context("checking the configuration")?,
            path.clone(),
        ),
        None => (String::new(), PathBuf::from("(defaults)")),
    };
    match config::check(&text, &origin, |name| std::env::var(name).ok()) {
        Ok(_) => {
            match args.format {
                OutputFormat::Text => println!("{}: configuration valid", origin.display()),
                OutputFormat::Json => {
                    println!("{}", serde_json::json!({"valid": true, "problems": []}));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(problems) => Ok(super::print_problems(&problems, args.format)),
    }
}
