//! The `reflex` binary: parse the command line, set up logging, hand over to the library.

use std::process::ExitCode;

use clap::Parser;

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
