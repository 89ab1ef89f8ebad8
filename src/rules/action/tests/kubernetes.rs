//! Kubernetes action tests.

use serde_json::json;

use super::*;

#[test]
fn scale_renders_a_templated_absolute_count_as_an_integer() {
    let out = render(
        "actions:\n  - scale:\n      target: {namespace: \"{{ event.ns }}\", name: web}\n      replicas: \"{{ event.want }}\"\n      max: 10\n",
        json!({"ns": "shop", "want": "4"}),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({
            "target": {"api_version": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "web"},
            "replicas": 4, "change": null, "min": null, "max": 10
        })
    );
}

#[test]
fn scale_fails_when_replicas_renders_to_something_else_than_an_integer() {
    let err = render(
        "actions:\n  - scale:\n      target: {namespace: shop, name: web}\n      replicas: \"{{ event.want }}\"\n",
        json!({"want": "many"}),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("parameter `replicas`: rendered to `many`"),
        "{msg}"
    );
}

#[test]
fn scale_change_parses_additions_and_factors() {
    assert_eq!(ScaleChange::parse("+2"), Ok(ScaleChange::Add(2)));
    assert_eq!(ScaleChange::parse("-1"), Ok(ScaleChange::Add(-1)));
    assert_eq!(ScaleChange::parse("x2"), Ok(ScaleChange::Multiply(2.0)));
    assert_eq!(ScaleChange::parse(" *1.5 "), Ok(ScaleChange::Multiply(1.5)));
    assert!(ScaleChange::parse("2").unwrap_err().contains("+2"));
    assert!(ScaleChange::parse("x0").is_err());
    assert!(ScaleChange::parse("x1000").is_err());
    assert!(ScaleChange::parse("+1.5").is_err());
    assert!(ScaleChange::parse("double").is_err());
}

#[test]
fn scale_change_renders_and_desired_applies_it_within_the_clamps() {
    let out = render(
        "actions:\n  - scale:\n      target: {kind: StatefulSet, namespace: db, name: pg}\n      change: x1.5\n      min: 2\n      max: 8\n",
        json!({}),
    )
    .unwrap();
    assert_eq!(out["change"], json!({"multiply": 1.5}));
    assert_eq!(out["target"]["kind"], json!("StatefulSet"));
    let params: ScaleAction = serde_json::from_value(out).unwrap();
    assert_eq!(params.desired(3), 5, "3 x 1.5 rounds up");
    assert_eq!(params.desired(0), 2, "clamped to min");
    assert_eq!(params.desired(7), 8, "clamped to max");
    let minus = ScaleAction {
        change: Some(ScaleChange::Add(-5)),
        min: None,
        max: None,
        ..params
    };
    assert_eq!(minus.desired(3), 0, "never negative");
}

#[test]
fn scale_needs_exactly_one_of_replicas_and_change() {
    let diags = diagnostics("actions:\n  - scale: {target: {namespace: a, name: b}}\n");
    find(&diags, "needs `replicas` (absolute) or `change` (relative)");
    let diags = diagnostics(
        "actions:\n  - scale: {target: {namespace: a, name: b}, replicas: 1, change: \"+1\"}\n",
    );
    find(&diags, "either `replicas` or `change`");
}

#[test]
fn scale_constant_replicas_are_checked_at_load() {
    let diags = diagnostics(
        "actions:\n  - scale: {target: {namespace: a, name: b}, replicas: 20, max: 10}\n",
    );
    find(&diags, "outside `min`/`max`");
    let diags =
        diagnostics("actions:\n  - scale: {target: {namespace: a, name: b}, replicas: 99999}\n");
    find(&diags, "more than 10000");
}

#[test]
fn target_names_rendered_from_events_must_be_valid_kubernetes_names() {
    let err = render(
        "actions:\n  - restart: {target: {namespace: shop, name: \"{{ event.name }}\"}}\n",
        json!({"name": "../kube-system/x"}),
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with("parameter `target.name`"),
        "{err}"
    );
    let ok = render(
        "actions:\n  - restart: {target: {namespace: shop, name: \"{{ event.name | dns_label }}\"}}\n",
        json!({"name": "Web_API"}),
    )
    .unwrap();
    assert_eq!(ok["target"]["name"], json!("web-api"));
}

#[test]
fn namespaces_are_required_for_namespaced_kinds_and_forbidden_for_cluster_ones() {
    let diags = diagnostics("actions:\n  - delete: {target: {kind: Pod, name: p}}\n");
    find(&diags, "`target.namespace` is required");
    let diags = diagnostics(
        "actions:\n  - label: {target: {kind: Node, namespace: x, name: n}, labels: {a: b}}\n",
    );
    find(&diags, "cluster-scoped");
}

#[test]
fn kinds_and_api_versions_must_be_literal_and_custom_kinds_need_an_api_version() {
    let diags = diagnostics(
        "actions:\n  - patch: {target: {kind: \"{{ event.kind }}\", namespace: a, name: b}, patch: {a: 1}}\n",
    );
    find(&diags, "must be written literally");
    let diags = diagnostics(
        "actions:\n  - patch: {target: {kind: Rollout, namespace: a, name: b}, patch: {a: 1}}\n",
    );
    find(
        &diags,
        "`target.api_version` is required for kind `Rollout`",
    );
    let ok = compile(
        "actions:\n  - patch: {target: {api_version: argoproj.io/v1alpha1, kind: Rollout, namespace: a, name: b}, patch: {a: 1}}\n",
    );
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn restart_rejects_kinds_without_a_pod_template_and_suggests_valid_ones() {
    let diags =
        diagnostics("actions:\n  - restart: {target: {kind: Service, namespace: a, name: b}}\n");
    let d = find(&diags, "does not work on kind `Service`");
    assert!(d.hint.as_deref().unwrap_or_default().contains("DaemonSet"));
    let diags =
        diagnostics("actions:\n  - restart: {target: {kind: Deploymnet, namespace: a, name: b}}\n");
    let d = find(&diags, "does not work on kind `Deploymnet`");
    assert!(
        d.hint
            .as_deref()
            .unwrap_or_default()
            .contains("did you mean `Deployment`")
    );
}

#[test]
fn set_image_renders_image_and_rollout_wait() {
    let out = render(
        "actions:\n  - set_image:\n      target: {namespace: shop, name: web}\n      container: app\n      image: \"registry.example.com/web:{{ event.version }}\"\n      wait: true\n      timeout: 2m\n",
        json!({"version": "1.2.3"}),
    )
    .unwrap();
    assert_eq!(out["image"], json!("registry.example.com/web:1.2.3"));
    assert_eq!(out["container"], json!("app"));
    assert_eq!(
        (out["wait"].clone(), out["timeout_ms"].clone()),
        (json!(true), json!(120_000))
    );
    let err = render(
        "actions:\n  - set_image: {target: {namespace: a, name: b}, image: \"web:{{ event.v }}\"}\n",
        json!({"v": "1 --privileged"}),
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("parameter `image`"), "{err}");
}

#[test]
fn set_image_timeout_without_wait_is_rejected() {
    let diags = diagnostics(
        "actions:\n  - set_image: {target: {namespace: a, name: b}, image: x, timeout: 1m}\n",
    );
    find(&diags, "only applies with `wait: true`");
    let diags = diagnostics(
        "actions:\n  - set_image: {target: {namespace: a, name: b}, image: x, wait: true, timeout: 2h}\n",
    );
    find(&diags, "at most 1h");
}

#[test]
fn rollback_renders_with_optional_revision() {
    let out = render(
        "actions:\n  - rollback: {target: {namespace: a, name: b}, to_revision: 4}\n",
        json!({}),
    )
    .unwrap();
    assert_eq!(out["to_revision"], json!(4));
    let out = render(
        "actions:\n  - rollback: {target: {namespace: a, name: b}}\n",
        json!({}),
    )
    .unwrap();
    assert_eq!(out["to_revision"], json!(null));
    let diags =
        diagnostics("actions:\n  - rollback: {target: {namespace: a, name: b}, to_revision: 0}\n");
    find(&diags, "starts at 1");
}

#[test]
fn merge_patch_renders_structurally_with_typed_leaves() {
    let out = render(
        "actions:\n  - patch:\n      target: {kind: Deployment, namespace: shop, name: web}\n      patch:\n        metadata:\n          annotations:\n            reflex/reason: \"{{ event.summary }}\"\n        spec:\n          replicas: \"{{ event.n }}\"\n",
        json!({"summary": "quote \" and\nnewline {}", "n": 2}),
    )
    .unwrap();
    assert_eq!(out["patch_type"], json!("merge"));
    assert_eq!(
        out["patch"]["metadata"]["annotations"]["reflex/reason"],
        json!("quote \" and\nnewline {}")
    );
    assert_eq!(out["patch"]["spec"]["replicas"], json!(2));
}

#[test]
fn json_patch_must_be_a_list_of_well_formed_operations() {
    let diags = diagnostics(
        "actions:\n  - patch:\n      target: {kind: Deployment, namespace: a, name: b}\n      patch_type: json\n      patch: {spec: {replicas: 1}}\n",
    );
    let d = find(&diags, "a `json` patch is a list of operations");
    assert_eq!(d.line, 5);
    let diags = diagnostics(
        "actions:\n  - patch:\n      target: {kind: Deployment, namespace: a, name: b}\n      patch_type: json\n      patch:\n        - {op: replace, path: spec/replicas, value: 1}\n        - {op: add, path: /x}\n        - {op: frobnicate, path: /y}\n",
    );
    find(&diags, "must start with `/`");
    find(&diags, "`add` needs `value`");
    find(&diags, "needs a literal `op`");
    let out = render(
        "actions:\n  - patch:\n      target: {kind: Deployment, namespace: a, name: b}\n      patch_type: json\n      patch:\n        - {op: replace, path: /spec/replicas, value: \"{{ event.n }}\"}\n",
        json!({"n": 5}),
    )
    .unwrap();
    assert_eq!(
        out["patch"],
        json!([{"op": "replace", "path": "/spec/replicas", "value": 5}])
    );
}

#[test]
fn merge_patch_must_be_a_mapping_and_strategic_needs_a_builtin_kind() {
    let diags = diagnostics(
        "actions:\n  - patch: {target: {kind: Deployment, namespace: a, name: b}, patch: [1]}\n",
    );
    let d = find(&diags, "a `merge` patch is a mapping");
    assert!(
        d.hint
            .as_deref()
            .unwrap_or_default()
            .contains("patch_type: json")
    );
    let diags = diagnostics(
        "actions:\n  - patch: {target: {api_version: x.io/v1, kind: Thing, namespace: a, name: b}, patch_type: strategic, patch: {a: 1}}\n",
    );
    find(
        &diags,
        "strategic merge patches only work on built-in kinds",
    );
}

#[test]
fn templates_inside_free_form_values_are_located_at_their_own_line() {
    let diags = diagnostics(
        "actions:\n  - patch:\n      target: {kind: Deployment, namespace: a, name: b}\n      patch:\n        spec:\n          paused: \"{{ evnt.x }}\"\n",
    );
    let d = find(&diags, "unknown variable `evnt`");
    assert_eq!((d.line, d.column), (6, 19));
    let diags = diagnostics(
        "actions:\n  - patch:\n      target: {kind: Deployment, namespace: a, name: b}\n      patch:\n        metadata:\n          labels: {\"{{ event.k }}\": v}\n",
    );
    find(&diags, "mapping keys are not templates");
}

#[test]
fn delete_guards_bare_pods_and_bounds_the_grace_period() {
    let out = render(
        "actions:\n  - delete:\n      target: {kind: Pod, namespace: shop, name: \"{{ event.pod }}\"}\n      grace_period_seconds: 0\n      propagation_policy: background\n",
        json!({"pod": "web-1"}),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({
            "target": {"api_version": "v1", "kind": "Pod", "namespace": "shop", "name": "web-1"},
            "allow_bare_pods": false, "grace_period_seconds": 0, "propagation_policy": "background"
        })
    );
    let diags = diagnostics(
        "actions:\n  - delete: {target: {kind: ConfigMap, namespace: a, name: b}, allow_bare_pods: true}\n",
    );
    find(&diags, "only applies to `kind: Pod`");
    let diags = diagnostics(
        "actions:\n  - delete: {target: {kind: Pod, namespace: a, name: b}, grace_period_seconds: 999999}\n",
    );
    find(&diags, "at most 86400");
    let diags = diagnostics("actions:\n  - delete: {target: {namespace: a, name: b}}\n");
    find(&diags, "`delete` needs `target.kind`");
}

#[test]
fn create_renders_the_manifest_into_the_given_namespace() {
    let out = render(
        "actions:\n  - create:\n      namespace: \"{{ event.ns }}\"\n      manifest:\n        apiVersion: batch/v1\n        kind: Job\n        metadata:\n          generateName: diag-\n          labels: {reflex/rule: \"{{ rule.name }}\"}\n        spec:\n          template:\n            spec:\n              restartPolicy: Never\n              containers:\n                - name: diag\n                  image: busybox\n                  args: [\"sh\", \"-c\", \"echo {{ event.pod }}\"]\n",
        json!({"ns": "shop", "pod": "web-1"}),
    )
    .unwrap();
    assert_eq!(out["api_version"], json!("batch/v1"));
    assert_eq!(out["kind"], json!("Job"));
    assert_eq!(out["namespace"], json!("shop"));
    assert_eq!(out["manifest"]["metadata"]["namespace"], json!("shop"));
    assert_eq!(
        out["manifest"]["metadata"]["labels"]["reflex/rule"],
        json!("test-rule")
    );
    assert_eq!(
        out["manifest"]["spec"]["template"]["spec"]["containers"][0]["args"][2],
        json!("echo web-1")
    );
}

#[test]
fn create_requires_a_literal_kind_a_name_and_a_namespace_for_namespaced_kinds() {
    let diags = diagnostics(
        "actions:\n  - create:\n      manifest: {apiVersion: v1, kind: \"{{ event.k }}\", metadata: {name: x}}\n",
    );
    find(&diags, "`kind` must be literal");
    let diags = diagnostics(
        "actions:\n  - create:\n      manifest: {apiVersion: v1, kind: ConfigMap, metadata: {labels: {}}}\n",
    );
    find(&diags, "needs `metadata.name` or `metadata.generateName`");
    find(&diags, "live in a namespace");
    let diags = diagnostics(
        "actions:\n  - create:\n      namespace: a\n      manifest: {apiVersion: v1, kind: ConfigMap, metadata: {name: x, namespace: b}}\n",
    );
    find(&diags, "the namespace is set twice");
    let err = render(
        "actions:\n  - create:\n      manifest: {apiVersion: v1, kind: Namespace, metadata: {name: \"{{ event.n }}\"}}\n",
        json!({"n": "Not Valid"}),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("parameter `manifest.metadata.name`"),
        "{err}"
    );
}

#[test]
fn cordon_and_uncordon_render_the_node_name() {
    let out = render(
        "actions:\n  - cordon: {node: \"{{ event.node }}\"}\n",
        json!({"node": "ip-10-0-0-1.ec2.internal"}),
    )
    .unwrap();
    assert_eq!(out, json!({"node": "ip-10-0-0-1.ec2.internal"}));
    let out = render("actions:\n  - uncordon: {node: n1}\n", json!({})).unwrap();
    assert_eq!(out, json!({"node": "n1"}));
    let diags = diagnostics("actions:\n  - cordon: {node: \"Bad Node\"}\n");
    find(&diags, "is not a valid object name");
}

#[test]
fn label_sets_and_removes_and_checks_keys_and_values() {
    let out = render(
        "actions:\n  - label:\n      target: {kind: Pod, namespace: shop, name: web-1}\n      labels:\n        reflex.io/quarantined: \"true\"\n        unquoted: true\n        team: \"{{ event.team }}\"\n        stale: null\n",
        json!({"team": "payments"}),
    )
    .unwrap();
    assert_eq!(
        out["labels"],
        json!({"reflex.io/quarantined": "true", "unquoted": "true", "team": "payments", "stale": null})
    );
    let diags = diagnostics(
        "actions:\n  - label: {target: {kind: Pod, namespace: a, name: b}, labels: {\"bad key!\": x}}\n",
    );
    find(&diags, "`bad key!` is not a valid key");
    let diags = diagnostics(
        "actions:\n  - label: {target: {kind: Pod, namespace: a, name: b}, labels: {}}\n",
    );
    find(&diags, "at least one entry");
    let err = render(
        "actions:\n  - label: {target: {kind: Pod, namespace: a, name: b}, labels: {team: \"{{ event.team }}\"}}\n",
        json!({"team": "has spaces"}),
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with("parameter `labels.team`"),
        "{err}"
    );
}

#[test]
fn annotate_accepts_free_text_values() {
    let out = render(
        "actions:\n  - annotate:\n      target: {kind: Deployment, namespace: shop, name: web}\n      annotations:\n        reflex.io/last-incident: \"{{ event.summary }}\"\n",
        json!({"summary": "OOM: 3 restarts\nsee runbook"}),
    )
    .unwrap();
    assert_eq!(
        out["annotations"]["reflex.io/last-incident"],
        json!("OOM: 3 restarts\nsee runbook")
    );
}
