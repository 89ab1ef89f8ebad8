//! Kubernetes Events on the objects actions change, as `kubectl describe` lists them: core v1
//! Events selected by the involved object's kind, name, namespace and UID. Actions go through
//! `Executors::execute`, where the pipeline runs them, so each test sees what `reflex run` does.

use super::objects::create_pod;
use super::*;

use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use reflex::actions::kubernetes::events::EventPublisher;
use reflex::actions::kubernetes::{UndoPlan, Undone};
use reflex::actions::{Execution, Executors};
use reflex::rules::PlannedAction;

/// The reporting instance the tests' Events carry (a pod name in a cluster).
const INSTANCE: &str = "reflex-test-0";

fn executors(client: kube::Client) -> Executors {
    Executors {
        kubernetes: Some(
            KubeExecutor::new(client.clone())
                .with_events(EventPublisher::new(client, Some(INSTANCE.to_owned()))),
        ),
        ..Executors::default()
    }
}

/// A planned action of rule `rule`, triggered by a fresh event id.
fn planned<P: serde::Serialize>(rule: &str, kind: ActionKind, params: &P) -> PlannedAction {
    let json = serde_json::to_value(params).expect("parameters encode");
    let event_id = support::unique_name("fp/2026-01-02T03:04:05Z/firing");
    PlannedAction {
        rule: rule.to_owned(),
        action_index: 0,
        action: Action::from_parts(kind, json).expect("parameters fit"),
        idempotency_key: reflex::rules::engine::idempotency_key(&event_id, rule, 0),
        event_id,
        dry_run: false,
        group_key: None,
        remediation: None,
    }
}

/// Reflex's Events among those `kubectl describe` shows for an object (the selector kubectl
/// builds from it; the controllers add their own, e.g. `ScalingReplicaSet`).
async fn described(
    client: &kube::Client,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    uid: &str,
) -> Vec<CoreEvent> {
    let events: Api<CoreEvent> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        // Events of cluster-scoped objects may be in any namespace: kubectl lists them all.
        None => Api::all(client.clone()),
    };
    let selector = format!(
        "involvedObject.kind={kind},involvedObject.name={name},involvedObject.namespace={},\
         involvedObject.uid={uid}",
        namespace.unwrap_or_default()
    );
    events
        .list(&ListParams::default().fields(&selector))
        .await
        .expect("list Events")
        .items
        .into_iter()
        .filter(|e| e.reporting_component.as_deref() == Some("reflex"))
        .collect()
}

/// The one Event with `reason` among `events`, failing with all of them otherwise.
fn the_event<'a>(events: &'a [CoreEvent], reason: &str) -> &'a CoreEvent {
    let found: Vec<&CoreEvent> = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect();
    assert_eq!(found.len(), 1, "one `{reason}` Event: {events:#?}");
    found[0]
}

/// The note names the rule, the trigger and the outcome, and says how to list it.
fn assert_leads_to_history(event: &CoreEvent, action: &PlannedAction) {
    let message = event.message.as_deref().unwrap_or_default();
    for part in [
        format!("rule \"{}\"", action.rule),
        format!("(event {})", action.event_id),
        format!("outcome {}", action.idempotency_key),
        format!("reflex history --rule {}", action.rule),
    ] {
        assert!(message.contains(&part), "no `{part}` in {message:?}");
    }
    assert_eq!(event.reporting_component.as_deref(), Some("reflex"));
    assert_eq!(event.reporting_instance.as_deref(), Some(INSTANCE));
}

#[tokio::test]
async fn a_restart_and_a_scale_each_leave_a_normal_event_on_the_deployment() {
    in_namespace("act-events", |client, ns| async move {
        create_deployment(&client, &ns, "web", "registry.invalid/web:1").await;
        let uid = get_deployment(&client, &ns, "web")
            .await
            .metadata
            .uid
            .expect("a UID");
        let executors = executors(client.clone());

        let restart = planned(
            "crashloop-restart",
            ActionKind::Restart,
            &RestartAction {
                target: deployment_target(&ns, "web"),
            },
        );
        let done = executors.execute(&restart).await;
        assert!(matches!(done, Execution::Succeeded(_)), "{done:?}");
        let scale_up = planned(
            "scale-on-latency",
            ActionKind::Scale,
            &scale(&ns, "web", Some(3), None),
        );
        let done = executors.execute(&scale_up).await;
        assert!(matches!(done, Execution::Succeeded(_)), "{done:?}");
        // Already at 3: nothing changed, so no Event says it did.
        let again = planned(
            "scale-on-latency",
            ActionKind::Scale,
            &scale(&ns, "web", Some(3), None),
        );
        executors.execute(&again).await;

        let events = described(&client, "Deployment", Some(&ns), "web", &uid).await;
        assert_eq!(events.len(), 2, "{events:#?}");
        let restarted = the_event(&events, "ReflexRestarted");
        assert_eq!(restarted.type_.as_deref(), Some("Normal"));
        assert_leads_to_history(restarted, &restart);
        let scaled = the_event(&events, "ReflexScaled");
        assert_eq!(scaled.type_.as_deref(), Some("Normal"));
        assert_leads_to_history(scaled, &scale_up);
        let message = scaled.message.as_deref().unwrap_or_default();
        assert!(message.contains("replicas 1 → 3"), "{message}");
    })
    .await;
}

#[tokio::test]
async fn a_cordoned_node_shows_its_event_to_kubectl_describe_node() {
    with_node(|client, node| async move {
        let uid = Api::<Node>::all(client.clone())
            .get(&node)
            .await
            .expect("get Node")
            .metadata
            .uid
            .expect("a UID");
        let cordon = planned(
            "drain-bad-node",
            ActionKind::Cordon,
            &NodeAction { node: node.clone() },
        );
        let done = executors(client.clone()).execute(&cordon).await;
        assert!(matches!(done, Execution::Succeeded(_)), "{done:?}");

        let events = described(&client, "Node", None, &node, &uid).await;
        let cordoned = the_event(&events, "ReflexCordoned");
        assert_eq!(cordoned.type_.as_deref(), Some("Normal"));
        assert_leads_to_history(cordoned, &cordon);
        // Where kube's recorder puts the Events of cluster-scoped objects (and `reflex rbac`
        // grants them).
        assert_eq!(cordoned.metadata.namespace.as_deref(), Some("default"));
        Api::<CoreEvent>::namespaced(client.clone(), "default")
            .delete(
                cordoned.metadata.name.as_deref().unwrap_or_default(),
                &KubeDeleteParams::default(),
            )
            .await
            .expect("delete the Event");
    })
    .await;
}

#[tokio::test]
async fn a_failed_action_leaves_a_warning_event_saying_why() {
    in_namespace("act-events-fail", |client, ns| async move {
        create_pod(&client, &ns, "bare", None).await;
        let uid = Api::<Pod>::namespaced(client.clone(), &ns)
            .get("bare")
            .await
            .expect("get Pod")
            .metadata
            .uid
            .expect("a UID");
        let delete = planned(
            "evict-stuck-pods",
            ActionKind::Delete,
            &DeleteAction {
                target: target("v1", "Pod", Some(&ns), "bare"),
                allow_bare_pods: false,
                grace_period_seconds: None,
                propagation_policy: None,
            },
        );
        let done = executors(client.clone()).execute(&delete).await;
        assert!(matches!(done, Execution::Failed { .. }), "{done:?}");

        let events = described(&client, "Pod", Some(&ns), "bare", &uid).await;
        let failed = the_event(&events, "ReflexDeleteFailed");
        assert_eq!(failed.type_.as_deref(), Some("Warning"));
        assert_leads_to_history(failed, &delete);
        let message = failed.message.as_deref().unwrap_or_default();
        assert!(message.contains("failed: refused to delete"), "{message}");
    })
    .await;
}

#[tokio::test]
async fn an_undo_leaves_a_reflex_undone_event() {
    in_namespace("act-events-undo", |client, ns| async move {
        create_deployment(&client, &ns, "web", "registry.invalid/web:1").await;
        let executor = KubeExecutor::new(client.clone())
            .with_events(EventPublisher::new(client.clone(), None));
        let params = scale(&ns, "web", Some(4), None);
        let change = run(&executor, ActionKind::Scale, &params)
            .await
            .expect("scale");
        let action = Action::from_parts(
            ActionKind::Scale,
            serde_json::to_value(&params).expect("encode"),
        )
        .expect("fits");
        let result = serde_json::to_value(&change).expect("encode");
        let plan = UndoPlan::from_execution(&action, &result).expect("a scale can be undone");
        let undone = executor.undo(&plan).await;
        assert!(matches!(undone, Ok(Undone::Restored(_))), "{undone:?}");
        let cause = reflex::actions::kubernetes::events::Cause {
            rule: "scale-and-undo",
            trigger: reflex::actions::kubernetes::events::Trigger::Remediation("rem-1"),
            outcome: "rem-1.undo.0",
        };
        executor.report_undo(&cause, &plan, undone.as_ref()).await;

        let uid = change.uid.clone().expect("the scale returned the UID");
        let events = described(&client, "Deployment", Some(&ns), "web", &uid).await;
        let event = the_event(&events, "ReflexUndone");
        let message = event.message.as_deref().unwrap_or_default();
        assert!(message.contains("back to 1 replicas"), "{message}");
        assert!(
            message.ends_with("outcome rem-1.undo.0: reflex history --remediation rem-1"),
            "{message}"
        );
    })
    .await;
}

#[tokio::test]
async fn an_event_that_cannot_be_published_fails_nothing_and_is_counted() {
    in_namespace("act-events-denied", |admin, ns| async move {
        create_deployment(&admin, &ns, "web", "registry.invalid/web:1").await;
        // An identity that may restart the Deployment and nothing else: no Events.
        let user = support::unique_name("no-events");
        let role = json!({
            "metadata": { "name": "restarter" },
            "rules": [{ "apiGroups": ["apps"], "resources": ["deployments"],
                        "verbs": ["get", "patch"] }],
        });
        Api::<Role>::namespaced(admin.clone(), &ns)
            .create(
                &PostParams::default(),
                &serde_json::from_value(role).expect("Role"),
            )
            .await
            .expect("create Role");
        let binding = json!({
            "metadata": { "name": "restarter" },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                         "name": "restarter" },
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                           "name": user }],
        });
        Api::<RoleBinding>::namespaced(admin.clone(), &ns)
            .create(
                &PostParams::default(),
                &serde_json::from_value(binding).expect("binding"),
            )
            .await
            .expect("create RoleBinding");
        let failed = || reflex::metrics::global().kubernetes_events_failed.get();
        let before = failed();

        let restart = planned(
            "crashloop-restart",
            ActionKind::Restart,
            &RestartAction {
                target: deployment_target(&ns, "web"),
            },
        );
        let done = executors(support::impersonating(&user).await)
            .execute(&restart)
            .await;
        assert!(matches!(done, Execution::Succeeded(_)), "{done:?}");
        let restarted = get_deployment(&admin, &ns, "web").await;
        assert!(template_annotation(&restarted, "kubectl.kubernetes.io/restartedAt").is_some());
        assert!(failed() > before, "the refused Event is counted");
        let uid = restarted.metadata.uid.expect("a UID");
        assert!(
            described(&admin, "Deployment", Some(&ns), "web", &uid)
                .await
                .is_empty()
        );
    })
    .await;
}
