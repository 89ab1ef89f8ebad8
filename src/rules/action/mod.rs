//! Action kinds, their typed parameter schemas (the YAML model) and compiled actions that render
//! to planned parameters.
//!
//! Each kind has a `*Spec` (what the rule file says: `deny_unknown_fields`, templates as located
//! strings), a compiled form (templates parsed once, constants validated at load) and a
//! `*Action` type: the rendered, validated parameters, which [`CompiledAction::render`] hands
//! to executors inside an [`Action`] (one variant per kind).
//!
//! Layout: [`kubernetes`] (scale, restart, set_image, rollback, patch, delete, create, cordon,
//! uncordon, label, annotate), [`webhook`], [`kafka`], [`log`], [`rendered`] (the [`Action`]
//! enum, its serialized shape, idempotency and target), and [`freeform`] for YAML values whose
//! string leaves are templates.

pub mod access;
pub mod freeform;
pub mod kafka;
pub mod kubernetes;
pub mod log;
pub mod rendered;
pub mod webhook;

#[cfg(test)]
mod tests;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Location;

use super::diagnostic::Diagnostics;
use super::model::SpannedString;
use super::template::{RenderContext, RenderError, Scope, Template};

pub use kafka::CloudEventParams;
pub use kafka::{KafkaAction, KafkaSpec};
pub use kubernetes::{
    AnnotateAction, AnnotateSpec, CordonSpec, CreateAction, CreateSpec, DeleteAction, DeleteSpec,
    LabelAction, LabelSpec, NodeAction, PatchAction, PatchSpec, PatchType, PropagationPolicy,
    RestartAction, RestartSpec, RollbackAction, RollbackSpec, ScaleAction, ScaleChange, ScaleSpec,
    SetImageAction, SetImageSpec, TargetParams, TargetSpec, UncordonSpec,
};
pub use log::{LogAction, LogLevel, LogSpec};
pub use rendered::{Action, KubernetesAction, ObjectRef};
pub use webhook::{
    HmacParams, HttpMethod, SecretRef, StatusRange, UrlSpec, WebhookAction, WebhookSpec, WebhookUrl,
};

/// One entry of a rule's `actions:` list: a one-key map naming the kind, e.g.
/// `- scale: {target: {name: web, namespace: shop}, change: "+2", max: 10}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionSpec {
    /// Set or change the replica count of a workload (any kind with a `scale` subresource).
    Scale(ScaleSpec),
    /// Rolling restart of a Deployment, StatefulSet or DaemonSet.
    Restart(RestartSpec),
    /// Change the image of one container of a workload.
    SetImage(SetImageSpec),
    /// Roll a workload back to its previous (or a given) revision.
    Rollback(RollbackSpec),
    /// Patch any object (merge, JSON, strategic-merge or server-side apply patch).
    Patch(PatchSpec),
    /// Delete an object.
    Delete(DeleteSpec),
    /// Create an object from a manifest.
    Create(CreateSpec),
    /// Mark a node unschedulable.
    Cordon(CordonSpec),
    /// Mark a node schedulable again.
    Uncordon(UncordonSpec),
    /// Set or remove labels on an object.
    Label(LabelSpec),
    /// Set or remove annotations on an object.
    Annotate(AnnotateSpec),
    /// Send an HTTP request.
    Webhook(WebhookSpec),
    /// Produce a Kafka record.
    Kafka(KafkaSpec),
    /// Record a message (and fields) in the outcome only; changes nothing.
    Log(LogSpec),
}

/// The kind of an action. Closed set: a new kind needs a spec, a compiled form and an executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// [`ScaleSpec`].
    Scale,
    /// [`RestartSpec`].
    Restart,
    /// [`SetImageSpec`].
    SetImage,
    /// [`RollbackSpec`].
    Rollback,
    /// [`PatchSpec`].
    Patch,
    /// [`DeleteSpec`].
    Delete,
    /// [`CreateSpec`].
    Create,
    /// [`CordonSpec`].
    Cordon,
    /// [`UncordonSpec`].
    Uncordon,
    /// [`LabelSpec`].
    Label,
    /// [`AnnotateSpec`].
    Annotate,
    /// [`WebhookSpec`].
    Webhook,
    /// [`KafkaSpec`].
    Kafka,
    /// [`LogSpec`].
    Log,
}

impl ActionKind {
    /// Every kind, in a stable order (schemas, metrics, docs).
    pub const ALL: [ActionKind; 14] = [
        ActionKind::Scale,
        ActionKind::Restart,
        ActionKind::SetImage,
        ActionKind::Rollback,
        ActionKind::Patch,
        ActionKind::Delete,
        ActionKind::Create,
        ActionKind::Cordon,
        ActionKind::Uncordon,
        ActionKind::Label,
        ActionKind::Annotate,
        ActionKind::Webhook,
        ActionKind::Kafka,
        ActionKind::Log,
    ];

    /// The name used in rule files, outcomes and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Scale => "scale",
            ActionKind::Restart => "restart",
            ActionKind::SetImage => "set_image",
            ActionKind::Rollback => "rollback",
            ActionKind::Patch => "patch",
            ActionKind::Delete => "delete",
            ActionKind::Create => "create",
            ActionKind::Cordon => "cordon",
            ActionKind::Uncordon => "uncordon",
            ActionKind::Label => "label",
            ActionKind::Annotate => "annotate",
            ActionKind::Webhook => "webhook",
            ActionKind::Kafka => "kafka",
            ActionKind::Log => "log",
        }
    }

    /// True for kinds that act on the Kubernetes API.
    pub fn is_kubernetes(self) -> bool {
        !matches!(
            self,
            ActionKind::Webhook | ActionKind::Kafka | ActionKind::Log
        )
    }
}

impl ActionSpec {
    /// The kind of this action.
    pub fn kind(&self) -> ActionKind {
        match self {
            ActionSpec::Scale(_) => ActionKind::Scale,
            ActionSpec::Restart(_) => ActionKind::Restart,
            ActionSpec::SetImage(_) => ActionKind::SetImage,
            ActionSpec::Rollback(_) => ActionKind::Rollback,
            ActionSpec::Patch(_) => ActionKind::Patch,
            ActionSpec::Delete(_) => ActionKind::Delete,
            ActionSpec::Create(_) => ActionKind::Create,
            ActionSpec::Cordon(_) => ActionKind::Cordon,
            ActionSpec::Uncordon(_) => ActionKind::Uncordon,
            ActionSpec::Label(_) => ActionKind::Label,
            ActionSpec::Annotate(_) => ActionKind::Annotate,
            ActionSpec::Webhook(_) => ActionKind::Webhook,
            ActionSpec::Kafka(_) => ActionKind::Kafka,
            ActionSpec::Log(_) => ActionKind::Log,
        }
    }
}

/// A compiled action: templates parsed, constants validated. Renders per firing.
#[derive(Debug, Clone)]
pub struct CompiledAction {
    /// What kind of action this is.
    pub kind: ActionKind,
    params: Compiled,
}

#[derive(Debug, Clone)]
enum Compiled {
    Scale(kubernetes::Scale),
    Restart(kubernetes::Restart),
    SetImage(kubernetes::SetImage),
    Rollback(kubernetes::Rollback),
    Patch(kubernetes::Patch),
    Delete(kubernetes::Delete),
    Create(kubernetes::Create),
    Cordon(kubernetes::Node),
    Uncordon(kubernetes::Node),
    Label(kubernetes::Metadata),
    Annotate(kubernetes::Metadata),
    Webhook(webhook::Webhook),
    Kafka(kafka::Kafka),
    Log(log::Log),
}

impl CompiledAction {
    /// Compiles `spec`, pushing every problem found into `diags`; `None` when there was one.
    pub fn compile(spec: &ActionSpec, diags: &mut Diagnostics) -> Option<CompiledAction> {
        let params = match spec {
            ActionSpec::Scale(s) => Compiled::Scale(s.compile(diags)?),
            ActionSpec::Restart(s) => Compiled::Restart(s.compile(diags)?),
            ActionSpec::SetImage(s) => Compiled::SetImage(s.compile(diags)?),
            ActionSpec::Rollback(s) => Compiled::Rollback(s.compile(diags)?),
            ActionSpec::Patch(s) => Compiled::Patch(s.compile(diags)?),
            ActionSpec::Delete(s) => Compiled::Delete(s.compile(diags)?),
            ActionSpec::Create(s) => Compiled::Create(s.compile(diags)?),
            ActionSpec::Cordon(s) => Compiled::Cordon(kubernetes::Node::compile(&s.node, diags)?),
            ActionSpec::Uncordon(s) => {
                Compiled::Uncordon(kubernetes::Node::compile(&s.node, diags)?)
            }
            ActionSpec::Label(s) => Compiled::Label(s.compile(diags)?),
            ActionSpec::Annotate(s) => Compiled::Annotate(s.compile(diags)?),
            ActionSpec::Webhook(s) => Compiled::Webhook(s.compile(diags)?),
            ActionSpec::Kafka(s) => Compiled::Kafka(s.compile(diags)?),
            ActionSpec::Log(s) => Compiled::Log(s.compile(diags)?),
        };
        Some(CompiledAction {
            kind: spec.kind(),
            params,
        })
    }

    /// Compiles a webhook written outside `actions:` (a loop guard's `notify`).
    pub fn compile_webhook(spec: &WebhookSpec, diags: &mut Diagnostics) -> Option<CompiledAction> {
        Some(CompiledAction {
            kind: ActionKind::Webhook,
            params: Compiled::Webhook(spec.compile(diags)?),
        })
    }

    /// Renders every templated parameter and returns the typed, validated action. Errors name
    /// the parameter.
    pub fn render(&self, ctx: &RenderContext) -> Result<Action, RenderError> {
        use KubernetesAction as K;
        Ok(match &self.params {
            Compiled::Scale(a) => K::Scale(a.render(ctx)?).into(),
            Compiled::Restart(a) => K::Restart(a.render(ctx)?).into(),
            Compiled::SetImage(a) => K::SetImage(a.render(ctx)?).into(),
            Compiled::Rollback(a) => K::Rollback(a.render(ctx)?).into(),
            Compiled::Patch(a) => K::Patch(a.render(ctx)?).into(),
            Compiled::Delete(a) => K::Delete(a.render(ctx)?).into(),
            Compiled::Create(a) => K::Create(a.render(ctx)?).into(),
            Compiled::Cordon(a) => K::Cordon(a.render(ctx)?).into(),
            Compiled::Uncordon(a) => K::Uncordon(a.render(ctx)?).into(),
            Compiled::Label(a) | Compiled::Annotate(a) => a.render(ctx)?.into(),
            Compiled::Webhook(a) => Action::Webhook(a.render(ctx)?),
            Compiled::Kafka(a) => Action::Kafka(a.render(ctx)?),
            Compiled::Log(a) => Action::Log(a.render(ctx)?),
        })
    }

    /// The Kubernetes resource (`api_version`, `kind`) this action touches, for RBAC derivation;
    /// `None` for webhook, kafka and log.
    pub fn kubernetes_resource(&self) -> Option<(&str, &str)> {
        match &self.params {
            Compiled::Scale(a) => Some(a.target.resource()),
            Compiled::Restart(a) => Some(a.target.resource()),
            Compiled::SetImage(a) => Some(a.target.resource()),
            Compiled::Rollback(a) => Some(a.target.resource()),
            Compiled::Patch(a) => Some(a.target.resource()),
            Compiled::Delete(a) => Some(a.target.resource()),
            Compiled::Create(a) => Some(a.resource()),
            Compiled::Cordon(_) | Compiled::Uncordon(_) => Some(("v1", "Node")),
            Compiled::Label(a) | Compiled::Annotate(a) => Some(a.target.resource()),
            Compiled::Webhook(_) | Compiled::Kafka(_) | Compiled::Log(_) => None,
        }
    }
}

// ---- helpers shared by the kinds ----

/// Schema-only type for fields written as an integer or a string (`replicas: 3` or
/// `replicas: "{{ event.n }}"`, `change: +2`, `success_status: [200, 2xx]`). The model reads them
/// as located strings; this only tells editors that both forms are valid.
#[derive(JsonSchema)]
#[schemars(untagged)]
#[allow(dead_code)] // never constructed: it exists for `#[schemars(with = ...)]`
pub(crate) enum IntOrString {
    /// An integer.
    Int(i64),
    /// A string (often a template).
    String(String),
}

/// A templated parameter with its name, so render errors say which parameter failed.
#[derive(Debug, Clone)]
pub(crate) struct Param {
    name: String,
    template: Template,
}

impl Param {
    /// Compiles `src` as an action-scope template for parameter `name`.
    pub(crate) fn compile(
        name: impl Into<String>,
        src: &SpannedString,
        diags: &mut Diagnostics,
    ) -> Option<Param> {
        Some(Param {
            name: name.into(),
            template: Template::compile(src, Scope::Action, diags)?,
        })
    }

    /// Renders, naming the parameter in errors.
    pub(crate) fn render(&self, ctx: &RenderContext) -> Result<String, RenderError> {
        self.template
            .render(ctx)
            .map_err(|e| e.in_param(self.name.clone()))
    }

    /// Renders and checks the result with `check` (which says what is wrong).
    pub(crate) fn render_checked(
        &self,
        ctx: &RenderContext,
        check: impl Fn(&str) -> Result<(), String>,
    ) -> Result<String, RenderError> {
        let value = self.render(ctx)?;
        check(&value).map_err(|reason| self.invalid(&value, reason))?;
        Ok(value)
    }

    /// An [`RenderError::Invalid`] for this parameter quoting the rendered `value`.
    pub(crate) fn invalid(&self, value: &str, reason: String) -> RenderError {
        RenderError::Invalid {
            param: self.name.clone(),
            reason: format!("rendered to `{}`: {reason}", super::template::quote(value)),
        }
    }

    /// The constant value, when the parameter has no template syntax.
    pub(crate) fn constant(&self) -> Option<&str> {
        self.template.is_constant().then(|| self.template.source())
    }
}

/// Compiles an optional templated parameter: `Some(None)` when absent, `None` on error.
pub(crate) fn opt_param(
    name: &str,
    src: Option<&SpannedString>,
    diags: &mut Diagnostics,
) -> Option<Option<Param>> {
    match src {
        None => Some(None),
        Some(src) => Param::compile(name, src, diags).map(Some),
    }
}

/// Compiles a constant parameter `src` with `check` at load when it has no template syntax, so a
/// literal mistake fails at load rather than at the first event. Returns `None` (after pushing a
/// diagnostic) when the constant is invalid.
pub(crate) fn param_checked(
    name: &str,
    src: &SpannedString,
    check: impl Fn(&str) -> Result<(), String>,
    diags: &mut Diagnostics,
) -> Option<Param> {
    let param = Param::compile(name, src, diags)?;
    if let Some(value) = param.constant()
        && let Err(reason) = check(value)
    {
        diags.error(
            src.referenced,
            format!("`{name}`: `{value}` {reason}"),
            None,
        );
        return None;
    }
    Some(param)
}

/// Fails the compile of a whole action when any of `oks` is false (so every field is checked
/// before giving up, and all problems are reported together).
pub(crate) fn all(oks: &[bool]) -> Option<()> {
    oks.iter().all(|ok| *ok).then_some(())
}

/// Pushes an error at `at`; returns `false` for use in [`all`].
pub(crate) fn reject(
    diags: &mut Diagnostics,
    at: Location,
    message: String,
    hint: Option<String>,
) -> bool {
    diags.error(at, message, hint);
    false
}

/// Checks a value rendered from a template for characters that have no business in names,
/// header values or URLs: control characters (newlines in particular) would let event data
/// inject extra headers or lines.
pub(crate) fn no_control_chars(value: &str) -> Result<(), String> {
    match value.chars().find(|c| c.is_control() && *c != '\t') {
        Some(c) => Err(format!("contains the control character {c:?}")),
        None => Ok(()),
    }
}

/// Compiles a duration parameter (e.g. `timeout: 30s`) and checks it is within `(0, max]`.
pub(crate) fn duration(
    name: &str,
    src: Option<&SpannedString>,
    default: chrono::Duration,
    max: chrono::Duration,
    diags: &mut Diagnostics,
) -> Option<chrono::Duration> {
    let Some(src) = src else {
        return Some(default);
    };
    let d = super::duration::compile(src, diags)?;
    if d <= chrono::Duration::zero() || d > max {
        diags.error(
            src.referenced,
            format!(
                "`{name}` must be more than 0s and at most {}",
                super::duration::format(max)
            ),
            None,
        );
        return None;
    }
    Some(d)
}

/// Milliseconds of a (positive, bounded) duration, for the rendered parameters.
pub(crate) fn millis(d: chrono::Duration) -> u64 {
    u64::try_from(d.num_milliseconds()).unwrap_or(0)
}
