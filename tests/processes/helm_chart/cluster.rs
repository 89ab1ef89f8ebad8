//! The chart against the REAL test kube-apiserver: its output accepted by a server-side dry
//! run, and its ServiceAccount + RBAC applied for real, then used (TokenRequest token) to run
//! the shipped rules' actions with the Kubernetes executor: all permitted, anything else 403.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, DeleteParams as KubeDeleteParams, DynamicObject, Patch, PatchParams};
use kube::api::{GroupVersionKind, PostParams};
use kube::discovery::Scope;
use reflex::actions::kubernetes::{Error, KubeExecutor};
use reflex::rules::action::{
    Action, ActionKind, DeleteAction, NodeAction, RestartAction, ScaleAction, SetImageAction,
    TargetParams,
};
use serde_json::{Value, json};

use super::{documents, find, kinds, support, template};

/// Why an object was not sent to the API server.
#[derive(Debug)]
pub(super) enum NotApplied {
    /// The API server does not serve the kind (its CRD is not installed).
    UnknownKind(String),
}

/// Server-side apply of one rendered object, resolved through discovery; namespaced objects
/// without a namespace go to `namespace` (what `helm install -n` does).
pub(super) async fn apply(
    client: &kube::Client,
    namespace: &str,
    doc: &Value,
    dry_run: bool,
) -> Result<DynamicObject, NotApplied> {
    let api_version = doc["apiVersion"].as_str().expect("apiVersion");
    let kind = doc["kind"].as_str().expect("kind");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|err| NotApplied::UnknownKind(format!("{api_version} {kind}: {err}")))?;
    let name = doc["metadata"]["name"].as_str().expect("metadata.name");
    let api: Api<DynamicObject> = match caps.scope {
        Scope::Namespaced => {
            let ns = doc["metadata"]["namespace"].as_str().unwrap_or(namespace);
            Api::namespaced_with(client.clone(), ns, &resource)
        }
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    // Strict: an unknown or misplaced field is an error, as `kubectl apply` treats it, instead
    // of a warning the test would never see.
    let mut params = PatchParams::apply("reflex-test").validation_strict();
    if dry_run {
        params = params.dry_run();
    }
    let applied = api.patch(name, &params, &Patch::Apply(doc)).await;
    Ok(applied.unwrap_or_else(|err| panic!("the API server refused {kind} {name}: {err}")))
}

pub(super) async fn create_namespace(admin: &kube::Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let ns = serde_json::from_value(json!({ "metadata": { "name": name } })).expect("namespace");
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
}

#[tokio::test]
async fn the_rendered_manifests_pass_server_side_dry_run_on_the_real_api_server() {
    let admin = support::kube_client(&support::kubeconfig()).await;
    let ns = support::unique_name("helm-dry");
    create_namespace(&admin, &ns).await;
    // In a task so the namespace is deleted even when an assertion fails.
    let outcome = tokio::spawn(dry_run_renders(admin.clone(), ns.clone())).await;
    let cleanup = Api::<Namespace>::all(admin)
        .delete(&ns, &KubeDeleteParams::default())
        .await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
    cleanup.expect("clean up");
}

/// Dry-runs the default render and the options render (its Roles moved into `ns`, since a dry
/// run in a missing namespace fails) object by object.
async fn dry_run_renders(admin: kube::Client, ns: String) {
    let namespaces = format!("rbac.namespaces={{{ns}}}");
    let renders = [
        template("reflex", &ns, &[]),
        template(
            "opts",
            &ns,
            &["-f", "tests/data/helm/options.yaml", "--set", &namespaces],
        ),
    ];
    let mut applied = Vec::new();
    let mut skipped = Vec::new();
    for doc in renders.iter().flat_map(|r| documents(r)) {
        match apply(&admin, &ns, &doc, true).await {
            Ok(object) => applied.push(format!(
                "{} {}",
                doc["kind"],
                object.metadata.name.unwrap_or_default()
            )),
            // The test API server has no Prometheus Operator: ServiceMonitor, and only it, is
            // skipped (its schema lives in the operator's CRD, not in Kubernetes).
            Err(NotApplied::UnknownKind(why)) if doc["kind"] == "ServiceMonitor" => {
                skipped.push(why)
            }
            Err(NotApplied::UnknownKind(why)) => panic!("the API server does not know {why}"),
        }
    }
    eprintln!(
        "dry-run applied {} objects; skipped (CRD absent): {skipped:?}",
        applied.len()
    );
    assert_eq!(
        skipped.len(),
        1,
        "exactly the ServiceMonitor is skipped: {skipped:?}"
    );
    // 9 objects with default values (the `helm test` Pod included), 12 - 1 skipped with the
    // options.
    assert_eq!(applied.len(), 9 + 11, "{applied:?}");
}

/// A client that authenticates with `token` only: the API server URL and CA come from the
/// test kubeconfig, its admin credentials are dropped.
async fn client_with_token(token: &str) -> kube::Client {
    support::install_crypto_provider();
    let file = kube::config::Kubeconfig::read_from(support::kubeconfig()).expect("kubeconfig");
    let mut config = kube::Config::from_custom_kubeconfig(file, &Default::default())
        .await
        .expect("valid kubeconfig");
    config.auth_info = serde_json::from_value(json!({ "token": token })).expect("auth info");
    kube::Client::try_from(config).expect("client")
}

fn target(kind: &str, api_version: &str, namespace: &str, name: &str) -> TargetParams {
    TargetParams {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: Some(namespace.to_owned()),
        name: name.into(),
    }
}

async fn run<P: serde::Serialize>(
    executor: &KubeExecutor,
    kind: ActionKind,
    params: &P,
) -> Result<(), Error> {
    let json = serde_json::to_value(params).expect("parameters encode");
    let Action::Kubernetes(action) = Action::from_parts(kind, json).expect("parameters fit") else {
        panic!("`{}` is not a Kubernetes action", kind.as_str());
    };
    executor.execute(&action).await.map(drop)
}

fn web_deployment() -> Deployment {
    serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "app", "image": "registry.invalid/web:1" }] }
            }
        }
    }))
    .expect("valid Deployment")
}

/// Creates what the actions work on: a Deployment `web` in both namespaces, a Pod owned by a
/// ConfigMap (not bare) and a Secret in `ns`, and a Node.
async fn create_targets(admin: &kube::Client, ns: &str, other: &str, node: &str) {
    let pp = PostParams::default();
    for namespace in [ns, other] {
        Api::<Deployment>::namespaced(admin.clone(), namespace)
            .create(&pp, &web_deployment())
            .await
            .expect("create Deployment");
    }
    let owner = Api::<ConfigMap>::namespaced(admin.clone(), ns)
        .create(
            &pp,
            &serde_json::from_value(json!({ "metadata": { "name": "owner" } })).expect("cm"),
        )
        .await
        .expect("create owner");
    let pod = json!({
        "metadata": { "name": "shell", "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid,
        }] },
        "spec": { "containers": [{ "name": "app", "image": "registry.invalid/app:1" }] }
    });
    Api::<Pod>::namespaced(admin.clone(), ns)
        .create(&pp, &serde_json::from_value(pod).expect("Pod"))
        .await
        .expect("create Pod");
    let secret = json!({ "metadata": { "name": "db" }, "stringData": { "password": "x" } });
    Api::<Secret>::namespaced(admin.clone(), ns)
        .create(&pp, &serde_json::from_value(secret).expect("Secret"))
        .await
        .expect("create Secret");
    Api::<Node>::all(admin.clone())
        .create(
            &pp,
            &serde_json::from_value(json!({ "metadata": { "name": node } })).expect("Node"),
        )
        .await
        .expect("create Node");
}

/// Runs the shipped rules' actions as the chart's ServiceAccount: all permitted in `ns`; a
/// Secret deletion and an action in `other` refused with 403.
async fn act_as_service_account(executor: KubeExecutor, ns: String, other: String, node: String) {
    let web = target("Deployment", "apps/v1", &ns, "web");
    run(
        &executor,
        ActionKind::Restart,
        &RestartAction {
            target: web.clone(),
        },
    )
    .await
    .expect("restart (restart-crashlooping-deployment) is permitted");
    let scale = ScaleAction {
        target: web.clone(),
        replicas: Some(3),
        change: None,
        min: Some(2),
        max: Some(20),
    };
    run(&executor, ActionKind::Scale, &scale)
        .await
        .expect("scale (scale-worker-on-queue-depth) is permitted");
    let image = SetImageAction {
        target: web.clone(),
        container: Some("app".into()),
        image: "registry.invalid/web:2".into(),
        wait: false,
        timeout_ms: 0,
    };
    run(&executor, ActionKind::SetImage, &image)
        .await
        .expect("set_image (rollout-image-on-successful-build) is permitted");
    run(&executor, ActionKind::Cordon, &NodeAction { node })
        .await
        .expect("cordon (cordon-node-notready-with-evictions) is permitted");
    let delete_pod = DeleteAction {
        target: target("Pod", "v1", &ns, "shell"),
        allow_bare_pods: false,
        grace_period_seconds: None,
        propagation_policy: None,
    };
    run(&executor, ActionKind::Delete, &delete_pod)
        .await
        .expect("delete Pod (delete-pod-with-terminal-shell) is permitted");

    let delete_secret = DeleteAction {
        target: target("Secret", "v1", &ns, "db"),
        ..delete_pod
    };
    let err = run(&executor, ActionKind::Delete, &delete_secret)
        .await
        .expect_err("no rule deletes Secrets");
    assert_forbidden(&err, "delete", "secrets", &ns);
    let elsewhere = RestartAction {
        target: target("Deployment", "apps/v1", &other, "web"),
    };
    let err = run(&executor, ActionKind::Restart, &elsewhere)
        .await
        .expect_err("the Role is limited to its namespace");
    assert_forbidden(&err, "get", "deployments", &other);
}

/// A 403 from the API server, naming the verb, the resource and the namespace.
fn assert_forbidden(err: &Error, verb: &str, resource: &str, namespace: &str) {
    let Error::Forbidden {
        verb: v,
        resource: r,
        namespace: n,
        message,
        ..
    } = err
    else {
        panic!("expected a 403 Forbidden, got {err:?}");
    };
    assert_eq!(
        (*v, r.as_str(), n.as_deref()),
        (verb, resource, Some(namespace)),
        "{err}"
    );
    assert!(
        message.contains("forbidden"),
        "the API server's 403 message: {message}"
    );
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("reflex is not allowed to `{verb}` `{resource}`")),
        "{shown}"
    );
}

#[tokio::test]
async fn the_charts_service_account_may_run_the_shipped_rules_actions_and_nothing_else() {
    let admin = support::kube_client(&support::kubeconfig()).await;
    let id = support::unique_name("helm-sa");
    let (ns, other, node) = (id.clone(), format!("{id}-other"), id.clone());
    create_namespace(&admin, &ns).await;
    create_namespace(&admin, &other).await;
    // The chart's ServiceAccount, Role, ClusterRole and bindings, namespaced to `ns` the way an
    // operator limiting Reflex to one namespace installs it; the release is unique so the
    // cluster-scoped names never collide with another run.
    let render = template(&id, &ns, &["--set", &format!("rbac.namespaces={{{ns}}}")]);
    let rbac_kinds = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    ];
    let rbac: Vec<Value> = documents(&render)
        .into_iter()
        .filter(|d| rbac_kinds.contains(&d["kind"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        kinds(&rbac),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "ServiceAccount"
        ]
    );
    for doc in &rbac {
        apply(&admin, &ns, doc, false).await.expect("known kind");
    }
    create_targets(&admin, &ns, &other, &node).await;

    // The release name does not contain "reflex", so objects are named `<release>-reflex`.
    let sa_name = format!("{id}-reflex");
    find(&rbac, "ServiceAccount", &sa_name);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            // 10 minutes: the shortest lifetime the API server issues, ample for this test.
            expiration_seconds: Some(600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let token = Api::<ServiceAccount>::namespaced(admin.clone(), &ns)
        .create_token_request(&sa_name, &PostParams::default(), &request)
        .await
        .expect("TokenRequest for the chart's ServiceAccount")
        .status
        .expect("token status")
        .token
        .expect("a token in the TokenRequest status");
    let executor = KubeExecutor::new(client_with_token(&token).await);
    let outcome = tokio::spawn(act_as_service_account(
        executor,
        ns.clone(),
        other.clone(),
        node.clone(),
    ))
    .await;

    let dp = KubeDeleteParams::default();
    let namespaces = Api::<Namespace>::all(admin.clone());
    let cleanups = [
        namespaces.delete(&ns, &dp).await.map(drop),
        namespaces.delete(&other, &dp).await.map(drop),
        Api::<Node>::all(admin.clone())
            .delete(&node, &dp)
            .await
            .map(drop),
        Api::<ClusterRoleBinding>::all(admin.clone())
            .delete(&sa_name, &dp)
            .await
            .map(drop),
        Api::<ClusterRole>::all(admin.clone())
            .delete(&sa_name, &dp)
            .await
            .map(drop),
    ];
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
    for cleanup in cleanups {
        cleanup.expect("clean up");
    }
}
