//! Any object: a custom resource through discovery, delete with the bare-Pod check, create,
//! label and annotate.

use super::*;

/// A small CRD (`Widget`) with a scale subresource in a group no other test uses; waits until
/// it is served. Returns (group, CRD name).
async fn install_widget_crd(client: &kube::Client) -> (String, String) {
    let spec = json!({
        "replicas": { "type": "integer" },
        "color": { "type": "string" },
        "sizes": { "type": "array", "items": { "type": "string" } }
    });
    support::install_scalable_crd(client, "Widget", "Namespaced", spec, CONTROLLER_WAIT).await
}

#[tokio::test]
async fn custom_resources_are_created_patched_every_way_and_scaled_through_discovery() {
    let admin = support::kube_client(&support::kubeconfig()).await;
    let (group, crd_name) = install_widget_crd(&admin).await;
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let group_for_test = group.clone();
    in_namespace("act-crd", move |client, ns| async move {
        let group = group_for_test;
        let api_version = format!("{group}/v1");
        let executor = KubeExecutor::new(client.clone());
        let create = CreateAction {
            api_version: api_version.clone(),
            kind: "Widget".into(),
            namespace: Some(ns.clone()),
            manifest: json!({
                "apiVersion": api_version, "kind": "Widget",
                "metadata": { "name": "w1", "namespace": ns },
                "spec": { "replicas": 1, "color": "red", "sizes": ["s"] }
            }),
        };
        let created = run(&executor, ActionKind::Create, &create)
            .await
            .expect("create widget");
        assert!(matches!(&created.detail, ChangeDetail::Create { name, .. } if name == "w1"));

        let widget = target(&api_version, "Widget", Some(&ns), "w1");
        let merge = PatchAction {
            target: widget.clone(),
            patch_type: PatchType::Merge,
            patch: json!({ "spec": { "color": "blue" } }),
        };
        let change = run(&executor, ActionKind::Patch, &merge)
            .await
            .expect("merge patch");
        assert_eq!(
            change.detail,
            ChangeDetail::Patch {
                patch_type: PatchType::Merge,
                generation: Some(2)
            }
        );
        let json_patch = PatchAction {
            target: widget.clone(),
            patch_type: PatchType::Json,
            patch: json!([{ "op": "add", "path": "/spec/sizes/-", "value": "m" }]),
        };
        run(&executor, ActionKind::Patch, &json_patch)
            .await
            .expect("json patch");
        let apply = PatchAction {
            target: widget.clone(),
            patch_type: PatchType::Apply,
            patch: json!({ "spec": { "color": "green" } }),
        };
        run(&executor, ActionKind::Patch, &apply)
            .await
            .expect("server-side apply");

        let scale = ScaleAction {
            target: widget.clone(),
            replicas: None,
            change: Some(ScaleChange::Add(2)),
            min: None,
            max: None,
        };
        let change = run(&executor, ActionKind::Scale, &scale)
            .await
            .expect("scale widget");
        assert_eq!(change.detail, ChangeDetail::Scale { from: 1, to: 3 });

        let (resource, _) = kube::discovery::pinned_kind(
            &client,
            &kube::core::GroupVersionKind::gvk(&group, "v1", "Widget"),
        )
        .await
        .expect("discover Widget");
        let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
        let fetched = widgets.get("w1").await.expect("get widget");
        assert_eq!(
            fetched.data["spec"],
            json!({ "replicas": 3, "color": "green", "sizes": ["s", "m"] })
        );
        let managers: Vec<String> = fetched
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .filter_map(|m| m.manager.clone())
            .collect();
        assert!(managers.iter().all(|m| m == "reflex"), "{managers:?}");

        let strategic = PatchAction {
            patch_type: PatchType::Strategic,
            ..merge
        };
        let err = run(&executor, ActionKind::Patch, &strategic)
            .await
            .expect_err("custom resources do not take strategic merge patches");
        assert!(!err.retryable(), "{err}");
    })
    .await;
    crds.delete(&crd_name, &KubeDeleteParams::default())
        .await
        .expect("delete CRD");
}

pub(super) async fn create_pod(
    client: &kube::Client,
    ns: &str,
    name: &str,
    owner: Option<&ConfigMap>,
) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let owners: Vec<Value> = owner
        .map(|cm| {
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "name": cm.metadata.name, "uid": cm.metadata.uid,
            })
        })
        .into_iter()
        .collect();
    let pod = json!({
        "metadata": { "name": name, "ownerReferences": owners },
        "spec": { "containers": [{ "name": "app", "image": "registry.invalid/app:1" }] }
    });
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(pod).expect("valid Pod"),
    )
    .await
    .expect("create Pod");
}

#[tokio::test]
async fn delete_refuses_a_bare_pod_unless_allowed_and_deletes_owned_ones() {
    in_namespace("act-delete", |client, ns| async move {
        let executor = KubeExecutor::new(client.clone());
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        create_pod(&client, &ns, "bare", None).await;
        let delete = DeleteAction {
            target: target("v1", "Pod", Some(&ns), "bare"),
            allow_bare_pods: false,
            grace_period_seconds: Some(0),
            propagation_policy: None,
        };
        let err = run(&executor, ActionKind::Delete, &delete)
            .await
            .expect_err("a bare pod is refused");
        assert!(matches!(err, Error::Refused { .. }), "{err:?}");
        assert!(err.to_string().contains("allow_bare_pods: true"), "{err}");
        assert!(!err.retryable());
        pods.get("bare")
            .await
            .expect("the refused pod is still there");

        let allowed = DeleteAction {
            allow_bare_pods: true,
            ..delete.clone()
        };
        let change = run(&executor, ActionKind::Delete, &allowed)
            .await
            .expect("allowed delete");
        let bare_uid = pods.get("bare").await.ok().and_then(|p| p.metadata.uid);
        assert!(
            matches!(
                &change.detail,
                ChangeDetail::Delete {
                    uid: Some(uid),
                    grace_period_seconds: Some(0),
                    ..
                } if bare_uid.as_ref().is_none_or(|u| u == uid)
            ),
            "{change:?}"
        );
        support::eventually("the bare pod is gone", CONTROLLER_WAIT, || {
            let pods = pods.clone();
            async move { pods.get_opt("bare").await.ok()?.is_none().then_some(()) }
        })
        .await;

        let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        let owner = configmaps
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({ "metadata": { "name": "owner" } }))
                    .expect("valid ConfigMap"),
            )
            .await
            .expect("create owner");
        create_pod(&client, &ns, "owned", Some(&owner)).await;
        let owned = DeleteAction {
            target: target("v1", "Pod", Some(&ns), "owned"),
            propagation_policy: Some(reflex::rules::action::PropagationPolicy::Background),
            ..delete
        };
        run(&executor, ActionKind::Delete, &owned)
            .await
            .expect("an owned pod is deleted");

        let err = run(&executor, ActionKind::Delete, &owned)
            .await
            .expect_err("already deleted");
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn create_makes_a_config_map_and_a_job_from_manifests() {
    in_namespace("act-create", |client, ns| async move {
        let executor = KubeExecutor::new(client.clone());
        let cm = CreateAction {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some(ns.clone()),
            manifest: json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": { "name": "diag", "namespace": ns },
                "data": { "reason": "OOMKilled" }
            }),
        };
        let change = run(&executor, ActionKind::Create, &cm)
            .await
            .expect("create ConfigMap");
        assert_eq!(change.target, format!("v1 ConfigMap {ns}/diag"));
        let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        let fetched = configmaps.get("diag").await.expect("get ConfigMap");
        assert_eq!(
            fetched.data,
            Some(BTreeMap::from([(
                "reason".to_owned(),
                "OOMKilled".to_owned()
            )]))
        );
        let err = run(&executor, ActionKind::Create, &cm)
            .await
            .expect_err("exists");
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");

        let job = CreateAction {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            namespace: Some(ns.clone()),
            manifest: json!({
                "apiVersion": "batch/v1", "kind": "Job",
                "metadata": { "generateName": "collect-", "namespace": ns },
                "spec": { "template": { "spec": {
                    "restartPolicy": "Never",
                    "containers": [{ "name": "c", "image": "registry.invalid/tools:1" }]
                } } }
            }),
        };
        let change = run(&executor, ActionKind::Create, &job)
            .await
            .expect("create Job");
        let ChangeDetail::Create { name, uid, .. } = &change.detail else {
            panic!("unexpected detail {:?}", change.detail);
        };
        assert!(
            name.starts_with("collect-") && name.len() > "collect-".len(),
            "{name}"
        );
        let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client.clone(), &ns);
        let fetched = jobs.get(name).await.expect("get Job");
        assert_eq!(&fetched.metadata.uid, uid);
    })
    .await;
}

#[tokio::test]
async fn label_and_annotate_set_and_remove_keys_and_skip_what_is_already_there() {
    in_namespace("act-meta", |client, ns| async move {
        let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        configmaps
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({ "metadata": {
                    "name": "cm",
                    "labels": { "keep": "yes", "drop": "me" },
                    "annotations": { "note": "old" }
                } }))
                .expect("valid ConfigMap"),
            )
            .await
            .expect("create ConfigMap");
        let executor = KubeExecutor::new(client.clone());
        let cm = target("v1", "ConfigMap", Some(&ns), "cm");
        let label = LabelAction {
            target: cm.clone(),
            labels: BTreeMap::from([
                ("keep".to_owned(), Some("yes".to_owned())),
                ("drop".to_owned(), None),
                ("reflex.dev/quarantined".to_owned(), Some("true".to_owned())),
            ]),
        };
        let change = run(&executor, ActionKind::Label, &label)
            .await
            .expect("label");
        assert_eq!(
            change.detail,
            ChangeDetail::Metadata {
                set: BTreeMap::from([("reflex.dev/quarantined".to_owned(), "true".to_owned())]),
                removed: vec!["drop".to_owned()],
                previous: BTreeMap::from([
                    ("drop".to_owned(), Some("me".to_owned())),
                    ("reflex.dev/quarantined".to_owned(), None),
                ]),
            }
        );
        let again = run(&executor, ActionKind::Label, &label)
            .await
            .expect("label again");
        assert!(!again.changed, "{again:?}");

        let annotate = AnnotateAction {
            target: cm,
            annotations: BTreeMap::from([(
                "note".to_owned(),
                Some("restarted by reflex\nat noon".to_owned()),
            )]),
        };
        run(&executor, ActionKind::Annotate, &annotate)
            .await
            .expect("annotate");
        let fetched = configmaps.get("cm").await.expect("get ConfigMap");
        assert_eq!(
            fetched.metadata.labels,
            Some(BTreeMap::from([
                ("keep".to_owned(), "yes".to_owned()),
                ("reflex.dev/quarantined".to_owned(), "true".to_owned()),
            ]))
        );
        assert_eq!(
            fetched
                .metadata
                .annotations
                .and_then(|a| a.get("note").cloned())
                .as_deref(),
            Some("restarted by reflex\nat noon")
        );
    })
    .await;
}
