//! OpenTelemetry logs (OTLP/JSON) and CDEvents.

use super::*;

#[test]
fn an_otlp_export_gives_one_event_per_log_record_with_attributes_flattened() {
    let events = decode_with(OTLP, &[], Decoding::OtlpJson).unwrap();
    assert_eq!(events.len(), 2);
    let first = &events[0];
    assert_eq!(first.meta.format, Format::Log);
    assert_eq!(attr(first, "log_format"), "otlp");
    assert_eq!(first.meta.id, "events/2/42#0");
    assert_eq!(
        first.meta.timestamp.timestamp_nanos_opt(),
        Some(1_796_425_801_123_000_000)
    );
    assert_eq!(
        first.payload["message"],
        "java.lang.OutOfMemoryError: Java heap space"
    );
    assert_eq!(first.payload["level"], "error");
    assert_eq!(first.payload["host"], "node-a1");
    let fields = &first.payload["fields"];
    assert_eq!(fields["resource"]["service.name"], "checkout");
    assert_eq!(
        fields["resource"]["k8s.pod.name"],
        "checkout-7d9f8c6b5-x2x9q"
    );
    assert_eq!(
        fields["scope"],
        json!({"name": "com.example.checkout", "version": "1.42.0",
        "attributes": {"my.scope.attribute": "some scope attribute"}})
    );
    assert_eq!(
        fields["attributes"],
        json!({
        "exception.type": "java.lang.OutOfMemoryError", "http.status_code": 500, "retry": false,
        "tags": ["oom", 1.5], "request": {"method": "POST"}})
    );
    assert_eq!(fields["trace_id"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(fields["severity_number"], 17);

    // No time, no text severity, a structured body: the observed time, the number's level, and
    // the body both as JSON text and as a structure.
    let second = &events[1];
    assert_eq!(second.meta.id, "events/2/42#1");
    assert_eq!(second.meta.timestamp.timestamp(), 1_796_425_802);
    assert_eq!(second.payload["level"], "info");
    assert_eq!(second.payload["message"], r#"{"event":"order.placed"}"#);
    assert_eq!(
        second.payload["fields"]["body"],
        json!({"event": "order.placed"})
    );
}

#[test]
fn broken_otlp_exports_are_refused_with_the_path() {
    let err = error(r#"{"resourceSpans": []}"#, &[], Decoding::OtlpJson);
    assert!(
        err.contains("decoding is `otlp_json`") && err.contains("without a `resourceLogs` array"),
        "{err}"
    );
    let err = error(
        r#"{"resourceLogs": [{"scopeLogs": {}}]}"#,
        &[],
        Decoding::OtlpJson,
    );
    assert!(
        err.contains("`resourceLogs[0].scopeLogs` is an object, not an array"),
        "{err}"
    );
    let err = error(
        r#"{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "soon"}]}]}]}"#,
        &[],
        Decoding::OtlpJson,
    );
    assert!(err.contains("`resourceLogs[0].scopeLogs[0].logRecords[0].timeUnixNano` is not a count of nanoseconds"), "{err}");
    assert!(
        decode_with(r#"{"resourceLogs": []}"#, &[], Decoding::OtlpJson)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_cdevent_keeps_cloudevents_with_its_type_and_subject() {
    let event = auto(CDEVENT);
    assert_eq!(event.meta.format, Format::Cloudevents);
    assert_eq!(
        event.meta.event_type.as_deref(),
        Some("dev.cdevents.pipelinerun.finished.0.2.0")
    );
    assert_eq!(
        attr(&event, "cdevents_type"),
        "dev.cdevents.pipelinerun.finished"
    );
    assert_eq!(attr(&event, "cdevents_subject_id"), "mySubject123");
    assert_eq!(attr(&event, "cdevents_subject_type"), "pipelineRun");
    assert_eq!(event.payload["subject"]["content"]["outcome"], "success");

    let plain = auto(CE_STRUCTURED);
    assert!(!plain.meta.attributes.contains_key("cdevents_type"));
}

#[test]
fn a_binary_mode_cdevent_is_recognised_too() {
    let headers = [
        ("ce_specversion", "1.0"),
        ("ce_id", "run-1"),
        ("ce_source", "/tekton"),
        ("ce_type", "dev.cdevents.taskrun.started.0.2.0"),
        ("content-type", "application/json"),
    ];
    let event = one(
        r#"{"subject": {"id": "run-1", "type": "taskRun"}}"#,
        &headers,
        Decoding::Auto,
    );
    assert_eq!(
        attr(&event, "cdevents_type"),
        "dev.cdevents.taskrun.started"
    );
    assert_eq!(attr(&event, "cdevents_subject_type"), "taskRun");
}
