//! `set_image`: change the image of one container of a workload, optionally waiting for the
//! rollout.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::POD_TEMPLATE_KINDS;
use crate::rules::action::kubernetes::{KindRule, Target, TargetParams, TargetSpec, opt_checked};
use crate::rules::action::{Param, all, duration, millis, no_control_chars, param_checked, reject};
use crate::rules::diagnostic::Diagnostics;
use crate::rules::model::SpannedString;
use crate::rules::template::{RenderContext, RenderError};

// ---- set_image ----

/// Default wait for a rollout after `set_image` with `wait: true`.
const DEFAULT_ROLLOUT_TIMEOUT: chrono::Duration = chrono::Duration::minutes(5);

/// Longest rollout wait: an executor slot is held while waiting, so waits are bounded; a rollout
/// slower than an hour should be watched by its own rule, not by a blocked action.
const MAX_ROLLOUT_TIMEOUT: chrono::Duration = chrono::Duration::hours(1);

/// Longest accepted image reference (registry host + path + tag + digest fit easily).
const MAX_IMAGE_LEN: usize = 1024;

/// `set_image`: change the image of one container of a workload.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetImageSpec {
    /// The workload: Deployment (default), StatefulSet or DaemonSet.
    pub target: TargetSpec,
    /// Container name (template). May be omitted when the pod template has exactly one container.
    #[schemars(with = "Option<String>")]
    pub container: Option<SpannedString>,
    /// New image reference (template), e.g. `"registry.example.com/shop/web:{{ event.version }}"`.
    #[schemars(with = "String")]
    pub image: SpannedString,
    /// Wait for the rollout to complete before reporting success.
    #[serde(default)]
    pub wait: bool,
    /// How long to wait for the rollout (with `wait: true`). Default `5m`, at most `1h`.
    #[schemars(with = "Option<String>")]
    pub timeout: Option<SpannedString>,
}

/// A compiled set_image.
#[derive(Debug, Clone)]
pub struct SetImage {
    pub(crate) target: Target,
    container: Option<Param>,
    image: Param,
    wait: bool,
    timeout: chrono::Duration,
}

/// Rendered parameters of `set_image`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetImageAction {
    /// The workload.
    pub target: TargetParams,
    /// Container name; `None`: the only container.
    pub container: Option<String>,
    /// New image reference.
    pub image: String,
    /// Wait for the rollout.
    pub wait: bool,
    /// Rollout wait bound, in milliseconds (meaningful with `wait`).
    pub timeout_ms: u64,
}

/// An image reference: non-empty, no whitespace or control characters, bounded.
fn check_image(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_IMAGE_LEN {
        return Err(format!(
            "is not an image reference (1 to {MAX_IMAGE_LEN} characters)"
        ));
    }
    if s.starts_with('-') || s.chars().any(char::is_whitespace) {
        return Err("is not an image reference (no spaces, must not start with `-`)".into());
    }
    no_control_chars(s)
}

/// Container names are DNS labels.
fn check_container(s: &str) -> Result<(), String> {
    if crate::rules::action::kubernetes::is_dns_label(s) {
        Ok(())
    } else {
        Err("is not a container name (lowercase letters, digits and `-`, at most 63)".into())
    }
}

impl SetImageSpec {
    pub(crate) fn compile(&self, diags: &mut Diagnostics) -> Option<SetImage> {
        let target = self.target.compile(
            &KindRule {
                action: "set_image",
                default: Some("Deployment"),
                allowed: Some(POD_TEMPLATE_KINDS),
            },
            diags,
        );
        let container = opt_checked("container", self.container.as_ref(), check_container, diags);
        let image = param_checked("image", &self.image, check_image, diags);
        let mut ok = true;
        if let (false, Some(t)) = (self.wait, &self.timeout) {
            ok = reject(
                diags,
                t.referenced,
                "`timeout` only applies with `wait: true`".into(),
                Some("add `wait: true` or remove `timeout`".into()),
            );
        }
        let timeout = duration(
            "timeout",
            self.timeout.as_ref(),
            DEFAULT_ROLLOUT_TIMEOUT,
            MAX_ROLLOUT_TIMEOUT,
            diags,
        );
        all(&[ok])?;
        Some(SetImage {
            target: target?,
            container: container?,
            image: image?,
            wait: self.wait,
            timeout: timeout?,
        })
    }
}

impl SetImage {
    pub(crate) fn render(&self, ctx: &RenderContext) -> Result<SetImageAction, RenderError> {
        Ok(SetImageAction {
            target: self.target.render(ctx)?,
            container: match &self.container {
                Some(c) => Some(c.render_checked(ctx, check_container)?),
                None => None,
            },
            image: self.image.render_checked(ctx, check_image)?,
            wait: self.wait,
            timeout_ms: millis(self.timeout),
        })
    }
}
