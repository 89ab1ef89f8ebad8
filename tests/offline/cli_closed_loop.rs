//! The operator commands of closed-loop remediation as a user runs them, on a SQLite store:
//! `reflex replay --explain` showing the chain a firing would follow, `reflex quarantines` and
//! `reflex release` with their exit codes, and `reflex rbac` for escalation steps. The same
//! store commands run against PostgreSQL in `tests/services/cli_closed_loop.rs`.

use std::path::Path;

use reflex::store::Store;

use crate::support::cli::{reflex, stderr, stdout};

/// Restart, verified by the alert resolving and the rollout; then roll back; then page.
const CLOSED_LOOP: &str = r#"
rules:
  - name: restart-then-rollback-then-page
    select: {formats: [alertmanager], types: [KubePodCrashLooping]}
    actions:
      - restart:
          target: {namespace: "{{ event.labels.namespace }}", name: "{{ event.labels.deployment }}"}
    verify:
      within: 10m
      alert_resolved: true
      kubernetes: {condition: rollout_complete}
    escalate:
      - actions:
          - rollback:
              target: {namespace: "{{ event.labels.namespace }}", name: "{{ event.labels.deployment }}"}
        verify: {within: 10m, alert_resolved: true}
      - actions:
          - webhook: {url: "https://pager.example/page", body: {text: "{{ event.labels.deployment }}"}}
    loop_guard: {max: 3, within: 1h, quarantine: 24h}
"#;

/// A rules directory holding `rules` and a JSON-lines file with the sample Alertmanager
/// notification (one firing alert for `shop/checkout`, one resolved).
fn fixture(rules: &str) -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir(&rules_dir).expect("mkdir");
    std::fs::write(rules_dir.join("loop.yaml"), rules).expect("write rules");
    let sample = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/events/alertmanager-webhook.json"),
    )
    .expect("sample");
    let payload: serde_json::Value = serde_json::from_str(&sample).expect("JSON");
    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        format!(
            "{}\n",
            serde_json::json!({"topic": "alerts", "payload": payload})
        ),
    )
    .expect("write events");
    let path = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
    (dir, path(&rules_dir), path(&events))
}

#[test]
fn replay_explain_shows_the_chain_a_firing_would_follow() {
    let (_dir, rules, events) = fixture(CLOSED_LOOP);
    let out = reflex(&["replay", "--explain", "--rules", &rules, &events]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let expected = [
        "closed loop of restart-then-rollback-then-page on deployment/shop/checkout (remediation ",
        "then verify: alert_resolved, kubernetes rollout_complete on deployment/shop/checkout \
         within 10m",
        "if ineffective: step 1 rollback deployment/shop/checkout (verify: alert_resolved within \
         10m) → step 2 webhook https://pager.example/page",
        "loop guard: 3 per 1h per target, then quarantine 1d",
    ];
    let mut from = 0;
    for line in expected {
        let at = text[from..]
            .find(line)
            .unwrap_or_else(|| panic!("`{line}` (in this order) missing from:\n{text}"));
        from += at + line.len();
    }
    // Without --explain, only the planned actions.
    let plain = stdout(&reflex(&["replay", "--rules", &rules, &events]));
    assert!(!plain.contains("closed loop"), "{plain}");

    let json = reflex(&[
        "replay",
        "--explain",
        "--format",
        "json",
        "--rules",
        &rules,
        &events,
    ]);
    let first: serde_json::Value = stdout(&json)
        .lines()
        .next()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .expect("one line per event");
    let chain = &first["remediations"][0];
    assert_eq!(chain["target"], "deployment/shop/checkout", "{first}");
    let step = |n: usize| chain["steps"][n]["actions"][0]["kind"].clone();
    assert_eq!(
        [step(0), step(1), step(2)],
        ["restart", "rollback", "webhook"].map(serde_json::Value::from),
        "{chain}"
    );
    assert_eq!(chain["steps"][1]["actions"][0]["remediation"]["step"], 1);
}

/// A SQLite store (created and migrated as `reflex run` would) with quarantines of
/// `deployment/shop/checkout` by two rules and an expired one of `node/worker-3`.
async fn quarantined_store(dir: &Path) -> String {
    let url = format!("sqlite://{}", dir.join("audit.db").display());
    let store = Store::connect(&url).await.expect("sqlite store");
    let now = chrono::Utc::now().timestamp_millis();
    let hour = 3_600_000;
    for (rule, target, since, until) in [
        (
            "restart",
            "deployment/shop/checkout",
            now - hour,
            now + hour,
        ),
        ("scale", "deployment/shop/checkout", now - hour, now + hour),
        ("cordon", "node/worker-3", now - 3 * hour, now - hour),
    ] {
        let reason = format!("{rule}: 3 remediations within 1h");
        assert!(
            store
                .open_quarantine(rule, target, since, until, &reason, Some("rem-1"))
                .await
                .expect("open quarantine")
        );
    }
    store.close().await;
    url
}

#[tokio::test]
async fn release_lifts_a_quarantine_says_so_and_exits_1_when_nothing_was_quarantined() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = quarantined_store(dir.path()).await;

    let listed = reflex(&["quarantines", "--store", &url]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let text = stdout(&listed);
    assert_eq!(text.lines().count(), 2, "active ones only: {text}");
    assert!(
        text.contains("(reflex release deployment/shop/checkout --rule restart)"),
        "{text}"
    );

    let released = reflex(&[
        "release",
        "Deployment/shop/checkout",
        "--rule",
        "restart",
        "--store",
        &url,
    ]);
    assert!(released.status.success(), "{}", stderr(&released));
    let text = stdout(&released);
    assert!(
        text.starts_with("released: rule restart on deployment/shop/checkout (quarantined since "),
        "{text}"
    );
    assert!(text.contains("restart: 3 remediations within 1h"), "{text}");

    let again = reflex(&[
        "release",
        "deployment/shop/checkout",
        "--rule",
        "restart",
        "--store",
        &url,
    ]);
    assert_eq!(again.status.code(), Some(1), "{}", stdout(&again));
    assert!(
        stderr(&again).contains(
            "rule `restart` has no active quarantine on `deployment/shop/checkout`; `reflex \
             quarantines` lists"
        ),
        "{}",
        stderr(&again)
    );
    let expired = reflex(&["release", "node/worker-3", "--store", &url]);
    assert_eq!(
        expired.status.code(),
        Some(1),
        "an expired quarantine is not active"
    );
    assert!(stderr(&expired).contains("nothing is quarantined on `node/worker-3`"));

    let all = reflex(&["quarantines", "--all", "--format", "json", "--store", &url]);
    let rows: serde_json::Value = serde_json::from_slice(&all.stdout).expect("JSON");
    let summary: Vec<(String, bool, String)> = rows
        .as_array()
        .expect("array")
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().unwrap_or_default().to_owned(),
                r["active"].as_bool().unwrap_or_default(),
                r["released_by"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("cordon".to_owned(), false, "-".to_owned()),
            ("restart".to_owned(), false, "cli:alice".to_owned()),
            ("scale".to_owned(), true, "-".to_owned()),
        ]
    );
}

#[test]
fn release_refuses_a_store_that_does_not_exist_instead_of_creating_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.db");
    let url = format!("sqlite://{}", missing.display());
    let out = reflex(&["release", "deployment/shop/checkout", "--store", &url]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "a runtime error, not `nothing was quarantined`"
    );
    assert!(
        stderr(&out).contains("no audit store at"),
        "{}",
        stderr(&out)
    );
    assert!(!missing.exists());
}

#[test]
fn rbac_grants_the_escalation_steps_and_the_verified_object() {
    let (_dir, rules, _events) = fixture(CLOSED_LOOP);
    let out = reflex(&["rbac", &rules, "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    // restart (step 0) and rollback (step 1) patch the Deployment, rollback lists its
    // ReplicaSets, and the rollout check reads it; each publishes its Event; the webhook needs
    // nothing.
    assert_eq!(
        list["items"][0]["rules"],
        serde_json::json!([
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]},
            {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["list"]},
            {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create"]},
        ])
    );
}
