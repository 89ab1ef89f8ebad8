//! The Kubernetes side of closed-loop remediation (issue #13): reading a target back
//! (`get_object`), judging readiness on real objects, and undoing what a reversible action
//! changed, planned from exactly the result the pipeline records for it.
//!
//! There is no kubelet: pods are created by the real ReplicaSet controller but never run, so
//! the rollout test acts as the kubelet and reports them Running and Ready through the `status`
//! subresource. That is all the ReplicaSet and Deployment controllers need to count a pod as
//! available, scale the old ReplicaSet down and complete the rollout.

use reflex::actions::kubernetes::{UndoPlan, Undone};
use reflex::actions::{Execution, Executors};
use reflex::rules::PlannedAction;
use reflex::rules::remediation::readiness::{self, Readiness};

use super::*;

/// Executes `params` as the pipeline does (`Executors::execute`) and returns the action and
/// the result JSON the pipeline records as the outcome's `details.result`.
async fn execute<P: serde::Serialize>(
    executors: &Executors,
    kind: ActionKind,
    params: &P,
) -> (Action, Value) {
    let json = serde_json::to_value(params).expect("parameters encode");
    let action = Action::from_parts(kind, json).expect("parameters fit");
    let planned = PlannedAction {
        rule: "remediate".into(),
        action_index: 0,
        action: action.clone(),
        idempotency_key: support::unique_name("key"),
        event_id: "e".into(),
        dry_run: false,
        group_key: None,
        remediation: None,
    };
    match executors.execute(&planned).await {
        Execution::Succeeded(result) => (action, result),
        other => panic!("`{}` did not succeed: {other:?}", kind.as_str()),
    }
}

fn executors(client: &kube::Client) -> Executors {
    Executors {
        kubernetes: Some(KubeExecutor::new(client.clone())),
        ..Executors::default()
    }
}

fn kube(executors: &Executors) -> &KubeExecutor {
    executors
        .kubernetes
        .as_ref()
        .expect("a Kubernetes executor")
}

/// Plans the undo of an executed action, which must be reversible.
fn undo_plan(action: &Action, result: &Value) -> UndoPlan {
    UndoPlan::from_execution(action, result)
        .unwrap_or_else(|| panic!("no undo plan for {action:?} with result {result}"))
}

fn skipped(undone: Undone) -> String {
    match undone {
        Undone::Skipped { reason } => reason,
        Undone::Restored(change) => panic!("expected a skipped undo, got {change:?}"),
    }
}

fn restored(undone: Undone) -> Change {
    match undone {
        Undone::Restored(change) => change,
        Undone::Skipped { reason } => panic!("expected a restored undo, skipped: {reason}"),
    }
}

/// Someone other than Reflex (a person, another controller) changes an object.
async fn someone_else_patches<K>(api: &Api<K>, name: &str, patch: Value, what: &str)
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = kube::api::PatchParams {
        field_manager: Some("someone-else".into()),
        ..Default::default()
    };
    api.patch(name, &params, &kube::api::Patch::Merge(&patch))
        .await
        .unwrap_or_else(|err| panic!("{what}: {err}"));
}

/// What a kubelet would report for every pod of `app` that it has not reported yet: Running
/// and Ready. Returns how many live pods `app` has.
async fn act_as_kubelet(client: &kube::Client, namespace: &str, app: &str) -> usize {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .expect("list pods");
    let live: Vec<&Pod> = list
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    for pod in &live {
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if ready {
            continue;
        }
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let status = json!({ "status": {
            "phase": "Running",
            "conditions": [{ "type": "Ready", "status": "True", "lastTransitionTime": now }],
        } });
        let name = pod.metadata.name.as_deref().expect("a named pod");
        pods.patch_status(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&status),
        )
        .await
        .expect("report the pod ready");
    }
    live.len()
}

#[tokio::test]
async fn get_object_reads_a_deployment_and_a_node_and_nothing_for_a_missing_object() {
    in_namespace("rem-observe", |client, ns| async move {
        create_deployment(&client, &ns, "web", "registry.invalid/web:1").await;
        let executor = KubeExecutor::new(client.clone());
        let object = executor
            .get_object(&deployment_target(&ns, "web"))
            .await
            .expect("get the Deployment")
            .expect("it exists");
        assert_eq!(object["apiVersion"], "apps/v1");
        assert_eq!(object["kind"], "Deployment");
        assert_eq!(object["metadata"]["namespace"], json!(ns));
        assert_eq!(object["spec"]["replicas"], 1);
        let missing = executor
            .get_object(&deployment_target(&ns, "nope"))
            .await
            .expect("a missing object is not an error");
        assert_eq!(missing, None);
        let err = executor
            .get_object(&target("v1", "Node", Some(&ns), "n1"))
            .await
            .expect_err("a Node has no namespace");
        assert!(
            err.to_string().contains("invalid parameters for `observe`"),
            "{err}"
        );
    })
    .await;

    with_node(|client, node| async move {
        let executor = KubeExecutor::new(client.clone());
        let node_target = target("v1", "Node", None, &node);
        let object = executor
            .get_object(&node_target)
            .await
            .expect("get the Node")
            .expect("it exists");
        assert_eq!(object["kind"], "Node");
        assert_eq!(object["metadata"]["name"], json!(node));
        assert_eq!(readiness::holds(Readiness::Ready, &object), Ok(false));
        assert_eq!(
            readiness::describe(Readiness::Ready, &object),
            "no Ready condition reported yet"
        );
        let nodes: Api<Node> = Api::all(client.clone());
        let status = json!({ "status": { "conditions": [
            { "type": "Ready", "status": "True", "reason": "KubeletReady" }
        ] } });
        nodes
            .patch_status(
                &node,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&status),
            )
            .await
            .expect("report the node ready");
        let object = executor
            .get_object(&node_target)
            .await
            .expect("get the Node")
            .expect("it exists");
        assert_eq!(readiness::holds(Readiness::Ready, &object), Ok(true));
    })
    .await;
}

#[tokio::test]
async fn a_restart_is_not_rolled_out_until_its_new_pods_are_ready_and_the_old_ones_gone() {
    in_namespace("rem-rollout", |client, ns| async move {
        create_deployment(&client, &ns, "web", "registry.invalid/web:1").await;
        let executor = KubeExecutor::new(client.clone());
        let web = deployment_target(&ns, "web");
        let read = || async {
            executor
                .get_object(&web)
                .await
                .expect("get the Deployment")
                .expect("it exists")
        };
        support::eventually("the first rollout completes", CONTROLLER_WAIT, || async {
            act_as_kubelet(&client, &ns, "web").await;
            let object = read().await;
            (readiness::holds(Readiness::RolloutComplete, &object) == Ok(true)).then_some(())
        })
        .await;

        run(
            &executor,
            ActionKind::Restart,
            &RestartAction {
                target: web.clone(),
            },
        )
        .await
        .expect("restart");
        // The controller observed the restart and started the new pod next to the old one;
        // nothing reports the new pod ready, so this is where the rollout stays.
        let mid = support::eventually(
            "the new ReplicaSet has its pod",
            CONTROLLER_WAIT,
            || async {
                let object = read().await;
                let status = &object["status"];
                let observed = status["observedGeneration"] == object["metadata"]["generation"];
                (observed && status["updatedReplicas"] == 1 && status["replicas"] == 2)
                    .then_some(object)
            },
        )
        .await;
        assert_eq!(
            readiness::holds(Readiness::RolloutComplete, &mid),
            Ok(false)
        );
        assert_eq!(
            readiness::describe(Readiness::RolloutComplete, &mid),
            "1 old replicas pending termination"
        );

        let done = support::eventually("the restart rolls out", CONTROLLER_WAIT, || async {
            act_as_kubelet(&client, &ns, "web").await;
            let object = read().await;
            (readiness::holds(Readiness::RolloutComplete, &object) == Ok(true)).then_some(object)
        })
        .await;
        assert_eq!(
            readiness::describe(Readiness::RolloutComplete, &done),
            "rollout complete: 1 of 1 replicas updated and available"
        );
        assert_eq!(readiness::holds(Readiness::Available, &done), Ok(true));
        assert_eq!(readiness::holds(Readiness::Ready, &done), Ok(true));
        assert_eq!(
            act_as_kubelet(&client, &ns, "web").await,
            1,
            "the old pod is gone"
        );
    })
    .await;
}

/// A Deployment `web` (1 replica) scaled by Reflex with `params`, and the undo plan of that.
async fn scaled_by_reflex(client: &kube::Client, params: ScaleAction) -> (Executors, UndoPlan) {
    let ns = params.target.namespace.as_deref().expect("a namespace");
    create_deployment(client, ns, "web", "registry.invalid/web:1").await;
    let executors = executors(client);
    let (action, result) = execute(&executors, ActionKind::Scale, &params).await;
    let plan = undo_plan(&action, &result);
    (executors, plan)
}

#[tokio::test]
async fn undoing_a_scale_restores_the_replicas_it_found_once() {
    in_namespace("rem-undo-scale", |client, ns| async move {
        let (executors, plan) = scaled_by_reflex(&client, scale(&ns, "web", Some(3), None)).await;
        assert_eq!(
            plan.describe(),
            format!("scale deployment/{ns}/web back to 1 replicas")
        );
        let change = restored(kube(&executors).undo(&plan).await.expect("undo"));
        assert_eq!(change.detail, ChangeDetail::Scale { from: 3, to: 1 });
        assert_eq!(
            get_deployment(&client, &ns, "web").await.spec.replicas,
            Some(1)
        );
        // Undone already: the replicas are no longer what Reflex set.
        let again = skipped(kube(&executors).undo(&plan).await.expect("undo again"));
        assert_eq!(
            again,
            "replicas are 1 now, Reflex set 3: changed since; left alone"
        );

        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        deployments
            .delete("web", &KubeDeleteParams::default())
            .await
            .expect("delete the Deployment");
        support::eventually("the Deployment is gone", CONTROLLER_WAIT, || async {
            deployments
                .get_opt("web")
                .await
                .expect("get")
                .is_none()
                .then_some(())
        })
        .await;
        let gone = skipped(
            kube(&executors)
                .undo(&plan)
                .await
                .expect("undo a gone object"),
        );
        assert_eq!(
            gone,
            format!("apps/v1 Deployment {ns}/web no longer exists; nothing to undo")
        );
    })
    .await;
}

#[tokio::test]
async fn undoing_a_scale_leaves_replicas_someone_else_changed_alone() {
    in_namespace("rem-undo-scaled", |client, ns| async move {
        let add_three = scale(&ns, "web", None, Some(ScaleChange::Add(3)));
        let (executors, plan) = scaled_by_reflex(&client, add_three).await;
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        deployments
            .patch_scale(
                "web",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&json!({ "spec": { "replicas": 5 } })),
            )
            .await
            .expect("someone else scales");
        let reason = skipped(kube(&executors).undo(&plan).await.expect("undo"));
        assert_eq!(
            reason,
            "replicas are 5 now, Reflex set 4: changed since; left alone"
        );
        assert_eq!(
            get_deployment(&client, &ns, "web").await.spec.replicas,
            Some(5)
        );
    })
    .await;
}

#[tokio::test]
async fn undoing_a_cordon_uncordons_unless_someone_uncordoned_already() {
    with_node(|client, node| async move {
        let executors = executors(&client);
        let nodes: Api<Node> = Api::all(client.clone());
        let unschedulable = || async {
            nodes
                .get(&node)
                .await
                .expect("get Node")
                .spec
                .and_then(|s| s.unschedulable)
                .unwrap_or(false)
        };
        let cordon = NodeAction { node: node.clone() };
        let (action, result) = execute(&executors, ActionKind::Cordon, &cordon).await;
        let plan = undo_plan(&action, &result);
        assert_eq!(plan.describe(), format!("uncordon node/{node}"));
        assert!(unschedulable().await);
        let change = restored(kube(&executors).undo(&plan).await.expect("undo"));
        assert_eq!(
            change.detail,
            ChangeDetail::Node {
                unschedulable_before: true,
                unschedulable: false
            }
        );
        assert!(!unschedulable().await);

        let (action, result) = execute(&executors, ActionKind::Cordon, &cordon).await;
        let plan = undo_plan(&action, &result);
        someone_else_patches(&nodes, &node, json!({ "spec": { "unschedulable": false } }), "an operator uncordons").await;
        let reason = skipped(kube(&executors).undo(&plan).await.expect("undo"));
        assert_eq!(
            reason,
            format!(
                "node {node} is schedulable now, Reflex had cordoned it: uncordoned since; left alone"
            )
        );
    })
    .await;
}

#[tokio::test]
async fn undoing_a_label_restores_and_removes_only_keys_that_still_hold_what_reflex_set() {
    in_namespace("rem-undo-label", |client, ns| async move {
        let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        configmaps
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({ "metadata": {
                    "name": "cm",
                    "labels": { "changed": "old", "gone": "here", "other": "x" },
                    "annotations": { "note": "old" },
                } }))
                .expect("valid ConfigMap"),
            )
            .await
            .expect("create ConfigMap");
        let executors = executors(&client);
        let cm = target("v1", "ConfigMap", Some(&ns), "cm");
        let entry = |v: Option<&str>| v.map(str::to_owned);
        let label = LabelAction {
            target: cm.clone(),
            labels: BTreeMap::from([
                ("added".to_owned(), entry(Some("1"))),
                ("changed".to_owned(), entry(Some("new"))),
                ("gone".to_owned(), None),
                ("touched".to_owned(), entry(Some("reflex"))),
            ]),
        };
        let (action, result) = execute(&executors, ActionKind::Label, &label).await;
        let plan = undo_plan(&action, &result);
        // Someone takes over one of the keys Reflex set.
        someone_else_patches(
            &configmaps,
            "cm",
            json!({ "metadata": { "labels": { "touched": "theirs" } } }),
            "someone relabels",
        )
        .await;
        let change = restored(kube(&executors).undo(&plan).await.expect("undo"));
        assert!(
            change.summary.ends_with(
                r#"left alone, changed since: touched is "theirs" now, Reflex set "reflex""#
            ),
            "{}",
            change.summary
        );
        let fetched = configmaps.get("cm").await.expect("get ConfigMap");
        assert_eq!(
            fetched.metadata.labels,
            Some(labels(&[
                ("changed", "old"),
                ("gone", "here"),
                ("other", "x"),
                ("touched", "theirs"),
            ]))
        );

        // Every key changed since: nothing is written.
        let annotate = AnnotateAction {
            target: cm,
            annotations: BTreeMap::from([("note".to_owned(), entry(Some("reflex")))]),
        };
        let (action, result) = execute(&executors, ActionKind::Annotate, &annotate).await;
        let plan = undo_plan(&action, &result);
        someone_else_patches(
            &configmaps,
            "cm",
            json!({ "metadata": { "annotations": { "note": null } } }),
            "someone removes the annotation",
        )
        .await;
        let reason = skipped(kube(&executors).undo(&plan).await.expect("undo"));
        assert_eq!(
            reason,
            r#"note is absent now, Reflex set "reflex": changed since; left alone"#
        );
        let fetched = configmaps.get("cm").await.expect("get ConfigMap");
        assert_eq!(
            fetched.metadata.annotations.unwrap_or_default().get("note"),
            None
        );
    })
    .await;
}
