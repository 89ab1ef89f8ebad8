//! What each action kind's executor asks of the Kubernetes API, as RBAC sees it: the table
//! `reflex rbac` turns into roles. Kept next to [`ActionKind`] so a new kind, or an executor
//! that makes a new call, changes it in the same place.

use super::ActionKind;

/// The Kubernetes API access of one action on one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiAccess {
    /// The resource the verbs apply to.
    pub resource: AccessResource,
    /// RBAC verbs on it, in the order the executor needs them.
    pub verbs: &'static [&'static str],
    /// Also `list` on the target's revision history in the `apps` group (ReplicaSets of a
    /// Deployment, ControllerRevisions of a StatefulSet or DaemonSet): rollback reads it.
    pub lists_history: bool,
}

/// Which resource an [`ApiAccess`] is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessResource {
    /// The target object's own resource.
    Target,
    /// A subresource of the target's resource (`deployments/scale`).
    Subresource(&'static str),
    /// Nodes (core group, cluster-scoped), whatever the target says.
    Nodes,
}

impl ActionKind {
    /// What this action does to the Kubernetes API on a target of `api_version`/`kind`; `None`
    /// for the kinds that do not touch it (webhook, kafka, log).
    pub fn api_access(self, api_version: &str, kind: &str) -> Option<ApiAccess> {
        let access = |resource, verbs| ApiAccess {
            resource,
            verbs,
            lists_history: false,
        };
        let core_group = api_version
            .split_once('/')
            .map_or("", |(group, _)| group)
            .is_empty();
        Some(match self {
            ActionKind::Scale => access(AccessResource::Subresource("scale"), &["get", "patch"]),
            ActionKind::Restart
            | ActionKind::SetImage
            | ActionKind::Label
            | ActionKind::Annotate => access(AccessResource::Target, &["get", "patch"]),
            ActionKind::Rollback => ApiAccess {
                lists_history: true,
                ..access(AccessResource::Target, &["get", "patch"])
            },
            ActionKind::Patch => access(AccessResource::Target, &["patch"]),
            // The executor reads a Pod before deleting it (the bare-pod check).
            ActionKind::Delete if core_group && kind == "Pod" => {
                access(AccessResource::Target, &["get", "delete"])
            }
            ActionKind::Delete => access(AccessResource::Target, &["delete"]),
            ActionKind::Create => access(AccessResource::Target, &["create"]),
            ActionKind::Cordon | ActionKind::Uncordon => {
                access(AccessResource::Nodes, &["get", "patch"])
            }
            ActionKind::Webhook | ActionKind::Kafka | ActionKind::Log => return None,
        })
    }
}
