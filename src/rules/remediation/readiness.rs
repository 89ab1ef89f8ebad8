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
