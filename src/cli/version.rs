//! `reflex version`: what this binary was built from, as text or JSON.

use std::process::ExitCode;

use super::OutputFormat;
use crate::build_info::build_info;

/// Arguments of `reflex version`.
#[derive(Debug, clap::Args)]
pub struct VersionArgs {
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// The version report in `format`, with a final newline.
pub fn render(format: OutputFormat) -> String {
    let info = build_info();
    match format {
        OutputFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&info).expect("build info always serializes")
        ),
        OutputFormat::Text => format!(
            "reflex {}\ncommit:     {}\nbuild date: {}\nrustc:      {}\ntarget:     {}\n",
            info.version, info.commit, info.build_date, info.rustc, info.target
        ),
    }
}

/// Prints the version report.
pub fn run(args: &VersionArgs) -> anyhow::Result<ExitCode> {
    print!("{}", render(args.format));
    Ok(ExitCode::SUCCESS)
}
