//! The closed-loop fields of a rule exactly as written in YAML (`verify`, `escalate`,
//! `loop_guard`, `undo`); [`super::compile`] checks them.

use schemars::JsonSchema;
use serde::Deserialize;

use super::readiness::Readiness;
use crate::rules::action::{ActionSpec, TargetSpec, WebhookSpec};
use crate::rules::model::{Spanned, SpannedString};

/// What "the actions worked" means, and how long to wait for it. Every check given must hold.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifySpec {
    /// How long the checks have to hold, counted from the end of the step's actions, e.g. `10m`.
    #[schemars(with = "String")]
    pub within: SpannedString,
    /// The alert that triggered the rule (the same occurrence: fingerprint and `startsAt`)
    /// resolves in time. Only for rules that select Alertmanager events.
    #[serde(default)]
    pub alert_resolved: bool,
    /// A condition on a Kubernetes object holds in time (polled every `every`).
    pub kubernetes: Option<KubernetesCheckSpec>,
    /// The rule does not fire again for the same target (or group key) within `within`; judged
    /// when `within` has passed.
    #[serde(default)]
    pub no_refire: bool,
    /// How often the Kubernetes condition is read. Default `5s`.
    #[schemars(with = "Option<String>")]
    pub every: Option<SpannedString>,
}

/// A condition on one Kubernetes object.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesCheckSpec {
    /// The object to read. Default: the target of the step's first Kubernetes action.
    pub target: Option<TargetSpec>,
    /// A named condition: `rollout_complete`, `available` or `ready`.
    pub condition: Option<Readiness>,
    /// An expression over the object (same language as a rule's `when`), e.g.
    /// `status.readyReplicas >= 3`.
    #[schemars(with = "Option<String>")]
    pub when: Option<SpannedString>,
}

/// One escalation step: actions, and what makes them worked.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// What to do, in order (same kinds as the rule's `actions`).
    pub actions: Vec<ActionSpec>,
    /// What "worked" means for this step; without it the step ends the remediation.
    pub verify: Option<VerifySpec>,
}

/// The loop guard: stop acting on a target the rule keeps remediating.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoopGuardSpec {
    /// `false` turns the guard off for this rule. Default `true` (on for every rule with a
    /// Kubernetes action).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Remediations of one target allowed within `within`; the next one quarantines the target.
    /// Default 3.
    #[schemars(with = "Option<u32>")]
    pub max: Option<Spanned<u32>>,
    /// The window remediations are counted in. Default `1h`.
    #[schemars(with = "Option<String>")]
    pub within: Option<SpannedString>,
    /// How long a quarantine lasts unless released first (`reflex release`). Default `24h`.
    #[schemars(with = "Option<String>")]
    pub quarantine: Option<SpannedString>,
    /// A webhook called when a target is quarantined (templates see the triggering event).
    pub notify: Option<WebhookSpec>,
}

fn yes() -> bool {
    true
}

/// Undo the reversible changes of the rule's actions (scale, cordon, label, annotate).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UndoSpec {
    /// When the triggering alert resolves.
    #[serde(default)]
    pub on_resolve: bool,
    /// After this long, e.g. `2h` (whichever comes first with `on_resolve`).
    #[schemars(with = "Option<String>")]
    pub after: Option<SpannedString>,
}
