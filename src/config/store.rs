//! The `store:` section: the SQL audit store.

use serde::{Deserialize, Serialize};

use super::Problems;

/// The SQL audit store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://<file>` (created if missing) or `postgres://user@host:port/db`. Default
    /// `sqlite://reflex.db`; the environment variable `DATABASE_URL` overrides it.
    pub url: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://reflex.db".to_owned(),
        }
    }
}

impl StoreConfig {
    /// Checks the URL names a supported database.
    pub(crate) fn validate(&self, problems: &mut Problems) {
        let url = self.url.as_str();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            problems.add(
                "store.url",
                format!(
                    "`{}` has an unknown scheme; use sqlite://<file> or postgres://user@host:port/db",
                    crate::store::redact_url(url)
                ),
            );
        } else if url.starts_with("postgres")
            && let Err(err) = url::Url::parse(url)
        {
            problems.add(
                "store.url",
                format!(
                    "`{}` is not a valid URL ({err}); write postgres://user@host:port/db",
                    crate::store::redact_url(url)
                ),
            );
        }
    }
}
