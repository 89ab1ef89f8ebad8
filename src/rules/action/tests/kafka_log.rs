//! Kafka and log action tests.

use serde_json::json;

use super::*;

#[test]
fn kafka_renders_topic_key_value_headers_and_cloudevent() {
    let out = render(
        "actions:\n  - kafka:\n      topic: remediations\n      key: \"{{ match.key }}\"\n      value: {alert: \"{{ event.alertname }}\", payload: \"{{ event }}\"}\n      headers: {x-rule: \"{{ rule.name }}\"}\n      cloudevent: {type: io.reflex.remediation, source: \"/reflex/{{ rule.name }}\"}\n",
        json!({"alertname": "HighLatency"}),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({
            "topic": "remediations",
            "key": "shop/web",
            "value": {"alert": "HighLatency", "payload": {"alertname": "HighLatency"}},
            "headers": {"x-rule": "test-rule"},
            "cloudevent": {"type": "io.reflex.remediation", "source": "/reflex/test-rule", "subject": null}
        })
    );
}

#[test]
fn kafka_topics_are_validated_and_ce_headers_are_reserved_for_cloudevents() {
    let diags = diagnostics("actions:\n  - kafka: {topic: \"bad topic\", value: x}\n");
    find(&diags, "is not a Kafka topic name");
    let diags = diagnostics(
        "actions:\n  - kafka: {topic: t, value: x, headers: {ce_type: y}, cloudevent: {type: a, source: b}}\n",
    );
    find(&diags, "collides with the CloudEvents headers");
    let err = render(
        "actions:\n  - kafka: {topic: \"out.{{ event.team }}\", value: x}\n",
        json!({"team": "a/b"}),
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("parameter `topic`"), "{err}");
    let err = parse("actions:\n  - kafka: {topic: t}\n").unwrap_err();
    assert!(err.contains("value"), "value is required: {err}");
}

#[test]
fn a_kafka_topic_is_literal_or_starts_with_a_literal_prefix_ending_in_a_separator() {
    for topic in [
        "{{ event.topic }}",
        "reflex{{ event.suffix }}",
        "{# a comment #}reflex.outcomes",
        "team {{ event.team }}",
    ] {
        let yaml = format!("actions:\n  - kafka: {{topic: \"{topic}\", value: x}}\n");
        let diags = diagnostics(&yaml);
        let found = find(&diags, "event data must not choose the topic");
        let hint = found.hint.as_deref().unwrap_or_default();
        assert!(hint.contains("literal prefix ending in"), "{hint}");
    }
    for topic in [
        "notify.{{ event.team }}",
        "ops_{{ event.x }}",
        "a-{{ event.x }}",
    ] {
        let yaml = format!("actions:\n  - kafka: {{topic: \"{topic}\", value: x}}\n");
        assert!(compile(&yaml).is_ok(), "{topic}");
    }
}

#[test]
fn log_records_the_rendered_message_and_fields() {
    let out = render(
        "actions:\n  - log:\n      message: \"{{ event.alertname }} fired {{ match.count }} times\"\n      level: warn\n      fields: {ns: \"{{ event.ns }}\", fixed: 1}\n",
        json!({"alertname": "Down", "ns": "shop"}),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"message": "Down fired 3 times", "level": "warn", "fields": {"ns": "shop", "fixed": 1}})
    );
    let params: LogAction = serde_json::from_value(out).unwrap();
    assert_eq!(params.level, LogLevel::Warn);
}
