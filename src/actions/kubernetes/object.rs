//! Any object found through discovery: `patch` (merge, JSON, strategic merge, server-side
//! apply), `delete` (with the bare-Pod safety check) and `create` (from a rendered manifest).

use kube::api::{DynamicObject, Patch, PostParams};
use serde_json::Value;

use super::{
    Change, ChangeDetail, Error, FIELD_MANAGER, KubeExecutor, Op, Result, check_name, describe,
    patch_params,
};
use crate::rules::action::{ActionKind, CreateAction, DeleteAction, PatchAction, PatchType};

fn to_kube_policy(p: crate::rules::action::PropagationPolicy) -> kube::api::PropagationPolicy {
    use crate::rules::action::PropagationPolicy as P;
    match p {
        P::Foreground => kube::api::PropagationPolicy::Foreground,
        P::Background => kube::api::PropagationPolicy::Background,
        P::Orphan => kube::api::PropagationPolicy::Orphan,
    }
}

impl KubeExecutor {
    pub(super) async fn patch(&self, p: &PatchAction) -> Result<Change> {
        let kind = ActionKind::Patch;
        let (res, api, what) = self.target(kind, &p.target).await?;
        let ns = p.target.namespace.as_deref();
        let name = p.target.name.as_str();
        let op = Op::new("patch", &res.resource, None, &what).in_namespace(ns);
        let invalid = |reason: String| Error::InvalidParams {
            action: kind.as_str(),
            reason,
        };
        let patched = match p.patch_type {
            PatchType::Merge => {
                let params = patch_params();
                self.call(&op, api.patch(name, &params, &Patch::Merge(&p.patch)))
                    .await?
            }
            PatchType::Strategic => {
                let params = patch_params();
                self.call(&op, api.patch(name, &params, &Patch::Strategic(&p.patch)))
                    .await?
            }
            PatchType::Json => {
                let ops: json_patch::Patch = serde_json::from_value(p.patch.clone())
                    .map_err(|e| invalid(format!("not a JSON patch: {e}")))?;
                let params = patch_params();
                self.call(&op, api.patch(name, &params, &Patch::<()>::Json(ops)))
                    .await?
            }
            PatchType::Apply => {
                // Server-side apply needs the object's identity in the body; rules usually
                // write only the fields they own, so it is filled in from the target.
                let mut body = p.patch.clone();
                let Some(map) = body.as_object_mut() else {
                    return Err(invalid("an apply patch must be an object".into()));
                };
                map.entry("apiVersion")
                    .or_insert_with(|| Value::String(p.target.api_version.clone()));
                map.entry("kind")
                    .or_insert_with(|| Value::String(p.target.kind.clone()));
                let meta = map
                    .entry("metadata")
                    .or_insert_with(|| Value::Object(Default::default()));
                let Some(meta) = meta.as_object_mut() else {
                    return Err(invalid(
                        "`metadata` of an apply patch must be an object".into(),
                    ));
                };
                meta.entry("name")
                    .or_insert_with(|| Value::String(p.target.name.clone()));
                let params = kube::api::PatchParams::apply(FIELD_MANAGER).force();
                self.call(&op, api.patch(name, &params, &Patch::Apply(&body)))
                    .await?
            }
        };
        Ok(Change {
            action: kind,
            target: what,
            changed: true,
            summary: format!("patched ({} patch)", patch_type_name(p.patch_type)),
            resource_version: patched.metadata.resource_version.clone(),
            uid: patched.metadata.uid.clone(),
            detail: ChangeDetail::Patch {
                patch_type: p.patch_type,
                generation: patched.metadata.generation,
            },
        })
    }

    pub(super) async fn delete(&self, p: &DeleteAction) -> Result<Change> {
        let kind = ActionKind::Delete;
        let (res, api, what) = self.target(kind, &p.target).await?;
        let ns = p.target.namespace.as_deref();
        let name = p.target.name.as_str();
        let is_pod = res.resource.group.is_empty() && res.resource.kind == "Pod";
        let mut preconditions = None;
        let mut checked_uid = None;
        if is_pod {
            let get = Op::new("get", &res.resource, None, &what).in_namespace(ns);
            let pod = self.call(&get, api.get(name)).await?;
            let owners = pod.metadata.owner_references.as_deref().unwrap_or_default();
            if owners.is_empty() && !p.allow_bare_pods {
                return Err(Error::Refused {
                    action: kind.as_str(),
                    what,
                    reason: "no controller owns this Pod, so nothing would recreate it \
                             (set `allow_bare_pods: true` on the action to allow this)"
                        .into(),
                });
            }
            // Delete exactly the Pod that was checked, not one recreated under the same name.
            preconditions = Some(kube::api::Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            });
            checked_uid = pod.metadata.uid;
        }
        let params = kube::api::DeleteParams {
            grace_period_seconds: p.grace_period_seconds,
            propagation_policy: p.propagation_policy.map(to_kube_policy),
            preconditions,
            ..Default::default()
        };
        let op = Op::new("delete", &res.resource, None, &what).in_namespace(ns);
        let deleted = self.call(&op, api.delete(name, &params)).await?;
        // Left: the object is still there (finalizers, grace period); Right: it is gone.
        let uid = deleted
            .left()
            .and_then(|obj: DynamicObject| obj.metadata.uid)
            .or(checked_uid);
        let grace = p
            .grace_period_seconds
            .map(|g| format!(", grace period {g}s"))
            .unwrap_or_default();
        Ok(Change {
            action: kind,
            target: what,
            changed: true,
            summary: format!("deleted{grace}"),
            resource_version: None,
            uid: uid.clone(),
            detail: ChangeDetail::Delete {
                uid,
                grace_period_seconds: p.grace_period_seconds,
                propagation_policy: p.propagation_policy,
            },
        })
    }

    pub(super) async fn create(&self, p: &CreateAction) -> Result<Change> {
        let kind = ActionKind::Create;
        let res = self.resolve(&p.api_version, &p.kind).await?;
        let api = self.api(kind, &res, p.namespace.as_deref())?;
        let object: DynamicObject =
            serde_json::from_value(p.manifest.clone()).map_err(|e| Error::InvalidParams {
                action: kind.as_str(),
                reason: format!("the manifest is not a Kubernetes object: {e}"),
            })?;
        let shown_name = match (&object.metadata.name, &object.metadata.generate_name) {
            (Some(n), _) => {
                check_name(kind, "metadata.name", n)?;
                n.clone()
            }
            (None, Some(prefix)) => format!("{prefix}*"),
            (None, None) => {
                return Err(Error::InvalidParams {
                    action: kind.as_str(),
                    reason: "the manifest needs `metadata.name` or `metadata.generateName`".into(),
                });
            }
        };
        let what = describe(&p.api_version, &p.kind, p.namespace.as_deref(), &shown_name);
        let op = Op::new("create", &res.resource, None, &what).in_namespace(p.namespace.as_deref());
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
        let created = self.call(&op, api.create(&params, &object)).await?;
        let name = created.metadata.name.clone().unwrap_or(shown_name);
        let target = describe(&p.api_version, &p.kind, p.namespace.as_deref(), &name);
        Ok(Change {
            action: kind,
            summary: format!("created {target}"),
            target,
            changed: true,
            resource_version: created.metadata.resource_version.clone(),
            uid: created.metadata.uid.clone(),
            detail: ChangeDetail::Create {
                name,
                namespace: created.metadata.namespace.clone(),
                uid: created.metadata.uid.clone(),
            },
        })
    }
}

fn patch_type_name(t: PatchType) -> &'static str {
    match t {
        PatchType::Merge => "merge",
        PatchType::Json => "json",
        PatchType::Strategic => "strategic merge",
        PatchType::Apply => "server-side apply",
    }
}
