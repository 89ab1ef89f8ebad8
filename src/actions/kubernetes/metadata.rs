//! `label` / `annotate`: set or remove metadata keys on any object (merge patch; a `null`
//! value removes the key). Keys already at the wanted value are not rewritten.

use std::collections::BTreeMap;

use kube::api::Patch;
use serde_json::{Map, Value, json};

use super::{Change, ChangeDetail, KubeExecutor, Op, Result, TargetParams, patch_params};
use crate::rules::action::ActionKind;

impl KubeExecutor {
    /// `field` is `labels` or `annotations`; `entries` maps keys to values (`None` removes).
    pub(super) async fn set_metadata(
        &self,
        kind: ActionKind,
        target: &TargetParams,
        field: &'static str,
        entries: &BTreeMap<String, Option<String>>,
    ) -> Result<Change> {
        let (res, api, what) = self.target(kind, target).await?;
        let ns = target.namespace.as_deref();
        let name = target.name.as_str();
        let get = Op::new("get", &res.resource, None, &what).in_namespace(ns);
        let write = Op::new("patch", &res.resource, None, &what).in_namespace(ns);
        retry_conflicts!(&what, async {
            let object = self.call(&get, api.get(name)).await?;
            let current = match field {
                "labels" => object.metadata.labels.clone(),
                _ => object.metadata.annotations.clone(),
            }
            .unwrap_or_default();
            let mut set = BTreeMap::new();
            let mut removed = Vec::new();
            let mut body = Map::new();
            for (key, value) in entries {
                match value {
                    Some(v) if current.get(key) != Some(v) => {
                        set.insert(key.clone(), v.clone());
                        body.insert(key.clone(), Value::String(v.clone()));
                    }
                    None if current.contains_key(key) => {
                        removed.push(key.clone());
                        body.insert(key.clone(), Value::Null);
                    }
                    _ => {}
                }
            }
            if body.is_empty() {
                return Ok(Change {
                    action: kind,
                    target: what.clone(),
                    changed: false,
                    summary: format!("already at desired state: {field} unchanged"),
                    resource_version: object.metadata.resource_version.clone(),
                    detail: ChangeDetail::Metadata { set, removed },
                });
            }
            let patch = json!({
                "metadata": {
                    "resourceVersion": object.metadata.resource_version,
                    field: body,
                },
            });
            let patched = self
                .call(
                    &write,
                    api.patch(name, &patch_params(), &Patch::Merge(&patch)),
                )
                .await?;
            let mut parts: Vec<String> = set.iter().map(|(k, v)| format!("{k}={v}")).collect();
            parts.extend(removed.iter().map(|k| format!("{k}-")));
            Ok(Change {
                action: kind,
                target: what.clone(),
                changed: true,
                summary: format!("{field} {}", parts.join(" ")),
                resource_version: patched.metadata.resource_version,
                detail: ChangeDetail::Metadata { set, removed },
            })
        })
    }
}
