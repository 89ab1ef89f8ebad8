//! `reflex rbac DIR` as a user runs it: the exact rules the shipped `rules/` need, Roles per
//! namespace when every namespace is literal, a ClusterRole when one is templated, YAML that
//! says the same as JSON, and invalid rules refused. The last test binds the generated
//! ClusterRole to a fresh identity on the real API server and runs the shipped rules' actions
//! as that identity: what is granted is enough, and nothing else is.

use crate::support;

use std::process::{Command, Output};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, DeleteParams as KubeDeleteParams, PostParams};
use reflex::actions::kubernetes::events::{Cause, EventPublisher, Trigger};
use reflex::actions::kubernetes::{Error, KubeExecutor};
use reflex::rules::action::{
    Action, ActionKind, CreateAction, DeleteAction, NodeAction, RestartAction, ScaleAction,
    SetImageAction, TargetParams,
};
use serde_json::{Value, json};

fn reflex(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reflex"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the reflex binary runs")
}

fn rbac_json(dir: &str) -> Value {
    let out = reflex(&["rbac", dir, "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> Value {
    json!({ "apiGroups": [group], "resources": resources, "verbs": verbs })
}

fn cluster_role(rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": { "name": "reflex" },
        "rules": rules,
    })
}

fn shipped_rules_cluster_role() -> Value {
    // restart + set_image (Deployment), scale (Deployment), cordon, delete Pod, and the
    // crash-loop restart's escalation to a rollback (which lists the Deployment's
    // ReplicaSets), and the Event about each; every target namespace is templated from the
    // event, so a ClusterRole.
    cluster_role(vec![
        rule("", &["nodes"], &["get", "patch"]),
        rule("", &["pods"], &["get", "delete"]),
        rule(
            "apps",
            &["deployments", "deployments/scale"],
            &["get", "patch"],
        ),
        rule("apps", &["replicasets"], &["list"]),
        rule("events.k8s.io", &["events"], &["create"]),
    ])
}

#[test]
fn the_shipped_rules_need_exactly_these_verbs_and_resources() {
    let list = rbac_json("rules");
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"], json!([shipped_rules_cluster_role()]));
}

#[test]
fn literal_namespaces_give_one_role_each_and_cluster_kinds_a_cluster_role() {
    let list = rbac_json("tests/data/rbac/literal");
    let role = |ns: &str, rules: Vec<Value>| {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": { "name": "reflex", "namespace": ns },
            "rules": rules,
        })
    };
    // The Events about cluster-scoped objects (the cordoned Node, the labelled Namespace)
    // live in `default`: a Role there allows creating them, nothing else.
    let events = || rule("events.k8s.io", &["events"], &["create"]);
    assert_eq!(
        list["items"],
        json!([
            cluster_role(vec![rule("", &["namespaces", "nodes"], &["get", "patch"])]),
            role("default", vec![events()]),
            role(
                "payments",
                vec![
                    rule("", &["configmaps"], &["delete"]),
                    rule("apps", &["deployments"], &["get", "patch"]),
                    rule("batch", &["jobs"], &["create"]),
                    events(),
                ]
            ),
            role(
                "shop",
                vec![
                    rule(
                        "apps",
                        &["deployments", "statefulsets/scale"],
                        &["get", "patch"]
                    ),
                    rule("apps", &["replicasets"], &["list"]),
                    rule("argoproj.io", &["rollouts"], &["patch"]),
                    events(),
                ]
            ),
        ])
    );
}

#[test]
fn one_templated_namespace_puts_every_permission_in_the_cluster_role() {
    let list = rbac_json("tests/data/rbac/templated");
    assert_eq!(
        list["items"],
        json!([cluster_role(vec![
            rule("", &["configmaps"], &["delete"]),
            rule("", &["namespaces", "nodes"], &["get", "patch"]),
            rule("", &["pods"], &["get", "delete"]),
            rule(
                "apps",
                &["deployments", "statefulsets/scale"],
                &["get", "patch"]
            ),
            rule("apps", &["replicasets"], &["list"]),
            rule("argoproj.io", &["rollouts"], &["patch"]),
            rule("batch", &["jobs"], &["create"]),
            rule("events.k8s.io", &["events"], &["create"]),
        ])])
    );
}

#[test]
fn the_yaml_output_holds_the_same_objects_as_the_json() {
    let out = reflex(&["rbac", "tests/data/rbac/literal"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("# Generated by `reflex rbac tests/data/rbac/literal`"),
        "{text}"
    );
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("YAML documents");
    assert_eq!(
        Value::Array(docs),
        rbac_json("tests/data/rbac/literal")["items"]
    );
}

#[test]
fn invalid_rules_are_refused_with_their_problems() {
    let out = reflex(&["rbac", "tests/data/rules-invalid"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no RBAC for invalid rules");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("a-unknown-field.yaml:3:5"), "{stderr}");
    assert!(stderr.contains("problem(s) found"), "{stderr}");
}

fn target(kind: &str, api_version: &str, namespace: Option<&str>, name: &str) -> TargetParams {
    TargetParams {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: namespace.map(str::to_owned),
        name: name.into(),
    }
}

async fn run<P: serde::Serialize>(
    executor: &KubeExecutor,
    kind: ActionKind,
    params: &P,
) -> Result<reflex::actions::kubernetes::Change, Error> {
    let json = serde_json::to_value(params).expect("parameters encode");
    let Action::Kubernetes(action) = Action::from_parts(kind, json).expect("parameters fit") else {
        panic!("`{}` is not a Kubernetes action", kind.as_str());
    };
    executor.execute(&action).await
}

#[tokio::test]
async fn the_generated_cluster_role_is_enough_for_the_shipped_rules_and_no_more() {
    let admin = support::kube_client(&support::kubeconfig()).await;
    let id = support::unique_name("rbac");
    let mut role: ClusterRole =
        serde_json::from_value(shipped_rules_cluster_role()).expect("valid ClusterRole");
    role.metadata.name = Some(id.clone());
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    let bindings: Api<ClusterRoleBinding> = Api::all(admin.clone());
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let nodes: Api<Node> = Api::all(admin.clone());
    let pp = PostParams::default();
    roles.create(&pp, &role).await.expect("create ClusterRole");
    let binding = json!({
        "metadata": { "name": id },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": id },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": id }],
    });
    bindings
        .create(
            &pp,
            &serde_json::from_value(binding).expect("valid binding"),
        )
        .await
        .expect("create ClusterRoleBinding");
    namespaces
        .create(
            &pp,
            &serde_json::from_value(json!({ "metadata": { "name": id } })).expect("ns"),
        )
        .await
        .expect("create namespace");
    nodes
        .create(
            &pp,
            &serde_json::from_value(json!({ "metadata": { "name": id } })).expect("node"),
        )
        .await
        .expect("create Node");

    let (ns, user) = (id.clone(), id.clone());
    let outcome = tokio::spawn(async move {
        let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &ns);
        let deployment = json!({
            "metadata": { "name": "web" },
            "spec": {
                "replicas": 1,
                "selector": { "matchLabels": { "app": "web" } },
                "template": {
                    "metadata": { "labels": { "app": "web" } },
                    "spec": { "containers": [{ "name": "app", "image": "registry.invalid/web:1" }] }
                }
            }
        });
        deployments
            .create(&PostParams::default(), &serde_json::from_value(deployment).expect("valid"))
            .await
            .expect("create Deployment");
        let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
        let owner: ConfigMap = Api::namespaced(admin.clone(), &ns)
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({ "metadata": { "name": "owner" } })).expect("cm"),
            )
            .await
            .expect("create owner");
        let pod = json!({
            "metadata": { "name": "shell", "ownerReferences": [{
                "apiVersion": "v1", "kind": "ConfigMap",
                "name": "owner", "uid": owner.metadata.uid,
            }] },
            "spec": { "containers": [{ "name": "app", "image": "registry.invalid/app:1" }] }
        });
        pods.create(&PostParams::default(), &serde_json::from_value(pod).expect("valid Pod"))
            .await
            .expect("create Pod");

        let client = support::impersonating(&user).await;
        let executor =
            KubeExecutor::new(client.clone()).with_events(EventPublisher::new(client, None));
        let web = target("Deployment", "apps/v1", Some(&ns), "web");
        let restart = RestartAction { target: web.clone() };
        let restarted = run(&executor, ActionKind::Restart, &restart)
            .await
            .expect("restart is granted");
        // So is the Event about it (`kubernetes.events`).
        let json = serde_json::to_value(&restart).expect("encode");
        let Ok(Action::Kubernetes(action)) = Action::from_parts(ActionKind::Restart, json) else {
            panic!("a restart is a Kubernetes action");
        };
        let cause = Cause { rule: "r", trigger: Trigger::Event("e"), outcome: "k" };
        let failed = reflex::metrics::global().kubernetes_events_failed.get();
        executor.report_action(&cause, &action, Ok(&restarted)).await;
        let events: Api<K8sEvent> = Api::namespaced(admin.clone(), &ns);
        let listed = events.list(&Default::default()).await.expect("list Events");
        assert!(
            listed.items.iter().any(|e| e.reason.as_deref() == Some("ReflexRestarted")),
            "{listed:?} (Events failed: {failed} before, {} after)",
            reflex::metrics::global().kubernetes_events_failed.get()
        );
        let scale = ScaleAction {
            target: web.clone(),
            replicas: Some(3),
            change: None,
            min: Some(2),
            max: Some(20),
        };
        run(&executor, ActionKind::Scale, &scale).await.expect("scale is granted");
        let image = SetImageAction {
            target: web.clone(),
            container: Some("app".into()),
            image: "registry.invalid/web:2".into(),
            wait: true,
            timeout_ms: 30_000,
        };
        run(&executor, ActionKind::SetImage, &image).await.expect("set_image is granted");
        let cordon = NodeAction { node: user.clone() };
        run(&executor, ActionKind::Cordon, &cordon).await.expect("cordon is granted");
        let delete = DeleteAction {
            target: target("Pod", "v1", Some(&ns), "shell"),
            allow_bare_pods: false,
            grace_period_seconds: None,
            propagation_policy: None,
        };
        run(&executor, ActionKind::Delete, &delete).await.expect("delete is granted");

        // Nothing in the shipped rules creates objects: that stays forbidden.
        let create = CreateAction {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some(ns.clone()),
            manifest: json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": { "name": "extra", "namespace": ns }
            }),
        };
        let err = run(&executor, ActionKind::Create, &create)
            .await
            .expect_err("create is not granted");
        assert!(
            err.to_string().starts_with(&format!(
                "reflex is not allowed to `create` `configmaps` (core API group) in namespace `{ns}`"
            )),
            "{err}"
        );
    })
    .await;

    let dp = KubeDeleteParams::default();
    let cleanups = [
        namespaces.delete(&id, &dp).await.map(drop),
        nodes.delete(&id, &dp).await.map(drop),
        bindings.delete(&id, &dp).await.map(drop),
        roles.delete(&id, &dp).await.map(drop),
    ];
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
    for cleanup in cleanups {
        cleanup.expect("clean up");
    }
}
