//! Reflex's Prometheus alerts and Grafana dashboard: the chart's optional PrometheusRule and
//! dashboard ConfigMap carry exactly the committed files (deploy/prometheus, deploy/grafana), and
//! `promtool` (built by scripts/promtool) accepts the alerts and passes their unit tests
//! (deploy/prometheus/tests.yaml: each alert fires on the series it is meant for and stays quiet
//! otherwise).

use std::process::Command;

use serde_json::Value;

use super::{cached_tool, documents, find, repo, template, text};

fn committed_yaml(path: &str) -> Value {
    let body = std::fs::read_to_string(repo().join(path)).expect("committed file");
    serde_saphyr::from_str(&body).expect("YAML")
}

#[test]
fn the_prometheus_rule_and_the_dashboard_config_map_carry_the_committed_files() {
    let defaults = documents(&template("reflex", "ops", &[]));
    assert!(
        defaults
            .iter()
            .all(|d| d["kind"] != "PrometheusRule" && d["metadata"]["name"] != "reflex-dashboard"),
        "both are off by default"
    );
    let docs = documents(&template(
        "reflex",
        "ops",
        &[
            "--set",
            "prometheusRule.enabled=true",
            "--set",
            "prometheusRule.labels.release=prometheus",
            "--set",
            "grafanaDashboard.enabled=true",
            "--set",
            "grafanaDashboard.annotations.grafana_folder=Reflex",
        ],
    ));
    let rule = find(&docs, "PrometheusRule", "reflex");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(
        rule["spec"],
        committed_yaml("deploy/prometheus/reflex-alerts.yaml"),
        "the PrometheusRule's spec is the plain rule file"
    );
    let dashboard = find(&docs, "ConfigMap", "reflex-dashboard");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        dashboard["metadata"]["annotations"]["grafana_folder"],
        "Reflex"
    );
    let json = dashboard["data"]["reflex.json"]
        .as_str()
        .expect("reflex.json");
    let committed = std::fs::read_to_string(repo().join("deploy/grafana/reflex.json"))
        .expect("committed dashboard");
    assert_eq!(json.trim_end(), committed.trim_end());
    let parsed: Value = serde_json::from_str(json).expect("the dashboard is JSON");
    assert_eq!(parsed["uid"], "reflex");
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new(cached_tool(
        "promtool",
        "PROMETHEUS_MODULE_VERSION",
        "promtool",
    ))
    .args(args)
    .current_dir(repo())
    .output()
    .expect("promtool runs");
    let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "promtool {args:?}:\n{report}");
    report
}

#[test]
fn promtool_accepts_the_alerts_and_their_unit_tests_pass() {
    let check = promtool(&["check", "rules", "deploy/prometheus/reflex-alerts.yaml"]);
    assert!(check.contains("SUCCESS: 6 rules found"), "{check}");
    let tests = promtool(&["test", "rules", "deploy/prometheus/tests.yaml"]);
    assert!(tests.contains("SUCCESS"), "{tests}");
}
