//! CloudEvents: structured, binary and batch modes; data encodings; attribute errors.

use super::*;

#[test]
fn structured_cloudevent_payload_is_its_data_and_attributes_go_to_metadata() {
    let event = auto(CE_STRUCTURED);
    assert_eq!(event.meta.format, Format::Cloudevents);
    assert_eq!(event.meta.id, "f3c1a8e2-5b7d-4c1e-9a2f-1d2e3f4a5b6c");
    assert_eq!(
        event.meta.event_type.as_deref(),
        Some("dev.reflex.deploy.requested")
    );
    assert_eq!(event.meta.source.as_deref(), Some("/ci/github/acme/shop"));
    assert_eq!(event.meta.timestamp, time("2026-11-20T10:15:00Z"));
    assert_eq!(event.payload["deployment"], "checkout");
    assert_eq!(event.payload["pipeline"]["run"], 5812);
    assert_eq!(attr(&event, "subject"), "shop/checkout");
    assert_eq!(attr(&event, "specversion"), "1.0");
    assert_eq!(attr(&event, "datacontenttype"), "application/json");
    assert!(
        !event.meta.attributes.contains_key("data"),
        "data is the payload, not an attribute"
    );
}

#[test]
fn the_same_cloudevent_delivered_twice_gets_the_same_id() {
    let first = decode(
        &record(CE_STRUCTURED.as_bytes(), &[]),
        Decoding::Auto,
        &DecodeLimits::default(),
    )
    .unwrap();
    let mut again = record(CE_STRUCTURED.as_bytes(), &[]);
    again.offset = 9000;
    again.partition = 0;
    let second = decode(&again, Decoding::Auto, &DecodeLimits::default()).unwrap();
    assert_eq!(first[0].meta.id, second[0].meta.id);
    assert_ne!(first[0].meta.offset, second[0].meta.offset);
}

#[test]
fn binary_cloudevent_sample_takes_attributes_from_ce_headers_and_data_from_the_value() {
    let sample = binary_sample();
    let headers: Vec<(&str, &str)> = sample
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut raw = record(sample.value.as_bytes(), &headers);
    raw.key = Some(sample.key.as_bytes());
    let events = decode(&raw, Decoding::Auto, &DecodeLimits::default()).unwrap();
    let event = &events[0];
    assert_eq!(event.meta.format, Format::Cloudevents);
    assert_eq!(event.meta.id, "6b0e2c4a-3f1d-4e5b-8a7c-9d0e1f2a3b4c");
    assert_eq!(
        event.meta.event_type.as_deref(),
        Some("dev.reflex.scale.requested")
    );
    assert_eq!(
        event.meta.source.as_deref(),
        Some("/autoscaler/queue-depth")
    );
    assert_eq!(event.meta.timestamp, time("2026-11-20T10:20:00Z"));
    assert_eq!(event.meta.key.as_deref(), Some("shop/worker"));
    assert_eq!(event.payload["queueDepth"], 18234);
    assert_eq!(attr(event, "datacontenttype"), "application/json");
    assert_eq!(attr(event, "specversion"), "1.0");
    assert_eq!(
        event.meta.headers.get("ce_id").map(String::as_str),
        Some(event.meta.id.as_str())
    );
}

#[test]
fn binary_cloudevent_extensions_become_string_attributes() {
    let headers = ce_headers_with(&[("ce_partitionkey", "shop"), ("ce_subject", "worker")]);
    let event = one("{}", &headers, Decoding::Auto);
    assert_eq!(attr(&event, "partitionkey"), "shop");
    assert_eq!(attr(&event, "subject"), "worker");
    // Without ce_time the record time stands in.
    assert_eq!(event.meta.timestamp, record_time());
}

#[test]
fn binary_cloudevent_missing_required_headers_names_them() {
    let text = error(
        "{}",
        &[("ce_specversion", "1.0"), ("ce_type", "t")],
        Decoding::Auto,
    );
    assert!(text.contains("binary mode"), "{text}");
    assert!(text.contains("`ce_id`, `ce_source`"), "{text}");
    assert!(
        text.contains("record topic `events` partition 2 offset 42"),
        "{text}"
    );
}

#[test]
fn binary_cloudevent_without_a_value_has_a_null_payload() {
    let mut raw = record(b"", &CE_HEADERS);
    let empty = decode(&raw, Decoding::Auto, &DecodeLimits::default()).unwrap();
    assert_eq!(empty[0].payload, Value::Null);
    raw.payload = None;
    let tombstone = decode(&raw, Decoding::Auto, &DecodeLimits::default()).unwrap();
    assert_eq!(tombstone[0].payload, Value::Null);
    assert_eq!(tombstone[0].meta.id, "evt-1");
}

#[test]
fn binary_cloudevent_text_data_stays_text_and_bytes_become_base64() {
    let headers = ce_headers_with(&[("content-type", "text/plain; charset=utf-8")]);
    assert_eq!(
        one("{not json", &headers, Decoding::Auto).payload,
        "{not json"
    );
    let octets = ce_headers_with(&[("content-type", "application/octet-stream")]);
    let events = decode(
        &record(&[0xff, 0x00, 0x10], &octets),
        Decoding::Auto,
        &DecodeLimits::default(),
    )
    .unwrap();
    assert_eq!(events[0].payload, "/wAQ");
    // Without a content type: JSON when it parses, text otherwise.
    assert_eq!(
        one("[1, 2]", &CE_HEADERS, Decoding::Auto).payload,
        json!([1, 2])
    );
    assert_eq!(
        one("plain words", &CE_HEADERS, Decoding::Auto).payload,
        "plain words"
    );
}

#[test]
fn binary_cloudevent_declared_json_that_does_not_parse_is_an_error() {
    let headers = ce_headers_with(&[("content-type", "application/json")]);
    let text = error("{\"a\": ", &headers, Decoding::Auto);
    assert!(text.contains("is not JSON"), "{text}");
    let problem = ce_headers_with(&[("content-type", "application/problem+json")]);
    assert!(error("nope", &problem, Decoding::Cloudevents).contains("is not JSON"));
}

#[test]
fn structured_cloudevent_data_base64_holding_json_decodes_to_that_json() {
    let event = auto(CE_BASE64);
    assert_eq!(
        event.payload,
        json!({"namespace": "shop", "deployment": "worker", "replicas": 3})
    );
    // The time's +01:00 offset is converted to UTC.
    assert_eq!(event.meta.timestamp, time("2026-11-20T09:25:00Z"));
    assert_eq!(
        attr(&event, "priority"),
        3,
        "extensions keep their JSON type"
    );
    assert!(
        attr(&event, "traceparent")
            .as_str()
            .unwrap()
            .starts_with("00-")
    );
    assert!(!event.meta.attributes.contains_key("data_base64"));
}

#[test]
fn data_base64_that_is_not_json_becomes_text_and_non_utf8_stays_base64() {
    let text = auto(&ce_with(json!({"data_base64": "aGVsbG8gd29ybGQ="})));
    assert_eq!(text.payload, "hello world");
    let bytes = auto(&ce_with(json!({"data_base64": "/wAQ"})));
    assert_eq!(bytes.payload, "/wAQ");
    let bad = error(
        &ce_with(json!({"data_base64": "not base64!"})),
        &[],
        Decoding::Auto,
    );
    assert!(bad.contains("`data_base64` is not valid base64"), "{bad}");
}

#[test]
fn cloudevent_with_both_data_and_data_base64_is_refused() {
    let text = error(
        &ce_with(json!({"data": 1, "data_base64": "MQ=="})),
        &[],
        Decoding::Auto,
    );
    assert!(text.contains("present together with `data`"), "{text}");
}

#[test]
fn cloudevent_without_data_has_a_null_payload() {
    assert_eq!(auto(&ce_with(json!({}))).payload, Value::Null);
}

#[test]
fn structured_content_type_without_required_attributes_names_the_missing_ones() {
    let headers = [(
        "content-type",
        "application/cloudevents+json; charset=UTF-8",
    )];
    let text = error(
        r#"{"specversion": "1.0", "type": "t", "data": {}}"#,
        &headers,
        Decoding::Auto,
    );
    assert!(text.contains("structured mode"), "{text}");
    assert!(text.contains("`id`, `source`"), "{text}");
}

#[test]
fn a_json_body_with_only_some_cloudevents_attributes_is_plain_json() {
    let event = auto(r#"{"specversion": "1.0", "type": "t", "data": {}}"#);
    assert_eq!(event.meta.format, Format::Json);
    assert_eq!(event.meta.event_type.as_deref(), Some("t"));
}

#[test]
fn cloudevents_batch_content_type_gives_one_event_per_element() {
    let headers = [("content-type", "application/cloudevents-batch+json")];
    let events = decode_with(CE_BATCH, &headers, Decoding::Auto).unwrap();
    let ids: Vec<&str> = events.iter().map(|e| e.meta.id.as_str()).collect();
    assert_eq!(ids, ["batch-0001", "batch-0002"]);
    assert_eq!(events[1].payload["deployment"], "cart");
    assert_eq!(events[1].meta.timestamp, time("2026-11-20T10:16:00Z"));
    let not_array = error(CE_STRUCTURED, &headers, Decoding::Auto);
    assert!(
        not_array.contains("requires an array of events"),
        "{not_array}"
    );
}

#[test]
fn cloudevent_specversion_other_than_1_x_is_refused_with_the_version_to_send() {
    let text = error(
        &ce_with(json!({"specversion": "0.3"})),
        &[],
        Decoding::Cloudevents,
    );
    assert!(text.contains("`specversion` is `0.3`"), "{text}");
    assert!(text.contains("send `1.0`"), "{text}");
}

#[test]
fn cloudevent_time_that_is_not_rfc3339_names_the_field() {
    let text = error(&ce_with(json!({"time": "yesterday"})), &[], Decoding::Auto);
    assert!(
        text.contains("cloudevents field `time` is `yesterday`, not an RFC 3339 time"),
        "{text}"
    );
    let binary = ce_headers_with(&[("ce_time", "20261120")]);
    assert!(error("{}", &binary, Decoding::Auto).contains("field `ce_time`"));
}

#[test]
fn cloudevent_id_of_the_wrong_type_is_an_error_not_a_missing_attribute() {
    let text = error(&ce_with(json!({"id": 17})), &[], Decoding::Auto);
    assert!(
        text.contains("`id` is the number 17, but must be a non-empty string"),
        "{text}"
    );
    let empty = error(&ce_with(json!({"source": ""})), &[], Decoding::Cloudevents);
    assert!(
        empty.contains("`source` is empty, but must be a non-empty string"),
        "{empty}"
    );
}

#[test]
fn decode_json_with_ce_headers_takes_the_document_as_binary_mode_data() {
    let headers: BTreeMap<String, String> = CE_HEADERS
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    let events = decode_json(
        json!({"replicas": 4}),
        "scale",
        0,
        7,
        Some("k"),
        &headers,
        None,
        Decoding::Auto,
    )
    .unwrap();
    assert_eq!(events[0].meta.format, Format::Cloudevents);
    assert_eq!(events[0].meta.id, "evt-1");
    assert_eq!(events[0].payload, json!({"replicas": 4}));
    assert_eq!(events[0].meta.key.as_deref(), Some("k"));
}
