//! What ships next to the code agrees with it: the chart's appVersion is the crate version, the
//! image carries the OCI labels with the crate's license, the chart's values schema has an `$id`,
//! and every metric the Prometheus alerts (deploy/prometheus) and the Grafana dashboard
//! (deploy/grafana) query is one Reflex registers, so no alert silently watches nothing.
//! (`promtool test rules` on the alerts runs in tests/processes/helm_chart/monitoring.rs.)

use std::collections::BTreeSet;
use std::path::Path;

use regex::Regex;
use serde_json::Value;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|err| panic!("cannot read {path}: {err}"))
}

fn yaml(path: &str) -> Value {
    serde_saphyr::from_str(&read(path)).unwrap_or_else(|err| panic!("{path} is not YAML: {err}"))
}

#[test]
fn the_charts_app_version_is_the_crate_version() {
    let chart = yaml("helm/reflex/Chart.yaml");
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "helm/reflex/Chart.yaml appVersion must be Cargo.toml's version (the image tag the \
         chart deploys by default); bump both together"
    );
}

#[test]
fn the_image_carries_the_oci_labels_with_the_crates_license() {
    let dockerfile = read("deploy/Dockerfile");
    let label = |key: &str| {
        let pattern = format!(r#"org\.opencontainers\.image\.{key}="([^"]*)""#);
        Regex::new(&pattern)
            .expect("regex")
            .captures(&dockerfile)
            .map(|c| c[1].to_owned())
            .unwrap_or_else(|| panic!("deploy/Dockerfile has no org.opencontainers.image.{key}"))
    };
    assert_eq!(label("title"), env!("CARGO_PKG_NAME"));
    assert!(!label("description").is_empty());
    assert_eq!(label("licenses"), env!("CARGO_PKG_LICENSE"));
    let home = yaml("helm/reflex/Chart.yaml")["home"].clone();
    assert_eq!(Some(label("source").as_str()), home.as_str());
    // Version and revision come from build arguments, stated in the build command.
    assert_eq!(label("version"), "${VERSION}");
    assert_eq!(label("revision"), "${REVISION}");
    for arg in [
        "ARG VERSION",
        "ARG REVISION",
        "--build-arg VERSION",
        "--build-arg REVISION",
    ] {
        assert!(dockerfile.contains(arg), "deploy/Dockerfile lacks `{arg}`");
    }
}

#[test]
fn the_values_schema_checks_config_with_the_config_files_own_schema() {
    let values: Value =
        serde_json::from_str(&read("helm/reflex/values.schema.json")).expect("JSON");
    let config: Value =
        serde_json::from_str(&read("docs/schema/config.schema.json")).expect("JSON");
    let stale = "helm/reflex/values.schema.json is stale: run scripts/render-manifests";
    assert_eq!(values["$defs"], config["$defs"], "{stale}");
    let embedded = &values["properties"]["config"];
    for key in ["type", "properties", "additionalProperties"] {
        assert_eq!(embedded[key], config[key], "`{key}`: {stale}");
    }
}

#[test]
fn the_values_schema_has_an_id_naming_its_place_in_the_repository() {
    let schema: Value =
        serde_json::from_str(&read("helm/reflex/values.schema.json")).expect("JSON");
    let id = schema["$id"]
        .as_str()
        .expect("values.schema.json has an $id");
    assert!(id.ends_with("/helm/reflex/values.schema.json"), "{id}");
    assert!(id.starts_with("https://"), "{id}");
}

/// The sample names Reflex exposes, from the `# TYPE` lines of its registry's encoding. The
/// encoder leaves out label families without a child, so each family gets one first; a family
/// added to `Metrics` later shows up here once it is touched below.
fn registered_metrics() -> BTreeSet<String> {
    use reflex::metrics::*;
    let m = Metrics::default();
    let (topic, rule) = (String::from("t"), String::from("r"));
    m.set_ready(Dependency::Kafka, true);
    m.action(
        "restart",
        "failed",
        Some(std::time::Duration::from_millis(1)),
    );
    m.store_error("claim");
    m.events_consumed
        .get_or_create(&TopicLabels {
            topic: topic.clone(),
        })
        .inc();
    let decoded = DecodedLabels {
        topic: topic.clone(),
        format: "json".into(),
    };
    m.events_decoded.get_or_create(&decoded).inc();
    let dead = DeadLetterLabels {
        topic: topic.clone(),
        reason: "decode".into(),
    };
    m.events_dead_lettered.get_or_create(&dead).inc();
    let by_rule = RuleLabels { rule: rule.clone() };
    m.rule_evaluations.get_or_create(&by_rule).inc();
    m.rule_matches.get_or_create(&by_rule).inc();
    m.circuit_open.get_or_create(&by_rule).set(0);
    m.circuit_trips.get_or_create(&by_rule).inc();
    m.state_keys_evicted.get_or_create(&by_rule).inc();
    m.consumer_lag
        .get_or_create(&PartitionLabels {
            topic,
            partition: 0,
        })
        .set(0);
    m.rule_reloads
        .get_or_create(&ReloadLabels {
            result: "failed".into(),
        })
        .inc();
    let ingest = IngestLabels {
        endpoint: "events".into(),
        code: 200,
    };
    m.ingest_requests.get_or_create(&ingest).inc();
    let remediation = RemediationLabels {
        rule,
        result: "quarantined".into(),
    };
    m.remediation_results.get_or_create(&remediation).inc();
    m.verification.get_or_create(&remediation).observe(1.0);
    // The process-wide instance too, for anything registered there only.
    let text = m.encode() + &global().encode();
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            "info" => &["_info"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

/// The metric names a PromQL expression selects: identifiers that are not functions,
/// aggregation keywords or operators, once label matchers, ranges, strings and grouping label
/// lists (which hold label names) are removed.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let noise = Regex::new(
        r#"\{[^}]*\}|\[[^\]]*\]|"[^"]*"|\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"#,
    )
    .expect("regex");
    let stripped = noise.replace_all(expr, " ");
    let ident = Regex::new(r"[A-Za-z_:][A-Za-z0-9_:]*").expect("regex");
    let keywords = ["and", "or", "unless", "bool", "offset", "inf", "nan"];
    ident
        .find_iter(&stripped)
        .filter(|m| {
            // Not the tail of a number (1e3) or a variable ($namespace), not a function call.
            let before = stripped[..m.start()].chars().next_back();
            let after = stripped[m.end()..].trim_start();
            !before.is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '$' | '_'))
                && !after.starts_with('(')
        })
        .map(|m| m.as_str().to_owned())
        .filter(|name| !keywords.contains(&name.to_ascii_lowercase().as_str()))
        .collect()
}

/// (where, expression) of every alert and dashboard query.
fn queries() -> Vec<(String, String)> {
    let mut queries = Vec::new();
    let alerts = yaml("deploy/prometheus/reflex-alerts.yaml");
    for group in alerts["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"].as_str().expect("alert name");
            queries.push((
                format!("alert {name}"),
                rule["expr"].as_str().expect("expr").to_owned(),
            ));
        }
    }
    let dashboard: Value =
        serde_json::from_str(&read("deploy/grafana/reflex.json")).expect("dashboard JSON");
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("expr").to_owned();
            queries.push((format!("panel {}", panel["title"]), expr));
        }
    }
    queries
}

#[test]
fn alerts_and_dashboard_query_only_metrics_reflex_registers() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="y"}[5m]))) > 1e3 and on (k) b_total or max without (pod) (c)"#
        ),
        ["a_bucket", "b_total", "c"].map(String::from).into()
    );
    let registered = registered_metrics();
    assert!(
        registered.contains("reflex_actions_total"),
        "{registered:?}"
    );
    let queries = queries();
    assert!(queries.len() > 20, "{queries:?}");
    for (place, expr) in &queries {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{place} queries no metric: {expr}");
        for name in names {
            assert!(
                registered.contains(&name),
                "{place} queries `{name}`, which Reflex does not export (known: {registered:?})"
            );
        }
    }
}

#[test]
fn every_alert_the_issue_asks_for_has_a_severity_summary_and_description() {
    let alerts = yaml("deploy/prometheus/reflex-alerts.yaml");
    let rules = alerts["groups"][0]["rules"].as_array().expect("rules");
    let names: Vec<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
    assert_eq!(
        names,
        [
            "ReflexRulesReloadFailing",
            "ReflexDependencyNotReady",
            "ReflexConsumerLagGrowing",
            "ReflexActionsFailing",
            "ReflexCircuitOpen",
            "ReflexTargetsQuarantined",
        ]
    );
    for rule in rules {
        let name = &rule["alert"];
        assert!(
            matches!(
                rule["labels"]["severity"].as_str(),
                Some("warning" | "critical")
            ),
            "{name}: severity"
        );
        for annotation in ["summary", "description", "runbook_url"] {
            assert!(
                rule["annotations"][annotation]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "{name}: {annotation}"
            );
        }
    }
    // deploy/ holds the very file the chart's PrometheusRule embeds (a link, not a copy).
    assert_eq!(
        read("deploy/prometheus/reflex-alerts.yaml"),
        read("helm/reflex/files/prometheus/reflex-alerts.yaml")
    );
    assert_eq!(
        read("deploy/grafana/reflex.json"),
        read("helm/reflex/files/grafana/reflex.json")
    );
}
