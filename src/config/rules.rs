//! The `rules:` section: where the rule files live and how changes are picked up.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::duration_text;

/// Where the rule files live and how changes are picked up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// Directory of `*.yaml` rule files, relative to the working directory. Default `rules`.
    pub dir: PathBuf,
    /// How often the directory is checked for changes (paths, sizes, modification times,
    /// symlink targets); a change reloads the whole set. SIGHUP reloads at once. Default `5s`;
    /// `0s` turns polling off (SIGHUP still works).
    #[serde(with = "duration_text")]
    #[schemars(with = "String")]
    pub reload_interval: std::time::Duration,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("rules"),
            reload_interval: std::time::Duration::from_secs(5),
        }
    }
}
