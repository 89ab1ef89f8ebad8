//! The `reflex` binary: parse the command line, set up logging, hand over to the library.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: every record's JSON tree is allocated and freed
/// within microseconds, often on different threads, which glibc's malloc pays dearly for
/// (measured in docs/performance.md, "Backtest").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status of a command whose reader went away (`reflex history | head`): what a shell
/// reports for a tool ended by SIGPIPE.
const BROKEN_PIPE_STATUS: i32 = 128 + 13;

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    // kube and reqwest both use rustls; install one crypto provider before either starts, or
    // rustls panics when it finds none (or two) at the first TLS handshake.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = reflex::cli::Cli::parse();
    reflex::cli::init_tracing(cli.log_format);
    match reflex::cli::main(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            reflex::cli::exit_code_of(&err).into()
        }
    }
}

/// Rust ignores SIGPIPE, so once a pipe's reader is gone the next `print!` fails and panics
/// ("failed printing to stdout: Broken pipe"). End quietly with the status a shell gives a tool
/// SIGPIPE ended instead; restoring the signal's default action would need `unsafe`.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload_as_str().unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(BROKEN_PIPE_STATUS);
        }
        default(info);
    }));
}
