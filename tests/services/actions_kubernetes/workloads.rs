//! scale (subresource, clamping, conflicts), restart, set_image and rollback.

use super::*;

#[tokio::test]
async fn scale_goes_through_the_scale_subresource_and_clamps_to_min_and_max() {
    in_namespace("act-scale", |client, ns| async move {
        create_deployment(&client, &ns, "web", "registry.invalid/web:1").await;
        let executor = KubeExecutor::new(client.clone());

        let up = ScaleAction {
            max: Some(4),
            ..scale(&ns, "web", None, Some(ScaleChange::Add(5)))
        };
        let change = run(&executor, ActionKind::Scale, &up)
            .await
            .expect("scale up");
        assert!(change.changed);
        assert_eq!(
            change.detail,
            ChangeDetail::Scale { from: 1, to: 4 },
            "clamped to max 4"
        );
        assert_eq!(change.summary, "replicas 1 → 4");
        assert!(change.resource_version.is_some());
        let fetched = get_deployment(&client, &ns, "web").await;
        assert_eq!(fetched.spec.replicas, Some(4));

        let down = ScaleAction {
            min: Some(3),
            ..scale(&ns, "web", None, Some(ScaleChange::Multiply(0.25)))
        };
        let change = run(&executor, ActionKind::Scale, &down)
            .await
            .expect("scale down");
        assert_eq!(
            change.detail,
            ChangeDetail::Scale { from: 4, to: 3 },
            "clamped to min 3"
        );

        let same = scale(&ns, "web", Some(3), None);
        let change = run(&executor, ActionKind::Scale, &same)
            .await
            .expect("no-op scale");
        assert!(!change.changed, "already at 3 replicas: {change:?}");
        assert!(
            change.summary.starts_with("already at desired state"),
            "{}",
            change.summary
        );
    })
    .await;
}

#[tokio::test]
async fn concurrent_relative_scales_retry_their_conflicts_and_none_is_lost() {
    in_namespace("act-conflict", |client, ns| async move {
        create_deployment(&client, &ns, "web", "registry.invalid/web:1").await;
        // The mechanism the executor relies on: a scale write carrying a stale
        // resourceVersion is refused with 409 instead of overwriting a newer count.
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let read = deployments.get_scale("web").await.expect("get scale");
        let bump =
            json!({ "spec": { "replicas": 1 }, "metadata": { "annotations": { "x": "y" } } });
        deployments
            .patch(
                "web",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&bump),
            )
            .await
            .expect("an unrelated change moves the resourceVersion");
        let stale = json!({
            "metadata": { "resourceVersion": read.metadata.resource_version },
            "spec": { "replicas": 7 },
        });
        let refused = deployments
            .patch_scale(
                "web",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&stale),
            )
            .await
            .expect_err("a stale resourceVersion is a conflict");
        assert!(
            matches!(&refused, kube::Error::Api(status) if status.code == 409),
            "{refused}"
        );

        let executor = KubeExecutor::new(client.clone());
        let plus_one = scale(&ns, "web", None, Some(ScaleChange::Add(1)));
        // Four writers read the same resourceVersion; all but one get a 409 and must re-read.
        let (a, b, c, d) = tokio::join!(
            run(&executor, ActionKind::Scale, &plus_one),
            run(&executor, ActionKind::Scale, &plus_one),
            run(&executor, ActionKind::Scale, &plus_one),
            run(&executor, ActionKind::Scale, &plus_one),
        );
        let mut seen = Vec::new();
        for result in [a, b, c, d] {
            match result.expect("every concurrent scale succeeds").detail {
                ChangeDetail::Scale { from, to } => {
                    assert_eq!(to, from + 1);
                    seen.push(from);
                }
                other => panic!("unexpected detail {other:?}"),
            }
        }
        seen.sort_unstable();
        assert_eq!(
            seen,
            vec![1, 2, 3, 4],
            "each writer saw the previous one's result"
        );
        let fetched = get_deployment(&client, &ns, "web").await;
        assert_eq!(fetched.spec.replicas, Some(5));
    })
    .await;
}

#[tokio::test]
async fn restart_stamps_the_pod_template_and_concurrent_restarts_both_succeed() {
    in_namespace("act-restart", |client, ns| async move {
        create_deployment(&client, &ns, "web", "registry.invalid/web:1").await;
        let executor = KubeExecutor::new(client.clone());
        let params = RestartAction {
            target: deployment_target(&ns, "web"),
        };
        let change = run(&executor, ActionKind::Restart, &params)
            .await
            .expect("restart");
        let ChangeDetail::Restart {
            restarted_at,
            previous,
        } = &change.detail
        else {
            panic!("unexpected detail {:?}", change.detail);
        };
        assert_eq!(previous, &None, "first restart");
        let fetched = get_deployment(&client, &ns, "web").await;
        assert_eq!(
            template_annotation(&fetched, "kubectl.kubernetes.io/restartedAt").as_ref(),
            Some(restarted_at)
        );
        chrono::DateTime::parse_from_rfc3339(restarted_at).expect("an RFC 3339 timestamp");

        let (a, b) = tokio::join!(
            run(&executor, ActionKind::Restart, &params),
            run(&executor, ActionKind::Restart, &params),
        );
        let (a, b) = (
            a.expect("first concurrent restart"),
            b.expect("second concurrent restart"),
        );
        assert!(a.changed && b.changed);
        let latest = get_deployment(&client, &ns, "web").await;
        assert_eq!(
            latest.metadata.resource_version,
            std::cmp::max_by_key(a.resource_version, b.resource_version, |rv| {
                rv.as_deref().and_then(|v| v.parse::<u64>().ok())
            }),
            "the last write is what the Deployment shows"
        );
    })
    .await;
}

#[tokio::test]
async fn set_image_changes_one_container_and_waits_until_the_controller_observed_it() {
    in_namespace("act-image", |client, ns| async move {
        create_deployment(&client, &ns, "web", "registry.invalid/web:1").await;
        let executor = KubeExecutor::new(client.clone());
        let params = SetImageAction {
            target: deployment_target(&ns, "web"),
            container: None,
            image: "registry.invalid/web:2".into(),
            wait: true,
            timeout_ms: 30_000,
        };
        let change = run(&executor, ActionKind::SetImage, &params)
            .await
            .expect("set image");
        let ChangeDetail::SetImage {
            container,
            from,
            to,
            generation,
            observed_generation,
        } = &change.detail
        else {
            panic!("unexpected detail {:?}", change.detail);
        };
        assert_eq!(
            (container.as_str(), from.as_str(), to.as_str()),
            ("app", "registry.invalid/web:1", "registry.invalid/web:2")
        );
        let generation = generation.expect("a Deployment has a generation");
        assert!(
            observed_generation.is_some_and(|o| o >= generation),
            "waited for the rollout to be observed: {change:?}"
        );
        let fetched = get_deployment(&client, &ns, "web").await;
        assert_eq!(template_image(&fetched), "registry.invalid/web:2");

        let again = run(&executor, ActionKind::SetImage, &params)
            .await
            .expect("same image");
        assert!(!again.changed, "{again:?}");

        let wrong = SetImageAction {
            container: Some("sidecar".into()),
            wait: false,
            ..params.clone()
        };
        let err = run(&executor, ActionKind::SetImage, &wrong)
            .await
            .expect_err("no such container");
        assert!(
            err.to_string()
                .contains("no container `sidecar` (containers: app)"),
            "{err}"
        );
        assert!(!err.retryable());
    })
    .await;
}

/// Waits for the ReplicaSet of `revision` and for the Deployment to report that revision.
async fn wait_for_revision(client: &kube::Client, ns: &str, name: &str, revision: &str) {
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    support::eventually(
        &format!("revision {revision} of Deployment {name} (is kube-controller-manager running?)"),
        CONTROLLER_WAIT,
        || {
            let (replica_sets, deployments) = (replica_sets.clone(), deployments.clone());
            async move {
                let rev_of = |meta: &kube::api::ObjectMeta| {
                    meta.annotations
                        .as_ref()
                        .and_then(|a| a.get("deployment.kubernetes.io/revision").cloned())
                };
                let deployment = deployments.get(name).await.ok()?;
                let listed = replica_sets.list(&ListParams::default()).await.ok()?;
                let has_rs = listed
                    .items
                    .iter()
                    .any(|rs| rev_of(&rs.metadata).as_deref() == Some(revision));
                (has_rs && rev_of(&deployment.metadata).as_deref() == Some(revision)).then_some(())
            }
        },
    )
    .await;
}

#[tokio::test]
async fn rollback_restores_the_pod_template_of_the_previous_replica_set_revision() {
    in_namespace("act-rollback", |client, ns| async move {
        create_deployment(&client, &ns, "web", "registry.invalid/web:1").await;
        wait_for_revision(&client, &ns, "web", "1").await;
        let executor = KubeExecutor::new(client.clone());
        let rollback = RollbackAction {
            target: deployment_target(&ns, "web"),
            to_revision: None,
        };
        let err = run(&executor, ActionKind::Rollback, &rollback)
            .await
            .expect_err("nothing to roll back to yet");
        assert!(
            err.to_string().contains("there is no previous revision"),
            "{err}"
        );

        let image = SetImageAction {
            target: deployment_target(&ns, "web"),
            container: Some("app".into()),
            image: "registry.invalid/web:2".into(),
            wait: false,
            timeout_ms: 0,
        };
        run(&executor, ActionKind::SetImage, &image)
            .await
            .expect("set image");
        wait_for_revision(&client, &ns, "web", "2").await;

        let change = run(&executor, ActionKind::Rollback, &rollback)
            .await
            .expect("rollback");
        assert_eq!(
            change.detail,
            ChangeDetail::Rollback {
                from_revision: Some(2),
                to_revision: 1,
                images: vec!["registry.invalid/web:1".into()],
            }
        );
        let fetched = get_deployment(&client, &ns, "web").await;
        assert_eq!(template_image(&fetched), "registry.invalid/web:1");
        let labels = fetched
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        assert!(!labels.contains_key("pod-template-hash"), "{labels:?}");
        // The controller re-labels revision 1's ReplicaSet as revision 3.
        wait_for_revision(&client, &ns, "web", "3").await;

        let to_two = RollbackAction {
            to_revision: Some(2),
            ..rollback.clone()
        };
        let change = run(&executor, ActionKind::Rollback, &to_two)
            .await
            .expect("rollback to 2");
        assert!(change.changed);
        let fetched = get_deployment(&client, &ns, "web").await;
        assert_eq!(template_image(&fetched), "registry.invalid/web:2");

        let missing = RollbackAction {
            to_revision: Some(9),
            ..rollback
        };
        let err = run(&executor, ActionKind::Rollback, &missing)
            .await
            .expect_err("no revision 9");
        assert!(
            err.to_string().contains("revision 9 does not exist"),
            "{err}"
        );
        assert!(!err.retryable());
    })
    .await;
}

/// Waits until `count` ControllerRevisions exist in the namespace of `api`.
async fn wait_for_controller_revisions(api: &Api<ControllerRevision>, count: usize) {
    support::eventually(
        &format!("{count} ControllerRevision(s) (is kube-controller-manager running?)"),
        CONTROLLER_WAIT,
        || {
            let api = api.clone();
            async move {
                let listed = api.list(&ListParams::default()).await.ok()?;
                (listed.items.len() >= count).then_some(())
            }
        },
    )
    .await;
}

#[tokio::test]
async fn rollback_of_a_stateful_set_restores_the_previous_controller_revision() {
    in_namespace("act-sts", |client, ns| async move {
        let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
        let manifest = json!({
            "metadata": { "name": "db" },
            "spec": {
                "serviceName": "db",
                "replicas": 0,
                "selector": { "matchLabels": { "app": "db" } },
                "template": {
                    "metadata": { "labels": { "app": "db" } },
                    "spec": { "containers": [{ "name": "db", "image": "registry.invalid/db:1" }] }
                }
            }
        });
        sets.create(
            &PostParams::default(),
            &serde_json::from_value(manifest).expect("valid StatefulSet"),
        )
        .await
        .expect("create StatefulSet");
        let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
        wait_for_controller_revisions(&revisions, 1).await;
        let executor = KubeExecutor::new(client.clone());
        let db = target("apps/v1", "StatefulSet", Some(&ns), "db");
        let image = SetImageAction {
            target: db.clone(),
            container: None,
            image: "registry.invalid/db:2".into(),
            wait: false,
            timeout_ms: 0,
        };
        run(&executor, ActionKind::SetImage, &image)
            .await
            .expect("set image");
        wait_for_controller_revisions(&revisions, 2).await;

        let rollback = RollbackAction {
            target: db,
            to_revision: None,
        };
        let change = run(&executor, ActionKind::Rollback, &rollback)
            .await
            .expect("rollback");
        assert_eq!(
            change.detail,
            ChangeDetail::Rollback {
                from_revision: Some(2),
                to_revision: 1,
                images: vec!["registry.invalid/db:1".into()],
            }
        );
        let fetched = sets.get("db").await.expect("get StatefulSet");
        let image = fetched
            .spec
            .template
            .spec
            .and_then(|s| s.containers[0].image.clone());
        assert_eq!(image.as_deref(), Some("registry.invalid/db:1"));
    })
    .await;
}
