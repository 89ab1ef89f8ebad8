//! Raw log lines in the offline tools, each decoded as `reflex run` decodes a record of a topic
//! with that decoding: `reflex replay` and `reflex backtest --file` (`--decoding syslog`,
//! `log_json`, `log`, or the configuration's `pipeline.decoding`) through the shipped
//! rules/logs/ rules, and `reflex test` steps with `lines` / `lines_file`.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::cli::reflex;

fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes `lines` to `name` in `dir`.
fn file(dir: &Path, name: &str, lines: &[&str]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").expect("write the lines");
    path
}

/// `reflex replay` of `lines` through rules/logs/ as topic `logs` with `--decoding decoding`.
fn replay_logs(decoding: &str, lines: &Path) -> Output {
    let lines = lines.to_str().expect("a UTF-8 path");
    reflex(&[
        "replay",
        "--rules",
        "rules/logs",
        "--topic",
        "logs",
        "--decoding",
        decoding,
        lines,
    ])
}

const FLUENT_BIT_LOG: &str = "tests/data/events/fluent-bit-checkout-errors.log";

/// The fifth error line of the pod in the Fluent Bit log, 30 s after its first.
const FIFTH_ERROR: &str = r#"{"@timestamp":1796425831.5,"log":"2026-12-04 23:10:31.500 ERROR [http-nio-8080-exec-7] c.e.Checkout - payment gateway timeout after 30s\n","stream":"stderr","kubernetes":{"pod_name":"checkout-7d9f8c6b5-x2x9q","namespace_name":"shop","labels":{"app":"checkout"}}}"#;

#[test]
fn replay_reads_raw_syslog_lines_and_skips_what_run_would_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let lines = file(
        dir.path(),
        "messages.log",
        &[
            "<3>1 2026-12-04T23:10:02.123Z web-1 kernel - - - Out of memory: Killed process 9876 (java)",
            "just words, no priority and no time",
            "<14>Dec  4 23:10:10 web-1 sshd[4123]: Accepted publickey for deploy",
        ],
    );
    let out = replay_logs("syslog", &lines);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("line 1: event logs/0/1 (log, type error) on logs"),
        "{stdout}"
    );
    assert!(
        stdout.contains("→ notify-out-of-memory webhook")
            && stdout.contains("Out of memory on web-1: Out of memory: Killed process 9876"),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 3: event logs/0/3 (log, type info) on logs"),
        "{stdout}"
    );
    assert!(
        stderr.contains(
            "line 2: skipped, record topic `logs` partition 0 offset 2: the topic's decoding is \
             `syslog` but the record is not one: the line has neither a `<PRI>` priority nor a \
             syslog time"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("replayed 2 event(s): 1 planned action(s), 1 line(s) skipped"),
        "{stderr}"
    );
}

#[test]
fn replay_of_fluent_bit_lines_restarts_on_the_fifth_error_of_a_pod_within_a_minute() {
    let quiet = replay_logs("log_json", Path::new(FLUENT_BIT_LOG));
    let (stdout, stderr) = texts(&quiet);
    assert!(
        stderr.contains("replayed 6 event(s): 0 planned action(s), 0 line(s) skipped"),
        "{stdout}{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(FLUENT_BIT_LOG).unwrap();
    let burst = file(dir.path(), "burst.log", &[shipped.trim_end(), FIFTH_ERROR]);
    let out = replay_logs("log-json", &burst);
    let (stdout, stderr) = texts(&out);
    assert!(
        stderr.contains("replayed 7 event(s): 1 planned action(s), 0 line(s) skipped"),
        "{stdout}{stderr}"
    );
    let fired = stdout.split("line 7:").nth(1).unwrap_or_default();
    assert!(
        fired.contains("→ restart-deployment-on-error-burst restart")
            && fired.contains(r#""namespace":"shop""#)
            && fired.contains(r#""name":"checkout""#),
        "{stdout}"
    );
}

#[test]
fn the_configured_decoding_reads_plain_lines_and_envelopes_carry_a_line_as_a_string() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "pipeline:\n  decoding:\n    app-logs: log\n").unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        "rules:\n  - name: panic-line\n    select: {formats: [log]}\n    \
         condition: {path: message, matches: '^panic: '}\n    \
         actions:\n      - log: {message: \"{{ event.message }}\"}\n",
    )
    .unwrap();
    let envelope = serde_json::json!({
        "topic": "app-logs",
        "payload": "panic: runtime error: index out of range [3] with length 3",
        "timestamp": "2026-12-04T23:10:05Z",
    })
    .to_string();
    let lines = file(
        dir.path(),
        "app.log",
        &["GET /healthz 200 0.3ms", "panic: nil map", &envelope],
    );
    let out = reflex(&[
        "replay",
        "--rules",
        rules.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--topic",
        "app-logs",
        "--format",
        "json",
        lines.to_str().unwrap(),
    ]);
    let (stdout, stderr) = texts(&out);
    assert!(
        stderr.contains("replayed 3 event(s): 2 planned action(s), 0 line(s) skipped"),
        "{stdout}{stderr}"
    );
    let messages: Vec<String> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .flat_map(|v| v["planned"].as_array().cloned().unwrap_or_default())
        .map(|p| {
            p["params"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    // The envelope's string is the line itself, not its JSON quoting.
    assert_eq!(
        messages,
        [
            "panic: nil map",
            "panic: runtime error: index out of range [3] with length 3"
        ],
        "{stdout}"
    );
}

#[test]
fn backtest_file_reads_raw_log_lines_with_the_same_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(FLUENT_BIT_LOG).unwrap();
    let burst = file(
        dir.path(),
        "burst.log",
        &[shipped.trim_end(), "not a JSON record", FIFTH_ERROR],
    );
    let out = reflex(&[
        "backtest",
        "--rules",
        "rules/logs",
        "--topic",
        "logs",
        "--decoding",
        "log_json",
        "--file",
        burst.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("a JSON report");
    assert_eq!(
        (report["events"].as_u64(), report["skipped"].as_u64()),
        (Some(7), Some(1))
    );
    let restart = report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "restart-deployment-on-error-burst")
        .expect("the rule's report");
    assert_eq!(restart["firings"], 1, "{restart:#}");
    assert_eq!(restart["actions"]["restart"], 1, "{restart:#}");
}

/// Runs `reflex test` on a directory holding `rules` and `tests` (and `extra` files).
fn rule_test(rules: &str, tests: &str, extra: &[(&str, &str)]) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lines.yaml"), rules).unwrap();
    std::fs::write(dir.path().join("lines.test.yaml"), tests).unwrap();
    for (name, text) in extra {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let out = reflex(&["test", dir.path().to_str().unwrap()]);
    let (stdout, stderr) = texts(&out);
    (out, stdout + &stderr)
}

/// Logs the identity of every `log` event: its id is the record position.
const ID_RULE: &str = "rules:\n  - name: ids\n    select: {formats: [log]}\n    \
                       actions:\n      - log: {message: \"{{ meta.id }} {{ event.level or '-' }}\"}\n";

#[test]
fn rule_test_lines_are_records_each_with_its_own_offset() {
    let (out, text) = rule_test(
        ID_RULE,
        r#"tests:
  - name: inline lines, a file of lines and a payload line
    steps:
      - topic: logs
        decoding: logfmt
        lines: ["level=error msg=a", "level=warn msg=b"]
      - topic: logs
        decoding: syslog
        lines_file: app.log
      - topic: logs
        decoding: log
        payload: "a plain line"
    expect:
      - params: {message: "logs/0/0 error"}
        rule: ids
      - {rule: ids, params: {message: "logs/0/1 warning"}}
      - {rule: ids, params: {message: "logs/0/2 critical"}}
      - {rule: ids, params: {message: "logs/0/3 info"}}
      - {rule: ids, params: {message: "logs/0/4 -"}}
"#,
        &[(
            "app.log",
            "<2>1 2026-12-04T23:10:01Z h app - - - disk failing\n\n<14>Dec  4 23:10:02 h app: ok\n",
        )],
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("rule tests: 1 passed, 0 failed"), "{text}");
}

#[test]
fn a_bad_line_or_a_bad_lines_step_fails_its_case_with_the_reason() {
    let (out, text) = rule_test(
        ID_RULE,
        r#"tests:
  - name: a line that is not syslog
    steps:
      - {topic: logs, decoding: syslog, lines: ["<13>Dec  4 23:10:01 h app: fine", "no priority"]}
    expect: []
  - name: lines and a payload
    steps:
      - {topic: logs, decoding: log, lines: ["a"], payload: "b"}
    expect: []
  - name: no line at all
    steps:
      - {topic: logs, decoding: log, lines: []}
    expect: []
  - name: a missing file
    steps:
      - {topic: logs, decoding: log, lines_file: missing.log}
    expect: []
"#,
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    for says in [
        "step 1: line 2: record topic `logs` partition 0 offset 1: the topic's decoding is \
         `syslog` but the record is not one: the line has neither a `<PRI>` priority nor a \
         syslog time",
        "step 1: give one of `payload`, `file`, `lines`, `lines_file`",
        "step 1: `lines` is empty; give at least one line",
        "missing.log: No such file",
    ] {
        assert!(text.contains(says), "{says}\n{text}");
    }
    assert!(text.contains("rule tests: 0 passed, 4 failed"), "{text}");
}
