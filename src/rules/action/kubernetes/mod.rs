//! Kubernetes actions: what they target and the parameters of each kind.
//!
//! Kinds and API versions are always literal (never templates): Reflex derives the RBAC it needs
//! from the rules and checks kinds at load. Names and namespaces may be templates; their rendered
//! values are checked against Kubernetes' naming rules before an executor sees them, so event
//! data cannot smuggle `../`, spaces or newlines into an API path.

mod metadata;
mod object;
mod patch;
mod workload;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Param, all, param_checked, reject};
use crate::rules::diagnostic::{Diagnostics, closest};
use crate::rules::model::SpannedString;
use crate::rules::template::{RenderContext, RenderError};

pub use metadata::{AnnotateAction, AnnotateSpec, LabelAction, LabelSpec, Metadata};
pub use object::{
    Create, CreateAction, CreateSpec, Delete, DeleteAction, DeleteSpec, PropagationPolicy,
};
pub use patch::{Patch, PatchAction, PatchSpec, PatchType};
pub use workload::{
    MAX_REPLICAS, Restart, RestartAction, RestartSpec, Rollback, RollbackAction, RollbackSpec,
    Scale, ScaleAction, ScaleChange, ScaleSpec, SetImage, SetImageAction, SetImageSpec,
};

/// Built-in kinds Reflex knows: API version and whether objects live in a namespace. Used to
/// default `api_version`, to require or forbid `namespace`, and to pick the naming rule.
const KNOWN_KINDS: &[(&str, &str, bool)] = &[
    ("Deployment", "apps/v1", true),
    ("StatefulSet", "apps/v1", true),
    ("DaemonSet", "apps/v1", true),
    ("ReplicaSet", "apps/v1", true),
    ("Pod", "v1", true),
    ("Service", "v1", true),
    ("ConfigMap", "v1", true),
    ("Secret", "v1", true),
    ("ServiceAccount", "v1", true),
    ("PersistentVolumeClaim", "v1", true),
    ("ResourceQuota", "v1", true),
    ("LimitRange", "v1", true),
    ("Node", "v1", false),
    ("Namespace", "v1", false),
    ("PersistentVolume", "v1", false),
    ("Job", "batch/v1", true),
    ("CronJob", "batch/v1", true),
    ("Ingress", "networking.k8s.io/v1", true),
    ("NetworkPolicy", "networking.k8s.io/v1", true),
    ("HorizontalPodAutoscaler", "autoscaling/v2", true),
    ("PodDisruptionBudget", "policy/v1", true),
    ("Lease", "coordination.k8s.io/v1", true),
    ("Role", "rbac.authorization.k8s.io/v1", true),
    ("RoleBinding", "rbac.authorization.k8s.io/v1", true),
    ("ClusterRole", "rbac.authorization.k8s.io/v1", false),
    ("ClusterRoleBinding", "rbac.authorization.k8s.io/v1", false),
];

/// Kinds whose names are not DNS subdomains (RBAC objects allow e.g. `system:controller`); their
/// names only have to be valid path segments.
const PATH_SEGMENT_NAMED: &[&str] = &["Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"];

fn known(kind: &str, api_version: &str) -> Option<bool> {
    KNOWN_KINDS
        .iter()
        .find(|(k, v, _)| *k == kind && *v == api_version)
        .map(|(_, _, namespaced)| *namespaced)
}

/// Whether `kind`/`api_version` is a built-in kind Reflex knows (strategic merge works on those).
pub(crate) fn is_builtin(kind: &str, api_version: &str) -> bool {
    known(kind, api_version).is_some()
}

/// The object an action works on.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// API group and version, e.g. `apps/v1`. Literal. Defaults to the version of built-in kinds
    /// (`apps/v1` for Deployment, `v1` for Pod, `batch/v1` for Job, ...); required for custom
    /// resources.
    #[schemars(with = "Option<String>")]
    pub api_version: Option<SpannedString>,
    /// Object kind, e.g. `Deployment`. Literal. Defaults to `Deployment` for scale, restart,
    /// set_image and rollback; required for the other actions.
    #[schemars(with = "Option<String>")]
    pub kind: Option<SpannedString>,
    /// Namespace (template). Required for namespaced built-in kinds, forbidden for cluster-scoped
    /// ones (Node, Namespace, ...).
    #[schemars(with = "Option<String>")]
    pub namespace: Option<SpannedString>,
    /// Object name (template), e.g. `"{{ event.labels.deployment }}"`.
    #[schemars(with = "String")]
    pub name: SpannedString,
}

/// Which kinds an action accepts.
pub(crate) struct KindRule {
    /// The action, for messages.
    pub action: &'static str,
    /// Kind used when `target.kind` is absent; `None` makes `kind` required.
    pub default: Option<&'static str>,
    /// The only kinds allowed; `None` allows any.
    pub allowed: Option<&'static [&'static str]>,
}

/// A compiled target.
#[derive(Debug, Clone)]
pub struct Target {
    api_version: String,
    kind: String,
    namespace: Option<Param>,
    name: Param,
}

/// A rendered target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetParams {
    /// API group and version, e.g. `apps/v1`.
    pub api_version: String,
    /// Object kind, e.g. `Deployment`.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
}

/// Checks a literal `kind`: an UpperCamelCase identifier.
fn check_kind(kind: &str) -> Result<(), String> {
    let mut chars = kind.chars();
    let first_upper = chars.next().is_some_and(|c| c.is_ascii_uppercase());
    if first_upper && chars.all(|c| c.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(
            "is not a Kubernetes kind (UpperCamelCase letters and digits, e.g. `Deployment`)"
                .into(),
        )
    }
}

/// Checks a literal `api_version`: `v1` or `group/version`.
fn check_api_version(v: &str) -> Result<(), String> {
    let version = v.rsplit('/').next().unwrap_or(v);
    let group_ok = match v.split_once('/') {
        Some((group, _)) => is_dns_subdomain(group),
        None => true,
    };
    let version_ok = version.starts_with('v')
        && version
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if group_ok && version_ok && v.matches('/').count() <= 1 {
        Ok(())
    } else {
        Err("is not an API version (`v1` or `group/version`, e.g. `apps/v1`)".into())
    }
}

/// Pushes a diagnostic when `src` contains template syntax (kinds and versions must be literal).
fn literal(field: &str, src: &SpannedString, diags: &mut Diagnostics) -> bool {
    if src.value.contains("{{") || src.value.contains("{%") {
        return reject(
            diags,
            src.referenced,
            format!("`{field}` must be written literally, not as a template"),
            Some("Reflex derives the RBAC it needs from the kinds in the rules, so they must be known at load".into()),
        );
    }
    true
}

impl TargetSpec {
    pub(crate) fn compile(&self, rule: &KindRule, diags: &mut Diagnostics) -> Option<Target> {
        let at = self.name.referenced;
        let mut ok = true;
        let kind = match &self.kind {
            Some(k) => {
                ok &= literal("target.kind", k, diags);
                if let Err(reason) = check_kind(&k.value) {
                    ok = reject(
                        diags,
                        k.referenced,
                        format!("`target.kind`: `{}` {reason}", k.value),
                        None,
                    );
                }
                if let Some(allowed) = rule.allowed
                    && !allowed.contains(&k.value.as_str())
                {
                    let hint = closest(&k.value, allowed.iter().copied())
                        .map(|c| format!("did you mean `{c}`? "))
                        .unwrap_or_default();
                    ok = reject(
                        diags,
                        k.referenced,
                        format!("`{}` does not work on kind `{}`", rule.action, k.value),
                        Some(format!("{hint}supported kinds: {}", allowed.join(", "))),
                    );
                }
                Some(k.value.clone())
            }
            None => match rule.default {
                Some(d) => Some(d.to_owned()),
                None => {
                    ok = reject(
                        diags,
                        at,
                        format!("`{}` needs `target.kind`", rule.action),
                        Some("e.g. `target: {kind: Pod, namespace: ..., name: ...}`".into()),
                    );
                    None
                }
            },
        };
        let api_version = match (&self.api_version, &kind) {
            (Some(v), _) => {
                ok &= literal("target.api_version", v, diags);
                if let Err(reason) = check_api_version(&v.value) {
                    ok = reject(
                        diags,
                        v.referenced,
                        format!("`target.api_version`: `{}` {reason}", v.value),
                        None,
                    );
                }
                Some(v.value.clone())
            }
            (None, Some(kind)) => match KNOWN_KINDS.iter().find(|(k, _, _)| k == kind) {
                Some((_, v, _)) => Some((*v).to_owned()),
                None => {
                    ok = reject(
                        diags,
                        at,
                        format!("`target.api_version` is required for kind `{kind}`"),
                        Some("Reflex only knows the API version of built-in kinds; write e.g. `api_version: argoproj.io/v1alpha1`".into()),
                    );
                    None
                }
            },
            (None, None) => None,
        };
        let namespaced = match (&kind, &api_version) {
            (Some(k), Some(v)) => known(k, v),
            _ => None,
        };
        match (namespaced, &self.namespace, &kind) {
            (Some(true), None, Some(k)) => {
                ok = reject(
                    diags,
                    at,
                    format!("`target.namespace` is required: `{k}` objects live in a namespace"),
                    Some("e.g. `namespace: \"{{ event.labels.namespace }}\"`".into()),
                );
            }
            (Some(false), Some(ns), Some(k)) => {
                ok = reject(
                    diags,
                    ns.referenced,
                    format!("`target.namespace` must not be set: `{k}` objects are cluster-scoped"),
                    None,
                );
            }
            _ => {}
        }
        let name_rule = name_rule(kind.as_deref().unwrap_or_default());
        let namespace = match &self.namespace {
            Some(ns) => param_checked("target.namespace", ns, check_namespace, diags).map(Some),
            None => Some(None),
        };
        let name = param_checked("target.name", &self.name, name_rule, diags);
        all(&[ok])?;
        Some(Target {
            api_version: api_version?,
            kind: kind?,
            namespace: namespace?,
            name: name?,
        })
    }
}

impl Target {
    pub(crate) fn render(&self, ctx: &RenderContext) -> Result<TargetParams, RenderError> {
        let namespace = match &self.namespace {
            Some(ns) => Some(ns.render_checked(ctx, check_namespace)?),
            None => None,
        };
        let name = self.name.render_checked(ctx, name_rule(&self.kind))?;
        Ok(TargetParams {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            namespace,
            name,
        })
    }

    /// (`api_version`, `kind`).
    pub(crate) fn resource(&self) -> (&str, &str) {
        (&self.api_version, &self.kind)
    }
}

/// The naming rule for objects of `kind`.
fn name_rule(kind: &str) -> fn(&str) -> Result<(), String> {
    if PATH_SEGMENT_NAMED.contains(&kind) {
        check_path_segment_name
    } else {
        check_object_name
    }
}

/// RFC 1123 DNS label: 1–63 of `[a-z0-9-]`, alphanumeric at both ends.
pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 DNS subdomain: dot-separated DNS labels, at most 253 characters.
pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Namespaces are DNS labels.
pub(crate) fn check_namespace(s: &str) -> Result<(), String> {
    if is_dns_label(s) {
        Ok(())
    } else {
        Err(
            "is not a valid namespace (lowercase letters, digits and `-`, at most 63; \
             the `dns_label` filter makes one)"
                .into(),
        )
    }
}

/// Most object names are DNS subdomains.
pub(crate) fn check_object_name(s: &str) -> Result<(), String> {
    if is_dns_subdomain(s) {
        Ok(())
    } else {
        Err(
            "is not a valid object name (lowercase letters, digits, `-` and `.`, at most 253; \
             the `dns_label` filter makes one)"
                .into(),
        )
    }
}

/// Names that only need to be a valid URL path segment.
fn check_path_segment_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s == "." || s == ".." || s.len() > 253 {
        return Err("is not a valid object name".into());
    }
    match s
        .chars()
        .find(|c| matches!(c, '/' | '%') || c.is_control() || c.is_whitespace())
    {
        Some(c) => Err(format!("is not a valid object name (contains {c:?})")),
        None => Ok(()),
    }
}

// ---- cordon / uncordon ----

/// `cordon`: mark a node unschedulable (`spec.unschedulable: true`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CordonSpec {
    /// Node name (template), e.g. `"{{ event.output_fields['k8s.node.name'] }}"`.
    #[schemars(with = "String")]
    pub node: SpannedString,
}

/// `uncordon`: mark a node schedulable again.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UncordonSpec {
    /// Node name (template).
    #[schemars(with = "String")]
    pub node: SpannedString,
}

/// A compiled cordon or uncordon.
#[derive(Debug, Clone)]
pub struct Node {
    node: Param,
}

/// Rendered parameters of `cordon` and `uncordon`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAction {
    /// Node name.
    pub node: String,
}

impl Node {
    pub(crate) fn compile(node: &SpannedString, diags: &mut Diagnostics) -> Option<Node> {
        Some(Node {
            node: param_checked("node", node, check_object_name, diags)?,
        })
    }

    pub(crate) fn render(&self, ctx: &RenderContext) -> Result<NodeAction, RenderError> {
        Ok(NodeAction {
            node: self.node.render_checked(ctx, check_object_name)?,
        })
    }
}

/// Compiles an optional templated parameter that must satisfy `check` (checked at load when
/// constant).
pub(crate) fn opt_checked(
    name: &str,
    src: Option<&SpannedString>,
    check: fn(&str) -> Result<(), String>,
    diags: &mut Diagnostics,
) -> Option<Option<Param>> {
    match src {
        None => Some(None),
        Some(src) => param_checked(name, src, check, diags).map(Some),
    }
}
