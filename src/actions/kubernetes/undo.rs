//! `undo`: put back what a reversible action changed (`scale`, `cordon`, `label`, `annotate`),
//! but only where the object still holds what Reflex set. Someone who changed it since (a
//! person, an autoscaler, another controller) wins: that part is left alone and the reason says
//! what it is now.
//!
//! Each undo goes through the executor's own read-modify-write with the resourceVersion it read
//! as the write's precondition, so "still what Reflex set" and the write cannot be split by a
//! concurrent change: a 409 re-reads and re-decides.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::metadata::LeftAlone;
use super::{Change, ChangeDetail, Error, KubeExecutor, Result, describe_target};
use crate::rules::action::{
    Action, ActionKind, AnnotateAction, KubernetesAction, LabelAction, NodeAction, TargetParams,
};

/// What an executed reversible action changed: enough to put it back and to tell whether
/// someone changed it since. Stored with the remediation until the undo runs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct UndoPlan {
    /// The action that made the change: `scale`, `cordon`, `label` or `annotate`.
    pub kind: ActionKind,
    /// The object it changed (for `cordon`, the Node: `v1` / `Node`, no namespace).
    pub target: TargetParams,
    /// What the action found: `{"replicas": 2}`, `{"unschedulable": false}`, or
    /// `{"labels": {"key": "value" | null}}` (`annotations` for `annotate`; `null`: absent).
    pub found: Value,
    /// What it set, in the same shape (`null`: the action removed the key).
    pub set: Value,
}

/// What an undo came to.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "undo", rename_all = "snake_case")]
pub enum Undone {
    /// What Reflex found was put back (for labels and annotations: at least one key; the
    /// summary names any left alone).
    Restored(Change),
    /// Nothing was written: the object changed since, or is gone.
    Skipped {
        /// What it is now, e.g. `replicas are 5 now, Reflex set 4: changed since; left alone`.
        reason: String,
    },
}

/// The replica count a `scale` found or set.
#[derive(Deserialize)]
struct Replicas {
    replicas: u32,
}

/// A metadata key's value (`None`: absent).
type Entries = BTreeMap<String, Option<String>>;

impl UndoPlan {
    /// What an executed action of a reversible kind changed, from its rendered action and the
    /// executor's result JSON (the `details.result` the pipeline records: the serialized
    /// [`Change`]); None for kinds that cannot be undone or when nothing changed
    /// (`changed: false`). `uncordon` is not undone: re-cordoning a node is never a cleanup.
    pub fn from_execution(action: &Action, result: &Value) -> Option<UndoPlan> {
        let Action::Kubernetes(action) = action else {
            return None;
        };
        if result.get("changed") != Some(&Value::Bool(true)) {
            return None;
        }
        let detail: ChangeDetail = serde_json::from_value(result.get("detail")?.clone()).ok()?;
        match (action, detail) {
            (KubernetesAction::Scale(a), ChangeDetail::Scale { from, to }) if from != to => {
                Some(UndoPlan {
                    kind: ActionKind::Scale,
                    target: a.target.clone(),
                    found: json!({ "replicas": from }),
                    set: json!({ "replicas": to }),
                })
            }
            (
                KubernetesAction::Cordon(node),
                ChangeDetail::Node {
                    unschedulable_before: false,
                    unschedulable: true,
                },
            ) => Some(UndoPlan {
                kind: ActionKind::Cordon,
                target: node_target(&node.node),
                found: json!({ "unschedulable": false }),
                set: json!({ "unschedulable": true }),
            }),
            (
                KubernetesAction::Label(LabelAction { target, .. })
                | KubernetesAction::Annotate(AnnotateAction { target, .. }),
                ChangeDetail::Metadata {
                    set,
                    removed,
                    previous,
                },
            ) => metadata_plan(action.kind(), target, set, removed, &previous),
            _ => None,
        }
    }

    /// One line for people: `scale deployment/shop/web back to 2 replicas`,
    /// `uncordon node/n1`, `restore labels on configmap/shop/cm: remove a, set b=old`.
    pub fn describe(&self) -> String {
        let object = object_name(&self.target);
        match self.kind {
            ActionKind::Scale => match self.part::<Replicas>("found", &self.found) {
                Ok(found) => format!("scale {object} back to {} replicas", found.replicas),
                Err(_) => format!("scale {object} back"),
            },
            ActionKind::Cordon => format!("uncordon {object}"),
            kind => {
                let field = metadata_field(kind).unwrap_or("metadata");
                let Ok(found) = self.entries("found", &self.found) else {
                    return format!("restore {field} on {object}");
                };
                let steps: Vec<String> = found
                    .iter()
                    .map(|(key, value)| match value {
                        Some(v) => format!("set {key}={v}"),
                        None => format!("remove {key}"),
                    })
                    .collect();
                format!("restore {field} on {object}: {}", steps.join(", "))
            }
        }
    }

    /// One side of the plan read as `T`; a plan that does not fit its kind (a hand-edited or
    /// corrupted record) is invalid parameters, never a guess.
    fn part<T: DeserializeOwned>(&self, side: &str, value: &Value) -> Result<T> {
        serde_json::from_value(value.clone()).map_err(|e| Error::InvalidParams {
            action: "undo",
            reason: format!(
                "the undo plan's `{side}` does not fit a `{}` undo: {e}",
                self.kind.as_str()
            ),
        })
    }

    /// The label or annotation entries of one side.
    fn entries(&self, side: &str, value: &Value) -> Result<Entries> {
        let field = metadata_field(self.kind).unwrap_or("labels");
        self.part(side, value.get(field).unwrap_or(&Value::Null))
    }
}

impl KubeExecutor {
    /// Carries out `plan`: re-reads the object and, where it still holds what Reflex set,
    /// restores what Reflex found ([`Undone::Restored`]); otherwise writes nothing and says why
    /// ([`Undone::Skipped`]). A gone object is skipped too. Errors are the executor's own
    /// ([`Error::retryable`] says whether to try again).
    pub async fn undo(&self, plan: &UndoPlan) -> Result<Undone> {
        if self.get_object(&plan.target).await?.is_none() {
            return Ok(Undone::Skipped {
                reason: format!(
                    "{} no longer exists; nothing to undo",
                    describe_target(&plan.target)
                ),
            });
        }
        match plan.kind {
            ActionKind::Scale => self.undo_scale(plan).await,
            ActionKind::Cordon => self.undo_cordon(plan).await,
            ActionKind::Label | ActionKind::Annotate => self.undo_metadata(plan).await,
            other => Err(Error::Unsupported {
                what: describe_target(&plan.target),
                reason: format!(
                    "a `{}` cannot be undone (only scale, cordon, label and annotate)",
                    other.as_str()
                ),
            }),
        }
    }

    async fn undo_scale(&self, plan: &UndoPlan) -> Result<Undone> {
        let found = plan.part::<Replicas>("found", &plan.found)?.replicas;
        let set = plan.part::<Replicas>("set", &plan.set)?.replicas;
        let change = self
            .scale_with(&plan.target, |current| (current == set).then_some(found))
            .await?;
        if change.changed {
            return Ok(Undone::Restored(change));
        }
        let now = match change.detail {
            ChangeDetail::Scale { from, .. } => from,
            _ => set,
        };
        Ok(Undone::Skipped {
            reason: format!("replicas are {now} now, Reflex set {set}: changed since; left alone"),
        })
    }

    async fn undo_cordon(&self, plan: &UndoPlan) -> Result<Undone> {
        // Only a cordon of a schedulable node is planned (`from_execution`), so putting it
        // back is uncordoning; a node already schedulable again was uncordoned by someone.
        let node = NodeAction {
            node: plan.target.name.clone(),
        };
        let change = self.set_unschedulable(&node, false).await?;
        if change.changed {
            return Ok(Undone::Restored(change));
        }
        Ok(Undone::Skipped {
            reason: format!(
                "node {} is schedulable now, Reflex had cordoned it: uncordoned since; left alone",
                plan.target.name
            ),
        })
    }

    async fn undo_metadata(&self, plan: &UndoPlan) -> Result<Undone> {
        let field = metadata_field(plan.kind).unwrap_or("labels");
        let found = plan.entries("found", &plan.found)?;
        let set = plan.entries("set", &plan.set)?;
        let (mut change, left) = self
            .write_metadata(plan.kind, &plan.target, field, &found, Some(&set))
            .await?;
        let left_alone = changed_since(&left, &set);
        if !change.changed {
            return Ok(Undone::Skipped {
                reason: if left.is_empty() {
                    format!("{field} are back to what Reflex found; nothing to undo")
                } else {
                    format!("{left_alone}: changed since; left alone")
                },
            });
        }
        if !left.is_empty() {
            change.summary = format!(
                "{}; left alone, changed since: {left_alone}",
                change.summary
            );
        }
        Ok(Undone::Restored(change))
    }
}

/// `key is "b" now, Reflex set "a"` for each key left alone.
fn changed_since(left: &LeftAlone, set: &Entries) -> String {
    let shown = |value: Option<&String>| match value {
        Some(v) => format!("{v:?}"),
        None => "absent".to_owned(),
    };
    left.iter()
        .map(|(key, now)| {
            let reflex = match set.get(key).cloned().flatten() {
                Some(v) => format!("Reflex set {v:?}"),
                None => "Reflex removed it".to_owned(),
            };
            format!("{key} is {} now, {reflex}", shown(now.as_ref()))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The plan of a label or annotate: each key set or removed, with the value it had before.
/// A key without a recorded previous value (a result recorded before undo existed) cannot be
/// put back and is left out; with none left there is nothing to undo.
fn metadata_plan(
    kind: ActionKind,
    target: &TargetParams,
    set: BTreeMap<String, String>,
    removed: Vec<String>,
    previous: &Entries,
) -> Option<UndoPlan> {
    let field = metadata_field(kind)?;
    let mut found = Map::new();
    let mut wrote = Map::new();
    let changes = set
        .into_iter()
        .map(|(key, value)| (key, Some(value)))
        .chain(removed.into_iter().map(|key| (key, None)));
    for (key, value) in changes {
        let Some(before) = previous.get(&key) else {
            continue;
        };
        found.insert(key.clone(), json!(before));
        wrote.insert(key, json!(value));
    }
    (!found.is_empty()).then(|| UndoPlan {
        kind,
        target: target.clone(),
        found: json!({ field: found }),
        set: json!({ field: wrote }),
    })
}

fn metadata_field(kind: ActionKind) -> Option<&'static str> {
    match kind {
        ActionKind::Label => Some("labels"),
        ActionKind::Annotate => Some("annotations"),
        _ => None,
    }
}

pub(super) fn node_target(node: &str) -> TargetParams {
    TargetParams {
        api_version: "v1".into(),
        kind: "Node".into(),
        namespace: None,
        name: node.to_owned(),
    }
}

/// `deployment/shop/web`, `node/n1`: the object as outcomes name targets.
fn object_name(t: &TargetParams) -> String {
    let kind = t.kind.to_lowercase();
    match &t.namespace {
        Some(namespace) => format!("{kind}/{namespace}/{}", t.name),
        None => format!("{kind}/{}", t.name),
    }
}

#[cfg(test)]
mod tests;
