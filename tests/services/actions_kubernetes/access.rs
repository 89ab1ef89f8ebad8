//! Nodes (cluster-scoped), RBAC refusals under the limited identity, and not-found errors.

use super::*;

#[tokio::test]
async fn cordon_and_uncordon_flip_a_nodes_schedulability_once() {
    with_node(|client, node_name| async move {
        let executor = KubeExecutor::new(client.clone());
        let nodes: Api<Node> = Api::all(client.clone());
        let params = NodeAction {
            node: node_name.clone(),
        };
        let unschedulable = || async {
            nodes
                .get(&node_name)
                .await
                .expect("get Node")
                .spec
                .and_then(|s| s.unschedulable)
                .unwrap_or(false)
        };
        let change = run(&executor, ActionKind::Cordon, &params)
            .await
            .expect("cordon");
        assert_eq!(
            change.detail,
            ChangeDetail::Node {
                unschedulable_before: false,
                unschedulable: true
            }
        );
        assert!(unschedulable().await);
        let again = run(&executor, ActionKind::Cordon, &params)
            .await
            .expect("cordon again");
        assert!(!again.changed, "{again:?}");
        let change = run(&executor, ActionKind::Uncordon, &params)
            .await
            .expect("uncordon");
        assert!(change.changed);
        assert!(!unschedulable().await);
    })
    .await;
}

#[tokio::test]
async fn the_limited_identity_gets_a_permanent_403_naming_the_verb_and_resource() {
    let admin = support::kube_client(&support::kubeconfig()).await;
    let limited = support::kube_client(&support::kubeconfig_limited()).await;
    let ns = "reflex-limited";
    let name = support::unique_name("web");
    create_deployment(&admin, ns, &name, "registry.invalid/web:1").await;
    let test_name = name.clone();
    let outcome = tokio::spawn(async move {
        let executor = KubeExecutor::new(limited);
        // The limited user may get Deployments here, so restart fails at the write.
        let restart = RestartAction {
            target: deployment_target(ns, &test_name),
        };
        let err = run(&executor, ActionKind::Restart, &restart)
            .await
            .expect_err("the limited user may not patch");
        assert!(matches!(err, Error::Forbidden { .. }), "{err:?}");
        assert!(!err.retryable());
        let message = err.to_string();
        assert!(
            message.starts_with(
                "reflex is not allowed to `patch` `deployments` (API group `apps`) in namespace \
                 `reflex-limited`: add this to its Role"
            ),
            "{message}"
        );
        let scale = scale(ns, &test_name, Some(2), None);
        let err = run(&executor, ActionKind::Scale, &scale)
            .await
            .expect_err("the limited user may not read the scale subresource");
        assert!(
            err.to_string().starts_with(
                "reflex is not allowed to `get` `deployments/scale` (API group `apps`) in \
                 namespace `reflex-limited`"
            ),
            "{err}"
        );
        let cordon = NodeAction { node: "any".into() };
        let err = run(&executor, ActionKind::Cordon, &cordon)
            .await
            .expect_err("no nodes");
        assert!(
            err.to_string().starts_with(
                "reflex is not allowed to `get` `nodes` (core API group) cluster-wide: add this \
                 to its ClusterRole"
            ),
            "{err}"
        );
    })
    .await;
    let deployments: Api<Deployment> = Api::namespaced(admin, ns);
    let cleanup = deployments
        .delete(&name, &KubeDeleteParams::default())
        .await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
    cleanup.expect("delete Deployment");
}

#[tokio::test]
async fn missing_objects_and_kinds_are_permanent_not_found_errors() {
    in_namespace("act-404", |client, ns| async move {
        let executor = KubeExecutor::new(client);
        let restart = RestartAction {
            target: deployment_target(&ns, "absent"),
        };
        let err = run(&executor, ActionKind::Restart, &restart)
            .await
            .expect_err("404");
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains(&format!("apps/v1 Deployment {ns}/absent")),
            "{err}"
        );
        assert!(!err.retryable());

        let unknown = PatchAction {
            target: target("nothing.reflex.test/v1", "Gadget", Some(&ns), "g"),
            patch_type: PatchType::Merge,
            patch: json!({ "spec": {} }),
        };
        let err = run(&executor, ActionKind::Patch, &unknown)
            .await
            .expect_err("unknown kind");
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
        assert!(
            err.to_string().contains("CustomResourceDefinition"),
            "{err}"
        );
        assert!(!err.retryable());

        let not_scalable = ScaleAction {
            target: target("v1", "ConfigMap", Some(&ns), "cm"),
            replicas: Some(1),
            change: None,
            min: None,
            max: None,
        };
        let err = run(&executor, ActionKind::Scale, &not_scalable)
            .await
            .expect_err("a ConfigMap has no scale subresource");
        assert!(
            err.to_string().contains("has no `scale` subresource"),
            "{err}"
        );
        assert!(!err.retryable());

        // Malformed parameters never reach the executor: they do not make an action.
        let err = Action::from_parts(ActionKind::Scale, json!({ "target": "web" }))
            .expect_err("malformed parameters");
        assert!(err.to_string().contains("invalid type"), "{err}");
    })
    .await;
}
