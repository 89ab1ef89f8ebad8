//! Named readiness conditions a `verify.kubernetes.condition` can ask for, judged on the
//! object as the API server returns it (JSON).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A named condition on a Kubernetes object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// The rollout finished, as `kubectl rollout status` judges it (Deployment, StatefulSet,
    /// DaemonSet).
    RolloutComplete,
    /// The object's `Available` condition is `True` (Deployment).
    Available,
    /// Ready: a Node's or Pod's `Ready` condition is `True`; a workload's ready replicas reach
    /// its desired replicas.
    Ready,
}

impl Readiness {
    /// The name in rule files and outcomes.
    pub fn as_str(self) -> &'static str {
        match self {
            Readiness::RolloutComplete => "rollout_complete",
            Readiness::Available => "available",
            Readiness::Ready => "ready",
        }
    }
}

/// Whether `object` is in the state `readiness` names; `Err` when it cannot be judged on it.
// Placeholder until the readiness rules land (branch c-kube).
pub fn holds(readiness: Readiness, object: &serde_json::Value) -> Result<bool, String> {
    let _ = object;
    Err(format!("`{}` is not judged yet", readiness.as_str()))
}

/// One line saying what the object shows.
pub fn describe(readiness: Readiness, object: &serde_json::Value) -> String {
    let _ = (readiness, object);
    String::new()
}
