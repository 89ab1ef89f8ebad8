//! Named readiness conditions a `verify.kubernetes.condition` can ask for, judged on the
//! object as the API server returns it (JSON).
//!
//! The API server omits integer status fields that are zero (`omitempty`), so a missing count
//! reads as 0 and a missing `status` as "nothing observed yet"; only a missing identity
//! (`kind`, a workload's `metadata.generation`) or a kind the condition does not apply to makes
//! an object impossible to judge.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A named condition on a Kubernetes object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// The rollout finished, as `kubectl rollout status` judges it (Deployment, StatefulSet,
    /// DaemonSet).
    RolloutComplete,
    /// The object's `Available` condition is `True` (Deployment).
    Available,
    /// Ready: a Node's or Pod's `Ready` condition is `True`; a workload's ready replicas reach
    /// its desired replicas.
    Ready,
}

impl Readiness {
    /// The name in rule files and outcomes.
    pub fn as_str(self) -> &'static str {
        match self {
            Readiness::RolloutComplete => "rollout_complete",
            Readiness::Available => "available",
            Readiness::Ready => "ready",
        }
    }
}

/// Whether `readiness` holds on `object`. `Err` says why the condition cannot be judged on
/// this object at all (wrong kind, no identity, a rollout strategy `kubectl rollout status`
/// does not follow either); a workload whose progress deadline passed is `Ok(false)`, since a
/// later rollout can still complete, and [`describe`] names the deadline.
pub fn holds(readiness: Readiness, object: &Value) -> Result<bool, String> {
    judge(readiness, object).map(|verdict| verdict.holds)
}

/// One line on why `readiness` holds or not on `object`, for outcomes, e.g.
/// `1 of 3 replicas updated, observedGeneration 4 < generation 5`.
pub fn describe(readiness: Readiness, object: &Value) -> String {
    match judge(readiness, object) {
        Ok(verdict) => verdict.why,
        Err(reason) => reason,
    }
}

/// The judgement: whether the condition holds, and the line that says why.
struct Verdict {
    holds: bool,
    why: String,
}

impl Verdict {
    /// Holds when nothing is `pending`; otherwise says what is.
    fn unless(pending: Vec<String>, done: String) -> Verdict {
        if pending.is_empty() {
            Verdict {
                holds: true,
                why: done,
            }
        } else {
            Verdict {
                holds: false,
                why: pending.join(", "),
            }
        }
    }
}

fn judge(readiness: Readiness, object: &Value) -> Result<Verdict, String> {
    let Some(kind) = object.get("kind").and_then(Value::as_str) else {
        return Err(format!(
            "`{}` cannot be judged: the object has no `kind`",
            readiness.as_str()
        ));
    };
    let o = Object { kind, json: object };
    match (readiness, kind) {
        (Readiness::RolloutComplete, "Deployment") => deployment_rollout(&o),
        (Readiness::RolloutComplete, "StatefulSet") => statefulset_rollout(&o),
        (Readiness::RolloutComplete, "DaemonSet") => daemonset_rollout(&o),
        (Readiness::RolloutComplete, _) => Err(o.not_for(
            readiness,
            "it applies to Deployment, StatefulSet and DaemonSet",
        )),
        (Readiness::Available, "Node" | "Pod" | "StatefulSet" | "DaemonSet" | "ReplicaSet") => {
            Err(o.not_for(
                readiness,
                "this kind has no `Available` condition (use `ready` or `rollout_complete`)",
            ))
        }
        (Readiness::Available, _) => Ok(o.condition_true("Available")),
        (Readiness::Ready, "Node" | "Pod") => Ok(o.condition_true("Ready")),
        (Readiness::Ready, "Deployment" | "StatefulSet" | "ReplicaSet") => {
            let desired = o.spec_replicas();
            let ready = o.count("readyReplicas");
            Ok(Verdict {
                holds: ready >= desired,
                why: format!("{ready} of {desired} replicas ready"),
            })
        }
        (Readiness::Ready, "DaemonSet") => {
            let desired = o.count("desiredNumberScheduled");
            let ready = o.count("numberReady");
            Ok(Verdict {
                holds: ready >= desired,
                why: format!("{ready} of {desired} scheduled pods ready"),
            })
        }
        // Custom resources commonly report a `Ready` condition; until they do, not ready.
        (Readiness::Ready, _) => Ok(o.condition_true("Ready")),
    }
}

/// The object being judged, with typed reads of the fields the conditions use.
struct Object<'a> {
    kind: &'a str,
    json: &'a Value,
}

impl Object<'_> {
    fn not_for(&self, readiness: Readiness, why: &str) -> String {
        format!(
            "`{}` cannot be judged on a {}: {why}",
            readiness.as_str(),
            self.kind
        )
    }

    /// A status count; absent (the API server omits zeros) or not a count reads as 0.
    fn count(&self, field: &str) -> i64 {
        self.json
            .pointer(&format!("/status/{field}"))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    }

    /// `spec.replicas`; the API server defaults it to 1.
    fn spec_replicas(&self) -> i64 {
        self.json
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
    }

    fn status_str(&self, field: &str) -> Option<&str> {
        self.json
            .pointer(&format!("/status/{field}"))
            .and_then(Value::as_str)
    }

    /// The `status.conditions` entry of this type.
    fn condition(&self, kind: &str) -> Option<&Value> {
        self.json
            .pointer("/status/conditions")
            .and_then(Value::as_array)?
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
    }

    fn condition_true(&self, kind: &str) -> Verdict {
        let status = self
            .condition(kind)
            .and_then(|c| c.get("status"))
            .and_then(Value::as_str);
        match status {
            Some("True") => Verdict {
                holds: true,
                why: format!("condition {kind} is True"),
            },
            Some(other) => {
                let reason = self
                    .condition(kind)
                    .and_then(|c| c.get("reason"))
                    .and_then(Value::as_str)
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                Verdict {
                    holds: false,
                    why: format!("condition {kind} is {other}{reason}"),
                }
            }
            None => Verdict {
                holds: false,
                why: format!("no {kind} condition reported yet"),
            },
        }
    }

    /// "observedGeneration 4 < generation 5" while the controller has not seen the latest
    /// spec; `Err` when the object has no generation (not a workload as the API serves it).
    fn unobserved_generation(&self) -> Result<Option<String>, String> {
        let generation = self
            .json
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .ok_or_else(|| {
                format!(
                    "the {} has no `metadata.generation`, so its rollout cannot be followed",
                    self.kind
                )
            })?;
        let observed = self.count("observedGeneration");
        Ok((observed < generation)
            .then(|| format!("observedGeneration {observed} < generation {generation}")))
    }

    /// `spec.updateStrategy.type` (RollingUpdate when absent, the API server's default).
    fn rolling_update(&self, readiness: Readiness) -> Result<(), String> {
        let strategy = self
            .json
            .pointer("/spec/updateStrategy/type")
            .and_then(Value::as_str)
            .unwrap_or("RollingUpdate");
        if strategy == "RollingUpdate" {
            Ok(())
        } else {
            Err(self.not_for(
                readiness,
                &format!(
                    "its update strategy is {strategy}; only RollingUpdate rollouts are followed"
                ),
            ))
        }
    }
}

/// `kubectl rollout status deployment`: the latest spec observed, every replica updated, no
/// old replica left, every updated replica available, and the progress deadline not passed.
fn deployment_rollout(o: &Object) -> Result<Verdict, String> {
    let mut pending: Vec<String> = o.unobserved_generation()?.into_iter().collect();
    let deadline_passed = o
        .condition("Progressing")
        .and_then(|c| c.get("reason"))
        .and_then(Value::as_str)
        == Some("ProgressDeadlineExceeded");
    if deadline_passed {
        pending.push("progress deadline exceeded".into());
    }
    let desired = o.spec_replicas();
    let replicas = o.count("replicas");
    let updated = o.count("updatedReplicas");
    let available = o.count("availableReplicas");
    if updated < desired {
        pending.push(format!("{updated} of {desired} replicas updated"));
    }
    if replicas > updated {
        pending.push(format!(
            "{} old replicas pending termination",
            replicas.saturating_sub(updated)
        ));
    }
    if available < updated {
        pending.push(format!(
            "{available} of {updated} updated replicas available"
        ));
    }
    Ok(Verdict::unless(
        pending,
        format!("rollout complete: {updated} of {desired} replicas updated and available"),
    ))
}

/// `kubectl rollout status statefulset` (RollingUpdate only): the latest spec observed, every
/// replica ready, and every pod at the update revision (or, with a partition, the pods above
/// it updated).
fn statefulset_rollout(o: &Object) -> Result<Verdict, String> {
    o.rolling_update(Readiness::RolloutComplete)?;
    let mut pending: Vec<String> = o.unobserved_generation()?.into_iter().collect();
    let desired = o.spec_replicas();
    let ready = o.count("readyReplicas");
    if ready < desired {
        pending.push(format!("{ready} of {desired} replicas ready"));
    }
    let partition = o
        .json
        .pointer("/spec/updateStrategy/rollingUpdate/partition")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if partition > 0 {
        let updated = o.count("updatedReplicas");
        let wanted = desired.saturating_sub(partition).max(0);
        if updated < wanted {
            pending.push(format!(
                "{updated} of {wanted} replicas above partition {partition} updated"
            ));
        }
        return Ok(Verdict::unless(
            pending,
            format!("partitioned rollout complete: {wanted} replicas updated"),
        ));
    }
    let current = o.status_str("currentRevision").unwrap_or_default();
    let update = o.status_str("updateRevision").unwrap_or_default();
    if current != update {
        pending.push(format!(
            "{} of {desired} replicas at revision {update} (current revision {current})",
            o.count("updatedReplicas")
        ));
    }
    Ok(Verdict::unless(
        pending,
        format!("rollout complete: {ready} of {desired} replicas ready at revision {update}"),
    ))
}

/// `kubectl rollout status daemonset` (RollingUpdate only): the latest spec observed and every
/// scheduled pod updated and available.
fn daemonset_rollout(o: &Object) -> Result<Verdict, String> {
    o.rolling_update(Readiness::RolloutComplete)?;
    let mut pending: Vec<String> = o.unobserved_generation()?.into_iter().collect();
    let desired = o.count("desiredNumberScheduled");
    let updated = o.count("updatedNumberScheduled");
    let available = o.count("numberAvailable");
    if updated < desired {
        pending.push(format!("{updated} of {desired} scheduled pods updated"));
    }
    if available < desired {
        pending.push(format!("{available} of {desired} scheduled pods available"));
    }
    Ok(Verdict::unless(
        pending,
        format!("rollout complete: {updated} of {desired} scheduled pods updated and available"),
    ))
}

#[cfg(test)]
mod tests;
