//! The `kubernetes:` section: how to reach the Kubernetes API.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How to reach the Kubernetes API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Path of a kubeconfig file. Default: unset, which means `KUBECONFIG` or `~/.kube/config`
    /// if present, else the in-cluster service account.
    pub kubeconfig: Option<PathBuf>,
    /// Context inside the kubeconfig. Default: its `current-context`.
    pub context: Option<String>,
    /// Publish a Kubernetes Event on every object a Kubernetes action changed or failed on
    /// (reason `ReflexRestarted`, `ReflexScaleFailed`...; the note names the rule, the trigger
    /// and the outcome), shown by `kubectl describe`. Needs `create` on `events.k8s.io` events
    /// in the objects' namespaces (`default` for Nodes), which `reflex rbac` grants. Dry runs
    /// and shadow rules publish none. Default: true.
    pub events: bool,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            kubeconfig: None,
            context: None,
            events: true,
        }
    }
}
