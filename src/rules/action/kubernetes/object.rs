//! Object lifecycle actions: delete and create.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::{
    KindRule, Target, TargetParams, TargetSpec, check_api_version, check_kind, check_namespace,
    known, name_rule, opt_checked,
};
use crate::rules::action::freeform::{Compiled, FreeForm, Node};
use crate::rules::action::{Param, all, reject};
use crate::rules::diagnostic::Diagnostics;
use crate::rules::model::SpannedString;
use crate::rules::template::{RenderContext, RenderError};

// ---- delete ----

/// What happens to the objects a deleted object owns (Kubernetes `propagationPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PropagationPolicy {
    /// Delete dependents first, then the object.
    Foreground,
    /// Delete the object now, dependents in the background.
    Background,
    /// Keep the dependents.
    Orphan,
}

/// `delete`: delete an object.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteSpec {
    /// The object; `kind` is required.
    pub target: TargetSpec,
    /// Allow deleting a Pod that no controller owns (it will not come back). Default `false`:
    /// deleting a bare pod fails, so "delete the pod to restart it" never loses a workload.
    #[serde(default)]
    pub allow_bare_pods: bool,
    /// Grace period override, in seconds (`0` deletes immediately).
    #[schemars(with = "Option<u32>")]
    pub grace_period_seconds: Option<Spanned<u32>>,
    /// What happens to dependents: `foreground`, `background` or `orphan`; default: the kind's
    /// default.
    pub propagation_policy: Option<PropagationPolicy>,
}

/// A compiled delete.
#[derive(Debug, Clone)]
pub struct Delete {
    pub(crate) target: Target,
    allow_bare_pods: bool,
    grace_period_seconds: Option<u32>,
    propagation_policy: Option<PropagationPolicy>,
}

/// Rendered parameters of `delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteAction {
    /// The object.
    pub target: TargetParams,
    /// Whether deleting an unowned Pod is allowed.
    pub allow_bare_pods: bool,
    /// Grace period override, seconds.
    pub grace_period_seconds: Option<u32>,
    /// Dependent handling.
    pub propagation_policy: Option<PropagationPolicy>,
}

/// Longest grace period override: a day. Longer is a unit mistake (milliseconds written as
/// seconds).
const MAX_GRACE_SECONDS: u32 = 86_400;

impl DeleteSpec {
    pub(crate) fn compile(&self, diags: &mut Diagnostics) -> Option<Delete> {
        let target = self.target.compile(
            &KindRule {
                action: "delete",
                default: None,
                allowed: None,
            },
            diags,
        );
        let mut ok = true;
        if self.allow_bare_pods
            && let Some(t) = &target
            && t.kind != "Pod"
        {
            ok = reject(
                diags,
                self.target.name.referenced,
                format!(
                    "`allow_bare_pods` only applies to `kind: Pod`, not `{}`",
                    t.kind
                ),
                None,
            );
        }
        if let Some(g) = &self.grace_period_seconds
            && g.value > MAX_GRACE_SECONDS
        {
            ok = reject(
                diags,
                g.referenced,
                format!("`grace_period_seconds` is at most {MAX_GRACE_SECONDS}"),
                None,
            );
        }
        all(&[ok])?;
        Some(Delete {
            target: target?,
            allow_bare_pods: self.allow_bare_pods,
            grace_period_seconds: self.grace_period_seconds.as_ref().map(|g| g.value),
            propagation_policy: self.propagation_policy,
        })
    }
}

impl Delete {
    pub(crate) fn render(&self, ctx: &RenderContext) -> Result<DeleteAction, RenderError> {
        Ok(DeleteAction {
            target: self.target.render(ctx)?,
            allow_bare_pods: self.allow_bare_pods,
            grace_period_seconds: self.grace_period_seconds,
            propagation_policy: self.propagation_policy,
        })
    }
}

// ---- create ----

/// `create`: create an object from a manifest (e.g. a Job that collects diagnostics).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSpec {
    /// The object as YAML. `apiVersion` and `kind` are literal; `metadata.name` (or
    /// `metadata.generateName`) is required. String leaves are templates.
    pub manifest: FreeForm,
    /// Namespace to create the object in (template); alternatively set `metadata.namespace` in
    /// the manifest.
    #[schemars(with = "Option<String>")]
    pub namespace: Option<SpannedString>,
}

/// Longest `generateName` prefix: the API server appends 5 random characters and names are DNS
/// labels for many kinds (63), so longer prefixes get truncated anyway.
const GENERATE_NAME_MAX: usize = 58;

/// A compiled create.
#[derive(Debug, Clone)]
pub struct Create {
    api_version: String,
    kind: String,
    namespace: Option<Param>,
    manifest: Compiled,
}

/// Rendered parameters of `create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateAction {
    /// The manifest's `apiVersion`.
    pub api_version: String,
    /// The manifest's `kind`.
    pub kind: String,
    /// The namespace (also set as the manifest's `metadata.namespace`); `None` for
    /// cluster-scoped objects.
    pub namespace: Option<String>,
    /// The rendered object.
    pub manifest: serde_json::Value,
}

/// A literal string entry of the manifest root, checked with `check`.
fn literal_entry(
    manifest: &FreeForm,
    key: &str,
    check: fn(&str) -> Result<(), String>,
    diags: &mut Diagnostics,
) -> Option<String> {
    let Some(entry) = manifest.node().get(key) else {
        diags.error(
            manifest.location(),
            format!("the manifest needs `{key}`"),
            None,
        );
        return None;
    };
    match entry.value.as_str() {
        Some(s) if s.contains("{{") || s.contains("{%") => {
            diags.error(
                entry.referenced,
                format!("the manifest's `{key}` must be literal, not a template"),
                Some("Reflex derives the RBAC it needs from the kinds in the rules".into()),
            );
            None
        }
        Some(s) => match check(s) {
            Ok(()) => Some(s.to_owned()),
            Err(reason) => {
                diags.error(
                    entry.referenced,
                    format!("the manifest's `{key}`: `{s}` {reason}"),
                    None,
                );
                None
            }
        },
        None => {
            diags.error(
                entry.referenced,
                format!("the manifest's `{key}` must be a string"),
                None,
            );
            None
        }
    }
}

impl CreateSpec {
    pub(crate) fn compile(&self, diags: &mut Diagnostics) -> Option<Create> {
        let at = self.manifest.location();
        if !matches!(self.manifest.node(), Node::Map(_)) {
            diags.error(
                at,
                format!(
                    "the manifest is a mapping (an object), not {}",
                    self.manifest.node().type_name()
                ),
                None,
            );
            return None;
        }
        let api_version = literal_entry(&self.manifest, "apiVersion", check_api_version, diags);
        let kind = literal_entry(&self.manifest, "kind", check_kind, diags);
        let mut ok = true;
        let metadata = self.manifest.node().get("metadata");
        match metadata {
            Some(m) if m.value.get("name").is_some() || m.value.get("generateName").is_some() => {}
            Some(m) => {
                ok = reject(
                    diags,
                    m.referenced,
                    "the manifest needs `metadata.name` or `metadata.generateName`".into(),
                    None,
                )
            }
            None => {
                ok = reject(
                    diags,
                    at,
                    "the manifest needs `metadata` with `name` or `generateName`".into(),
                    None,
                )
            }
        }
        let manifest_ns = metadata.and_then(|m| m.value.get("namespace"));
        if let (Some(ns), Some(_)) = (manifest_ns, &self.namespace) {
            ok = reject(
                diags,
                ns.referenced,
                "the namespace is set twice (`namespace` and `metadata.namespace`)".into(),
                Some("keep one of them".into()),
            );
        }
        if let (Some(k), Some(v)) = (&kind, &api_version) {
            let has_ns = manifest_ns.is_some() || self.namespace.is_some();
            match known(k, v) {
                Some(true) if !has_ns => {
                    ok = reject(
                        diags,
                        at,
                        format!("`{k}` objects live in a namespace: set `namespace`"),
                        None,
                    );
                }
                Some(false) if has_ns => {
                    ok = reject(
                        diags,
                        at,
                        format!("`{k}` objects are cluster-scoped: remove the namespace"),
                        None,
                    );
                }
                _ => {}
            }
        }
        let namespace = opt_checked("namespace", self.namespace.as_ref(), check_namespace, diags);
        let manifest = Compiled::compile(&self.manifest, "manifest", diags);
        all(&[ok])?;
        Some(Create {
            api_version: api_version?,
            kind: kind?,
            namespace: namespace?,
            manifest: manifest?,
        })
    }
}

impl Create {
    pub(crate) fn render(&self, ctx: &RenderContext) -> Result<CreateAction, RenderError> {
        let mut manifest = self.manifest.render(ctx)?;
        let namespace = match &self.namespace {
            Some(ns) => Some(ns.render_checked(ctx, check_namespace)?),
            None => None,
        };
        let metadata = manifest
            .get_mut("metadata")
            .and_then(serde_json::Value::as_object_mut)
            .ok_or_else(|| RenderError::Invalid {
                param: "manifest.metadata".into(),
                reason: "is not a mapping".into(),
            })?;
        if let Some(ns) = &namespace {
            metadata.insert("namespace".into(), serde_json::Value::String(ns.clone()));
        }
        let namespace = match metadata.get("namespace") {
            None => None,
            Some(serde_json::Value::String(ns)) => {
                check_namespace(ns).map_err(|reason| RenderError::Invalid {
                    param: "manifest.metadata.namespace".into(),
                    reason: format!("`{ns}` {reason}"),
                })?;
                Some(ns.clone())
            }
            Some(_) => {
                return Err(RenderError::Invalid {
                    param: "manifest.metadata.namespace".into(),
                    reason: "is not a string".into(),
                });
            }
        };
        if let Some(name) = metadata.get("name") {
            let checked = match name.as_str() {
                Some(s) => name_rule(&self.kind)(s).map_err(|reason| format!("`{s}` {reason}")),
                None => Err("is not a string".to_owned()),
            };
            checked.map_err(|reason| RenderError::Invalid {
                param: "manifest.metadata.name".into(),
                reason,
            })?;
        }
        if let Some(prefix) = metadata.get("generateName")
            && !prefix
                .as_str()
                .is_some_and(|s| !s.is_empty() && s.len() <= GENERATE_NAME_MAX)
        {
            return Err(RenderError::Invalid {
                param: "manifest.metadata.generateName".into(),
                reason: format!("must be a string of 1 to {GENERATE_NAME_MAX} characters"),
            });
        }
        Ok(CreateAction {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            namespace,
            manifest,
        })
    }

    /// (`api_version`, `kind`).
    pub(crate) fn resource(&self) -> (&str, &str) {
        (&self.api_version, &self.kind)
    }
}
