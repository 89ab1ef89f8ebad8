//! `scale`: set or change a workload's replica count, clamped.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::rules::action::kubernetes::{KindRule, Target, TargetParams, TargetSpec};
use crate::rules::action::{Param, all, param_checked, reject};
use crate::rules::diagnostic::Diagnostics;
use crate::rules::model::SpannedString;
use crate::rules::template::{RenderContext, RenderError};

/// Largest replica count a rule may ask for or compute. No single workload legitimately runs
/// more than this (Kubernetes' own scalability envelope is 150,000 pods per cluster); a larger
/// rendered number is a template or event bug, not an intent, and must not reach the API.
pub const MAX_REPLICAS: u32 = 10_000;

/// Largest multiplication factor of `change: x<factor>`: anything larger is a typo (`x20`
/// instead of `+20`) that would multiply a fleet.
const MAX_FACTOR: f64 = 100.0;

// ---- scale ----

/// `scale`: set (`replicas`) or change (`change`) the replica count, optionally clamped.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleSpec {
    /// The workload. `kind` defaults to `Deployment`; any kind with a `scale` subresource works
    /// (StatefulSet, ReplicaSet, custom resources with `api_version`).
    pub target: TargetSpec,
    /// Absolute replica count: an integer, or a template rendering to one. Exactly one of
    /// `replicas` and `change` is required.
    #[schemars(with = "Option<crate::rules::action::IntOrString>")]
    pub replicas: Option<SpannedString>,
    /// Relative change from the current count: `+2`, `-1`, or a factor `x2` / `*1.5`
    /// (multiplication rounds up). May be a template rendering to one of those.
    #[schemars(with = "Option<crate::rules::action::IntOrString>")]
    pub change: Option<SpannedString>,
    /// Never go below this many replicas.
    #[schemars(with = "Option<u32>")]
    pub min: Option<Spanned<u32>>,
    /// Never go above this many replicas (at most 10000).
    #[schemars(with = "Option<u32>")]
    pub max: Option<Spanned<u32>>,
}

/// A relative replica change.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleChange {
    /// Add this many replicas (negative removes).
    Add(i64),
    /// Multiply the current count by this factor, rounding up.
    Multiply(f64),
}

impl ScaleChange {
    /// Parses `+2`, `-1`, `x2`, `*1.5` (surrounding spaces allowed).
    pub fn parse(s: &str) -> Result<ScaleChange, String> {
        let s = s.trim();
        let expected = "expected `+N`, `-N`, `xF` or `*F` (e.g. `+2`, `-1`, `x2`, `*1.5`)";
        if let Some(rest) = s.strip_prefix(['x', 'X', '*', '×']) {
            let factor: f64 = rest
                .trim()
                .parse()
                .map_err(|_| format!("`{s}`: `{}` is not a number; {expected}", rest.trim()))?;
            if !(factor.is_finite() && factor > 0.0 && factor <= MAX_FACTOR) {
                return Err(format!(
                    "`{s}`: the factor must be above 0 and at most {MAX_FACTOR}"
                ));
            }
            return Ok(ScaleChange::Multiply(factor));
        }
        if s.starts_with(['+', '-']) {
            let n: i64 = s
                .parse()
                .map_err(|_| format!("`{s}` is not a whole number of replicas; {expected}"))?;
            if n.unsigned_abs() > u64::from(MAX_REPLICAS) {
                return Err(format!(
                    "`{s}`: a change of more than {MAX_REPLICAS} replicas"
                ));
            }
            return Ok(ScaleChange::Add(n));
        }
        if s.parse::<u64>().is_ok() {
            return Err(format!(
                "`{s}` has no sign; write `+{s}` or `-{s}` for a change, or use `replicas: {s}` for an absolute count"
            ));
        }
        Err(format!("`{s}`: {expected}"))
    }
}

/// Parses an absolute replica count.
fn parse_replicas(s: &str) -> Result<u32, String> {
    let n: u64 = s
        .trim()
        .parse()
        .map_err(|_| "is not a non-negative whole number".to_owned())?;
    u32::try_from(n)
        .ok()
        .filter(|n| *n <= MAX_REPLICAS)
        .ok_or_else(|| format!("is more than {MAX_REPLICAS} replicas"))
}

/// A compiled scale.
#[derive(Debug, Clone)]
pub struct Scale {
    pub(crate) target: Target,
    amount: Amount,
    min: Option<u32>,
    max: Option<u32>,
}

#[derive(Debug, Clone)]
enum Amount {
    Replicas(Param),
    Change(Param),
}

/// Rendered parameters of `scale`. Exactly one of `replicas` and `change` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleAction {
    /// The workload.
    pub target: TargetParams,
    /// Absolute replica count.
    pub replicas: Option<u32>,
    /// Relative change.
    pub change: Option<ScaleChange>,
    /// Lower clamp.
    pub min: Option<u32>,
    /// Upper clamp.
    pub max: Option<u32>,
}

impl ScaleAction {
    /// The replica count to set, given the `current` one: the absolute count or the change
    /// applied to `current`, then clamped to `min`/`max` and to `0..=MAX_REPLICAS`.
    pub fn desired(&self, current: u32) -> u32 {
        let raw: f64 = match (self.replicas, self.change) {
            (Some(r), _) => f64::from(r),
            (None, Some(ScaleChange::Add(n))) => f64::from(current) + n as f64,
            (None, Some(ScaleChange::Multiply(f))) => (f64::from(current) * f).ceil(),
            (None, None) => f64::from(current),
        };
        let lo = f64::from(self.min.unwrap_or(0));
        let hi = f64::from(self.max.unwrap_or(MAX_REPLICAS).min(MAX_REPLICAS));
        // In range after the clamp, so the cast is exact.
        raw.clamp(lo, hi.max(lo)) as u32
    }
}

impl ScaleSpec {
    pub(crate) fn compile(&self, diags: &mut Diagnostics) -> Option<Scale> {
        let at = self.target.name.referenced;
        let target = self.target.compile(
            &KindRule {
                action: "scale",
                default: Some("Deployment"),
                allowed: None,
            },
            diags,
        );
        let mut ok = true;
        let amount = match (&self.replicas, &self.change) {
            (Some(r), None) => {
                param_checked("replicas", r, |s| parse_replicas(s).map(|_| ()), diags)
                    .map(Amount::Replicas)
            }
            (None, Some(c)) => {
                param_checked("change", c, |s| ScaleChange::parse(s).map(|_| ()), diags)
                    .map(Amount::Change)
            }
            (Some(r), Some(_)) => {
                reject(
                    diags,
                    r.referenced,
                    "`scale` takes either `replicas` or `change`, not both".into(),
                    None,
                );
                None
            }
            (None, None) => {
                reject(
                    diags,
                    at,
                    "`scale` needs `replicas` (absolute) or `change` (relative)".into(),
                    Some("e.g. `replicas: 3` or `change: \"+2\"`".into()),
                );
                None
            }
        };
        for bound in [&self.min, &self.max].into_iter().flatten() {
            if bound.value > MAX_REPLICAS {
                ok = reject(
                    diags,
                    bound.referenced,
                    format!("at most {MAX_REPLICAS} replicas"),
                    None,
                );
            }
        }
        if let (Some(min), Some(max)) = (&self.min, &self.max)
            && min.value > max.value
        {
            ok = reject(
                diags,
                min.referenced,
                format!(
                    "`min` ({}) is greater than `max` ({})",
                    min.value, max.value
                ),
                None,
            );
        }
        if let (Some(r), Some(Amount::Replicas(p))) = (&self.replicas, &amount)
            && let Some(n) = p.constant().and_then(|s| parse_replicas(s).ok())
            && (self.min.as_ref().is_some_and(|m| n < m.value)
                || self.max.as_ref().is_some_and(|m| n > m.value))
        {
            ok = reject(
                diags,
                r.referenced,
                format!("`replicas: {n}` is outside `min`/`max`"),
                None,
            );
        }
        all(&[ok])?;
        Some(Scale {
            target: target?,
            amount: amount?,
            min: self.min.as_ref().map(|m| m.value),
            max: self.max.as_ref().map(|m| m.value),
        })
    }
}

impl Scale {
    pub(crate) fn render(&self, ctx: &RenderContext) -> Result<ScaleAction, RenderError> {
        let target = self.target.render(ctx)?;
        let (replicas, change) = match &self.amount {
            Amount::Replicas(p) => {
                let s = p.render(ctx)?;
                let n = parse_replicas(&s).map_err(|reason| p.invalid(&s, reason))?;
                (Some(n), None)
            }
            Amount::Change(p) => {
                let s = p.render(ctx)?;
                let c = ScaleChange::parse(&s).map_err(|reason| p.invalid(&s, reason))?;
                (None, Some(c))
            }
        };
        Ok(ScaleAction {
            target,
            replicas,
            change,
            min: self.min,
            max: self.max,
        })
    }
}
