//! Undo plans read from exactly what the pipeline records for an executed action: the
//! serialized [`Change`] (plus the attempt count `Executors::execute` adds).

use super::*;
use crate::rules::action::PatchType;

fn target() -> Value {
    json!({ "api_version": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "web" })
}

fn cm_target() -> Value {
    json!({ "api_version": "v1", "kind": "ConfigMap", "namespace": "shop", "name": "cm" })
}

fn action(kind: ActionKind, params: Value) -> Action {
    Action::from_parts(kind, params).expect("parameters fit the kind")
}

/// The `details.result` of an executed action, as `Executors::execute` builds it.
fn recorded(kind: ActionKind, changed: bool, detail: ChangeDetail) -> Value {
    let change = Change {
        action: kind,
        target: "apps/v1 Deployment shop/web".into(),
        changed,
        summary: "s".into(),
        resource_version: Some("7".into()),
        uid: None,
        detail,
    };
    let mut result = serde_json::to_value(change).expect("a change encodes");
    result["attempts"] = json!(1);
    result
}

fn scale_action() -> Action {
    action(
        ActionKind::Scale,
        json!({ "target": target(), "replicas": 4, "change": null, "min": null, "max": null }),
    )
}

fn label_action() -> Action {
    action(
        ActionKind::Label,
        json!({ "target": cm_target(), "labels": { "added": "1", "changed": "new", "gone": null } }),
    )
}

fn metadata_detail() -> ChangeDetail {
    ChangeDetail::Metadata {
        set: BTreeMap::from([
            ("added".to_owned(), "1".to_owned()),
            ("changed".to_owned(), "new".to_owned()),
        ]),
        removed: vec!["gone".to_owned()],
        previous: BTreeMap::from([
            ("added".to_owned(), None),
            ("changed".to_owned(), Some("old".to_owned())),
            ("gone".to_owned(), Some("here".to_owned())),
        ]),
    }
}

#[test]
fn a_scale_plans_to_restore_the_replicas_it_found() {
    let result = recorded(
        ActionKind::Scale,
        true,
        ChangeDetail::Scale { from: 2, to: 4 },
    );
    let plan = UndoPlan::from_execution(&scale_action(), &result).expect("a scale is reversible");
    assert_eq!(
        plan,
        UndoPlan {
            kind: ActionKind::Scale,
            target: serde_json::from_value(target()).expect("a target"),
            found: json!({ "replicas": 2 }),
            set: json!({ "replicas": 4 }),
        }
    );
    assert_eq!(
        plan.describe(),
        "scale deployment/shop/web back to 2 replicas"
    );
    let stored = serde_json::to_value(&plan).expect("encodes");
    let back: UndoPlan = serde_json::from_value(stored).expect("a stored plan reads back");
    assert_eq!(back, plan);
}

#[test]
fn a_cordon_plans_to_uncordon_its_node() {
    let cordon = action(ActionKind::Cordon, json!({ "node": "n1" }));
    let result = recorded(
        ActionKind::Cordon,
        true,
        ChangeDetail::Node {
            unschedulable_before: false,
            unschedulable: true,
        },
    );
    let plan = UndoPlan::from_execution(&cordon, &result).expect("a cordon is reversible");
    assert_eq!(plan.target, node_target("n1"));
    assert_eq!(plan.found, json!({ "unschedulable": false }));
    assert_eq!(plan.set, json!({ "unschedulable": true }));
    assert_eq!(plan.describe(), "uncordon node/n1");
}

#[test]
fn label_and_annotate_plan_every_key_with_the_value_it_had() {
    let result = recorded(ActionKind::Label, true, metadata_detail());
    let plan = UndoPlan::from_execution(&label_action(), &result).expect("a label is reversible");
    assert_eq!(
        plan.found,
        json!({ "labels": { "added": null, "changed": "old", "gone": "here" } })
    );
    assert_eq!(
        plan.set,
        json!({ "labels": { "added": "1", "changed": "new", "gone": null } })
    );
    assert_eq!(
        plan.describe(),
        "restore labels on configmap/shop/cm: remove added, set changed=old, set gone=here"
    );

    let annotate = action(
        ActionKind::Annotate,
        json!({ "target": cm_target(), "annotations": { "added": "1" } }),
    );
    let result = recorded(ActionKind::Annotate, true, metadata_detail());
    let plan = UndoPlan::from_execution(&annotate, &result).expect("an annotate is reversible");
    assert_eq!(plan.kind, ActionKind::Annotate);
    assert_eq!(plan.found["annotations"]["changed"], json!("old"));
}

#[test]
fn nothing_is_planned_when_nothing_changed() {
    let unchanged = recorded(
        ActionKind::Scale,
        false,
        ChangeDetail::Scale { from: 4, to: 4 },
    );
    assert_eq!(UndoPlan::from_execution(&scale_action(), &unchanged), None);
    let label = recorded(ActionKind::Label, false, metadata_detail());
    assert_eq!(UndoPlan::from_execution(&label_action(), &label), None);
    // A cordon of a node that was already cordoned changed nothing either.
    let cordon = action(ActionKind::Cordon, json!({ "node": "n1" }));
    let already = recorded(
        ActionKind::Cordon,
        false,
        ChangeDetail::Node {
            unschedulable_before: true,
            unschedulable: true,
        },
    );
    assert_eq!(UndoPlan::from_execution(&cordon, &already), None);
}

#[test]
fn a_label_recorded_without_previous_values_cannot_be_undone() {
    // A result recorded before undo existed has no `previous`: what to put back is unknown.
    let mut result = recorded(ActionKind::Label, true, metadata_detail());
    result["detail"]
        .as_object_mut()
        .expect("an object")
        .remove("previous");
    assert_eq!(UndoPlan::from_execution(&label_action(), &result), None);
    assert_eq!(
        UndoPlan::from_execution(&label_action(), &json!({ "changed": true })),
        None,
        "no detail"
    );
}

#[test]
fn kinds_that_cannot_be_undone_plan_nothing() {
    let t = target();
    let cases = [
        (
            action(ActionKind::Restart, json!({ "target": t })),
            ChangeDetail::Restart {
                restarted_at: "now".into(),
                previous: None,
            },
        ),
        (
            action(
                ActionKind::SetImage,
                json!({ "target": t, "container": null, "image": "b:2", "wait": false, "timeout_ms": 1000 }),
            ),
            ChangeDetail::SetImage {
                container: "app".into(),
                from: "a:1".into(),
                to: "b:2".into(),
                generation: None,
                observed_generation: None,
            },
        ),
        (
            action(
                ActionKind::Rollback,
                json!({ "target": t, "to_revision": null }),
            ),
            ChangeDetail::Rollback {
                from_revision: Some(2),
                to_revision: 1,
                images: vec![],
            },
        ),
        (
            action(
                ActionKind::Patch,
                json!({ "target": t, "patch_type": "merge", "patch": {} }),
            ),
            ChangeDetail::Patch {
                patch_type: PatchType::Merge,
                generation: None,
            },
        ),
        (
            action(
                ActionKind::Delete,
                json!({ "target": t, "allow_bare_pods": false, "grace_period_seconds": null, "propagation_policy": null }),
            ),
            ChangeDetail::Delete {
                uid: None,
                grace_period_seconds: None,
                propagation_policy: None,
            },
        ),
        (
            action(
                ActionKind::Create,
                json!({ "api_version": "v1", "kind": "ConfigMap", "namespace": "shop", "manifest": {} }),
            ),
            ChangeDetail::Create {
                name: "cm".into(),
                namespace: None,
                uid: None,
            },
        ),
        (
            action(ActionKind::Uncordon, json!({ "node": "n1" })),
            ChangeDetail::Node {
                unschedulable_before: true,
                unschedulable: false,
            },
        ),
    ];
    for (action, detail) in cases {
        let result = recorded(action.kind(), true, detail);
        assert_eq!(
            UndoPlan::from_execution(&action, &result),
            None,
            "{:?}",
            action.kind()
        );
    }
    let log = action(ActionKind::Log, json!({ "message": "m", "level": "info" }));
    assert_eq!(
        UndoPlan::from_execution(&log, &json!({ "changed": true })),
        None
    );
    // A detail of another kind than the action (a corrupted record) plans nothing either.
    let mismatched = recorded(ActionKind::Scale, true, metadata_detail());
    assert_eq!(UndoPlan::from_execution(&scale_action(), &mismatched), None);
}

#[test]
fn a_plan_that_does_not_fit_its_kind_is_invalid_not_guessed() {
    let plan = UndoPlan {
        kind: ActionKind::Scale,
        target: serde_json::from_value(target()).expect("a target"),
        found: json!({ "labels": {} }),
        set: json!({ "replicas": 4 }),
    };
    let err = plan
        .part::<Replicas>("found", &plan.found)
        .err()
        .expect("no replicas");
    assert!(
        err.to_string()
            .contains("the undo plan's `found` does not fit a `scale` undo"),
        "{err}"
    );
    assert!(!err.retryable());
    assert_eq!(plan.describe(), "scale deployment/shop/web back");
}

#[test]
fn keys_left_alone_say_what_they_are_now_and_what_reflex_did() {
    let left = BTreeMap::from([
        ("a".to_owned(), Some("b".to_owned())),
        ("gone".to_owned(), Some("back".to_owned())),
        ("x".to_owned(), None),
    ]);
    let set = BTreeMap::from([
        ("a".to_owned(), Some("a".to_owned())),
        ("gone".to_owned(), None),
        ("x".to_owned(), Some("1".to_owned())),
    ]);
    assert_eq!(
        changed_since(&left, &set),
        r#"a is "b" now, Reflex set "a"; gone is "back" now, Reflex removed it; x is absent now, Reflex set "1""#
    );
}
