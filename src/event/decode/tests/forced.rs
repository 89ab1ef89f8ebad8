//! Formats forced by configuration: decoding when they fit, precise errors when not.

use super::*;

#[test]
fn a_forced_format_that_fits_decodes_as_that_format() {
    assert_eq!(one(FALCO, &[], Decoding::Falco).meta.format, Format::Falco);
    assert_eq!(
        one(K8S_CORE, &[], Decoding::KubernetesEvent).meta.format,
        Format::KubernetesEvent
    );
    assert_eq!(
        one(CE_STRUCTURED, &[], Decoding::Cloudevents).meta.format,
        Format::Cloudevents
    );
    assert_eq!(
        decode_with(ALERTMANAGER, &[], Decoding::Alertmanager)
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn forcing_json_takes_any_document_as_plain_json() {
    let event = one(CE_STRUCTURED, &CE_HEADERS, Decoding::Json);
    assert_eq!(event.meta.format, Format::Json);
    assert_eq!(event.meta.id, "events/2/42");
    assert_eq!(
        event.payload["specversion"], "1.0",
        "the whole envelope is the payload"
    );
}

#[test]
fn forced_alertmanager_on_a_kubernetes_event_says_what_is_missing_and_what_it_looks_like() {
    let text = error(K8S_CORE, &[], Decoding::Alertmanager);
    assert!(
        text.contains("the topic's decoding is `alertmanager` but the record is not one"),
        "{text}"
    );
    assert!(text.contains("it has no `alerts` array"), "{text}");
    assert!(text.contains("it looks like `kubernetes_event`"), "{text}");
}

#[test]
fn forced_falco_on_plain_json_suggests_json() {
    let text = error(PLAIN, &[], Decoding::Falco);
    assert!(
        text.contains("`rule`, `priority`, `output` are missing"),
        "{text}"
    );
    assert!(
        text.contains("set the topic's decoding to `json`"),
        "{text}"
    );
}

#[test]
fn forced_cloudevents_on_a_falco_alert_lists_the_missing_attributes() {
    let text = error(FALCO, &[], Decoding::Cloudevents);
    assert!(
        text.contains("`specversion`, `id`, `type` are missing"),
        "{text}"
    );
    assert!(text.contains("it looks like `falco`"), "{text}");
}

#[test]
fn forced_kubernetes_event_on_an_array_says_it_is_not_an_object() {
    let text = error("[]", &[], Decoding::KubernetesEvent);
    assert!(
        text.contains("the value is an array, not a JSON object"),
        "{text}"
    );
    let wrong_kind = error(
        r#"{"kind": "Pod", "involvedObject": {}}"#,
        &[],
        Decoding::KubernetesEvent,
    );
    assert!(
        wrong_kind.contains("`kind` is `Pod`, not `Event`"),
        "{wrong_kind}"
    );
}
