//! The compiled closed loop of one rule ([`Plan`]) and its compilation from the `verify`,
//! `escalate`, `loop_guard` and `undo` fields, every problem pushed into one [`Diagnostics`].

use chrono::Duration;

use super::readiness::Readiness;
use super::spec::{KubernetesCheckSpec, LoopGuardSpec, StepSpec, UndoSpec, VerifySpec};
use crate::event::Format;
use crate::rules::action::kubernetes::{KindRule, Target};
use crate::rules::action::{ActionKind, ActionSpec, CompiledAction};
use crate::rules::condition::Condition;
use crate::rules::diagnostic::Diagnostics;
use crate::rules::model;

/// Remediations of one target a rule may start within [`DEFAULT_LOOP_WINDOW`] before the
/// target is quarantined. Three restarts in an hour that each "worked" and came back are a
/// loop, not bad luck.
pub const DEFAULT_LOOP_MAX: u32 = 3;
/// The loop guard's default counting window.
pub const DEFAULT_LOOP_WINDOW: Duration = Duration::hours(1);
/// How long a quarantine lasts by default unless an operator releases it: a day, so a loop that
/// starts at night is still held when someone looks in the morning.
pub const DEFAULT_QUARANTINE: Duration = Duration::hours(24);
/// How often a Kubernetes condition is read while verifying, unless `verify.every` says.
pub const DEFAULT_EVERY: Duration = Duration::seconds(5);
/// Longest verification window: remediations are followed up, not watched forever.
pub const MAX_WITHIN: Duration = Duration::days(7);

/// The closed loop of a rule. Step 0 is the rule's own `actions`; steps 1.. are `escalate`.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What makes step 0 worked.
    pub verify: Option<Verify>,
    /// Escalation steps (step `i + 1` is `escalate[i]`).
    pub escalate: Vec<Step>,
    /// The loop guard, unless turned off (or the rule has no Kubernetes action and no
    /// `loop_guard:`).
    pub loop_guard: Option<LoopGuard>,
    /// What to undo and when.
    pub undo: Option<Undo>,
}

/// One escalation step.
#[derive(Debug, Clone)]
pub struct Step {
    /// Its actions.
    pub actions: Vec<CompiledAction>,
    /// What makes it worked.
    pub verify: Option<Verify>,
}

/// Compiled `verify:`.
#[derive(Debug, Clone)]
pub struct Verify {
    /// The window.
    pub within: Duration,
    /// The triggering alert must resolve.
    pub alert_resolved: bool,
    /// A condition on an object must hold.
    pub kubernetes: Option<KubeCheck>,
    /// The rule must not fire again for the target.
    pub no_refire: bool,
    /// Poll interval of the Kubernetes condition.
    pub every: Duration,
}

/// Compiled `verify.kubernetes`.
#[derive(Debug, Clone)]
pub struct KubeCheck {
    /// The object; `None`: the step's first Kubernetes action's target.
    pub target: Option<Target>,
    /// A named condition.
    pub readiness: Option<Readiness>,
    /// An expression over the object.
    pub when: Option<Condition>,
}

/// Compiled `loop_guard:`.
#[derive(Debug, Clone)]
pub struct LoopGuard {
    /// Remediations allowed per target within `within`.
    pub max: u32,
    /// The counting window.
    pub within: Duration,
    /// How long a quarantine lasts.
    pub quarantine: Duration,
    /// Called when a target is quarantined.
    pub notify: Option<CompiledAction>,
}

/// Compiled `undo:`.
#[derive(Debug, Clone, Copy)]
pub struct Undo {
    /// When the alert resolves.
    pub on_resolve: bool,
    /// After this long.
    pub after: Option<Duration>,
}

impl Plan {
    /// The `verify` of step `step`, if it has one.
    pub fn verify_of(&self, step: usize) -> Option<&Verify> {
        match step {
            0 => self.verify.as_ref(),
            n => self.escalate.get(n - 1)?.verify.as_ref(),
        }
    }

    /// Number of steps, step 0 included.
    pub fn steps(&self) -> usize {
        self.escalate.len() + 1
    }

    /// Compiles the closed-loop fields of `rule`; `None` when the rule has none of them and no
    /// Kubernetes action (nothing to follow up), or when one of them is invalid (diagnosed).
    pub fn compile(rule: &model::Rule, diags: &mut Diagnostics) -> Option<Option<Plan>> {
        let acts_on_kubernetes = rule
            .actions
            .iter()
            .chain(rule.escalate.iter().flat_map(|s| s.actions.iter()))
            .any(|a| a.kind().is_kubernetes());
        let closed = rule.verify.is_some()
            || !rule.escalate.is_empty()
            || rule.undo.is_some()
            || rule.loop_guard.is_some();
        if !closed && !acts_on_kubernetes {
            return Some(None);
        }
        let before = diags.len();
        let alerts = rule.selector.formats.is_empty()
            || rule.selector.formats.contains(&Format::Alertmanager);
        let verify = rule
            .verify
            .as_ref()
            .and_then(|v| compile_verify(v, &rule.actions, alerts, diags));
        if rule.verify.is_none() && !rule.escalate.is_empty() {
            diags.error(
                rule.name.referenced,
                "`escalate` needs a `verify` on the rule",
                Some(
                    "escalation runs when the step before it is ineffective; add `verify:` \
                     (e.g. `{within: 10m, alert_resolved: true}`) to say what worked means"
                        .into(),
                ),
            );
        }
        let escalate: Vec<Step> = rule
            .escalate
            .iter()
            .filter_map(|s| compile_step(s, alerts, diags))
            .collect();
        let loop_guard = compile_loop_guard(rule.loop_guard.as_ref(), acts_on_kubernetes, diags);
        let undo = rule
            .undo
            .as_ref()
            .and_then(|u| compile_undo(u, rule, diags));
        if diags.len() > before {
            return None;
        }
        Some(Some(Plan {
            verify,
            escalate,
            loop_guard,
            undo,
        }))
    }
}

fn compile_step(step: &StepSpec, alerts: bool, diags: &mut Diagnostics) -> Option<Step> {
    let actions: Vec<CompiledAction> = step
        .actions
        .iter()
        .filter_map(|spec| CompiledAction::compile(spec, diags))
        .collect();
    let verify = match &step.verify {
        Some(v) => Some(compile_verify(v, &step.actions, alerts, diags)?),
        None => None,
    };
    (actions.len() == step.actions.len()).then_some(Step { actions, verify })
}

fn positive(
    name: &str,
    src: &model::SpannedString,
    max: Duration,
    diags: &mut Diagnostics,
) -> Option<Duration> {
    let d = crate::rules::duration::compile(src, diags)?;
    if d <= Duration::zero() || d > max {
        diags.error(
            src.referenced,
            format!(
                "`{name}` must be more than 0s and at most {}",
                crate::rules::duration::format(max)
            ),
            None,
        );
        return None;
    }
    Some(d)
}

fn compile_verify(
    spec: &VerifySpec,
    actions: &[ActionSpec],
    alerts: bool,
    diags: &mut Diagnostics,
) -> Option<Verify> {
    let at = spec.within.referenced;
    let within = positive("verify.within", &spec.within, MAX_WITHIN, diags);
    let every = match &spec.every {
        Some(src) => positive("verify.every", src, MAX_WITHIN, diags),
        None => Some(DEFAULT_EVERY),
    };
    let mut ok = true;
    if !spec.alert_resolved && spec.kubernetes.is_none() && !spec.no_refire {
        diags.error(
            at,
            "`verify` checks nothing",
            Some(
                "give at least one of `alert_resolved: true`, `kubernetes: {condition: ...}` \
                 or `no_refire: true`"
                    .into(),
            ),
        );
        ok = false;
    }
    if spec.alert_resolved && !alerts {
        diags.error(
            at,
            "`verify.alert_resolved` needs a rule that selects Alertmanager events",
            Some("add `alertmanager` to `select.formats`, or verify with `kubernetes` or `no_refire`".into()),
        );
        ok = false;
    }
    let kubernetes = match &spec.kubernetes {
        Some(k) => compile_check(k, actions, at, diags),
        None => Some(None),
    };
    Some(Verify {
        within: within?,
        alert_resolved: spec.alert_resolved,
        kubernetes: kubernetes?,
        no_refire: spec.no_refire,
        every: every?,
    })
    .filter(|_| ok)
}

fn compile_check(
    spec: &KubernetesCheckSpec,
    actions: &[ActionSpec],
    at: serde_saphyr::Location,
    diags: &mut Diagnostics,
) -> Option<Option<KubeCheck>> {
    let mut ok = true;
    if spec.condition.is_none() && spec.when.is_none() {
        diags.error(
            at,
            "`verify.kubernetes` needs a `condition` or a `when`",
            Some(
                "e.g. `condition: rollout_complete` or `when: 'status.readyReplicas >= 2'`".into(),
            ),
        );
        ok = false;
    }
    let target = match &spec.target {
        Some(t) => {
            let any_kind = KindRule {
                action: "verify.kubernetes",
                default: Some("Deployment"),
                allowed: None,
            };
            Some(t.compile(&any_kind, diags)?)
        }
        None => {
            // The default object must be one an action of the step names, not one it creates.
            let names_object = actions
                .iter()
                .any(|a| a.kind().is_kubernetes() && !matches!(a.kind(), ActionKind::Create));
            if !names_object {
                diags.error(
                    at,
                    "`verify.kubernetes` has no `target` and the step has no Kubernetes action \
                     naming an object",
                    Some("add `target: {kind: ..., namespace: ..., name: ...}`".into()),
                );
                ok = false;
            }
            None
        }
    };
    let when = match &spec.when {
        Some(src) => Some(Condition::compile_expr(src, diags)?),
        None => None,
    };
    ok.then_some(Some(KubeCheck {
        target,
        readiness: spec.condition,
        when,
    }))
}

fn compile_loop_guard(
    spec: Option<&LoopGuardSpec>,
    acts_on_kubernetes: bool,
    diags: &mut Diagnostics,
) -> Option<LoopGuard> {
    let defaults = LoopGuardSpec::default();
    let spec = match spec {
        Some(spec) if !spec.enabled => return None,
        Some(spec) => spec,
        None if acts_on_kubernetes => &defaults,
        None => return None,
    };
    let max = match &spec.max {
        Some(max) if max.value == 0 => {
            diags.error(
                max.referenced,
                "`loop_guard.max` must be at least 1",
                Some("write `loop_guard: {enabled: false}` to turn the guard off".into()),
            );
            None
        }
        Some(max) => Some(max.value),
        None => Some(DEFAULT_LOOP_MAX),
    };
    let mut duration = |src: &Option<model::SpannedString>, name: &str, default: Duration| match src
    {
        Some(src) => positive(name, src, Duration::days(365), diags),
        None => Some(default),
    };
    let within = duration(&spec.within, "loop_guard.within", DEFAULT_LOOP_WINDOW);
    let quarantine = duration(
        &spec.quarantine,
        "loop_guard.quarantine",
        DEFAULT_QUARANTINE,
    );
    let notify = match &spec.notify {
        Some(webhook) => Some(CompiledAction::compile_webhook(webhook, diags)?),
        None => None,
    };
    Some(LoopGuard {
        max: max?,
        within: within?,
        quarantine: quarantine?,
        notify,
    })
}

fn compile_undo(spec: &UndoSpec, rule: &model::Rule, diags: &mut Diagnostics) -> Option<Undo> {
    let after = match &spec.after {
        Some(src) => Some(positive("undo.after", src, MAX_WITHIN, diags)?),
        None => None,
    };
    if !spec.on_resolve && after.is_none() {
        diags.error(
            rule.name.referenced,
            "`undo` says neither when nor after how long",
            Some("give `on_resolve: true`, `after: 2h`, or both".into()),
        );
        return None;
    }
    let reversible = rule.actions.iter().any(|a| {
        matches!(
            a.kind(),
            ActionKind::Scale | ActionKind::Cordon | ActionKind::Label | ActionKind::Annotate
        )
    });
    if !reversible {
        diags.error(
            rule.name.referenced,
            "`undo` on a rule with nothing reversible",
            Some("undo reverts `scale`, `cordon`, `label` and `annotate` actions of the rule's `actions`".into()),
        );
        return None;
    }
    Some(Undo {
        on_resolve: spec.on_resolve,
        after,
    })
}
