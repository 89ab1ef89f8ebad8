//! `patch`: change fields of any object with a merge, JSON, strategic-merge or apply patch.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{KindRule, Target, TargetParams, TargetSpec, is_builtin};
use crate::rules::action::freeform::{Compiled, FreeForm, Node};
use crate::rules::action::{all, reject};
use crate::rules::diagnostic::Diagnostics;
use crate::rules::template::{RenderContext, RenderError};

/// How a patch document is applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PatchType {
    /// JSON merge patch (RFC 7386): a partial object; `null` removes a field. Works on every kind.
    #[default]
    Merge,
    /// JSON patch (RFC 6902): a list of `{op, path, value}` operations.
    Json,
    /// Kubernetes strategic merge patch: like merge, but lists merge by key. Built-in kinds only.
    Strategic,
    /// Server-side apply with field manager `reflex`: a partial object Reflex takes ownership of.
    Apply,
}

impl PatchType {
    fn as_str(self) -> &'static str {
        match self {
            PatchType::Merge => "merge",
            PatchType::Json => "json",
            PatchType::Strategic => "strategic",
            PatchType::Apply => "apply",
        }
    }
}

/// `patch`: change fields of any object.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchSpec {
    /// The object; `kind` is required.
    pub target: TargetSpec,
    /// `merge` (default), `json`, `strategic` or `apply`.
    #[serde(default)]
    pub patch_type: PatchType,
    /// The patch document as YAML: a mapping (merge, strategic, apply) or a list of operations
    /// (json). String leaves are templates; a leaf that is exactly `{{ expr }}` keeps its type.
    pub patch: FreeForm,
}

/// A compiled patch.
#[derive(Debug, Clone)]
pub struct Patch {
    pub(crate) target: Target,
    patch_type: PatchType,
    patch: Compiled,
}

/// Rendered parameters of `patch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchAction {
    /// The object.
    pub target: TargetParams,
    /// How to apply `patch`.
    pub patch_type: PatchType,
    /// The rendered patch document.
    pub patch: serde_json::Value,
}

/// JSON patch operations and whether they need `value` / `from`.
const JSON_PATCH_OPS: &[(&str, bool, bool)] = &[
    ("add", true, false),
    ("remove", false, false),
    ("replace", true, false),
    ("move", false, true),
    ("copy", false, true),
    ("test", true, false),
];

/// Checks the shape of a JSON patch: a list of operations with literal `op`, a `path`, and the
/// fields the op needs.
fn check_json_patch(patch: &FreeForm, diags: &mut Diagnostics) -> bool {
    let Node::Seq(ops) = patch.node() else {
        return reject(
            diags,
            patch.location(),
            format!("a `json` patch is a list of operations, not {}", patch.node().type_name()),
            Some("e.g. `patch: [{op: replace, path: /spec/replicas, value: 3}]`, or use `patch_type: merge` for a partial object".into()),
        );
    };
    let mut ok = true;
    for op in ops {
        let Node::Map(entries) = &op.value else {
            ok = reject(
                diags,
                op.referenced,
                format!(
                    "a JSON patch operation is a mapping, not {}",
                    op.value.type_name()
                ),
                None,
            );
            continue;
        };
        for (key, value) in entries {
            if !matches!(key.as_str(), "op" | "path" | "value" | "from") {
                ok = reject(
                    diags,
                    value.referenced,
                    format!("unknown JSON patch field `{key}`"),
                    Some("operations have `op`, `path`, `value` and `from`".into()),
                );
            }
        }
        let name = op.value.get("op").and_then(|o| o.value.as_str());
        let Some((_, needs_value, needs_from)) =
            name.and_then(|n| JSON_PATCH_OPS.iter().find(|(o, _, _)| *o == n))
        else {
            let ops: Vec<&str> = JSON_PATCH_OPS.iter().map(|(o, _, _)| *o).collect();
            ok = reject(
                diags,
                op.referenced,
                "a JSON patch operation needs a literal `op`".into(),
                Some(format!("one of {}", ops.join(", "))),
            );
            continue;
        };
        match op.value.get("path") {
            None => {
                ok = reject(
                    diags,
                    op.referenced,
                    "a JSON patch operation needs `path`".into(),
                    None,
                )
            }
            Some(path) => {
                if let Some(p) = path.value.as_str()
                    && !p.contains("{{")
                    && !(p.is_empty() || p.starts_with('/'))
                {
                    ok = reject(
                        diags,
                        path.referenced,
                        format!("JSON patch path `{p}` must start with `/`"),
                        Some("e.g. `/spec/replicas` or `/metadata/labels/team`".into()),
                    );
                }
            }
        }
        if *needs_value && op.value.get("value").is_none() {
            ok = reject(
                diags,
                op.referenced,
                format!("JSON patch `{}` needs `value`", name.unwrap_or_default()),
                None,
            );
        }
        if *needs_from && op.value.get("from").is_none() {
            ok = reject(
                diags,
                op.referenced,
                format!("JSON patch `{}` needs `from`", name.unwrap_or_default()),
                None,
            );
        }
    }
    ok
}

impl PatchSpec {
    pub(crate) fn compile(&self, diags: &mut Diagnostics) -> Option<Patch> {
        let target = self.target.compile(
            &KindRule {
                action: "patch",
                default: None,
                allowed: None,
            },
            diags,
        );
        let mut ok = match self.patch_type {
            PatchType::Json => check_json_patch(&self.patch, diags),
            other => match self.patch.node() {
                Node::Map(_) => true,
                node => reject(
                    diags,
                    self.patch.location(),
                    format!(
                        "a `{}` patch is a mapping (a partial object), not {}",
                        other.as_str(),
                        node.type_name()
                    ),
                    matches!(node, Node::Seq(_))
                        .then(|| "a list of operations needs `patch_type: json`".to_owned()),
                ),
            },
        };
        if self.patch_type == PatchType::Strategic
            && let Some(t) = &target
            && !is_builtin(&t.kind, &t.api_version)
        {
            ok = reject(
                diags,
                self.patch.location(),
                format!(
                    "strategic merge patches only work on built-in kinds, not `{}`",
                    t.kind
                ),
                Some("use `patch_type: merge` (or `json`) for custom resources".into()),
            );
        }
        let patch = Compiled::compile(&self.patch, "patch", diags);
        all(&[ok])?;
        Some(Patch {
            target: target?,
            patch_type: self.patch_type,
            patch: patch?,
        })
    }
}

impl Patch {
    pub(crate) fn render(&self, ctx: &RenderContext) -> Result<PatchAction, RenderError> {
        Ok(PatchAction {
            target: self.target.render(ctx)?,
            patch_type: self.patch_type,
            patch: self.patch.render(ctx)?,
        })
    }
}
