//! `reflex backtest --file`: the seeded history of tests/support/history.rs through the rules
//! of tests/data/backtest, as a CI job runs it: the report's counts and targets, a time slice,
//! `--against` with its exit codes, and the shape of the JSON and HTML reports.

use std::process::Output;

use chrono::{DateTime, Duration, Utc};

use crate::support::cli::reflex;
use crate::support::history::{self, NEW, OLD, exit_code, json_of};

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-05T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// `reflex backtest --file HISTORY ARGS`, the history (2,000 events) written as envelope lines
/// to a temporary file.
fn backtest_history(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let lines: Vec<String> = history::events(t0(), 2_000)
        .into_iter()
        .map(|(at, payload)| {
            serde_json::json!({"topic": "history", "payload": payload, "timestamp": at}).to_string()
        })
        .collect();
    std::fs::write(&path, lines.join("\n")).expect("write the history");
    let file = path.to_str().unwrap();
    reflex(&[&["backtest", "--file", file], args].concat())
}

#[test]
fn a_file_backtest_reports_the_seeded_firings_targets_and_loop_guard_refusals() {
    let out = backtest_history(&["--rules", NEW, "--format", "json"]);
    exit_code(&out, 0);
    let report = json_of(&out);
    assert_eq!(report["events"], 2_000);
    assert_eq!(report["skipped"], 0);
    history::assert_report(&report, false);
    let buckets = report["buckets"].as_array().unwrap().len();
    for rule in report["rules"].as_array().unwrap() {
        assert_eq!(
            rule["timeline"].as_array().unwrap().len(),
            buckets,
            "{rule:#}"
        );
    }
}

#[test]
fn a_time_slice_counts_only_what_its_events_and_timers_fire() {
    let since = (t0() + Duration::seconds(history::SLICE.0)).to_rfc3339();
    let until = (t0() + Duration::seconds(history::SLICE.1)).to_rfc3339();
    let out = backtest_history(&[
        "--rules", NEW, "--since", &since, "--until", &until, "--format", "json",
    ]);
    exit_code(&out, 0);
    history::assert_report(&json_of(&out), true);
}

#[test]
fn against_the_old_rules_reports_exactly_the_seeded_differences_and_exits_1() {
    let out = backtest_history(&["--rules", NEW, "--against", OLD, "--format", "json"]);
    exit_code(&out, 1);
    history::assert_against(&json_of(&out));
    let text = backtest_history(&["--rules", NEW, "--against", OLD]);
    exit_code(&text, 1);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("2 new action(s), 1 disappeared, 3 changed"),
        "{text}"
    );
    assert!(text.contains("rule job-never-finished: +2 -0 ~0"), "{text}");
    let same = backtest_history(&["--rules", NEW, "--against", NEW]);
    exit_code(&same, 0);
    assert!(String::from_utf8_lossy(&same.stdout).starts_with("no difference"));
}

#[test]
fn the_html_report_is_one_self_contained_page_with_a_plot_per_firing_rule() {
    let out = backtest_history(&["--rules", NEW, "--format", "html"]);
    exit_code(&out, 0);
    let html = String::from_utf8_lossy(&out.stdout);
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.trim_end().ends_with("</html>"));
    assert_eq!(html.matches("<svg class=\"timeline\"").count(), 4, "{html}");
    for rule in [
        "restart-crashlooping",
        "page-on-error-burst",
        "lock-account-after-bruteforce",
        "job-never-finished",
    ] {
        assert!(html.contains(&format!("data-rule=\"{rule}\"")), "{rule}");
    }
    // Nothing is fetched: no script, stylesheet link, image or external source.
    for external in ["<script", "<link", "<img", "src=", "@import"] {
        assert!(!html.contains(external), "{external} in {html}");
    }
}

#[test]
fn the_text_report_names_each_rule_with_its_busiest_targets() {
    let out = backtest_history(&["--rules", NEW]);
    exit_code(&out, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("backtest of 2000 events"), "{text}");
    assert!(
        text.contains(
            "rule restart-crashlooping: 82 events matched, 7 firings, 7 actions planned (restart 7)"
        ),
        "{text}"
    );
    assert!(
        text.contains("4 would execute, 3 refused by loop_guard, 75 firings throttled"),
        "{text}"
    );
    assert!(
        text.contains("deployment/shop/web (6), deployment/shop/api (1)"),
        "{text}"
    );
}

#[test]
fn bad_input_exits_2_for_usage_and_3_when_it_cannot_run_saying_what_is_wrong() {
    let cases: [(&[&str], i32, &str); 5] = [
        (
            &["--rules", "tests/data/rules-invalid", "--file", "-"],
            3,
            "problem(s) in the rules",
        ),
        (&["--rules", NEW, "--topic", "t"], 2, "--since is required"),
        (
            &["--rules", NEW, "--file", "-", "--since", "last week"],
            2,
            "RFC 3339",
        ),
        (
            &[
                "--rules", NEW, "--file", "-", "--since", "1h", "--until", "2h",
            ],
            2,
            "is before --since",
        ),
        (
            &["--rules", NEW, "--file", "no/such/file.jsonl"],
            3,
            "no/such/file.jsonl",
        ),
    ];
    for (args, code, says) in cases {
        let out = reflex(&[&["backtest"], args].concat());
        exit_code(&out, code);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
