//! `scale`: read the replicas through the `scale` subresource, compute the desired count
//! (absolute or relative, clamped by the rule's min/max) and write it back through the same
//! subresource. Works for every kind that has one: Deployment, StatefulSet, ReplicaSet and
//! custom resources that declare `subresources.scale`.

use kube::api::Patch;
use serde_json::json;

use super::{Change, ChangeDetail, Error, KubeExecutor, Op, Result, patch_params};
use crate::rules::action::{ActionKind, ScaleAction, TargetParams};

impl KubeExecutor {
    pub(super) async fn scale(&self, p: &ScaleAction) -> Result<Change> {
        self.scale_with(&p.target, |current| Some(p.desired(current)))
            .await
    }

    /// Reads the replicas and writes `decide(current)` back, conditional on the
    /// resourceVersion read. `None` or the current count writes nothing: the change is
    /// `changed: false` with `from` and `to` both the current count (an undo uses `None` when
    /// the count is no longer the one Reflex set).
    pub(super) async fn scale_with(
        &self,
        target: &TargetParams,
        decide: impl Fn(u32) -> Option<u32>,
    ) -> Result<Change> {
        let kind = ActionKind::Scale;
        let (res, api, what) = self.target(kind, target).await?;
        if !res.has_subresource("scale") {
            return Err(Error::Unsupported {
                what: format!("kind {} {}", target.api_version, target.kind),
                reason: "has no `scale` subresource, so it cannot be scaled".into(),
            });
        }
        let ns = target.namespace.as_deref();
        let name = target.name.as_str();
        let get = Op::new("get", &res.resource, Some("scale"), &what).in_namespace(ns);
        let write = Op::new("patch", &res.resource, Some("scale"), &what).in_namespace(ns);
        retry_conflicts!(&what, async {
            let scale = self.call(&get, api.get_scale(name)).await?;
            let current = scale
                .spec
                .as_ref()
                .and_then(|s| s.replicas)
                .map_or(0, |r| u32::try_from(r).unwrap_or(0));
            let Some(desired) = decide(current).filter(|d| *d != current) else {
                return Ok(Change {
                    action: kind,
                    target: what.clone(),
                    changed: false,
                    summary: format!("already at desired state: replicas {current}"),
                    resource_version: scale.metadata.resource_version.clone(),
                    uid: scale.metadata.uid.clone(),
                    detail: ChangeDetail::Scale {
                        from: current,
                        to: current,
                    },
                });
            };
            // The resourceVersion read makes the write conditional: a concurrent change
            // (another scale, an autoscaler) is a 409 and the change is recomputed.
            let body = json!({
                "metadata": { "resourceVersion": scale.metadata.resource_version },
                "spec": { "replicas": desired },
            });
            let patched = self
                .call(
                    &write,
                    api.patch_scale(name, &patch_params(), &Patch::Merge(&body)),
                )
                .await?;
            Ok(Change {
                action: kind,
                target: what.clone(),
                changed: true,
                summary: format!("replicas {current} → {desired}"),
                resource_version: patched.metadata.resource_version,
                uid: patched.metadata.uid.or(scale.metadata.uid),
                detail: ChangeDetail::Scale {
                    from: current,
                    to: desired,
                },
            })
        })
    }
}
