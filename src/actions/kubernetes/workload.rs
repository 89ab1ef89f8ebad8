//! Pod-template workloads: `restart` (the annotation `kubectl rollout restart` sets) and
//! `set_image` (one container's image, optionally waiting until the controller observed the
//! change). `rollback` lives in [`super::rollback`].

use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch};
use serde_json::{Value, json};

use super::{Change, ChangeDetail, Error, KubeExecutor, Op, Result, patch_params};
use crate::rules::action::{ActionKind, RestartAction, SetImageAction};

/// The pod-template annotation `kubectl rollout restart` sets; changing it rolls every pod.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// How often `set_image` with `wait` re-reads the workload. Controllers observe a new
/// generation within milliseconds; half a second keeps the API load negligible.
const ROLLOUT_POLL: Duration = Duration::from_millis(500);

/// The value at a JSON pointer, as a string.
pub(super) fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

fn generation(obj: &DynamicObject) -> Option<i64> {
    obj.metadata.generation
}

fn observed_generation(obj: &DynamicObject) -> Option<i64> {
    obj.data
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64)
}

impl KubeExecutor {
    pub(super) async fn restart(&self, p: &RestartAction) -> Result<Change> {
        let kind = ActionKind::Restart;
        let (res, api, what) = self.target(kind, &p.target).await?;
        let ns = p.target.namespace.as_deref();
        let name = p.target.name.as_str();
        let get = Op::new("get", &res.resource, None, &what).in_namespace(ns);
        let write = Op::new("patch", &res.resource, None, &what).in_namespace(ns);
        retry_conflicts!(&what, async {
            let current = self.call(&get, api.get(name)).await?;
            let previous = str_at(
                &current.data,
                "/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt",
            )
            .map(str::to_owned);
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let body = json!({
                "metadata": { "resourceVersion": current.metadata.resource_version },
                "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT: now } } } },
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
                summary: format!("restarted at {now}"),
                resource_version: patched.metadata.resource_version,
                uid: patched.metadata.uid.or(current.metadata.uid),
                detail: ChangeDetail::Restart {
                    restarted_at: now,
                    previous,
                },
            })
        })
    }

    pub(super) async fn set_image(&self, p: &SetImageAction) -> Result<Change> {
        let kind = ActionKind::SetImage;
        let (res, api, what) = self.target(kind, &p.target).await?;
        let ns = p.target.namespace.as_deref();
        let name = p.target.name.as_str();
        let get = Op::new("get", &res.resource, None, &what).in_namespace(ns);
        let write = Op::new("patch", &res.resource, None, &what).in_namespace(ns);
        let (mut change, applied) = retry_conflicts!(&what, async {
            let current = self.call(&get, api.get(name)).await?;
            let (container, old) = pick_container(&current, p.container.as_deref(), &what)?;
            if old == p.image {
                let change = Change {
                    action: kind,
                    target: what.clone(),
                    changed: false,
                    summary: format!("already at desired state: container {container} runs {old}"),
                    resource_version: current.metadata.resource_version.clone(),
                    uid: current.metadata.uid.clone(),
                    detail: ChangeDetail::SetImage {
                        container,
                        from: old.clone(),
                        to: old,
                        generation: generation(&current),
                        observed_generation: observed_generation(&current),
                    },
                };
                return Ok((change, current));
            }
            // Strategic merge merges `containers` by name, so only this container's image
            // changes; the resourceVersion makes the recorded "from" image exact.
            let body = json!({
                "metadata": { "resourceVersion": current.metadata.resource_version },
                "spec": { "template": { "spec": { "containers": [
                    { "name": container, "image": p.image }
                ] } } },
            });
            let patched = self
                .call(
                    &write,
                    api.patch(name, &patch_params(), &Patch::Strategic(&body)),
                )
                .await?;
            let change = Change {
                action: kind,
                target: what.clone(),
                changed: true,
                summary: format!("container {container} image {old} → {}", p.image),
                resource_version: patched.metadata.resource_version.clone(),
                uid: patched.metadata.uid.clone(),
                detail: ChangeDetail::SetImage {
                    container,
                    from: old,
                    to: p.image.clone(),
                    generation: generation(&patched),
                    observed_generation: observed_generation(&patched),
                },
            };
            Ok((change, patched))
        })?;
        if p.wait {
            let observed = self
                .wait_observed(&api, &get, name, &what, &applied, p.timeout_ms)
                .await?;
            if let ChangeDetail::SetImage {
                observed_generation,
                ..
            } = &mut change.detail
            {
                *observed_generation = Some(observed);
            }
        }
        Ok(change)
    }

    /// Waits (at most `timeout_ms`) until the workload's controller has observed the
    /// generation `applied` carries. No pods need to run for that: it proves the controller
    /// accepted the new template and started the rollout, not that new pods are ready (a
    /// readiness wait would hold an executor slot for as long as images take to pull).
    async fn wait_observed(
        &self,
        api: &Api<DynamicObject>,
        get: &Op,
        name: &str,
        what: &str,
        applied: &DynamicObject,
        timeout_ms: u64,
    ) -> Result<i64> {
        let Some(target) = generation(applied) else {
            // No generation: nothing a controller could report having observed.
            return Ok(observed_generation(applied).unwrap_or_default());
        };
        let limit = Duration::from_millis(timeout_ms);
        let deadline = tokio::time::Instant::now() + limit;
        let mut observed = observed_generation(applied).unwrap_or_default();
        loop {
            if observed >= target {
                return Ok(observed);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::RolloutTimeout {
                    what: what.to_owned(),
                    generation: target,
                    observed,
                    limit,
                });
            }
            tokio::time::sleep(ROLLOUT_POLL.min(limit)).await;
            let current = self.call(get, api.get(name)).await?;
            observed = observed_generation(&current).unwrap_or_default();
        }
    }
}

/// The container (by name, or the only one) and its image.
fn pick_container(
    obj: &DynamicObject,
    wanted: Option<&str>,
    what: &str,
) -> Result<(String, String)> {
    let containers: Vec<(&str, &str)> = obj
        .data
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some((
                c.get("name")?.as_str()?,
                c.get("image")?.as_str().unwrap_or(""),
            ))
        })
        .collect();
    let names = || {
        containers
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let found = match wanted {
        Some(name) => {
            containers
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| Error::Unsupported {
                    what: what.to_owned(),
                    reason: format!("has no container `{name}` (containers: {})", names()),
                })?
        }
        None => match containers.as_slice() {
            [only] => only,
            _ => {
                return Err(Error::Unsupported {
                    what: what.to_owned(),
                    reason: format!(
                        "has {} containers ({}); name one with `container`",
                        containers.len(),
                        names()
                    ),
                });
            }
        },
    };
    Ok((found.0.to_owned(), found.1.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(containers: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "web" },
            "spec": { "template": { "spec": { "containers": containers } } },
        }))
        .expect("valid object")
    }

    #[test]
    fn the_only_container_is_picked_when_none_is_named() {
        let obj = workload(json!([{ "name": "app", "image": "a:1" }]));
        let picked = pick_container(&obj, None, "w").expect("one container");
        assert_eq!(picked, ("app".to_owned(), "a:1".to_owned()));
    }

    #[test]
    fn several_containers_need_a_name_and_unknown_names_list_the_real_ones() {
        let obj = workload(json!([
            { "name": "app", "image": "a:1" },
            { "name": "proxy", "image": "p:1" },
        ]));
        let err = pick_container(&obj, None, "w").expect_err("ambiguous");
        assert!(err.to_string().contains("app, proxy"), "{err}");
        let err = pick_container(&obj, Some("db"), "w").expect_err("unknown");
        assert!(err.to_string().contains("no container `db`"), "{err}");
        assert!(!err.retryable());
        let picked = pick_container(&obj, Some("proxy"), "w").expect("named");
        assert_eq!(picked.1, "p:1");
    }
}
