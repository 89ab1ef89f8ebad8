//! Alertmanager: one event per alert, label merging, identity across firing and resolved.

use super::*;

#[test]
fn alertmanager_notification_gives_one_event_per_alert() {
    let events = decode_with(ALERTMANAGER, &[], Decoding::Auto).unwrap();
    assert_eq!(events.len(), 2);
    let (firing, resolved) = (&events[0], &events[1]);
    for event in &events {
        assert_eq!(event.meta.format, Format::Alertmanager);
        assert_eq!(
            event.meta.event_type.as_deref(),
            Some("KubePodCrashLooping")
        );
        assert_eq!(attr(event, "receiver"), "reflex");
        assert!(
            attr(event, "groupKey")
                .as_str()
                .unwrap()
                .contains("KubePodCrashLooping")
        );
        assert_eq!(event.payload["receiver"], "reflex");
        assert_eq!(
            event.payload["externalURL"],
            "http://alertmanager.monitoring:9093"
        );
        // commonAnnotations are merged into every alert's annotations.
        assert_eq!(
            event.payload["annotations"]["runbook_url"],
            "https://runbooks.example.org/KubePodCrashLooping"
        );
    }
    assert_eq!(firing.alert_status(), Some("firing"));
    assert_eq!(firing.alert_fingerprint(), Some("a1b2c3d4e5f60718"));
    assert_eq!(
        firing.meta.timestamp,
        time("2026-11-20T10:12:31Z"),
        "firing: startsAt"
    );
    assert_eq!(
        firing.meta.id,
        "a1b2c3d4e5f60718/2026-11-20T10:12:31Z/firing"
    );
    assert!(
        firing
            .meta
            .source
            .as_deref()
            .unwrap()
            .starts_with("http://prometheus.monitoring:9090/graph")
    );
    assert_eq!(firing.payload["labels"]["pod"], "checkout-7d9f8b6c5-x2x9q");
    assert_eq!(resolved.alert_status(), Some("resolved"));
    assert_eq!(
        resolved.meta.timestamp,
        time("2026-11-20T10:11:47Z"),
        "resolved: endsAt"
    );
    assert_eq!(resolved.payload["labels"]["deployment"], "cart");
    assert!(
        resolved.payload["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("cart")
    );
}

#[test]
fn alert_labels_win_over_common_and_group_labels_which_fill_in_the_rest() {
    let mut notification = doc(ALERTMANAGER);
    notification["groupLabels"]["team"] = json!("payments");
    notification["commonLabels"]["team"] = json!("shop");
    notification["commonLabels"]["cluster"] = json!("eu-1");
    notification["alerts"][0]["labels"]["severity"] = json!("warning");
    notification["commonAnnotations"]["summary"] = json!("common summary");
    let events = decode_with(&notification.to_string(), &[], Decoding::Auto).unwrap();
    let labels = &events[0].payload["labels"];
    assert_eq!(labels["severity"], "warning", "the alert's own label wins");
    assert_eq!(
        labels["team"], "shop",
        "common labels win over group labels"
    );
    assert_eq!(labels["cluster"], "eu-1", "common labels fill in");
    assert_eq!(events[1].payload["labels"]["severity"], "critical");
    assert_ne!(
        events[0].payload["annotations"]["summary"], "common summary",
        "own annotation wins"
    );
}

#[test]
fn the_same_alert_firing_and_then_resolved_gets_two_ids_and_redelivery_keeps_them() {
    let firing = doc(ALERTMANAGER);
    let mut resolved = firing.clone();
    resolved["status"] = json!("resolved");
    resolved["alerts"][0]["status"] = json!("resolved");
    resolved["alerts"][0]["endsAt"] = json!("2026-11-20T10:30:00Z");
    let first = decode_with(&firing.to_string(), &[], Decoding::Auto).unwrap();
    let later = decode_with(&resolved.to_string(), &[], Decoding::Auto).unwrap();
    assert_eq!(first[0].alert_fingerprint(), later[0].alert_fingerprint());
    assert_ne!(first[0].meta.id, later[0].meta.id);
    assert_eq!(later[0].meta.timestamp, time("2026-11-20T10:30:00Z"));
    let redelivered = decode_with(&firing.to_string(), &[], Decoding::Auto).unwrap();
    assert_eq!(first[0].meta.id, redelivered[0].meta.id);
}

#[test]
fn an_alert_that_fires_again_later_is_a_new_occurrence() {
    let mut again = doc(ALERTMANAGER);
    again["alerts"][0]["startsAt"] = json!("2026-11-20T14:00:00Z");
    let first = decode_with(ALERTMANAGER, &[], Decoding::Auto).unwrap();
    let second = decode_with(&again.to_string(), &[], Decoding::Auto).unwrap();
    assert_ne!(first[0].meta.id, second[0].meta.id);
}

#[test]
fn starts_at_precision_does_not_change_the_alert_id() {
    let mut short = doc(ALERTMANAGER);
    short["alerts"][0]["startsAt"] = json!("2026-11-20T10:12:31Z");
    let long = decode_with(ALERTMANAGER, &[], Decoding::Auto).unwrap();
    let short = decode_with(&short.to_string(), &[], Decoding::Auto).unwrap();
    assert_eq!(long[0].meta.id, short[0].meta.id);
}

#[test]
fn an_alert_without_fingerprint_gets_one_derived_from_its_labels() {
    let alert = |labels: Value| {
        json!({"version": "4", "status": "firing", "alerts": [
            {"labels": labels, "startsAt": "2026-11-20T10:00:00Z"}
        ]})
        .to_string()
    };
    let a = auto(&alert(json!({"alertname": "Down", "job": "api"})));
    let b = auto(&alert(json!({"job": "api", "alertname": "Down"})));
    let c = auto(&alert(json!({"alertname": "Down", "job": "web"})));
    let fingerprint = a.alert_fingerprint().unwrap();
    assert_eq!(fingerprint.len(), 16);
    assert!(fingerprint.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(a.meta.id, b.meta.id, "label order does not matter");
    assert_ne!(a.meta.id, c.meta.id, "different labels, different alert");
    assert_eq!(
        a.alert_status(),
        Some("firing"),
        "the notification's status stands in"
    );
}

#[test]
fn a_notification_without_alerts_decodes_to_no_events() {
    assert!(
        decode_with(ALERTMANAGER_EMPTY, &[], Decoding::Auto)
            .unwrap()
            .is_empty()
    );
    assert!(
        decode_with(ALERTMANAGER_EMPTY, &[], Decoding::Alertmanager)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn alert_with_a_bad_time_or_shape_names_the_field() {
    let mut bad_time = doc(ALERTMANAGER);
    bad_time["alerts"][1]["endsAt"] = json!(1234);
    let text = error(&bad_time.to_string(), &[], Decoding::Auto);
    assert!(
        text.contains("alertmanager field `alerts[1].endsAt` is a number"),
        "{text}"
    );
    let mut not_object = doc(ALERTMANAGER);
    not_object["alerts"][0] = json!("firing");
    let text = error(&not_object.to_string(), &[], Decoding::Auto);
    assert!(
        text.contains("`alerts[0]` is a string, not an alert object"),
        "{text}"
    );
    let mut bad_labels = doc(ALERTMANAGER);
    bad_labels["commonLabels"] = json!(["a"]);
    let text = error(&bad_labels.to_string(), &[], Decoding::Auto);
    assert!(
        text.contains("`commonLabels` is an array, not a map"),
        "{text}"
    );
}

#[test]
fn alert_without_any_status_is_refused() {
    let text = error(
        r#"{"version": "4", "alerts": [{"labels": {}}]}"#,
        &[],
        Decoding::Auto,
    );
    assert!(text.contains("`alerts[0].status` is missing"), "{text}");
}
