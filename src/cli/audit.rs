//! How the commands that read or change the audit store (`history`, `release`, `quarantines`)
//! find it: `--store`, else the configuration's `store.url` (which DATABASE_URL overrides).

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::config::Config;
use crate::store::{Backend, Store};

/// Where the audit store is.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Configuration file (YAML) naming the store (`store.url`).
    #[arg(long, short = 'c', env = "REFLEX_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Store URL (`sqlite://<file>` or `postgres://...`); overrides the configuration and
    /// DATABASE_URL.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
}

impl StoreArgs {
    /// Opens the store (migrating it, as `reflex run` would). A SQLite file that does not exist
    /// is an error, not a new empty store.
    pub async fn open(&self) -> anyhow::Result<Store> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(url) = &self.store {
            config.store.url.clone_from(url);
        }
        let url = config.store.url;
        if Backend::from_url(&url) == Some(Backend::Sqlite) {
            // Connecting creates a missing SQLite file; a query must not invent an empty store
            // where the user mistyped a path.
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            let path = path.split('?').next().unwrap_or_default();
            if path != ":memory:" && !std::path::Path::new(path).exists() {
                bail!(
                    "no audit store at `{path}` (from {}); pass --store or set DATABASE_URL",
                    crate::store::redact_url(&url)
                );
            }
        }
        Store::connect(&url)
            .await
            .with_context(|| format!("opening the audit store {}", crate::store::redact_url(&url)))
    }
}
