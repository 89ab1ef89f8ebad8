//! Hot reload of a real `reflex run`: a changed rule file changes behaviour while a stateful
//! rule's window survives; a broken file is refused (the old rules keep running, the failure
//! is in `/metrics`, `/v1/rules` and the log with `file:line:column`); fixing it reloads; a
//! ConfigMap-style `..data` symlink swap is detected; SIGHUP reloads when polling is off.
//!
//! Run: `scripts/services up && eval "$(scripts/services env)" && cargo test --features services --test processes reload::`

use crate::support;
use crate::support::running;

use std::path::Path;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use running::{Reflex, Setup};
use serde_json::{Value, json};

/// Bound on a reload being visible: a few polls of the 200 ms interval used here, on a busy
/// machine.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(20);

/// A `log` rule named `name` for events whose `kind` is `kind`.
fn log_rule(name: &str, kind: &str) -> String {
    format!(
        "rules:\n  - name: {name}\n    when: 'kind == \"{kind}\"'\n    actions:\n      - log:\n          \
         message: \"{name} {{{{ event.n }}}}\"\n"
    )
}

/// Fires on the second `count` event within 10 minutes: proves its window survives reloads.
const COUNTING: &str = "rules:\n  - name: counting\n    when: 'kind == \"count\"'\n    \
                        threshold:\n      count: 2\n      within: 10m\n    actions:\n      \
                        - log:\n          message: counted\n";

/// Line 3, column 5 holds the misspelt field.
const BROKEN: &str = "rules:\n  - name: third\n    actoins:\n      - log:\n          message: x\n";

async fn start(setup: &Setup, rules_dir: &Path, interval: &str) -> Reflex {
    support::install_crypto_provider();
    let config = setup.write_config(rules_dir, "");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace(
            "rules:\n",
            &format!("rules:\n  reload_interval: {interval}\n"),
        ),
    )
    .expect("config");
    let reflex = Reflex::start(setup, &config, &[]);
    reflex.wait_ready().await;
    reflex
}

fn producer(setup: &Setup) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", &setup.bootstrap)
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer")
}

async fn send(producer: &FutureProducer, topic: &str, event: Value) {
    let payload = event.to_string();
    producer
        .send(
            FutureRecord::<str, str>::to(topic).payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(err, _)| err)
        .expect("produce");
}

/// The names of the rules `/v1/rules` lists.
async fn rule_names(reflex: &Reflex) -> Vec<String> {
    reflex.get_json("/v1/rules").await["rules"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .filter_map(|r| r["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_for_rules(reflex: &Reflex, want: &[&str]) {
    support::eventually(
        &format!("rules {want:?} loaded"),
        RELOAD_TIMEOUT,
        || async {
            let mut names = rule_names(reflex).await;
            names.sort();
            (names == want).then_some(())
        },
    )
    .await;
}

async fn wait_for_metric(reflex: &Reflex, line: &str) -> String {
    support::eventually(
        &format!("/metrics showing {line}"),
        RELOAD_TIMEOUT,
        || async {
            let metrics = reflex.get_text("/metrics").await;
            metrics.lines().any(|l| l == line).then_some(metrics)
        },
    )
    .await
}

/// `reflex_rules_last_reload_timestamp_seconds` in a scrape.
fn reload_timestamp(metrics: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("reflex_rules_last_reload_timestamp_seconds "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no reload timestamp in:\n{metrics}"))
}

/// Waits for the next outcome of `rule` (none may have failed).
async fn wait_for_outcome(
    reflex: &Reflex,
    outcomes: &rdkafka::consumer::StreamConsumer,
    rule: &str,
) {
    running::read_until(
        outcomes,
        &format!("an outcome of `{rule}`"),
        || reflex.log(),
        |m| {
            let outcome = running::json_of(m);
            assert_ne!(outcome["data"]["status"], "failed", "{outcome}");
            outcome["data"]["rule"] == rule
        },
    )
    .await;
}

#[tokio::test]
async fn a_changed_rule_reloads_a_broken_one_keeps_the_old_rules_and_a_fix_reloads_again() {
    let setup = Setup::new("reload").await;
    std::fs::write(setup.rules.join("counting.yaml"), COUNTING).expect("write");
    std::fs::write(setup.rules.join("act.yaml"), log_rule("first", "act")).expect("write");
    let reflex = start(&setup, &setup.rules, "200ms").await;
    let producer = producer(&setup);
    let outcomes = running::reader(&setup.bootstrap, &setup.outcomes);
    let metrics = reflex.get_text("/metrics").await;
    assert!(metrics.contains("reflex_rule_reloads_total{result=\"failed\"} 0"));
    // The start-up load counts as a successful one.
    assert!(
        metrics.contains("\nreflex_rules_last_reload_successful 1\n"),
        "{metrics}"
    );
    let loaded_at = reload_timestamp(&metrics);

    send(&producer, &setup.events, json!({"kind": "act", "n": 1})).await;
    wait_for_outcome(&reflex, &outcomes, "first").await;
    // The first of two `count` events: the window opens, nothing fires yet.
    send(&producer, &setup.events, json!({"kind": "count", "n": 1})).await;
    support::eventually("the counting window to open", RELOAD_TIMEOUT, || async {
        let listing = reflex.get_json("/v1/rules").await;
        let counting = listing["rules"]
            .as_array()?
            .iter()
            .find(|r| r["name"] == "counting")?
            .clone();
        (counting["state"]["keys"] == 1).then_some(())
    })
    .await;

    // A changed rule file: the new rule replaces the old one.
    std::fs::write(setup.rules.join("act.yaml"), log_rule("second", "act")).expect("write");
    wait_for_rules(&reflex, &["counting", "second"]).await;
    wait_for_metric(&reflex, "reflex_rule_reloads_total{result=\"ok\"} 1").await;
    send(&producer, &setup.events, json!({"kind": "act", "n": 2})).await;
    wait_for_outcome(&reflex, &outcomes, "second").await;
    // The second `count` event fires: the window opened before the reload survived it.
    send(&producer, &setup.events, json!({"kind": "count", "n": 2})).await;
    wait_for_outcome(&reflex, &outcomes, "counting").await;

    // A broken file: refused, counted, logged with its location; the old rules keep running.
    let broken = setup.rules.join("third.yaml");
    std::fs::write(&broken, BROKEN).expect("write");
    let metrics = wait_for_metric(&reflex, "reflex_rule_reloads_total{result=\"failed\"} 1").await;
    // The gauge an alert watches flips to 0, stamped with the refused reload's time.
    assert!(
        metrics.contains("\nreflex_rules_last_reload_successful 0\n"),
        "{metrics}"
    );
    assert!(reload_timestamp(&metrics) > loaded_at, "{metrics}");
    let location = format!("{}:3:5", broken.display());
    let log = reflex.log();
    assert!(log.contains(&location), "the log names {location}:\n{log}");
    assert!(log.contains("actoins"), "{log}");
    let listing = reflex.get_json("/v1/rules").await;
    let problems = listing["reload"]["last_failure"]["problems"].to_string();
    assert!(problems.contains(&location), "{listing:#}");
    let readiness = reflex.get_json("/readyz").await;
    assert_eq!(readiness["ready"], true, "{readiness:#}");
    let rules_check = readiness["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["dependency"] == "rules"))
        .expect("a rules check")
        .clone();
    assert!(
        rules_check["detail"]
            .to_string()
            .contains("last reload failed"),
        "{rules_check}"
    );
    let mut names = rule_names(&reflex).await;
    names.sort();
    assert_eq!(names, ["counting", "second"]);
    send(&producer, &setup.events, json!({"kind": "act", "n": 3})).await;
    wait_for_outcome(&reflex, &outcomes, "second").await;

    // Fixed: reloads, and the failure is cleared.
    std::fs::write(&broken, log_rule("third", "other")).expect("write");
    wait_for_rules(&reflex, &["counting", "second", "third"]).await;
    wait_for_metric(&reflex, "reflex_rule_reloads_total{result=\"ok\"} 2").await;
    wait_for_metric(&reflex, "reflex_rules_loaded 3").await;
    wait_for_metric(&reflex, "reflex_rules_last_reload_successful 1").await;
    let listing = reflex.get_json("/v1/rules").await;
    assert_eq!(
        listing["reload"]["last_failure"],
        Value::Null,
        "{listing:#}"
    );
    let second = listing["rules"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "second"))
        .expect("second listed")
        .clone();
    assert!(second["last_match"].is_string(), "{second}");
    assert_eq!(second["actions"], json!(["log"]));
    assert!(
        second["location"]
            .as_str()
            .unwrap_or_default()
            .ends_with("act.yaml:2"),
        "{second}"
    );
}

/// Lays out `dir` as the kubelet mounts a ConfigMap: `..<version>/rules.yaml`, `..data` →
/// `..<version>`, `rules.yaml` → `..data/rules.yaml`; later versions swap `..data` atomically.
fn configmap_version(dir: &Path, version: &str, rules: &str) {
    use std::os::unix::fs::symlink;
    let folder = dir.join(format!("..{version}"));
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::write(folder.join("rules.yaml"), rules).expect("write");
    symlink(format!("..{version}"), dir.join("..data_tmp")).expect("link");
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap ..data");
    if std::fs::symlink_metadata(dir.join("rules.yaml")).is_err() {
        symlink("..data/rules.yaml", dir.join("rules.yaml")).expect("link rules.yaml");
    }
}

#[tokio::test]
async fn a_configmap_style_data_symlink_swap_is_detected() {
    let setup = Setup::new("reload-cm").await;
    let mounted = setup.dir.path().join("configmap");
    std::fs::create_dir_all(&mounted).expect("mkdir");
    configmap_version(&mounted, "v1", &log_rule("from-v1", "act"));
    let reflex = start(&setup, &mounted, "200ms").await;
    assert_eq!(rule_names(&reflex).await, ["from-v1"]);

    configmap_version(&mounted, "v2", &log_rule("from-v2", "act"));
    wait_for_rules(&reflex, &["from-v2"]).await;
    let producer = producer(&setup);
    let outcomes = running::reader(&setup.bootstrap, &setup.outcomes);
    send(&producer, &setup.events, json!({"kind": "act", "n": 1})).await;
    wait_for_outcome(&reflex, &outcomes, "from-v2").await;
}

#[tokio::test]
async fn sighup_reloads_the_rules_when_polling_is_off() {
    let setup = Setup::new("reload-hup").await;
    std::fs::write(setup.rules.join("act.yaml"), log_rule("before", "act")).expect("write");
    let reflex = start(&setup, &setup.rules, "0s").await;
    std::fs::write(setup.rules.join("act.yaml"), log_rule("after", "act")).expect("write");
    // With polling off nothing notices the change by itself (a second is many polls' worth
    // of the intervals used above).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rule_names(&reflex).await, ["before"]);
    reflex.process.signal("-HUP");
    wait_for_rules(&reflex, &["after"]).await;
    let log = reflex.log();
    assert!(log.contains("rules reloaded"), "{log}");
}
