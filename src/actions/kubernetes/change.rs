//! What an action changed: the record that goes into the outcome's details.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::rules::action::{ActionKind, PatchType, PropagationPolicy};

/// What an action changed, for the outcome's details.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// The action kind.
    pub action: ActionKind,
    /// The object, e.g. `apps/v1 Deployment shop/web`.
    pub target: String,
    /// False when the object was already in the desired state and nothing was written.
    /// `patch`, `delete` and `create` do not read first and always report true.
    pub changed: bool,
    /// One line for people, e.g. `replicas 3 → 5`.
    pub summary: String,
    /// The object's `resourceVersion` after the action (absent after a delete).
    pub resource_version: Option<String>,
    /// The object's UID, as the API server returned it: what the Kubernetes Event about the
    /// action names, so `kubectl describe` (which selects events by UID) shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The kind-specific record.
    pub detail: ChangeDetail,
}

/// The kind-specific part of a [`Change`]. It also reads back from an outcome's recorded
/// result, which is where an undo learns what an action changed
/// ([`super::UndoPlan::from_execution`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChangeDetail {
    /// Replica count before and after.
    Scale {
        /// Replicas read from the scale subresource.
        from: u32,
        /// Replicas set (after clamping to min/max).
        to: u32,
    },
    /// The restart stamp.
    Restart {
        /// The new `kubectl.kubernetes.io/restartedAt` value.
        restarted_at: String,
        /// The previous value, if the workload was restarted before.
        previous: Option<String>,
    },
    /// An image change.
    SetImage {
        /// The container.
        container: String,
        /// The image before.
        from: String,
        /// The image after.
        to: String,
        /// The workload's generation after the change.
        generation: Option<i64>,
        /// The generation the controller had observed when the action finished (with `wait`,
        /// at least `generation`).
        observed_generation: Option<i64>,
    },
    /// A rollback.
    Rollback {
        /// The revision the Deployment was at.
        from_revision: Option<u64>,
        /// The revision whose pod template was restored.
        to_revision: u64,
        /// The container images of the restored template.
        images: Vec<String>,
    },
    /// A patch.
    Patch {
        /// How it was applied.
        patch_type: PatchType,
        /// The object's generation after the patch, when it has one.
        generation: Option<i64>,
    },
    /// A deletion.
    Delete {
        /// The deleted object's UID.
        uid: Option<String>,
        /// The grace period requested.
        grace_period_seconds: Option<u32>,
        /// The propagation policy requested.
        propagation_policy: Option<PropagationPolicy>,
    },
    /// A creation.
    Create {
        /// The name (generated when the manifest used `generateName`).
        name: String,
        /// The namespace, for namespaced kinds.
        namespace: Option<String>,
        /// The new object's UID.
        uid: Option<String>,
    },
    /// A node's schedulability.
    Node {
        /// `spec.unschedulable` before.
        unschedulable_before: bool,
        /// `spec.unschedulable` after.
        unschedulable: bool,
    },
    /// Labels or annotations.
    Metadata {
        /// Keys set, with their new values.
        set: BTreeMap<String, String>,
        /// Keys removed.
        removed: Vec<String>,
        /// The value each key in `set` and `removed` had before (`None`: absent), so an undo
        /// can put it back. Empty in results recorded before undo existed.
        #[serde(default)]
        previous: BTreeMap<String, Option<String>>,
    },
}
