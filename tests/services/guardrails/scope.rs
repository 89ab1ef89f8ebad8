//! Where Kubernetes actions may act, against the real kube-apiserver: every action kind on a
//! namespaced target runs in an allowed namespace and is refused in kube-system; every kind
//! that can name a cluster-scoped object is refused without `actions.cluster_scoped.allow` and
//! runs with it; Namespace objects named by events are protected like their namespaces.

use std::sync::atomic::{AtomicI64, Ordering};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use reflex::actions::guard::config::{ClusterScopedLists, NamespaceLists};
use reflex::config::ActionsConfig;
use reflex::pipeline::Pipeline;
use reflex::store::{OutcomeStatus, Store};
use serde_json::{Value, json};

use super::fixtures::{Workload, executors, guarded};
use super::harness::*;
use super::support;

/// Bound on waiting for kube-controller-manager (a Deployment's first ReplicaSet) or for a new
/// CRD to be served: well under a second when idle, room for a loaded CI machine.
const CONTROLLER_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// One rule per action kind, each firing when the event's `do` names it; `spec` is the
/// action's YAML body (after `- <kind>:`), indented for the rule file.
fn rule_file(prefix: &str, actions: &[(&str, &str)]) -> String {
    let mut yaml = String::from("rules:\n");
    for (kind, spec) in actions {
        yaml.push_str(&format!(
            "  - name: {prefix}-{kind}\n    when: 'do == \"{kind}\"'\n    actions:\n      \
             - {kind}:\n{spec}"
        ));
    }
    yaml
}

/// A pipeline on its own SQLite store, and the next offset of the records it is given.
struct Driver {
    pipeline: Pipeline,
    kafka: Kafka,
    store: Store,
    _db: Db,
    offset: AtomicI64,
}

impl Driver {
    async fn new(client: &kube::Client, yaml: &str, actions: &ActionsConfig) -> Driver {
        let kafka = Kafka::new().await;
        let db = Db::sqlite().await;
        let store = db.store().await;
        let executors = executors(Some(client.clone()));
        let pipeline = guarded(&rules(yaml), &store, &kafka, executors, actions).await;
        Driver {
            pipeline,
            kafka,
            store,
            _db: db,
            offset: AtomicI64::new(0),
        }
    }

    /// Handles one event `{"do": kind, ...fields}` and returns the outcome row it produced for
    /// the rule `<prefix>-<kind>`.
    async fn fire(&self, prefix: &str, kind: &str, fields: Value) -> reflex::store::OutcomeRecord {
        let mut event = json!({ "do": kind });
        event
            .as_object_mut()
            .expect("object")
            .extend(fields.as_object().cloned().unwrap_or_default());
        let offset = self.offset.fetch_add(1, Ordering::Relaxed);
        let record = Record::json(&self.kafka.source, offset, &event.to_string());
        handle(&self.pipeline, &record).await.expect("handled");
        let rule = format!("{prefix}-{kind}");
        let found = rows(&self.store, &rule, None).await;
        found
            .into_iter()
            .max_by_key(|r| r.id)
            .unwrap_or_else(|| panic!("no outcome for {rule}"))
    }
}

/// Asserts `row` succeeded.
fn succeeded(kind: &str, row: &reflex::store::OutcomeRecord) {
    assert_eq!(row.status, OutcomeStatus::Succeeded, "{kind}: {row:?}");
}

/// Asserts `row` was refused by `policy`, with an error containing `needle`.
fn refused(kind: &str, row: &reflex::store::OutcomeRecord, policy: &str, needle: &str) {
    assert_eq!(
        row.status,
        OutcomeStatus::SuppressedByGuard,
        "{kind}: {row:?}"
    );
    assert_eq!(row.details["guard"]["guard"], policy, "{kind}: {row:?}");
    let error = row.error.as_deref().unwrap_or_default();
    assert!(error.contains(needle), "{kind}: {error}");
}

#[tokio::test]
async fn every_action_kind_on_a_namespaced_target_runs_in_an_allowed_namespace_not_in_kube_system()
{
    let workload = Workload::create("guard-scope").await;
    let client = workload.client.clone();
    let ns = workload.namespace.clone();
    // The restart below needs revision 1 to roll back to.
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    support::eventually(
        "the Deployment's first ReplicaSet (is kube-controller-manager running?)",
        CONTROLLER_WAIT,
        || {
            let replica_sets = replica_sets.clone();
            async move {
                let listed = replica_sets.list(&ListParams::default()).await.ok()?;
                (!listed.items.is_empty()).then_some(())
            }
        },
    )
    .await;
    let target = "          target: {namespace: \"{{ event.ns }}\", name: web}\n";
    let typed = |kind: &str, name: &str| {
        format!(
            "          target: {{kind: {kind}, namespace: \"{{{{ event.ns }}}}\", name: {name}}}\n"
        )
    };
    let actions = [
        ("scale", format!("{target}          replicas: 2\n")),
        ("restart", target.to_owned()),
        (
            "set_image",
            format!(
                "{target}          container: web\n          image: registry.example.org/web:2\n"
            ),
        ),
        ("rollback", format!("{target}          to_revision: 1\n")),
        (
            "patch",
            format!(
                "{}          patch: {{metadata: {{labels: {{patched: \"yes\"}}}}}}\n",
                typed("Deployment", "web")
            ),
        ),
        (
            "label",
            format!(
                "{}          labels: {{guard: \"yes\"}}\n",
                typed("Deployment", "web")
            ),
        ),
        (
            "annotate",
            format!(
                "{}          annotations: {{guard: \"yes\"}}\n",
                typed("Deployment", "web")
            ),
        ),
        (
            "create",
            "          namespace: \"{{ event.ns }}\"\n          manifest: {apiVersion: v1, kind: \
             ConfigMap, metadata: {name: made}, data: {a: b}}\n"
                .to_owned(),
        ),
        ("delete", typed("ConfigMap", "made")),
    ];
    let borrowed: Vec<(&str, &str)> = actions.iter().map(|(k, s)| (*k, s.as_str())).collect();
    let prefix = support::unique_name("ns");
    let config = ActionsConfig {
        namespaces: NamespaceLists {
            allow: vec!["guard-scope-*".to_owned()],
            deny: Vec::new(),
        },
        ..ActionsConfig::default()
    };
    let driver = Driver::new(&client, &rule_file(&prefix, &borrowed), &config).await;

    for (kind, _) in &borrowed {
        let row = driver
            .fire(&prefix, kind, json!({ "ns": "kube-system" }))
            .await;
        refused(
            kind,
            &row,
            "namespace",
            "namespace `kube-system` is not in actions.namespaces.allow",
        );
        let row = driver.fire(&prefix, kind, json!({ "ns": ns })).await;
        succeeded(kind, &row);
    }

    let deployment = Api::<Deployment>::namespaced(client.clone(), &ns)
        .get("web")
        .await
        .expect("get deployment");
    assert_eq!(deployment.spec.replicas, Some(2));
    let labels = deployment.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("patched").map(String::as_str), Some("yes"));
    assert_eq!(labels.get("guard").map(String::as_str), Some("yes"));
    let annotations = deployment.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get("guard").map(String::as_str), Some("yes"));
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    assert!(
        config_maps.get_opt("made").await.expect("get").is_none(),
        "created, then deleted"
    );
    workload.delete().await;
}

/// A cluster-scoped CRD `Gauge` with a scale subresource, in a group of its own; waits until
/// it is served. Returns (its API version, the CRD's name).
async fn install_gauge_crd(client: &kube::Client) -> (String, String) {
    let spec = json!({ "replicas": { "type": "integer" } });
    let (group, name) =
        support::install_scalable_crd(client, "Gauge", "Cluster", spec, CONTROLLER_WAIT).await;
    (format!("{group}/v1"), name)
}

fn object<T: serde::de::DeserializeOwned>(body: Value) -> T {
    serde_json::from_value(body).expect("valid object")
}

fn gauges(client: &kube::Client, api_version: &str) -> Api<DynamicObject> {
    let (group, version) = api_version.split_once('/').expect("group/version");
    let gvk = GroupVersionKind::gvk(group, version, "Gauge");
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, "gauges"),
    )
}

#[tokio::test]
async fn every_action_kind_on_a_cluster_scoped_object_is_refused_unless_its_kind_is_allowed() {
    support::install_crypto_provider();
    let client = support::kube_client(&support::kubeconfig()).await;
    let (api_version, crd) = install_gauge_crd(&client).await;
    let name = support::unique_name("guard-cluster");
    let nodes: Api<Node> = Api::all(client.clone());
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let post = PostParams::default();
    nodes
        .create(&post, &object(json!({"metadata": {"name": name}})))
        .await
        .expect("create Node");
    roles
        .create(
            &post,
            &object(json!({"metadata": {"name": name}, "rules": []})),
        )
        .await
        .expect("create ClusterRole");
    gauges(&client, &api_version)
        .create(
            &post,
            &object(json!({"apiVersion": api_version, "kind": "Gauge",
                           "metadata": {"name": name}, "spec": {"replicas": 1}})),
        )
        .await
        .expect("create Gauge");
    let rbac = "rbac.authorization.k8s.io/v1";

    let role = |extra: &str| {
        format!(
            "          target: {{api_version: {rbac}, kind: ClusterRole, name: \"{{{{ event.name }}}}{extra}\"}}\n"
        )
    };
    let node = "          target: {kind: Node, name: \"{{ event.name }}\"}\n";
    let actions = [
        (
            "scale",
            format!(
                "          target: {{api_version: {api_version}, kind: Gauge, name: \"{{{{ event.name }}}}\"}}\n          replicas: 3\n"
            ),
        ),
        (
            "patch",
            format!(
                "{}          patch: {{metadata: {{labels: {{patched: \"yes\"}}}}}}\n",
                role("")
            ),
        ),
        (
            "label",
            format!("{node}          labels: {{guard: \"yes\"}}\n"),
        ),
        (
            "annotate",
            format!("{}          annotations: {{guard: \"yes\"}}\n", role("")),
        ),
        (
            "cordon",
            "          node: \"{{ event.name }}\"\n".to_owned(),
        ),
        (
            "uncordon",
            "          node: \"{{ event.name }}\"\n".to_owned(),
        ),
        (
            "create",
            format!(
                "          manifest: {{apiVersion: {rbac}, kind: ClusterRole, metadata: {{name: \"{{{{ event.name }}}}-made\"}}, rules: []}}\n"
            ),
        ),
        ("delete", role("-made")),
    ];
    let borrowed: Vec<(&str, &str)> = actions.iter().map(|(k, s)| (*k, s.as_str())).collect();
    let prefix = support::unique_name("cluster");
    let yaml = rule_file(&prefix, &borrowed);
    // restart, set_image and rollback only take namespaced workload kinds: a cluster-scoped
    // target cannot even be written.
    let target = "          target: {name: \"{{ event.name }}\"}\n";
    let with_image = format!("{target}          image: x\n");
    for (kind, spec) in [
        ("restart", target),
        ("set_image", &with_image),
        ("rollback", target),
    ] {
        let text = rule_file(&prefix, &[(kind, spec)]);
        let err = reflex::rules::load_sources(&[("r.yaml".into(), text)]).expect_err(kind);
        assert!(
            format!("{err:?}").contains("`target.namespace` is required"),
            "{kind}: {err:?}"
        );
    }

    // Without an allow list, nothing cluster-scoped is touched.
    let closed = Driver::new(&client, &yaml, &ActionsConfig::default()).await;
    for (kind, _) in &borrowed {
        let row = closed.fire(&prefix, kind, json!({ "name": name })).await;
        refused(kind, &row, "cluster_scoped", "actions.cluster_scoped.allow");
    }
    let untouched = nodes.get(&name).await.expect("node");
    assert!(
        !untouched
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key("guard")
    );
    assert_eq!(untouched.spec.and_then(|s| s.unschedulable), None);
    let role_before = roles.get(&name).await.expect("role");
    assert!(
        !role_before
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key("patched")
    );
    assert!(
        roles
            .get_opt(&format!("{name}-made"))
            .await
            .expect("get")
            .is_none()
    );
    let gauge = gauges(&client, &api_version)
        .get(&name)
        .await
        .expect("gauge");
    assert_eq!(gauge.data["spec"]["replicas"], 1);

    // With the kinds allowed, every action runs.
    let open = ActionsConfig {
        cluster_scoped: ClusterScopedLists {
            allow: vec![
                "Node".to_owned(),
                format!("{}/ClusterRole", "rbac.authorization.k8s.io"),
                "Gauge".to_owned(),
            ],
        },
        ..ActionsConfig::default()
    };
    let opened = Driver::new(&client, &yaml, &open).await;
    for (kind, _) in &borrowed {
        let row = opened.fire(&prefix, kind, json!({ "name": name })).await;
        succeeded(kind, &row);
        if *kind == "cordon" {
            let node = nodes.get(&name).await.expect("node");
            assert_eq!(node.spec.and_then(|s| s.unschedulable), Some(true));
        }
        if *kind == "create" {
            assert!(
                roles
                    .get_opt(&format!("{name}-made"))
                    .await
                    .expect("get")
                    .is_some()
            );
        }
    }
    let node = nodes.get(&name).await.expect("node");
    assert_eq!(
        node.metadata
            .labels
            .unwrap_or_default()
            .get("guard")
            .map(String::as_str),
        Some("yes")
    );
    assert_ne!(
        node.spec.and_then(|s| s.unschedulable),
        Some(true),
        "uncordoned"
    );
    let role = roles.get(&name).await.expect("role");
    assert_eq!(
        role.metadata
            .labels
            .unwrap_or_default()
            .get("patched")
            .map(String::as_str),
        Some("yes")
    );
    assert_eq!(
        role.metadata
            .annotations
            .unwrap_or_default()
            .get("guard")
            .map(String::as_str),
        Some("yes")
    );
    assert!(
        roles
            .get_opt(&format!("{name}-made"))
            .await
            .expect("get")
            .is_none(),
        "deleted"
    );
    let gauge = gauges(&client, &api_version)
        .get(&name)
        .await
        .expect("gauge");
    assert_eq!(gauge.data["spec"]["replicas"], 3);

    let delete = DeleteParams::default();
    nodes.delete(&name, &delete).await.expect("delete node");
    roles.delete(&name, &delete).await.expect("delete role");
    Api::<CustomResourceDefinition>::all(client.clone())
        .delete(&crd, &delete)
        .await
        .expect("delete CRD");
}

#[tokio::test]
async fn namespace_objects_named_by_events_are_protected_like_the_namespaces_themselves() {
    support::install_crypto_provider();
    let client = support::kube_client(&support::kubeconfig()).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let own = support::unique_name("team-own");
    let victim = support::unique_name("team-gone");
    for name in [&own, &victim] {
        namespaces
            .create(
                &PostParams::default(),
                &object(json!({"metadata": {"name": name}})),
            )
            .await
            .expect("create namespace");
    }
    let prefix = support::unique_name("nsobj");
    let spec = "          target: {kind: Namespace, name: \"{{ event.ns }}\"}\n";
    let yaml = rule_file(&prefix, &[("delete", spec)]);
    let team = |cluster_scoped: Vec<String>| ActionsConfig {
        namespaces: NamespaceLists {
            allow: vec!["team-*".to_owned()],
            deny: Vec::new(),
        },
        own_namespace: Some(own.clone()),
        cluster_scoped: ClusterScopedLists {
            allow: cluster_scoped,
        },
        ..ActionsConfig::default()
    };

    // Namespace objects are cluster-scoped: refused until the kind is allowed.
    let closed = Driver::new(&client, &yaml, &team(Vec::new())).await;
    let row = closed
        .fire(&prefix, "delete", json!({ "ns": victim }))
        .await;
    refused("delete", &row, "cluster_scoped", "Namespace");

    let driver = Driver::new(&client, &yaml, &team(vec!["Namespace".to_owned()])).await;
    for (ns, needle) in [
        (
            "kube-system",
            "namespace `kube-system` is not in actions.namespaces.allow",
        ),
        (own.as_str(), "is protected"),
        ("default", "is not in actions.namespaces.allow (`team-*`)"),
    ] {
        let row = driver.fire(&prefix, "delete", json!({ "ns": ns })).await;
        refused(ns, &row, "namespace", needle);
    }
    let row = driver
        .fire(&prefix, "delete", json!({ "ns": victim }))
        .await;
    succeeded("delete", &row);

    let own_ns = namespaces.get(&own).await.expect("own namespace");
    assert!(
        own_ns.metadata.deletion_timestamp.is_none(),
        "own namespace kept"
    );
    let gone = namespaces.get_opt(&victim).await.expect("get");
    assert!(
        gone.is_none_or(|n| n.metadata.deletion_timestamp.is_some()),
        "the allowed namespace is being deleted"
    );
    namespaces
        .delete(&own, &DeleteParams::default())
        .await
        .expect("delete own namespace");
}
