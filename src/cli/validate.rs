//! `reflex validate DIR`: load every rule file and report every problem at once.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::OutputFormat;
use crate::rules::{LoadError, load_dir};

/// Arguments of `reflex validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Rules directory (searched recursively for `*.yaml`/`*.yml`) or a single rules file.
    #[arg(default_value = "rules")]
    pub dir: PathBuf,
    /// Report format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// Exit 0 when every rule is valid, 1 when there are problems (listed on stdout: they are
/// what was asked for).
pub fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    match load_dir(&args.dir) {
        Ok(rules) => {
            match args.format {
                OutputFormat::Text => println!(
                    "{}: {} rule(s) valid ({} enabled)",
                    args.dir.display(),
                    rules.len(),
                    rules.rules().iter().filter(|r| r.enabled).count()
                ),
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::json!({"valid": true, "rules": rules.len(), "problems": []})
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(LoadError::Invalid(problems)) => Ok(super::print_problems(&problems, args.format)),
        Err(err) => Err(err).with_context(|| format!("validating {}", args.dir.display())),
    }
}
