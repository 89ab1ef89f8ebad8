//! Workload actions: scale (`scale.rs`), restart, set_image (`set_image.rs`), rollback.
//! `target.kind` defaults to `Deployment`.

mod scale;
mod set_image;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::{KindRule, Target, TargetParams, TargetSpec};
use crate::rules::action::{all, reject};
use crate::rules::diagnostic::Diagnostics;
use crate::rules::template::{RenderContext, RenderError};

pub use scale::{MAX_REPLICAS, Scale, ScaleAction, ScaleChange, ScaleSpec};
pub use set_image::{SetImage, SetImageAction, SetImageSpec};

/// Kinds a rolling restart, image change or rollback works on (pod-template workloads).
const POD_TEMPLATE_KINDS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet"];

// ---- restart ----

/// `restart`: rolling restart (like `kubectl rollout restart`: stamps the pod template with a
/// `restartedAt` annotation).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartSpec {
    /// The workload: Deployment (default), StatefulSet or DaemonSet.
    pub target: TargetSpec,
}

/// A compiled restart.
#[derive(Debug, Clone)]
pub struct Restart {
    pub(crate) target: Target,
}

/// Rendered parameters of `restart`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartAction {
    /// The workload.
    pub target: TargetParams,
}

impl RestartSpec {
    pub(crate) fn compile(&self, diags: &mut Diagnostics) -> Option<Restart> {
        let target = self.target.compile(
            &KindRule {
                action: "restart",
                default: Some("Deployment"),
                allowed: Some(POD_TEMPLATE_KINDS),
            },
            diags,
        )?;
        Some(Restart { target })
    }
}

impl Restart {
    pub(crate) fn render(&self, ctx: &RenderContext) -> Result<RestartAction, RenderError> {
        Ok(RestartAction {
            target: self.target.render(ctx)?,
        })
    }
}

// ---- rollback ----

/// `rollback`: return a workload to its previous revision (like `kubectl rollout undo`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackSpec {
    /// The workload: Deployment (default), StatefulSet or DaemonSet.
    pub target: TargetSpec,
    /// Revision to return to (as in `kubectl rollout history`); default: the previous one.
    #[schemars(with = "Option<u64>")]
    pub to_revision: Option<Spanned<u64>>,
}

/// A compiled rollback.
#[derive(Debug, Clone)]
pub struct Rollback {
    pub(crate) target: Target,
    to_revision: Option<u64>,
}

/// Rendered parameters of `rollback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackAction {
    /// The workload.
    pub target: TargetParams,
    /// Revision to return to; `None`: the previous one.
    pub to_revision: Option<u64>,
}

impl RollbackSpec {
    pub(crate) fn compile(&self, diags: &mut Diagnostics) -> Option<Rollback> {
        let target = self.target.compile(
            &KindRule {
                action: "rollback",
                default: Some("Deployment"),
                allowed: Some(POD_TEMPLATE_KINDS),
            },
            diags,
        );
        let mut ok = true;
        if let Some(rev) = &self.to_revision
            && rev.value == 0
        {
            ok = reject(
                diags,
                rev.referenced,
                "`to_revision` starts at 1".into(),
                Some("omit `to_revision` to return to the previous revision".into()),
            );
        }
        all(&[ok])?;
        Some(Rollback {
            target: target?,
            to_revision: self.to_revision.as_ref().map(|r| r.value),
        })
    }
}

impl Rollback {
    pub(crate) fn render(&self, ctx: &RenderContext) -> Result<RollbackAction, RenderError> {
        Ok(RollbackAction {
            target: self.target.render(ctx)?,
            to_revision: self.to_revision,
        })
    }
}
