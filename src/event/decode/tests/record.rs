//! Record fields (headers, key, position) and `decode_json`.

use super::*;

#[test]
fn headers_and_key_become_lossy_text_and_the_last_repeated_header_wins() {
    let raw = RawRecord {
        topic: TOPIC,
        partition: PARTITION,
        offset: OFFSET,
        key: Some(b"shop/\xffcart"),
        headers: vec![
            ("trace-id", Some(b"first".as_slice())),
            ("trace-id", Some(b"second".as_slice())),
            ("binary", Some(b"a\xffb".as_slice())),
            ("flag", None),
        ],
        payload: Some(PLAIN.as_bytes()),
        timestamp: Some(record_time()),
    };
    let events = decode(&raw, Decoding::Auto, &DecodeLimits::default()).unwrap();
    let meta = &events[0].meta;
    assert_eq!(meta.headers["trace-id"], "second");
    assert_eq!(meta.headers["binary"], "a\u{fffd}b");
    assert_eq!(
        meta.headers["flag"], "",
        "a header without value is present and empty"
    );
    assert_eq!(meta.key.as_deref(), Some("shop/\u{fffd}cart"));
    assert_eq!(
        (meta.topic.as_str(), meta.partition, meta.offset),
        (TOPIC, PARTITION, OFFSET)
    );
}

#[test]
fn decode_json_applies_the_same_detection_and_identity_rules() {
    let headers = BTreeMap::from([("x-tenant".to_owned(), "acme".to_owned())]);
    let at = Some(record_time());
    let events = decode_json(
        doc(ALERTMANAGER),
        "alerts",
        1,
        5,
        None,
        &headers,
        at,
        Decoding::Auto,
    )
    .unwrap();
    let from_kafka = decode_with(ALERTMANAGER, &[], Decoding::Auto).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].meta.id, from_kafka[0].meta.id);
    assert_eq!(events[0].payload, from_kafka[0].payload);
    assert_eq!(events[0].meta.headers["x-tenant"], "acme");
    let plain = decode_json(
        doc(PLAIN),
        "orders",
        1,
        5,
        None,
        &headers,
        at,
        Decoding::Auto,
    )
    .unwrap();
    assert_eq!(plain[0].meta.id, "orders/1/5");
    assert_eq!(plain[0].meta.timestamp, record_time());
    let forced = decode_json(
        doc(PLAIN),
        "orders",
        1,
        5,
        None,
        &headers,
        at,
        Decoding::Falco,
    )
    .unwrap_err();
    assert!(
        matches!(
            forced,
            DecodeError::WrongFormat {
                expected: Decoding::Falco,
                ..
            }
        ),
        "{forced:?}"
    );
}

#[test]
fn decoding_names_round_trip_through_serde_in_snake_case() {
    for (decoding, name) in [
        (Decoding::Auto, "auto"),
        (Decoding::KubernetesEvent, "kubernetes_event"),
        (Decoding::Cloudevents, "cloudevents"),
    ] {
        assert_eq!(serde_json::to_value(decoding).unwrap(), name);
        assert_eq!(
            serde_json::from_value::<Decoding>(json!(name)).unwrap(),
            decoding
        );
        assert_eq!(decoding.to_string(), name);
    }
    assert_eq!(Decoding::default(), Decoding::Auto);
}

#[test]
fn every_decode_error_tells_which_record_it_is_about() {
    let mut raw = record(b"", &[]);
    raw.payload = None;
    let errors = [
        decode(&raw, Decoding::Auto, &DecodeLimits::default()).unwrap_err(),
        decode_with("", &[], Decoding::Auto).unwrap_err(),
        decode_with("{", &[], Decoding::Auto).unwrap_err(),
        decode_with(PLAIN, &[], Decoding::Falco).unwrap_err(),
        decode_with("{}", &[("ce_id", "1")], Decoding::Auto).unwrap_err(),
    ];
    for err in errors {
        let at = err.position();
        assert_eq!(
            (at.topic.as_str(), at.partition, at.offset),
            (TOPIC, PARTITION, OFFSET)
        );
        assert!(
            err.to_string()
                .starts_with("record topic `events` partition 2 offset 42: "),
            "{err}"
        );
    }
}
