//! Unit tests of the metrics registry and its encoding.
use super::*;

#[test]
fn metrics_show_one_readiness_gauge_per_dependency() {
    let metrics = Metrics::default();
    metrics.set_ready(Dependency::Kafka, true);
    metrics.set_ready(Dependency::Kubernetes, false);
    metrics.set_ready(Dependency::Store, true);
    let text = metrics.encode();
    assert!(
        text.contains("reflex_dependency_ready{dependency=\"kafka\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("reflex_dependency_ready{dependency=\"kubernetes\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("reflex_dependency_ready{dependency=\"store\"} 1"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn action_outcomes_are_counted_by_kind_and_status_with_a_duration() {
    let metrics = Metrics::default();
    metrics.action("restart", "succeeded", Some(Duration::from_millis(3)));
    metrics.action("restart", "succeeded", Some(Duration::from_millis(5)));
    metrics.action("restart", "duplicate", None);
    let text = metrics.encode();
    assert!(
        text.contains("reflex_actions_total{kind=\"restart\",status=\"succeeded\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("reflex_actions_total{kind=\"restart\",status=\"duplicate\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("reflex_action_duration_seconds_count{kind=\"restart\"} 2"),
        "{text}"
    );
}
