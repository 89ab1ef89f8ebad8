//! `reflex test DIR`: run the rule test files kept next to the rules.

use std::path::PathBuf;
use std::process::ExitCode;

use super::OutputFormat;
use crate::rules::LoadError;
use crate::rules::testing::{TestError, run_dir};

/// Arguments of `reflex test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Rules directory holding `*.test.yaml` files next to the rules.
    #[arg(default_value = "rules")]
    pub dir: PathBuf,
    /// Report format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// Exit 0 when every case passes, 1 when one fails or the files are invalid.
pub fn run(args: &TestArgs) -> anyhow::Result<ExitCode> {
    let results = match run_dir(&args.dir) {
        Ok(results) => results,
        Err(TestError::Load(LoadError::Invalid(problems))) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("{} problem(s) found; no test ran", problems.len());
            return Ok(ExitCode::FAILURE);
        }
        Err(err) => return Err(err.into()),
    };
    let failed = results.iter().filter(|r| !r.passed).count();
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&results)?),
        OutputFormat::Text => {
            for r in &results {
                let mark = if r.passed { "ok  " } else { "FAIL" };
                println!("{mark} {}:{}: {}", r.file.display(), r.line, r.name);
                if let Some(why) = &r.failure {
                    for line in why.lines() {
                        println!("     {line}");
                    }
                }
            }
            println!(
                "rule tests: {} passed, {} failed",
                results.len() - failed,
                failed
            );
        }
    }
    if results.is_empty() {
        eprintln!(
            "no test case found under {} (test files are named `*.test.yaml`)",
            args.dir.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
