//! `cordon` / `uncordon`: a Node's `spec.unschedulable`, as `kubectl cordon` sets it.

use kube::api::Patch;
use serde_json::json;

use super::{Change, ChangeDetail, KubeExecutor, Op, Result, check_name, describe, patch_params};
use crate::rules::action::{ActionKind, NodeAction};

impl KubeExecutor {
    pub(super) async fn set_unschedulable(&self, p: &NodeAction, cordon: bool) -> Result<Change> {
        let kind = if cordon {
            ActionKind::Cordon
        } else {
            ActionKind::Uncordon
        };
        check_name(kind, "node", &p.node)?;
        let res = self.resolve("v1", "Node").await?;
        let api = self.api(kind, &res, None)?;
        let what = describe("v1", "Node", None, &p.node);
        let name = p.node.as_str();
        let get = Op::new("get", &res.resource, None, &what);
        let write = Op::new("patch", &res.resource, None, &what);
        retry_conflicts!(&what, async {
            let node = self.call(&get, api.get(name)).await?;
            let before = node
                .data
                .pointer("/spec/unschedulable")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false);
            let state = if cordon {
                "unschedulable"
            } else {
                "schedulable"
            };
            if before == cordon {
                return Ok(Change {
                    action: kind,
                    target: what.clone(),
                    changed: false,
                    summary: format!("already at desired state: {state}"),
                    resource_version: node.metadata.resource_version.clone(),
                    uid: node.metadata.uid.clone(),
                    detail: ChangeDetail::Node {
                        unschedulable_before: before,
                        unschedulable: before,
                    },
                });
            }
            let body = json!({
                "metadata": { "resourceVersion": node.metadata.resource_version },
                "spec": { "unschedulable": cordon },
            });
            let patched = self
                .call(
                    &write,
                    api.patch(name, &patch_params(), &Patch::Merge(&body)),
                )
                .await?;
            Ok(Change {
                action: kind,
                target: what.clone(),
                changed: true,
                summary: format!("node marked {state}"),
                resource_version: patched.metadata.resource_version,
                uid: patched.metadata.uid.or(node.metadata.uid),
                detail: ChangeDetail::Node {
                    unschedulable_before: before,
                    unschedulable: cordon,
                },
            })
        })
    }
}
