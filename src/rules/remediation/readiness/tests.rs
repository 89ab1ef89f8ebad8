//! Readiness judged on objects shaped as the API server returns them, and a property test that
//! no JSON makes the judgement panic.

use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Value, json};

use super::*;

fn deployment(generation: i64, replicas: i64, status: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "web", "generation": generation },
        "spec": { "replicas": replicas },
        "status": status,
    })
}

#[test]
fn a_deployment_rollout_completes_when_every_replica_is_updated_available_and_no_old_one_is_left() {
    let done = deployment(
        5,
        3,
        json!({ "observedGeneration": 5, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3 }),
    );
    assert_eq!(holds(Readiness::RolloutComplete, &done), Ok(true));
    assert_eq!(
        describe(Readiness::RolloutComplete, &done),
        "rollout complete: 3 of 3 replicas updated and available"
    );
}

#[test]
fn a_deployment_mid_rollout_says_everything_still_pending() {
    let mid = deployment(
        5,
        3,
        json!({ "observedGeneration": 4, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 0 }),
    );
    assert_eq!(holds(Readiness::RolloutComplete, &mid), Ok(false));
    assert_eq!(
        describe(Readiness::RolloutComplete, &mid),
        "observedGeneration 4 < generation 5, 1 of 3 replicas updated, \
         3 old replicas pending termination, 0 of 1 updated replicas available"
    );
}

#[test]
fn zero_counts_the_api_server_omits_read_as_zero() {
    // A Deployment scaled to 0: the API server drops every zero count from the status.
    let scaled_to_zero = deployment(2, 0, json!({ "observedGeneration": 2 }));
    assert_eq!(holds(Readiness::RolloutComplete, &scaled_to_zero), Ok(true));
    assert_eq!(holds(Readiness::Ready, &scaled_to_zero), Ok(true));
    // Just created: no status at all yet.
    let fresh = json!({
        "kind": "Deployment", "metadata": { "generation": 1 }, "spec": { "replicas": 2 },
    });
    assert_eq!(holds(Readiness::RolloutComplete, &fresh), Ok(false));
    assert_eq!(
        describe(Readiness::RolloutComplete, &fresh),
        "observedGeneration 0 < generation 1, 0 of 2 replicas updated"
    );
    assert_eq!(holds(Readiness::Available, &fresh), Ok(false));
    assert_eq!(
        describe(Readiness::Available, &fresh),
        "no Available condition reported yet"
    );
}

#[test]
fn a_passed_progress_deadline_is_not_complete_and_is_named() {
    let stuck = deployment(
        3,
        1,
        json!({
            "observedGeneration": 3, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1,
            "conditions": [{ "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded" }],
        }),
    );
    assert_eq!(holds(Readiness::RolloutComplete, &stuck), Ok(false));
    assert_eq!(
        describe(Readiness::RolloutComplete, &stuck),
        "progress deadline exceeded, 1 old replicas pending termination"
    );
}

#[test]
fn a_workload_without_a_generation_or_kind_cannot_be_judged() {
    let no_generation = json!({ "kind": "Deployment", "spec": { "replicas": 1 } });
    let err = holds(Readiness::RolloutComplete, &no_generation).expect_err("no generation");
    assert!(err.contains("no `metadata.generation`"), "{err}");
    let no_kind = json!({ "metadata": { "name": "x" } });
    let err = holds(Readiness::Ready, &no_kind).expect_err("no kind");
    assert_eq!(err, "`ready` cannot be judged: the object has no `kind`");
    assert_eq!(describe(Readiness::Ready, &no_kind), err);
    assert!(holds(Readiness::Ready, &json!([1, 2])).is_err());
}

#[test]
fn rollout_complete_and_available_refuse_kinds_that_have_neither() {
    let node = json!({ "kind": "Node", "metadata": { "name": "n1" } });
    let err = holds(Readiness::RolloutComplete, &node).expect_err("a node has no rollout");
    assert_eq!(
        err,
        "`rollout_complete` cannot be judged on a Node: it applies to Deployment, StatefulSet \
         and DaemonSet"
    );
    let err = holds(Readiness::Available, &node).expect_err("a node has no Available");
    assert!(err.contains("use `ready`"), "{err}");
}

#[test]
fn a_statefulset_rollout_needs_ready_replicas_and_one_revision() {
    let sts = |status: Value, strategy: Value| {
        json!({
            "kind": "StatefulSet", "metadata": { "generation": 2 },
            "spec": { "replicas": 2, "updateStrategy": strategy }, "status": status,
        })
    };
    let rolling = json!({ "type": "RollingUpdate" });
    let mid = sts(
        json!({ "observedGeneration": 2, "readyReplicas": 2, "updatedReplicas": 1,
                "currentRevision": "web-1", "updateRevision": "web-2" }),
        rolling.clone(),
    );
    assert_eq!(holds(Readiness::RolloutComplete, &mid), Ok(false));
    assert_eq!(
        describe(Readiness::RolloutComplete, &mid),
        "1 of 2 replicas at revision web-2 (current revision web-1)"
    );
    let done = sts(
        json!({ "observedGeneration": 2, "readyReplicas": 2, "updatedReplicas": 2,
                "currentRevision": "web-2", "updateRevision": "web-2" }),
        rolling,
    );
    assert_eq!(holds(Readiness::RolloutComplete, &done), Ok(true));
    assert_eq!(holds(Readiness::Ready, &done), Ok(true));
    let partitioned = sts(
        json!({ "observedGeneration": 2, "readyReplicas": 2, "updatedReplicas": 1,
                "currentRevision": "web-1", "updateRevision": "web-2" }),
        json!({ "type": "RollingUpdate", "rollingUpdate": { "partition": 1 } }),
    );
    assert_eq!(holds(Readiness::RolloutComplete, &partitioned), Ok(true));
    let on_delete = sts(json!({}), json!({ "type": "OnDelete" }));
    let err = holds(Readiness::RolloutComplete, &on_delete).expect_err("OnDelete");
    assert!(err.contains("update strategy is OnDelete"), "{err}");
}

#[test]
fn a_daemonset_rollout_needs_every_scheduled_pod_updated_and_available() {
    let ds = |updated: i64, available: i64| {
        json!({
            "kind": "DaemonSet", "metadata": { "generation": 4 }, "spec": {},
            "status": { "observedGeneration": 4, "desiredNumberScheduled": 3,
                        "updatedNumberScheduled": updated, "numberAvailable": available,
                        "numberReady": available },
        })
    };
    assert_eq!(holds(Readiness::RolloutComplete, &ds(3, 3)), Ok(true));
    assert_eq!(holds(Readiness::RolloutComplete, &ds(3, 2)), Ok(false));
    assert_eq!(
        describe(Readiness::RolloutComplete, &ds(2, 2)),
        "2 of 3 scheduled pods updated, 2 of 3 scheduled pods available"
    );
    assert_eq!(holds(Readiness::Ready, &ds(3, 2)), Ok(false));
    assert_eq!(
        describe(Readiness::Ready, &ds(3, 2)),
        "2 of 3 scheduled pods ready"
    );
}

#[test]
fn available_and_ready_read_the_conditions_with_their_reason() {
    let with = |kind: &str, condition: &str, status: &str| {
        json!({
            "kind": kind, "metadata": { "generation": 1 }, "spec": { "replicas": 1 },
            "status": { "conditions": [
                { "type": condition, "status": status, "reason": "KubeletNotReady" }
            ] },
        })
    };
    assert_eq!(
        holds(
            Readiness::Available,
            &with("Deployment", "Available", "True")
        ),
        Ok(true)
    );
    assert_eq!(
        holds(
            Readiness::Available,
            &with("Deployment", "Available", "False")
        ),
        Ok(false)
    );
    assert_eq!(
        holds(Readiness::Ready, &with("Node", "Ready", "True")),
        Ok(true)
    );
    let unknown = with("Node", "Ready", "Unknown");
    assert_eq!(holds(Readiness::Ready, &unknown), Ok(false));
    assert_eq!(
        describe(Readiness::Ready, &unknown),
        "condition Ready is Unknown (KubeletNotReady)"
    );
    assert_eq!(
        holds(Readiness::Ready, &with("Pod", "Ready", "True")),
        Ok(true)
    );
    assert_eq!(
        holds(Readiness::Ready, &with("Widget", "Ready", "True")),
        Ok(true),
        "a custom resource's Ready condition"
    );
    // A Deployment's readiness is its replica count, not a condition.
    let deploy = deployment(1, 3, json!({ "readyReplicas": 2 }));
    assert_eq!(holds(Readiness::Ready, &deploy), Ok(false));
    assert_eq!(describe(Readiness::Ready, &deploy), "2 of 3 replicas ready");
}

/// Objects shaped like workloads, nodes and pods, with every field the judgement reads set to
/// an arbitrary value: numbers of any size and sign, strings, nulls, nested documents.
fn shaped_object() -> impl Strategy<Value = Value> {
    let any_json = crate::event::decode::arbitrary::json_value;
    let field = move || {
        prop_oneof![
            // The extremes are where arithmetic on counts overflows.
            2 => select(vec![i64::MIN, -1, i64::MAX]).prop_map(Value::from),
            1 => any::<i64>().prop_map(Value::from),
            1 => (0i64..5).prop_map(Value::from),
            1 => any_json(),
        ]
    };
    let kinds = select(vec![
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "Node",
        "Pod",
        "Widget",
    ]);
    let status_fields = select(vec![
        "observedGeneration",
        "replicas",
        "updatedReplicas",
        "availableReplicas",
        "readyReplicas",
        "currentRevision",
        "updateRevision",
        "desiredNumberScheduled",
        "updatedNumberScheduled",
        "numberAvailable",
        "numberReady",
        "conditions",
    ]);
    let condition = (
        select(vec!["Ready", "Available", "Progressing"]),
        any_json(),
        any_json(),
    )
        .prop_map(
            |(kind, status, reason)| json!({ "type": kind, "status": status, "reason": reason }),
        );
    (
        kinds,
        field(),
        field(),
        any_json(),
        proptest::collection::btree_map(status_fields, field(), 2..12),
        proptest::collection::vec(condition, 0..3),
    )
        .prop_map(
            |(kind, generation, replicas, strategy, status, conditions)| {
                let mut status: serde_json::Map<String, Value> =
                    status.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                if !conditions.is_empty() {
                    status.insert("conditions".into(), Value::Array(conditions));
                }
                json!({
                    "kind": kind,
                    "metadata": { "generation": generation },
                    "spec": { "replicas": replicas, "updateStrategy": strategy },
                    "status": status,
                })
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]
    #[test]
    fn no_object_makes_the_judgement_panic(
        object in prop_oneof![shaped_object(), crate::event::decode::arbitrary::json_value()],
        readiness in select(vec![Readiness::RolloutComplete, Readiness::Available, Readiness::Ready]),
    ) {
        let verdict = holds(readiness, &object);
        let line = describe(readiness, &object);
        prop_assert!(!line.is_empty());
        if let Err(reason) = verdict {
            prop_assert_eq!(reason, line);
        }
    }
}
