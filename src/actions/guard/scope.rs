//! Where a Kubernetes action acts — in a namespace, or on a cluster-scoped object — and the
//! cluster-scoped policy: acting on any cluster-scoped kind (Node, Namespace,
//! CustomResourceDefinition, ClusterRole, ClusterRoleBinding, PersistentVolume, ...) needs the
//! kind in `actions.cluster_scoped.allow`, because such objects are shared by every namespace
//! and a namespace allow-list cannot confine them.
//!
//! The scope is read from the rendered parameters alone: a target (or a created object) without
//! a namespace is cluster-scoped. The executor upholds this, refusing a namespaced kind without
//! a namespace and a cluster-scoped kind with one, so an action cannot pass here as one scope
//! and run as the other.

use serde_json::Value;

use crate::rules::action::{Action, ObjectRef};

/// Where a Kubernetes action acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// On an object in this namespace.
    Namespaced(&'a str),
    /// On a cluster-scoped object.
    Cluster(ClusterObject<'a>),
}

/// A cluster-scoped object an action acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterObject<'a> {
    /// Its API version, e.g. `v1` or `rbac.authorization.k8s.io/v1`.
    pub api_version: &'a str,
    /// Its kind, e.g. `Node`.
    pub kind: &'a str,
    /// Its name (for a created object without one, its `generateName` prefix).
    pub name: Option<&'a str>,
}

impl ClusterObject<'_> {
    /// The API group (empty for the core group).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }

    /// The name of the namespace this object is, when it is a core `Namespace`: the namespace
    /// policy protects Namespace objects like the namespaces themselves.
    pub fn namespace_object(&self) -> Option<&str> {
        (self.kind == "Namespace" && self.group().is_empty())
            .then_some(self.name)
            .flatten()
    }
}

/// Where `action` acts; `None` for actions that are not Kubernetes actions.
pub fn action_scope(action: &Action) -> Option<Scope<'_>> {
    let Action::Kubernetes(action) = action else {
        return None;
    };
    let (api_version, kind, namespace, name) = match action.object() {
        ObjectRef::Existing(t) => (
            t.api_version.as_str(),
            t.kind.as_str(),
            t.namespace.as_deref(),
            Some(t.name.as_str()),
        ),
        ObjectRef::Node(node) => ("v1", "Node", None, Some(node)),
        ObjectRef::Created(p) => {
            let meta = p.manifest.get("metadata");
            let field = |f: &str| meta.and_then(|m| m.get(f)).and_then(Value::as_str);
            (
                p.api_version.as_str(),
                p.kind.as_str(),
                p.namespace.as_deref().or_else(|| field("namespace")),
                field("name").or_else(|| field("generateName")),
            )
        }
    };
    Some(match namespace {
        Some(namespace) => Scope::Namespaced(namespace),
        None => Scope::Cluster(ClusterObject {
            api_version,
            kind,
            name,
        }),
    })
}

/// `actions.cluster_scoped.allow`, compiled: `Kind` (in any API group) or `group/Kind`.
#[derive(Debug, Clone, Default)]
pub struct ClusterScopedPolicy {
    allow: Vec<(Option<String>, String)>,
}

impl ClusterScopedPolicy {
    /// Compiles the allow list (validated with the configuration).
    pub fn new(allow: &[String]) -> Self {
        let allow = allow
            .iter()
            .map(|entry| match entry.rsplit_once('/') {
                Some((group, kind)) => (Some(group.to_owned()), kind.to_owned()),
                None => (None, entry.clone()),
            })
            .collect();
        Self { allow }
    }

    /// Whether an action of `rule` may act on `object`; the error names the setting to change.
    pub fn check(&self, object: &ClusterObject<'_>, rule: &str) -> Result<(), String> {
        let allowed = self.allow.iter().any(|(group, kind)| {
            kind == object.kind && group.as_deref().is_none_or(|g| g == object.group())
        });
        if allowed {
            return Ok(());
        }
        let what = match object.name {
            Some(name) => format!("{} `{name}`", object.kind),
            None => object.kind.to_owned(),
        };
        Err(format!(
            "{what} is cluster-scoped and `{kind}` is not in actions.cluster_scoped.allow; rule \
             `{rule}` may not act on it (add `{kind}` to that list in the configuration if \
             actions on every {kind} are intended)",
            kind = object.kind
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::rules::action::ActionKind;

    fn planned(kind: ActionKind, params: Value) -> Action {
        Action::from_parts(kind, params).expect("parameters fit the kind")
    }

    fn target(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Value {
        json!({"target": {
            "api_version": api_version, "kind": kind, "namespace": namespace, "name": name
        }, "allow_bare_pods": false})
    }

    #[test]
    fn the_scope_comes_from_the_target_the_created_object_or_the_node() {
        let restart = planned(
            ActionKind::Restart,
            target("apps/v1", "Deployment", Some("shop"), "web"),
        );
        assert_eq!(action_scope(&restart), Some(Scope::Namespaced("shop")));
        let create = planned(
            ActionKind::Create,
            json!({"api_version": "batch/v1", "kind": "Job", "namespace": "ops", "manifest": {}}),
        );
        assert_eq!(action_scope(&create), Some(Scope::Namespaced("ops")));
        let cordon = planned(ActionKind::Cordon, json!({"node": "n1"}));
        let node = ClusterObject {
            api_version: "v1",
            kind: "Node",
            name: Some("n1"),
        };
        assert_eq!(action_scope(&cordon), Some(Scope::Cluster(node)));
        let delete = planned(
            ActionKind::Delete,
            target("v1", "Namespace", None, "kube-system"),
        );
        let Some(Scope::Cluster(object)) = action_scope(&delete) else {
            panic!("cluster-scoped");
        };
        assert_eq!(object.namespace_object(), Some("kube-system"));
        let generated = planned(
            ActionKind::Create,
            json!({"api_version": "v1", "kind": "Namespace",
                   "manifest": {"metadata": {"generateName": "team-"}}}),
        );
        let Some(Scope::Cluster(object)) = action_scope(&generated) else {
            panic!("cluster-scoped");
        };
        assert_eq!(object.namespace_object(), Some("team-"));
        let webhook = planned(
            ActionKind::Webhook,
            json!({"method": "POST", "url": "http://x", "headers": {}, "secret_headers": {},
                   "timeout_ms": 1000, "retries": 0, "success_status": []}),
        );
        assert_eq!(action_scope(&webhook), None);
    }

    #[test]
    fn only_a_core_namespace_is_a_namespace_object() {
        let object = |api_version| ClusterObject {
            api_version,
            kind: "Namespace",
            name: Some("n"),
        };
        assert_eq!(object("v1").namespace_object(), Some("n"));
        assert_eq!(object("example.com/v1").namespace_object(), None);
    }

    #[test]
    fn a_cluster_scoped_kind_needs_its_kind_in_the_allow_list() {
        let node = ClusterObject {
            api_version: "v1",
            kind: "Node",
            name: Some("n1"),
        };
        let err = ClusterScopedPolicy::default()
            .check(&node, "r")
            .expect_err("not allowed by default");
        assert!(err.contains("actions.cluster_scoped.allow"), "{err}");
        assert!(
            err.contains("Node `n1`") && err.contains("rule `r`"),
            "{err}"
        );
        let policy = ClusterScopedPolicy::new(&["Node".into()]);
        assert!(policy.check(&node, "r").is_ok());
        let role = ClusterObject {
            api_version: "rbac.authorization.k8s.io/v1",
            kind: "ClusterRole",
            name: Some("admin"),
        };
        assert!(policy.check(&role, "r").is_err());
        let by_group = ClusterScopedPolicy::new(&["rbac.authorization.k8s.io/ClusterRole".into()]);
        assert!(by_group.check(&role, "r").is_ok());
        let other_group = ClusterObject {
            api_version: "example.com/v1",
            ..role
        };
        assert!(by_group.check(&other_group, "r").is_err());
    }
}
