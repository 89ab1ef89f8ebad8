//! The rule commands as a user runs them: `reflex validate`, `test`, `replay`, `schema`, with the
//! exit codes and messages each kind of bad input produces.

use std::path::Path;
use std::process::Output;

use crate::support::cli::{reflex, stdout};

#[test]
fn the_shipped_rules_are_valid() {
    let out = reflex(&["validate", "rules"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("12 rule(s) valid"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn validate_reports_every_problem_with_file_line_column_and_hint() {
    let out = reflex(&["validate", "tests/data/rules-invalid"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let dir = "tests/data/rules-invalid";
    let expected = [
        // Unknown field: the closest valid name is suggested.
        (
            format!("{dir}/a-unknown-field.yaml:3:5: unknown field `whne`"),
            "did you mean `when`?",
        ),
        // Bad JSONPath inside the string.
        (format!("{dir}/b-semantic.yaml:4:"), "invalid JSONPath"),
        // Bad regex.
        (
            format!("{dir}/b-semantic.yaml:11:"),
            "invalid regex `(unclosed`",
        ),
        // Template with an unknown variable.
        (
            format!("{dir}/b-semantic.yaml:17:"),
            "did you mean `event`?",
        ),
        // Duplicate name, pointing at the first definition.
        (
            format!("{dir}/b-semantic.yaml:18:11: rule `bad-jsonpath`: duplicate rule name"),
            "already defined at",
        ),
        // `=` instead of `==` in an expression.
        (
            format!("{dir}/b-semantic.yaml:19:"),
            "use == for comparison",
        ),
        // Unknown action kind.
        (
            format!("{dir}/c-unknown-action.yaml:5:9: unknown variant `restartt`"),
            "did you mean `restart`?",
        ),
        // Wrong type.
        (
            format!("{dir}/d-wrong-type.yaml:3:15: invalid i32"),
            "whole number",
        ),
        // Malformed YAML.
        (format!("{dir}/e-malformed.yaml:3:"), "unclosed quote"),
    ];
    for (location, detail) in &expected {
        let line = text
            .lines()
            .position(|l| l.starts_with(location.as_str()))
            .unwrap_or_else(|| panic!("no problem reported at {location}:\n{text}"));
        let block: String = text
            .lines()
            .skip(line)
            .take(2)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            block.contains(detail),
            "{location}: expected {detail:?} in:\n{block}"
        );
    }
    assert!(text.contains("9 problem(s) found"), "{text}");
}

#[test]
fn validate_json_output_is_machine_readable() {
    let out = reflex(&["validate", "--format", "json", "tests/data/rules-invalid"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(report["valid"], false);
    let problems = report["problems"].as_array().expect("problems array");
    assert_eq!(problems.len(), 9);
    assert!(
        problems
            .iter()
            .all(|p| p["line"].as_u64().unwrap_or(0) > 0 && p["file"].is_string())
    );
    let ok = reflex(&["validate", "--format", "json", "rules"]);
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).expect("valid JSON");
    assert_eq!(report["valid"], true);
}

/// Writes `text` as the only rules file of a fresh directory and runs `reflex validate` on it.
fn validate_text(text: &str) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("rule.yaml"), text).expect("write");
    reflex(&["validate", dir.path().to_str().expect("utf-8 path")])
}

#[test]
fn non_ascii_text_in_a_template_comment_validates_cleanly() {
    // Regression: the template scanner sliced inside the `é` and `reflex validate` exited 101.
    let out = validate_text(
        "rules:\n  - name: commented\n    when: 'x == 1'\n    actions:\n      \
         - log: {message: \"{{ event.x }}{# vérifier #}\"}\n",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{}{err}", stdout(&out));
    assert!(stdout(&out).contains("1 rule(s) valid"), "{}", stdout(&out));
}

#[test]
fn a_rule_file_of_arbitrary_unicode_is_reported_not_a_crash() {
    // Invalid rules exit 1 with diagnostics; 101 would be a panic.
    for text in [
        "rules:\n  - name: ü\n    when: 'é ==  \"ß\"'\n    actions: [{log: {message: \"{% if é %}ö{# ü #}\"}}]\n",
        "rules:\n  - name: x\n    when: '$[?(@.é == \"😀\")]'\n    throttle: {key: \"{{ é }}\", once_within: 1ü}\n    actions: []\n",
        "ÿ: [\u{1F600}\n",
    ] {
        let out = validate_text(text);
        assert_eq!(out.status.code(), Some(1), "{text:?}:\n{}", stdout(&out));
    }
}

#[test]
fn validate_a_missing_directory_fails_with_the_path() {
    let out = reflex(&["validate", "no/such/dir"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no/such/dir"), "{err}");
}

#[test]
fn the_shipped_rule_tests_pass() {
    let out = reflex(&["test", "rules"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("rule tests: 36 passed, 0 failed"), "{text}");
}

#[test]
fn a_failing_rule_test_names_the_case_and_shows_a_diff() {
    let out = reflex(&["test", "tests/data/rules-failing"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("FAIL tests/data/rules-failing/scale.test.yaml:2: this expectation is deliberately wrong"),
        "{text}"
    );
    assert!(text.contains("-      \"replicas\": 5"), "{text}");
    assert!(text.contains("+      \"replicas\": 4"), "{text}");
    assert!(text.contains("rule tests: 2 passed, 1 failed"), "{text}");
}

#[test]
fn replay_prints_planned_actions_and_skips_bad_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = dir.path().join("events.jsonl");
    let webhook = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/events/alertmanager-webhook.json"),
    )
    .expect("sample");
    let compact: serde_json::Value = serde_json::from_str(&webhook).expect("json");
    std::fs::write(
        &events,
        format!(
            "{}\nnot json\n{{\"foo\": 1}}\n",
            serde_json::json!({"topic": "alerts", "payload": compact})
        ),
    )
    .expect("write");
    let out = reflex(&[
        "replay",
        "--rules",
        "rules",
        events.to_str().expect("utf-8 path"),
    ]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains("→ restart-crashlooping-deployment restart"),
        "{text}"
    );
    assert!(text.contains("\"name\":\"checkout\""), "{text}");
    let err = String::from_utf8_lossy(&out.stderr);
    // The error `reflex run` would dead-letter the record with, the line number as its offset.
    assert!(
        err.contains(
            "line 2: skipped, record topic `events` partition 0 offset 2: the record value is \
             not JSON"
        ),
        "{err}"
    );
    assert!(
        err.contains("replayed 3 event(s): 1 planned action(s), 1 line(s) skipped"),
        "{err}"
    );

    let explained = reflex(&[
        "replay",
        "--explain",
        "--rules",
        "rules",
        events.to_str().expect("utf-8 path"),
    ]);
    let text = stdout(&explained);
    assert!(
        text.contains("rule notify-critical-alert: not evaluated: rule `restart-crashlooping-deployment` matched first"),
        "{text}"
    );
    assert!(
        text.contains("alert status filtered by `select.alert_status`"),
        "{text}"
    );
    assert!(text.contains("✓ labels.namespace is \"shop\""), "{text}");
}

#[test]
fn replay_refuses_a_line_over_the_decode_limit_as_reflex_run_would() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = dir.path().join("events.jsonl");
    // A 3 MB event: `reflex run` dead-letters it as too large (the limit is 1 MiB).
    let big = serde_json::json!({ "padding": "x".repeat(3_000_000) }).to_string();
    std::fs::write(&events, format!("{{\"n\": 1}}\n{big}\n{{\"n\": 3}}\n")).expect("write");
    let path = events.to_str().expect("utf-8 path");
    let out = reflex(&["replay", "--rules", "rules", path]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("line 2: skipped"))
        .unwrap_or_else(|| panic!("line 2 not reported:\n{err}"));
    assert!(
        line.contains(&format!("{} bytes", big.len())) && line.contains("limit of 1048576 bytes"),
        "{line}"
    );
    assert!(line.contains("pipeline.max_payload_bytes"), "{line}");
    assert!(
        err.contains("replayed 2 event(s): 0 planned action(s), 1 line(s) skipped"),
        "{err}"
    );

    // With `reflex run`'s configuration, its limits apply: raised, the line is replayed.
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "pipeline:\n  max_payload_bytes: 4000000\n").expect("write");
    let out = reflex(&[
        "replay",
        "--config",
        config.to_str().expect("utf-8 path"),
        "--rules",
        "rules",
        path,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("replayed 3 event(s): 0 planned action(s), 0 line(s) skipped"),
        "{err}"
    );
}

#[test]
fn the_committed_json_schemas_match_the_code() {
    for (kind, file) in [
        ("rules", "docs/schema/rules.schema.json"),
        ("tests", "docs/schema/tests.schema.json"),
        ("config", "docs/schema/config.schema.json"),
    ] {
        let out = reflex(&["schema", "--kind", kind]);
        assert!(out.status.success());
        let committed = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
            .expect("schema file");
        assert_eq!(
            stdout(&out).trim(),
            committed.trim(),
            "{file} is stale: run `cargo run -- schema --kind {kind} > {file}` and commit it"
        );
    }
}
