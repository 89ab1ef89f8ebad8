//! `label` / `annotate`: set or remove metadata keys on any object (merge patch; a `null`
//! value removes the key). Keys already at the wanted value are not rewritten. An undo writes
//! through the same path with an expectation per key ([`Expected`]), so it only touches keys
//! that still hold what Reflex set.

use std::collections::BTreeMap;

use kube::api::Patch;
use serde_json::{Map, Value, json};

use super::{Change, ChangeDetail, KubeExecutor, Op, Result, TargetParams, patch_params};
use crate::rules::action::ActionKind;

/// Key → the value it must still have for the write to touch it (`None`: absent).
pub(super) type Expected = BTreeMap<String, Option<String>>;

/// Keys a conditional write left alone → their current value (`None`: absent).
pub(super) type LeftAlone = BTreeMap<String, Option<String>>;

impl KubeExecutor {
    /// `field` is `labels` or `annotations`; `entries` maps keys to values (`None` removes).
    pub(super) async fn set_metadata(
        &self,
        kind: ActionKind,
        target: &TargetParams,
        field: &'static str,
        entries: &BTreeMap<String, Option<String>>,
    ) -> Result<Change> {
        let (change, _) = self
            .write_metadata(kind, target, field, entries, None)
            .await?;
        Ok(change)
    }

    /// [`Self::set_metadata`], except that with `expected` a key is written only while its
    /// current value is the expected one, in the same read-modify-write (the resourceVersion
    /// read is the write's precondition); the keys left alone come back with their values.
    pub(super) async fn write_metadata(
        &self,
        kind: ActionKind,
        target: &TargetParams,
        field: &'static str,
        entries: &BTreeMap<String, Option<String>>,
        expected: Option<&Expected>,
    ) -> Result<(Change, LeftAlone)> {
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
            let mut previous = BTreeMap::new();
            let mut left = LeftAlone::new();
            let mut body = Map::new();
            for (key, value) in entries {
                let now = current.get(key);
                if let Some(want) = expected.and_then(|e| e.get(key))
                    && now != want.as_ref()
                {
                    left.insert(key.clone(), now.cloned());
                    continue;
                }
                match value {
                    Some(v) if now != Some(v) => {
                        set.insert(key.clone(), v.clone());
                        body.insert(key.clone(), Value::String(v.clone()));
                    }
                    None if now.is_some() => {
                        removed.push(key.clone());
                        body.insert(key.clone(), Value::Null);
                    }
                    _ => continue,
                }
                previous.insert(key.clone(), now.cloned());
            }
            if body.is_empty() {
                let change = Change {
                    action: kind,
                    target: what.clone(),
                    changed: false,
                    summary: format!("already at desired state: {field} unchanged"),
                    resource_version: object.metadata.resource_version.clone(),
                    uid: object.metadata.uid.clone(),
                    detail: ChangeDetail::Metadata {
                        set,
                        removed,
                        previous,
                    },
                };
                return Ok((change, left));
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
            let change = Change {
                action: kind,
                target: what.clone(),
                changed: true,
                summary: format!("{field} {}", parts.join(" ")),
                resource_version: patched.metadata.resource_version,
                uid: patched.metadata.uid.or_else(|| object.metadata.uid.clone()),
                detail: ChangeDetail::Metadata {
                    set,
                    removed,
                    previous,
                },
            };
            Ok((change, left))
        })
    }
}
