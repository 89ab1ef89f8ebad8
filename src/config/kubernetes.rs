//! The `kubernetes:` section: how to reach the Kubernetes API.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How to reach the Kubernetes API.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Path of a kubeconfig file. Default: unset, which means `KUBECONFIG` or `~/.kube/config`
    /// if present, else the in-cluster service account.
    pub kubeconfig: Option<PathBuf>,
    /// Context inside the kubeconfig. Default: its `current-context`.
    pub context: Option<String>,
}
