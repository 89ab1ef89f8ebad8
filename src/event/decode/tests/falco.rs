//! Falco alerts: fields, nanosecond time, identity with and without `uuid`.

use super::*;

#[test]
fn falco_alert_fills_rule_priority_hostname_and_nanosecond_time() {
    let event = auto(FALCO);
    assert_eq!(event.meta.format, Format::Falco);
    assert_eq!(event.meta.id, "9f8e7d6c-5b4a-3210-fedc-ba9876543210");
    assert_eq!(
        event.meta.event_type.as_deref(),
        Some("Terminal shell in container")
    );
    assert_eq!(event.meta.source.as_deref(), Some("syscall"));
    assert_eq!(attr(&event, "priority"), "Notice");
    assert_eq!(attr(&event, "hostname"), "node-3");
    assert_eq!(attr(&event, "tags")[4], "T1059");
    assert_eq!(event.meta.timestamp, time("2026-11-20T10:31:05.123456789Z"));
    assert_eq!(event.meta.timestamp.timestamp_subsec_nanos(), 123_456_789);
    assert_eq!(
        event.payload["output_fields"]["k8s.pod.name"],
        "checkout-7d9f8b6c5-x2x9q"
    );
}

#[test]
fn falco_alert_without_uuid_is_identified_by_its_record_position() {
    let event = auto(FALCO_NO_UUID);
    assert_eq!(event.meta.format, Format::Falco);
    assert_eq!(event.meta.id, "events/2/42");
    assert_eq!(attr(&event, "priority"), "Warning");
}
