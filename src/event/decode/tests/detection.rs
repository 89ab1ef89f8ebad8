//! Auto-detection order and plain JSON.

use super::*;

#[test]
fn auto_detection_recognises_every_sample() {
    let cases = [
        (CE_STRUCTURED, Format::Cloudevents),
        (CE_BASE64, Format::Cloudevents),
        (ALERTMANAGER, Format::Alertmanager),
        (K8S_CORE, Format::KubernetesEvent),
        (K8S_EVENTS_V1, Format::KubernetesEvent),
        (FALCO, Format::Falco),
        (FALCO_NO_UUID, Format::Falco),
        (PLAIN, Format::Json),
    ];
    for (payload, format) in cases {
        let events = decode_with(payload, &[], Decoding::Auto).unwrap();
        assert_eq!(events[0].meta.format, format, "{payload}");
    }
}

#[test]
fn plain_json_takes_type_from_a_top_level_string_and_identity_from_the_record() {
    let event = auto(PLAIN);
    assert_eq!(
        event.meta.event_type.as_deref(),
        Some("order.payment_failed")
    );
    assert_eq!(event.meta.id, "events/2/42");
    assert_eq!(event.meta.timestamp, record_time());
    assert_eq!(event.meta.source, None);
    assert!(event.meta.attributes.is_empty());
    assert_eq!(event.payload, doc(PLAIN));
    assert_eq!(
        auto(r#"{"type": 3}"#).meta.event_type,
        None,
        "only a string type counts"
    );
    let array = auto("[1, {\"type\": \"x\"}]");
    assert_eq!(array.meta.format, Format::Json);
    assert_eq!(array.meta.event_type, None);
    assert_eq!(auto("\"just text\"").payload, "just text");
}

#[test]
fn detection_tries_cloudevents_before_alertmanager() {
    let both = ce_with(json!({"version": "4", "alerts": []}));
    assert_eq!(auto(&both).meta.format, Format::Cloudevents);
}

#[test]
fn kubernetes_detection_needs_the_involved_object() {
    let event = auto(r#"{"kind": "Event", "reason": "Started"}"#);
    assert_eq!(event.meta.format, Format::Json);
}

#[test]
fn without_any_time_the_event_time_is_the_unix_epoch() {
    let mut raw = record(PLAIN.as_bytes(), &[]);
    raw.timestamp = None;
    let events = decode(&raw, Decoding::Auto, &DecodeLimits::default()).unwrap();
    assert_eq!(events[0].meta.timestamp, DateTime::UNIX_EPOCH);
}
