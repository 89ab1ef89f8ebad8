//! `reflex completion SHELL`: a completion script for bash, zsh or fish, generated from the
//! same command definitions the parser uses, so it never falls behind a new flag.

use std::process::ExitCode;

use clap::{CommandFactory, ValueEnum};
use clap_complete::Shell;

/// The shells a completion script is generated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    /// `source <(reflex completion bash)`, or save it under bash-completion's directory.
    Bash,
    /// Save it as `_reflex` in a directory on `$fpath`.
    Zsh,
    /// Save it as `~/.config/fish/completions/reflex.fish`.
    Fish,
}

impl From<CompletionShell> for Shell {
    fn from(shell: CompletionShell) -> Self {
        match shell {
            CompletionShell::Bash => Shell::Bash,
            CompletionShell::Zsh => Shell::Zsh,
            CompletionShell::Fish => Shell::Fish,
        }
    }
}

/// Arguments of `reflex completion`.
#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// The completion script for `shell`.
pub fn script(shell: CompletionShell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(
        Shell::from(shell),
        &mut super::Cli::command(),
        "reflex",
        &mut out,
    );
    out
}

/// Prints the completion script.
pub fn run(args: &CompletionArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    std::io::stdout().write_all(&script(args.shell))?;
    Ok(ExitCode::SUCCESS)
}
