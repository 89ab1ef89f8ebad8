//! Unit tests of the RBAC derivation.
use super::*;

#[test]
fn plurals_follow_the_table_then_english_rules() {
    assert_eq!(plural("Deployment"), "deployments");
    assert_eq!(plural("Ingress"), "ingresses");
    assert_eq!(plural("Endpoints"), "endpoints");
    assert_eq!(plural("NetworkPolicy"), "networkpolicies");
    assert_eq!(plural("Rollout"), "rollouts");
    assert_eq!(plural("Gateway"), "gateways");
    assert_eq!(plural("Mailbox"), "mailboxes");
    assert_eq!(plural("Policy"), "policies");
}

#[test]
fn rollback_reads_the_history_where_each_kind_keeps_it() {
    let ns = Scope::Namespace("shop".into());
    let resources = |kind: &str| -> Vec<(String, &'static str)> {
        action_grants(ActionKind::Rollback, "apps/v1", kind, ns.clone())
            .into_iter()
            .map(|g| (g.resource, g.verb))
            .collect()
    };
    assert_eq!(
        resources("Deployment"),
        vec![
            ("deployments".to_owned(), "get"),
            ("deployments".to_owned(), "patch"),
            ("replicasets".to_owned(), "list"),
            ("events".to_owned(), "create"),
        ]
    );
    assert!(resources("StatefulSet").contains(&("controllerrevisions".to_owned(), "list")));
    assert!(resources("DaemonSet").contains(&("controllerrevisions".to_owned(), "list")));
}

/// The grants of one rules file, as `(namespace or "", group, resource, verb)`.
fn grants_of(rules: &str) -> Vec<(String, String, String, &'static str)> {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("r.yaml"), rules).expect("write");
    grants(dir.path())
        .expect("valid rules")
        .into_iter()
        .map(|g| {
            let scope = match g.scope {
                Scope::Cluster => String::new(),
                Scope::Namespace(ns) => ns,
                Scope::AnyNamespace => "*".to_owned(),
            };
            (scope, g.group, g.resource, g.verb)
        })
        .collect()
}

fn g(
    scope: &str,
    group: &str,
    resource: &str,
    verb: &'static str,
) -> (String, String, String, &'static str) {
    (scope.into(), group.into(), resource.into(), verb)
}

#[test]
fn escalation_steps_and_verify_checks_need_their_verbs_too() {
    let rules = r#"
rules:
  - name: closed-loop
    select: {formats: [alertmanager]}
    actions:
      - scale: {target: {namespace: shop, name: web}, replicas: 5}
    verify:
      within: 10m
      kubernetes: {condition: available}
    escalate:
      - actions:
          - rollback: {target: {namespace: shop, name: web}}
        verify:
          within: 5m
          kubernetes:
            target: {kind: StatefulSet, namespace: db, name: primary}
            condition: ready
      - actions:
          - cordon: {node: "{{ event.labels.node }}"}
      - actions:
          - webhook: {url: "https://pager.example/page"}
    undo: {on_resolve: true}
"#;
    assert_eq!(
        grants_of(rules),
        vec![
            g("", "", "nodes", "get"),
            g("", "", "nodes", "patch"),
            g("shop", "apps", "deployments", "get"),
            g("shop", "apps", "deployments", "patch"),
            g("shop", "apps", "deployments/scale", "get"),
            g("shop", "apps", "deployments/scale", "patch"),
            g("shop", "apps", "replicasets", "list"),
            // The step-1 check reads its own target.
            g("db", "apps", "statefulsets", "get"),
            // The Events about the actions: the cordoned Node's in `default`.
            g("default", "events.k8s.io", "events", "create"),
            g("shop", "events.k8s.io", "events", "create"),
        ]
    );
    // Without the rollback step, the step-0 check alone reads the scaled Deployment: `get`
    // on the object, which the scale subresource's grant does not give.
    // Undoing a scale re-reads the Deployment before reverting through the subresource.
    let undone = r#"
rules:
  - name: scale-and-undo
    select: {formats: [alertmanager]}
    actions:
      - scale: {target: {namespace: shop, name: web}, replicas: 5}
    undo: {on_resolve: true}
"#;
    assert!(
        grants_of(undone).contains(&g("shop", "apps", "deployments", "get")),
        "{:?}",
        grants_of(undone)
    );
    let scale_only = r#"
rules:
  - name: scale-and-check
    actions:
      - scale: {target: {namespace: shop, name: web}, replicas: 5}
    verify:
      within: 10m
      kubernetes: {condition: available}
"#;
    assert_eq!(
        grants_of(scale_only),
        vec![
            g("shop", "apps", "deployments", "get"),
            g("shop", "apps", "deployments/scale", "get"),
            g("shop", "apps", "deployments/scale", "patch"),
            g("shop", "events.k8s.io", "events", "create"),
        ]
    );
}

#[test]
fn verbs_of_one_resource_merge_and_resources_with_equal_verbs_share_a_rule() {
    let scope = Scope::AnyNamespace;
    let mut grants = BTreeSet::new();
    grants.extend(action_grants(
        ActionKind::Restart,
        "apps/v1",
        "Deployment",
        scope.clone(),
    ));
    grants.extend(action_grants(
        ActionKind::Scale,
        "apps/v1",
        "StatefulSet",
        scope.clone(),
    ));
    grants.extend(action_grants(
        ActionKind::Patch,
        "apps/v1",
        "Deployment",
        scope,
    ));
    let rules = policy_rules(&grants);
    assert_eq!(
        rules,
        vec![
            PolicyRule {
                api_groups: vec!["apps".into()],
                resources: vec!["deployments".into(), "statefulsets/scale".into()],
                verbs: vec!["get".into(), "patch".into()],
            },
            PolicyRule {
                api_groups: vec!["events.k8s.io".into()],
                resources: vec!["events".into()],
                verbs: vec!["create".into()],
            },
        ]
    );
}

#[test]
fn every_kubernetes_action_may_create_its_event_where_its_object_lives() {
    let events = |kind: ActionKind, api_version: &str, object: &str, scope: Scope| {
        action_grants(kind, api_version, object, scope)
            .into_iter()
            .filter(|g| g.group == "events.k8s.io")
            .map(|g| (g.resource, g.verb, g.scope))
            .collect::<Vec<_>>()
    };
    let shop = Scope::Namespace("shop".into());
    for kind in ActionKind::ALL.into_iter().filter(|k| k.is_kubernetes()) {
        let (api_version, object, scope) = match kind {
            ActionKind::Cordon | ActionKind::Uncordon => ("v1", "Node", Scope::Cluster),
            _ => ("apps/v1", "Deployment", shop.clone()),
        };
        let expected = match &scope {
            // Where kube's recorder puts the Events of cluster-scoped objects.
            Scope::Cluster => Scope::Namespace("default".into()),
            other => other.clone(),
        };
        assert_eq!(
            events(kind, api_version, object, scope),
            vec![("events".to_owned(), "create", expected)],
            "{kind:?}"
        );
    }
    assert_eq!(
        events(
            ActionKind::Restart,
            "apps/v1",
            "Deployment",
            Scope::AnyNamespace
        ),
        vec![("events".to_owned(), "create", Scope::AnyNamespace)]
    );
    assert!(events(ActionKind::Webhook, "v1", "x", Scope::Cluster).is_empty());
}
