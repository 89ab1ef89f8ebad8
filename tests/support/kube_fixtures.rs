//! Kubernetes fixtures of the adapter tests (`services` tier): the limited user's kubeconfig
//! and a scalable custom resource in a group of its own.

use std::path::PathBuf;
use std::time::Duration;

use super::{eventually, required_env, unique_name};

/// `REFLEX_KUBECONFIG_LIMITED` (a user with almost no permissions).
pub fn kubeconfig_limited() -> PathBuf {
    PathBuf::from(required_env("REFLEX_KUBECONFIG_LIMITED"))
}

/// Installs a CustomResourceDefinition of `kind` (plural `<kind in lower case>s`, version `v1`)
/// in a group no other test uses, with `scope` `Namespaced` or `Cluster`, a scale subresource
/// on `.spec.replicas` and `spec_properties` as the schema of `spec`; waits until it is
/// established and served (bounded by `limit`). Returns (group, CRD name).
pub async fn install_scalable_crd(
    client: &kube::Client,
    kind: &str,
    scope: &str,
    spec_properties: serde_json::Value,
    limit: Duration,
) -> (String, String) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, PostParams};
    let singular = kind.to_lowercase();
    let plural = format!("{singular}s");
    let group = format!("{}.reflex.test", unique_name(&singular[..1]));
    let name = format!("{plural}.{group}");
    let crd = serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": name },
        "spec": {
            "group": group,
            "scope": scope,
            "names": { "plural": plural, "singular": singular, "kind": kind },
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": { "scale": {
                    "specReplicasPath": ".spec.replicas",
                    "statusReplicasPath": ".status.replicas"
                } },
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": { "type": "object", "properties": spec_properties },
                        "status": { "type": "object", "properties": {
                            "replicas": { "type": "integer" }
                        } }
                    }
                } }
            }]
        }
    });
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(crd).expect("valid CRD"),
    )
    .await
    .expect("create CRD");
    let gvk = kube::core::GroupVersionKind::gvk(&group, "v1", kind);
    eventually(&format!("CRD {name} established and served"), limit, || {
        let (client, crds, gvk, name) = (client.clone(), crds.clone(), gvk.clone(), name.clone());
        async move {
            let crd = crds.get(&name).await.ok()?;
            let established = crd
                .status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            let served = kube::discovery::pinned_kind(&client, &gvk).await.is_ok();
            (established && served).then_some(())
        }
    })
    .await;
    (group, name)
}
