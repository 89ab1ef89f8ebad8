//! Kubernetes Events: core/v1 and events.k8s.io/v1 fields, time fallbacks, occurrence identity.

use super::*;

#[test]
fn core_v1_event_fills_reason_component_involved_object_and_last_timestamp() {
    let event = auto(K8S_CORE);
    assert_eq!(event.meta.format, Format::KubernetesEvent);
    assert_eq!(event.meta.event_type.as_deref(), Some("BackOff"));
    assert_eq!(event.meta.source.as_deref(), Some("kubelet"));
    assert_eq!(event.meta.timestamp, time("2026-11-20T10:12:40Z"));
    assert_eq!(event.meta.id, "5d1f2e3a-4b5c-6d7e-8f90-a1b2c3d4e5f6/27");
    assert_eq!(
        attr(&event, "involvedObject"),
        &json!({"kind": "Pod", "namespace": "shop", "name": "checkout-7d9f8b6c5-x2x9q"})
    );
    assert_eq!(attr(&event, "type"), "Warning");
    assert_eq!(attr(&event, "count"), 27);
    assert_eq!(
        event.payload["message"],
        doc(K8S_CORE)["message"],
        "the payload is the whole Event"
    );
}

#[test]
fn a_repeated_kubernetes_event_is_a_new_occurrence_but_a_metadata_update_is_not() {
    let first = auto(K8S_CORE);
    let mut repeated = doc(K8S_CORE);
    repeated["count"] = json!(28);
    repeated["metadata"]["resourceVersion"] = json!("884300");
    assert_ne!(first.meta.id, auto(&repeated.to_string()).meta.id);
    let mut relabelled = doc(K8S_CORE);
    relabelled["metadata"]["resourceVersion"] = json!("884299");
    relabelled["metadata"]["labels"] = json!({"audited": "yes"});
    assert_eq!(first.meta.id, auto(&relabelled.to_string()).meta.id);
}

#[test]
fn events_k8s_io_v1_event_reads_regarding_series_and_reporting_controller() {
    let event = auto(K8S_EVENTS_V1);
    assert_eq!(event.meta.format, Format::KubernetesEvent);
    assert_eq!(event.meta.event_type.as_deref(), Some("FailedScheduling"));
    assert_eq!(event.meta.source.as_deref(), Some("default-scheduler"));
    assert_eq!(
        event.meta.timestamp,
        time("2026-11-20T10:14:31.208931Z"),
        "series.lastObservedTime"
    );
    assert_eq!(
        event.meta.id, "7e2a9c41-0b3d-4f5e-8a6b-c7d8e9f0a1b2/4",
        "series.count"
    );
    assert_eq!(
        attr(&event, "involvedObject")["name"],
        "worker-6c9b7d5f4-q8w2e"
    );
}

#[test]
fn kubernetes_event_time_falls_back_through_the_documented_fields() {
    let mut event = doc(K8S_CORE);
    let object = event.as_object_mut().unwrap();
    object.remove("lastTimestamp");
    assert_eq!(
        auto(&event.to_string()).meta.timestamp,
        time("2026-11-20T10:02:11Z"),
        "firstTimestamp"
    );
    event["eventTime"] = json!("2026-11-20T10:05:00.000001Z");
    assert_eq!(
        auto(&event.to_string()).meta.timestamp,
        time("2026-11-20T10:05:00.000001Z"),
        "eventTime"
    );
    event["eventTime"] = Value::Null;
    event["firstTimestamp"] = Value::Null;
    event["metadata"]["creationTimestamp"] = json!("2026-11-20T10:00:00Z");
    assert_eq!(
        auto(&event.to_string()).meta.timestamp,
        time("2026-11-20T10:00:00Z"),
        "creation"
    );
    event["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("creationTimestamp");
    assert_eq!(
        auto(&event.to_string()).meta.timestamp,
        record_time(),
        "record time last"
    );
}

#[test]
fn kubernetes_event_without_uid_is_identified_by_namespace_name_and_count() {
    let mut event = doc(K8S_CORE);
    event["metadata"].as_object_mut().unwrap().remove("uid");
    assert_eq!(
        auto(&event.to_string()).meta.id,
        "shop/checkout-7d9f8b6c5-x2x9q.17a9c2b3f4d5e6a7/27"
    );
    event.as_object_mut().unwrap().remove("metadata");
    assert_eq!(auto(&event.to_string()).meta.id, "events/2/42");
}
