//! `rollback`: put an earlier revision's pod template back, like `kubectl rollout undo`.
//! Deployments keep their revisions in the ReplicaSets they own (annotation
//! `deployment.kubernetes.io/revision`); StatefulSets and DaemonSets in ControllerRevisions
//! (field `revision`, the template under `data.spec.template`). Only the pod template is
//! restored; replicas, strategy and the change-cause annotation stay as they are.

use k8s_openapi::api::apps::v1::{ControllerRevision, ReplicaSet};
use kube::api::{Api, DynamicObject, ListParams, Patch};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

use super::{Change, ChangeDetail, Error, KubeExecutor, Op, Result, describe, patch_params};
use crate::rules::action::{ActionKind, RollbackAction};

/// The annotation the Deployment controller numbers revisions with (on the Deployment and on
/// each of its ReplicaSets).
pub const REVISION: &str = "deployment.kubernetes.io/revision";

/// The label the Deployment controller adds to each ReplicaSet's pod template; it identifies
/// the ReplicaSet and must not be copied back into the Deployment.
const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Kinds `rollback` works on (all `apps/v1`).
use super::workload::RESTARTED_AT;

const ROLLBACK_KINDS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet"];

/// One recorded revision of a workload.
struct Revision {
    number: u64,
    template: Value,
}

impl KubeExecutor {
    pub(super) async fn rollback(&self, p: &RollbackAction) -> Result<Change> {
        let kind = ActionKind::Rollback;
        if p.target.api_version != "apps/v1" || !ROLLBACK_KINDS.contains(&p.target.kind.as_str()) {
            return Err(Error::Unsupported {
                what: format!("kind {} {}", p.target.api_version, p.target.kind),
                reason: "rollback works on apps/v1 Deployments, StatefulSets and DaemonSets".into(),
            });
        }
        let (res, api, what) = self.target(kind, &p.target).await?;
        let Some(ns) = p.target.namespace.as_deref() else {
            return Err(Error::InvalidParams {
                action: kind.as_str(),
                reason: format!("a {} needs a namespace", p.target.kind),
            });
        };
        let deployment = p.target.kind == "Deployment";
        let name = p.target.name.as_str();
        let get = Op::new("get", &res.resource, None, &what).in_namespace(Some(ns));
        let write = Op::new("patch", &res.resource, None, &what).in_namespace(Some(ns));
        retry_conflicts!(&what, async {
            let object = self.call(&get, api.get(name)).await?;
            let revisions = self.revisions(&object, ns, deployment).await?;
            let newest = revisions.iter().map(|r| r.number).max();
            // A Deployment says which revision it is at; for the others the newest revision
            // is the current one (what `kubectl rollout undo` assumes too).
            let current = if deployment {
                object
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(REVISION))
                    .and_then(|r| r.parse::<u64>().ok())
            } else {
                newest
            };
            let chosen = match p.to_revision {
                Some(wanted) => revisions.iter().find(|r| r.number == wanted),
                // The newest revision older than the current one that is another release: a
                // revision that differs from the current template only by a restart stamp
                // (`restart` makes one) would "roll back" to the same release. Without such a
                // revision, the newest older one (as `kubectl rollout undo`).
                None => {
                    let older = || {
                        revisions
                            .iter()
                            .filter(|r| current.is_none_or(|cur| r.number < cur))
                    };
                    let now = object.data.pointer("/spec/template").map(without_restart);
                    older()
                        .filter(|r| Some(without_restart(&r.template)) != now)
                        .max_by_key(|r| r.number)
                        .or_else(|| older().max_by_key(|r| r.number))
                }
            };
            let Some(chosen) = chosen else {
                let mut numbers: Vec<u64> = revisions.iter().map(|r| r.number).collect();
                numbers.sort_unstable();
                let reason = match p.to_revision {
                    Some(wanted) => format!("revision {wanted} does not exist"),
                    None => "there is no previous revision".to_owned(),
                };
                return Err(Error::Unsupported {
                    what: what.clone(),
                    reason: format!("cannot roll back: {reason} (revisions: {numbers:?})"),
                });
            };
            let images = images_of(&chosen.template);
            let detail = ChangeDetail::Rollback {
                from_revision: current,
                to_revision: chosen.number,
                images: images.clone(),
            };
            if object.data.pointer("/spec/template") == Some(&chosen.template) {
                return Ok(Change {
                    action: kind,
                    target: what.clone(),
                    changed: false,
                    summary: format!(
                        "already at desired state: the pod template matches revision {}",
                        chosen.number
                    ),
                    resource_version: object.metadata.resource_version.clone(),
                    uid: object.metadata.uid.clone(),
                    detail,
                });
            }
            // Replace (not merge) the template so annotations and containers that revision
            // did not have disappear; the resourceVersion makes the replace conditional.
            let ops: json_patch::Patch = serde_json::from_value(json!([
                { "op": "replace", "path": "/metadata/resourceVersion",
                  "value": object.metadata.resource_version },
                { "op": "replace", "path": "/spec/template", "value": chosen.template },
            ]))
            .map_err(|e| Error::InvalidParams {
                action: kind.as_str(),
                reason: format!("cannot build the rollback patch: {e}"),
            })?;
            let patched = self
                .call(
                    &write,
                    api.patch(name, &patch_params(), &Patch::<()>::Json(ops)),
                )
                .await?;
            let from = current.map_or_else(|| "?".to_owned(), |r| r.to_string());
            Ok(Change {
                action: kind,
                target: what.clone(),
                changed: true,
                summary: format!(
                    "rolled back from revision {from} to the pod template of revision {} ({})",
                    chosen.number,
                    images.join(", ")
                ),
                resource_version: patched.metadata.resource_version,
                uid: patched.metadata.uid.or_else(|| object.metadata.uid.clone()),
                detail,
            })
        })
    }

    /// The revisions `object` (uid-matched controller owner) has recorded.
    async fn revisions(
        &self,
        object: &DynamicObject,
        ns: &str,
        deployment: bool,
    ) -> Result<Vec<Revision>> {
        let uid = object.metadata.uid.clone().unwrap_or_default();
        let mut params = ListParams::default();
        if let Some(selector) = match_labels_selector(&object.data) {
            params = params.labels(&selector);
        }
        let owned_by = |meta: &kube::api::ObjectMeta| {
            meta.owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true) && o.uid == uid)
        };
        if deployment {
            let res = ApiResource::erase::<ReplicaSet>(&());
            let what = describe("apps/v1", "ReplicaSet", Some(ns), "*");
            let list = Op::new("list", &res, None, &what).in_namespace(Some(ns));
            let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), ns);
            let listed = self.call(&list, api.list(&params)).await?;
            Ok(listed
                .items
                .into_iter()
                .filter(|rs| owned_by(&rs.metadata))
                .filter_map(|rs| {
                    let number = rs
                        .metadata
                        .annotations
                        .as_ref()?
                        .get(REVISION)?
                        .parse()
                        .ok()?;
                    let mut template = serde_json::to_value(rs.spec.template.as_ref()?).ok()?;
                    if let Some(labels) = template
                        .pointer_mut("/metadata/labels")
                        .and_then(Value::as_object_mut)
                    {
                        labels.remove(POD_TEMPLATE_HASH);
                    }
                    Some(Revision { number, template })
                })
                .collect())
        } else {
            let res = ApiResource::erase::<ControllerRevision>(&());
            let what = describe("apps/v1", "ControllerRevision", Some(ns), "*");
            let list = Op::new("list", &res, None, &what).in_namespace(Some(ns));
            let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), ns);
            let listed = self.call(&list, api.list(&params)).await?;
            Ok(listed
                .items
                .into_iter()
                .filter(|cr| owned_by(&cr.metadata))
                .filter_map(|cr| {
                    let number = u64::try_from(cr.revision?).ok()?;
                    // The data is a strategic-merge patch `{spec: {template: {..., $patch:
                    // replace}}}`; the directive is not part of the template.
                    let mut template = cr.data.0.pointer("/spec/template")?.clone();
                    template.as_object_mut()?.remove("$patch");
                    Some(Revision { number, template })
                })
                .collect())
        }
    }
}

/// A pod template without the restart stamp `restart` (and `kubectl rollout restart`) writes,
/// to tell a release from a restart of it.
fn without_restart(template: &Value) -> Value {
    let mut template = template.clone();
    if let Some(annotations) = template
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(RESTARTED_AT);
        if annotations.is_empty() {
            template["metadata"]
                .as_object_mut()
                .map(|m| m.remove("annotations"));
        }
    }
    template
}

/// `k1=v1,k2=v2` from `spec.selector.matchLabels`, to narrow the revision list.
fn match_labels_selector(workload: &Value) -> Option<String> {
    let labels = workload
        .pointer("/spec/selector/matchLabels")?
        .as_object()?;
    let parts: Vec<String> = labels
        .iter()
        .filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)))
        .collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

/// The images of a pod template's containers.
fn images_of(template: &Value) -> Vec<String> {
    template
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("image")?.as_str().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selector_is_built_from_match_labels() {
        let d =
            json!({ "spec": { "selector": { "matchLabels": { "app": "web", "tier": "fe" } } } });
        assert_eq!(
            match_labels_selector(&d).as_deref(),
            Some("app=web,tier=fe")
        );
        assert_eq!(match_labels_selector(&json!({})), None);
    }

    #[test]
    fn a_restart_stamp_does_not_make_another_release() {
        let stamped = serde_json::json!({
            "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-12-04T10:00:00Z"}, "labels": {"app": "a"}},
            "spec": {"containers": [{"name": "a", "image": "a:2"}]}
        });
        let plain = serde_json::json!({
            "metadata": {"labels": {"app": "a"}},
            "spec": {"containers": [{"name": "a", "image": "a:2"}]}
        });
        let other = serde_json::json!({
            "metadata": {"labels": {"app": "a"}},
            "spec": {"containers": [{"name": "a", "image": "a:1"}]}
        });
        assert_eq!(without_restart(&stamped), without_restart(&plain));
        assert_ne!(without_restart(&stamped), without_restart(&other));
    }

    #[test]
    fn images_are_read_from_every_container() {
        let t = json!({ "spec": { "containers": [{ "image": "a:1" }, { "image": "b:2" }] } });
        assert_eq!(images_of(&t), vec!["a:1".to_owned(), "b:2".to_owned()]);
    }
}
