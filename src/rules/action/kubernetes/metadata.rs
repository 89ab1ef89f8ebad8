//! Metadata actions: label and annotate.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{KindRule, Target, TargetParams, TargetSpec, is_dns_subdomain};
use crate::rules::action::{KubernetesAction, Param, all, no_control_chars, reject};
use crate::rules::diagnostic::Diagnostics;
use crate::rules::model::SpannedString;
use crate::rules::template::{RenderContext, RenderError};

/// `label`: set or remove labels on an object.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelSpec {
    /// The object; `kind` is required.
    pub target: TargetSpec,
    /// Label key → value (template); `null` removes the label. Keys are literal.
    #[schemars(with = "BTreeMap<String, Option<String>>")]
    pub labels: BTreeMap<String, Option<SpannedString>>,
}

/// `annotate`: set or remove annotations on an object.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnnotateSpec {
    /// The object; `kind` is required.
    pub target: TargetSpec,
    /// Annotation key → value (template); `null` removes the annotation. Keys are literal.
    #[schemars(with = "BTreeMap<String, Option<String>>")]
    pub annotations: BTreeMap<String, Option<SpannedString>>,
}

/// Rendered parameters of `label`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelAction {
    /// The object.
    pub target: TargetParams,
    /// Key → value; `None` removes.
    pub labels: BTreeMap<String, Option<String>>,
}

/// Rendered parameters of `annotate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnotateAction {
    /// The object.
    pub target: TargetParams,
    /// Key → value; `None` removes.
    pub annotations: BTreeMap<String, Option<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Labels,
    Annotations,
}

/// A compiled label or annotate.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub(crate) target: Target,
    which: Which,
    entries: Vec<(String, Option<Param>)>,
}

/// `[prefix/]name`: the name part is 1–63 of `[A-Za-z0-9-_.]`, alphanumeric at both ends; the
/// optional prefix is a DNS subdomain.
fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if name_ok && prefix.is_none_or(is_dns_subdomain) {
        Ok(())
    } else {
        Err("is not a valid key (`[prefix/]name`: name of at most 63 letters, digits, `-`, `_`, `.`; prefix a DNS subdomain)".into())
    }
}

/// Label values: empty, or 1–63 of `[A-Za-z0-9-_.]` alphanumeric at both ends.
fn check_label_value(v: &str) -> Result<(), String> {
    let ok = v.is_empty()
        || (v.len() <= 63
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err("is not a valid label value (at most 63 letters, digits, `-`, `_`, `.`, alphanumeric at both ends)".into())
    }
}

/// Annotation values are free text; only control characters other than newline and tab are
/// refused (multi-line annotations are common, NULs and escapes are not).
fn check_annotation_value(v: &str) -> Result<(), String> {
    no_control_chars(&v.replace('\n', " "))
}

fn compile(
    action: &'static str,
    target: &TargetSpec,
    which: Which,
    map: &BTreeMap<String, Option<SpannedString>>,
    diags: &mut Diagnostics,
) -> Option<Metadata> {
    let field = match which {
        Which::Labels => "labels",
        Which::Annotations => "annotations",
    };
    let value_check = match which {
        Which::Labels => check_label_value,
        Which::Annotations => check_annotation_value,
    };
    let compiled_target = target.compile(
        &KindRule {
            action,
            default: None,
            allowed: None,
        },
        diags,
    );
    let at = target.name.referenced;
    let mut ok = true;
    if map.is_empty() {
        ok = reject(
            diags,
            at,
            format!("`{action}` needs at least one entry in `{field}`"),
            None,
        );
    }
    let mut entries = Vec::with_capacity(map.len());
    for (key, value) in map {
        if let Err(reason) = check_key(key) {
            ok = reject(
                diags,
                value.as_ref().map_or(at, |v| v.referenced),
                format!("`{field}`: `{key}` {reason}"),
                None,
            );
        }
        match value {
            None => entries.push((key.clone(), None)),
            Some(v) => {
                match super::super::param_checked(&format!("{field}.{key}"), v, value_check, diags)
                {
                    Some(p) => entries.push((key.clone(), Some(p))),
                    None => ok = false,
                }
            }
        }
    }
    all(&[ok])?;
    Some(Metadata {
        target: compiled_target?,
        which,
        entries,
    })
}

impl LabelSpec {
    pub(crate) fn compile(&self, diags: &mut Diagnostics) -> Option<Metadata> {
        compile("label", &self.target, Which::Labels, &self.labels, diags)
    }
}

impl AnnotateSpec {
    pub(crate) fn compile(&self, diags: &mut Diagnostics) -> Option<Metadata> {
        compile(
            "annotate",
            &self.target,
            Which::Annotations,
            &self.annotations,
            diags,
        )
    }
}

impl Metadata {
    fn render_entries(
        &self,
        ctx: &RenderContext,
    ) -> Result<BTreeMap<String, Option<String>>, RenderError> {
        let check = match self.which {
            Which::Labels => check_label_value,
            Which::Annotations => check_annotation_value,
        };
        let mut out = BTreeMap::new();
        for (key, value) in &self.entries {
            let rendered = match value {
                Some(p) => Some(p.render_checked(ctx, check)?),
                None => None,
            };
            out.insert(key.clone(), rendered);
        }
        Ok(out)
    }

    /// Renders as a [`LabelAction`] or an [`AnnotateAction`].
    pub(crate) fn render(&self, ctx: &RenderContext) -> Result<KubernetesAction, RenderError> {
        let target = self.target.render(ctx)?;
        let entries = self.render_entries(ctx)?;
        Ok(match self.which {
            Which::Labels => KubernetesAction::Label(LabelAction {
                target,
                labels: entries,
            }),
            Which::Annotations => KubernetesAction::Annotate(AnnotateAction {
                target,
                annotations: entries,
            }),
        })
    }
}
