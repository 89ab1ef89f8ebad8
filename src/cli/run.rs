//! `reflex run`: the controller's main job.
//!
//! Parses the arguments, loads the configuration (file, environment, then flags) and hands it
//! to [`crate::app::App`], which connects, builds the pipeline and runs until SIGINT or
//! SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use crate::app::{self, App};
use crate::config::Config;

/// Arguments of `reflex run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Configuration file (YAML). Without it, the defaults apply, with environment overrides
    /// (KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL, KUBECONFIG).
    #[arg(long, short = 'c', env = "REFLEX_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Rules directory; overrides `rules.dir` from the configuration.
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Address of the HTTP server (probes, metrics, /v1/rules, ingest); overrides
    /// `server.listen`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

/// Runs the controller until SIGINT or SIGTERM.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    // Signals first, so a SIGTERM during start-up stops the process cleanly too.
    let shutdown = CancellationToken::new();
    app::spawn_signal_handler(shutdown.clone())?;
    let config = load_config(&args)?;
    match App::build(&config, &shutdown).await? {
        Some(app) => Ok(app.run(shutdown).await?),
        None => Ok(()),
    }
}

/// Loads the configuration file (if any), environment overrides, then command-line overrides.
pub fn load_config(args: &RunArgs) -> anyhow::Result<Config> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(rules) = &args.rules {
        config.rules.dir.clone_from(rules);
    }
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_flags_override_the_configuration() {
        let args = RunArgs {
            config: None,
            rules: Some(PathBuf::from("/etc/reflex/rules")),
            listen: Some(SocketAddr::from(([0, 0, 0, 0], 9000))),
        };
        let config = load_config(&args).expect("defaults load");
        assert_eq!(config.rules.dir, PathBuf::from("/etc/reflex/rules"));
        assert_eq!(config.server.listen.to_string(), "0.0.0.0:9000");
    }
}
