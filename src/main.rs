//! The `reflex` binary: parse the command line, set up logging, hand over to the library.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: every record's JSON tree is allocated and freed
/// within microseconds, often on different threads, which glibc's malloc pays dearly for
/// (measured in docs/performance.md, "Backtest").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
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
