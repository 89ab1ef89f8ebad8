//! `reflex bench` against the real Kafka with small numbers: the JSON report's counts agree
//! (every produced record handled and committed; one outcome per firing event, as many as the
//! firing fraction predicts). Timing figures are printed by the bench, never asserted here.
//!
//! Run: `scripts/services up && eval "$(scripts/services env)" && cargo test --features services --test processes bench_cli::`

use crate::support;

use std::process::Command;

use serde_json::Value;

/// Records per backlog run.
const EVENTS: u64 = 2_000;

/// The latency run: 200 events/s for 2 s.
const RATE: u64 = 200;
const SECONDS: u64 = 2;

fn count(run: &Value, name: &str) -> u64 {
    run[name]
        .as_u64()
        .unwrap_or_else(|| panic!("`{name}` missing from {run}"))
}

/// `reflex bench --json` with 20 rules, 3 partitions, EVENTS records per run firing 0 and 10 %,
/// and `args`: the report, once the bench succeeded and found no count mismatch.
async fn bench_json(args: &[&str]) -> Value {
    let bootstrap = support::require_kafka().await;
    let output = Command::new(env!("CARGO_BIN_EXE_reflex"))
        .args(["bench", "--json", "--rules", "20", "--partitions", "3"])
        .args(["--events", &EVENTS.to_string(), "--fire", "0,0.1"])
        .args(args)
        .env("KAFKA_BOOTSTRAP_SERVERS", &bootstrap)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the reflex binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench failed: {stderr}");
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("the report is not JSON ({err}): {stderr}"));
    assert_eq!(report["problems"], Value::Array(Vec::new()), "{report}");
    report
}

#[tokio::test]
async fn bench_counts_agree_across_produced_handled_committed_and_outcomes() {
    let report = bench_json(&[
        "--rate",
        &RATE.to_string(),
        "--duration",
        &format!("{SECONDS}s"),
        "--latency-fire",
        "0.05",
    ])
    .await;
    assert_eq!(report["rules"], 20);
    assert_eq!(report["store"], "sqlite");
    assert!(report["at_rest"]["rss_mib"].as_f64().unwrap_or(0.0) > 0.0);

    // Backlog runs: every record produced is handled and committed; a fraction f of N events
    // fires exactly floor(N * f) rules, each planning one `log` action.
    let runs = report["throughput"].as_array().expect("throughput runs");
    assert_eq!(runs.len(), 2);
    for (run, firing) in runs.iter().zip([0, EVENTS / 10]) {
        assert_eq!(count(run, "produced"), EVENTS, "{run}");
        assert_eq!(count(run, "handled"), EVENTS, "{run}");
        assert_eq!(count(run, "committed"), EVENTS, "{run}");
        assert_eq!(count(run, "expected_outcomes"), firing, "{run}");
        assert_eq!(count(run, "outcomes"), firing, "{run}");
        assert_eq!(count(run, "outcomes_on_topic"), firing, "{run}");
        assert_eq!(count(run, "dead_letters"), 0, "{run}");
    }

    // The fixed-rate run: RATE * SECONDS records, 5% of them firing, one latency sample each.
    let latency = &report["latency"];
    let produced = RATE * SECONDS;
    assert_eq!(count(latency, "produced"), produced, "{latency}");
    assert_eq!(count(latency, "handled"), produced, "{latency}");
    assert_eq!(count(latency, "committed"), produced, "{latency}");
    assert_eq!(
        count(latency, "outcomes_on_topic"),
        produced / 20,
        "{latency}"
    );
    assert_eq!(latency["all"]["count"], produced);
    assert_eq!(latency["firing"]["count"], produced / 20);
}

#[tokio::test]
async fn bench_backtest_reads_every_record_back_and_fires_as_predicted() {
    let report = bench_json(&["--backtest"]).await;
    let runs = report["runs"].as_array().expect("backtest runs");
    assert_eq!(runs.len(), 2);
    // Both passes read every record once; a fraction f of N events fires floor(N * f) times.
    for (run, firing) in runs.iter().zip([0, EVENTS / 10]) {
        assert_eq!(count(run, "produced"), EVENTS, "{run}");
        assert_eq!(count(&run["read"], "events"), EVENTS, "{run}");
        assert_eq!(count(&run["backtest"], "events"), EVENTS, "{run}");
        assert_eq!(count(run, "firings"), firing, "{run}");
        assert_eq!(count(run, "expected_firings"), firing, "{run}");
    }
}
