//! Rule engine throughput on realistic ~1 KB Alertmanager alert events, for 1 to 10,000 rules with
//! 1% of events matching a rule. Run: `cargo bench --bench engine`. Figures: docs/performance.md.
//!
//! Two rule shapes:
//! - `indexed`: each rule requires `labels.alertname == "..."` (the common case: rules are about
//!   one alert), so the engine's equality index finds the candidate rules without scanning.
//! - `scan`: each rule's condition is a regex the index cannot use, so every rule is evaluated:
//!   the worst case, showing the per-rule cost.

use std::hint::black_box;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use reflex::event::Event;
use reflex::event::decode::{Decoding, decode_json};
use reflex::rules::{Engine, RuleSet, load_sources};
use serde_json::json;

const EVENTS: usize = 1_000;

fn rules_yaml(count: usize, indexed: bool) -> String {
    let mut out = String::from("rules:\n");
    for i in 0..count {
        let when = if indexed {
            format!(
                "labels.alertname == \"Alert{i}\" and labels.severity in [\"critical\", \"warning\"]"
            )
        } else {
            format!("labels.alertname =~ \"^Alert{i}$\" and labels.severity == \"critical\"")
        };
        out.push_str(&format!(
            "  - name: rule-{i}\n    select: {{topics: [alerts]}}\n    when: '{when}'\n    actions:\n      - log: {{message: \"{{{{ event.labels.namespace }}}}/{{{{ event.labels.pod }}}}\"}}\n"
        ));
    }
    out
}

/// 1% of the events name an alert some rule handles; the rest name alerts no rule knows.
fn events(rule_count: usize) -> Vec<Event> {
    let now: DateTime<Utc> = "2026-11-20T10:12:31Z".parse().expect("timestamp");
    (0..EVENTS)
        .map(|i| {
            let alertname = if i % 100 == 0 {
                format!("Alert{}", i % rule_count)
            } else {
                format!("Unhandled{i}")
            };
            let payload = json!({
                "version": "4",
                "status": "firing",
                "receiver": "reflex",
                "groupKey": "{}/{severity=\"critical\"}:{alertname}",
                "groupLabels": {"alertname": alertname},
                "commonLabels": {"severity": "critical", "namespace": "shop"},
                "commonAnnotations": {"runbook_url": "https://runbooks.example.org/KubePodCrashLooping"},
                "externalURL": "http://alertmanager.monitoring:9093",
                "alerts": [{
                    "status": "firing",
                    "labels": {"alertname": alertname, "severity": "critical", "namespace": "shop",
                               "pod": format!("checkout-7d9f8b6c5-{i:05}"), "container": "checkout",
                               "deployment": "checkout", "instance": "10.1.2.3:8080", "job": "kube-state-metrics"},
                    "annotations": {"summary": "Pod shop/checkout is crash looping",
                                    "description": "Pod is restarting 2.1 times / 10 minutes."},
                    "startsAt": "2026-11-20T10:12:31.000Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus.monitoring:9090/graph?g0.expr=rate%28kube_pod_container_status_restarts_total%5B10m%5D%29",
                    "fingerprint": format!("{i:016x}")
                }]
            });
            let mut batch = decode_json(
                payload,
                "alerts",
                0,
                i as i64,
                None,
                &Default::default(),
                Some(now),
                Decoding::Auto,
            )
            .expect("sample decodes");
            batch.remove(0)
        })
        .collect()
}

fn engine_throughput(c: &mut Criterion) {
    let now: DateTime<Utc> = "2026-11-20T10:13:00Z".parse().expect("timestamp");
    for shape in ["indexed", "scan"] {
        let mut group = c.benchmark_group(format!("engine/{shape}"));
        group.throughput(Throughput::Elements(EVENTS as u64));
        for count in [1usize, 100, 1_000, 10_000] {
            if shape == "scan" && count == 10_000 {
                // Minutes per sample at this size, and the point (linear cost per rule) is
                // already made by the smaller sizes.
                continue;
            }
            let rules: Arc<RuleSet> = Arc::new(
                load_sources(&[("bench.yaml".into(), rules_yaml(count, shape == "indexed"))])
                    .expect("bench rules are valid"),
            );
            let events = events(count);
            let mut engine = Engine::new(rules);
            group.bench_with_input(BenchmarkId::from_parameter(count), &events, |b, events| {
                b.iter(|| {
                    let mut planned = 0;
                    for event in events {
                        planned += engine.process(black_box(event), now).planned.len();
                    }
                    assert_eq!(planned, EVENTS / 100, "1% of events must match");
                    planned
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, engine_throughput);
criterion_main!(benches);
