//! OpenTelemetry logs (OTLP/JSON and protobuf) and CDEvents.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message as _;

use super::*;

/// Decodes a binary record.
fn decode_bytes(payload: &[u8], decoding: Decoding) -> Result<Vec<Event>, DecodeError> {
    decode(&record(payload, &[]), decoding, &DecodeLimits::default())
}

#[test]
fn the_committed_protobuf_sample_is_the_json_sample_encoded_by_the_opentelemetry_types() {
    let request: ExportLogsServiceRequest =
        serde_json::from_str(OTLP).expect("the JSON sample is an ExportLogsServiceRequest");
    let encoded = request.encode_to_vec();
    if std::env::var_os("REFLEX_WRITE_TEST_DATA").is_some() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/events/otlp-logs.pb"
        );
        std::fs::write(path, &encoded).expect("write the protobuf sample");
    }
    assert_eq!(
        encoded, OTLP_PROTO,
        "tests/data/events/otlp-logs.pb is stale; rerun this test with REFLEX_WRITE_TEST_DATA=1"
    );
}

#[test]
fn a_protobuf_export_gives_the_same_events_as_its_json_form() {
    let from_json = decode_with(OTLP, &[], Decoding::OtlpJson).unwrap();
    let from_proto = decode_bytes(OTLP_PROTO, Decoding::OtlpProto).unwrap();
    assert_eq!(from_proto.len(), 2);
    assert_eq!(from_proto, from_json);
    assert_eq!(
        from_proto[0].payload["fields"]["attributes"]["http.status_code"],
        500
    );
    // A JSON document for an `otlp_proto` topic (`reflex test`) is read as OTLP/JSON.
    let tested = decode_json(
        doc(OTLP),
        TOPIC,
        PARTITION,
        OFFSET,
        None,
        &BTreeMap::new(),
        Some(record_time()),
        Decoding::OtlpProto,
    )
    .unwrap();
    assert_eq!(tested, from_json);
}

#[test]
fn bytes_that_are_no_protobuf_export_are_refused_with_the_reason_and_limits_hold() {
    let err = decode_bytes(b"{\"resourceLogs\": []}", Decoding::OtlpProto)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not an OTLP logs export in protobuf") && err.contains("otlp_json"),
        "{err}"
    );
    let truncated = &OTLP_PROTO[..OTLP_PROTO.len() - 7];
    let err = decode_bytes(truncated, Decoding::OtlpProto).unwrap_err();
    assert!(matches!(err, DecodeError::NotProtobuf { .. }), "{err}");
    assert_eq!(crate::pipeline::dead_letter_reason(&err), "not_protobuf");

    let small = DecodeLimits {
        max_payload_bytes: 64,
        ..DecodeLimits::default()
    };
    let err = decode(&record(OTLP_PROTO, &[]), Decoding::OtlpProto, &small).unwrap_err();
    assert!(matches!(err, DecodeError::TooLarge { .. }), "{err}");
    let shallow = DecodeLimits {
        max_depth: 5,
        ..DecodeLimits::default()
    };
    let err = decode(&record(OTLP_PROTO, &[]), Decoding::OtlpProto, &shallow).unwrap_err();
    assert!(matches!(err, DecodeError::TooDeep { .. }), "{err}");
    // An empty value is a valid, empty export.
    assert!(decode_bytes(b"", Decoding::OtlpProto).unwrap().is_empty());
}

proptest::proptest! {
    /// Arbitrary bytes, and the sample with bytes replaced, give events or an error, never a
    /// panic.
    #[test]
    fn any_bytes_decoded_as_otlp_proto_never_panic(
        noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
        flips in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 1..6),
    ) {
        let _ = decode_bytes(&noise, Decoding::OtlpProto);
        let mut edited = OTLP_PROTO.to_vec();
        for (at, byte) in flips {
            let i = at % edited.len();
            edited[i] = byte;
        }
        let _ = decode_bytes(&edited, Decoding::OtlpProto);
    }
}

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
