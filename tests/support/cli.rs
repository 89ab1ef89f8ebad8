//! The `reflex` binary run as a user runs it, from the crate root, for the tiers that test the
//! commands (offline: no service running).

use std::process::{Command, Output};

/// Runs `reflex ARGS` from the crate root and waits for it. The developer's or the test
/// services' environment must not change what a test checks: the configuration file, the store
/// and Kafka come from the arguments only, and `USER` (whom `reflex release` records) is fixed.
pub fn reflex(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reflex"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("REFLEX_CONFIG")
        .env_remove("DATABASE_URL")
        .env_remove("KAFKA_BOOTSTRAP_SERVERS")
        .env_remove("KAFKA_SASL_PASSWORD")
        .env("USER", "alice")
        .output()
        .expect("the reflex binary runs")
}

/// What a command printed on stdout.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What a command printed on stderr.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
