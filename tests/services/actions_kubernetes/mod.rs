//! The Kubernetes executor against the real API server and controller-manager
//! (`scripts/services up`): every action on real objects, each test in its own namespace
//! (cluster-scoped objects get unique names) and cleaned up whatever happens. Waits are
//! bounded; a missing service fails the test with the command to start it.
//!
//! Run: `scripts/services up && eval "$(scripts/services env)" && cargo test --features services --test services actions_kubernetes::`

mod access;
mod events;
mod objects;
mod remediation;
use crate::support;
mod workloads;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams as KubeDeleteParams, DynamicObject, ListParams, PostParams};
use reflex::actions::kubernetes::{Change, ChangeDetail, Error, KubeExecutor};
use reflex::rules::action::{
    Action, ActionKind, AnnotateAction, CreateAction, DeleteAction, LabelAction, NodeAction,
    PatchAction, PatchType, RestartAction, RollbackAction, ScaleAction, ScaleChange,
    SetImageAction, TargetParams,
};
use serde_json::{Value, json};

/// Bound on waiting for the controller-manager (ReplicaSet revisions) or for a new CRD to be
/// served. Both take well under a second on an idle machine; a loaded CI box gets room.
const CONTROLLER_WAIT: Duration = Duration::from_secs(60);

/// Runs `test` with an admin client in a fresh namespace, deleting the namespace afterwards
/// (the namespace controller removes what is inside) and re-raising the test's panic.
async fn in_namespace<F, Fut>(prefix: &str, test: F)
where
    F: FnOnce(kube::Client, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let admin = support::kube_client(&support::kubeconfig()).await;
    let namespace = support::unique_name(prefix);
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": namespace } }))
                .expect("valid Namespace"),
        )
        .await
        .expect("create namespace");
    let outcome = tokio::spawn(test(admin, namespace.clone())).await;
    let cleanup = namespaces
        .delete(&namespace, &KubeDeleteParams::default())
        .await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
    cleanup.expect("delete namespace");
}

/// Runs `test` with a fresh Node (cluster-scoped, so named uniquely) and deletes it afterwards,
/// re-raising the test's panic.
async fn with_node<F, Fut>(test: F)
where
    F: FnOnce(kube::Client, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let client = support::kube_client(&support::kubeconfig()).await;
    let nodes: Api<Node> = Api::all(client.clone());
    let name = support::unique_name("node");
    nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": name } })).expect("valid Node"),
        )
        .await
        .expect("create Node");
    let outcome = tokio::spawn(test(client, name.clone())).await;
    let cleanup = nodes.delete(&name, &KubeDeleteParams::default()).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
    cleanup.expect("delete Node");
}

fn target(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> TargetParams {
    TargetParams {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        namespace: namespace.map(str::to_owned),
        name: name.to_owned(),
    }
}

fn deployment_target(namespace: &str, name: &str) -> TargetParams {
    target("apps/v1", "Deployment", Some(namespace), name)
}

/// Tests build the typed parameters and go through the kind and JSON parameters an outcome
/// records, so a kind always meets the parameters it was written with.
async fn run<P: serde::Serialize>(
    executor: &KubeExecutor,
    kind: ActionKind,
    params: &P,
) -> Result<Change, Error> {
    let json = serde_json::to_value(params).expect("parameters encode");
    let Action::Kubernetes(action) = Action::from_parts(kind, json).expect("parameters fit") else {
        panic!("`{}` is not a Kubernetes action", kind.as_str());
    };
    executor.execute(&action).await
}

async fn create_deployment(client: &kube::Client, namespace: &str, name: &str, image: &str) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let manifest = json!({
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "app", "image": image }] }
            }
        }
    });
    deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(manifest).expect("valid Deployment"),
        )
        .await
        .expect("create Deployment");
}

async fn get_deployment(client: &kube::Client, namespace: &str, name: &str) -> Deployment {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    deployments.get(name).await.expect("get Deployment")
}

fn template_image(d: &Deployment) -> String {
    d.spec
        .template
        .spec
        .as_ref()
        .map(|s| s.containers[0].image.clone().unwrap_or_default())
        .unwrap_or_default()
}

fn template_annotation(d: &Deployment, key: &str) -> Option<String> {
    d.spec
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(key)
        .cloned()
}

fn scale(
    namespace: &str,
    name: &str,
    replicas: Option<u32>,
    change: Option<ScaleChange>,
) -> ScaleAction {
    ScaleAction {
        target: deployment_target(namespace, name),
        replicas,
        change,
        min: None,
        max: None,
    }
}
