//! `observe`: read an action's target as the API server returns it, for a verification to
//! judge (`crate::rules::remediation::readiness`, `verify.kubernetes.when`). A read only:
//! discovery resolves the kind as for every action, and the errors are classified the same way,
//! so an unavailable API server is retryable and a missing permission names the RBAC rule.

use serde_json::Value;

use super::{Error, KubeExecutor, Op, Result, TargetParams};

impl KubeExecutor {
    /// The object `target` names, as JSON with its `apiVersion` and `kind`; `Ok(None)` when it
    /// does not exist (404). A Node is `v1` / `Node` without a namespace.
    pub async fn get_object(&self, target: &TargetParams) -> Result<Option<Value>> {
        let (res, api, what) = self.target_as("observe", target).await?;
        let get =
            Op::new("get", &res.resource, None, &what).in_namespace(target.namespace.as_deref());
        let Some(mut object) = self.call(&get, api.get_opt(&target.name)).await? else {
            return Ok(None);
        };
        // The API server sends apiVersion and kind on a GET; judging readiness needs them, so
        // they are filled in from discovery should a proxy have dropped them.
        if object.types.is_none() {
            object.types = Some(kube::core::TypeMeta {
                api_version: res.resource.api_version.clone(),
                kind: res.resource.kind.clone(),
            });
        }
        serde_json::to_value(object)
            .map(Some)
            .map_err(|e| Error::Client {
                verb: "get",
                what,
                source: kube::Error::SerdeError(e),
            })
    }
}
