//! `reflex import`: rules written for other tools, converted into Reflex rules files.

use std::process::ExitCode;

pub mod eda;

/// Arguments of `reflex import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// What to import.
    #[command(subcommand)]
    pub from: From,
}

/// The tools Reflex imports rules from.
#[derive(Debug, clap::Subcommand)]
pub enum From {
    /// An Event-Driven Ansible (ansible-rulebook) rulebook: conditions, throttles, `all`/`any`
    /// and the nearest actions; the rest is reported (exit 1 unless `--allow-partial`).
    Eda(eda::EdaArgs),
}

/// Runs the chosen import.
pub fn run(args: &ImportArgs) -> anyhow::Result<ExitCode> {
    match &args.from {
        From::Eda(eda) => eda::run(eda),
    }
}
