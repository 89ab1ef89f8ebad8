//! Every operator: true, false, missing path, type mismatch.

use serde_json::json;

use super::{alert, compile_tree, event, holds};

#[test]
fn equals_matches_same_string_and_rejects_other_and_missing() {
    let p = alert();
    assert!(holds(r#"labels.severity == "critical""#, &p));
    assert!(!holds(r#"labels.severity == "warning""#, &p));
    assert!(!holds(r#"labels.team == "core""#, &p));
}

#[test]
fn equals_compares_numbers_by_value_so_one_equals_one_point_zero() {
    let p = json!({"a": 1, "b": 1.0, "c": 2.5});
    assert!(holds("a == 1.0", &p));
    assert!(holds("b == 1", &p));
    assert!(holds("c == 2.5", &p));
    assert!(!holds("c == 2", &p));
}

#[test]
fn equals_does_not_convert_between_types() {
    let p = alert();
    // "0.93" is a string: equality is typed, only ordering converts.
    assert!(!holds("value == 0.93", &p));
    assert!(holds(r#"value == "0.93""#, &p));
    assert!(!holds(r#"count == "7""#, &p));
    assert!(!holds("enabled == 1", &p));
}

#[test]
fn equals_null_matches_only_a_present_null() {
    let p = alert();
    assert!(holds("nothing == null", &p));
    assert!(!holds("missing == null", &p));
    assert!(!holds("count == null", &p));
}

#[test]
fn equals_compares_booleans_and_lists() {
    let p = alert();
    assert!(holds("enabled == true", &p));
    assert!(!holds("enabled == false", &p));
    assert!(holds(r#"flags == ["paged", "Urgent"]"#, &p));
    assert!(!holds(r#"flags == ["Urgent", "paged"]"#, &p));
}

#[test]
fn not_equals_is_true_for_a_missing_path_and_a_different_value() {
    let p = alert();
    assert!(holds(r#"labels.severity != "warning""#, &p));
    assert!(!holds(r#"labels.severity != "critical""#, &p));
    assert!(holds(r#"labels.team != "core""#, &p));
}

#[test]
fn in_holds_for_any_listed_value_only() {
    let p = alert();
    assert!(holds(r#"labels.severity in ["warning", "critical"]"#, &p));
    assert!(!holds(r#"labels.severity in ["warning", "info"]"#, &p));
    assert!(!holds(r#"labels.team in ["core"]"#, &p));
    assert!(holds("count in [1, 7.0]", &p));
    assert!(!holds("labels.severity in []", &p));
}

#[test]
fn not_in_is_true_for_missing_path_and_unlisted_value() {
    let p = alert();
    assert!(holds(r#"labels.severity not in ["warning"]"#, &p));
    assert!(!holds(r#"labels.severity not in ["critical"]"#, &p));
    assert!(holds(r#"labels.team not in ["core"]"#, &p));
}

#[test]
fn exists_distinguishes_present_null_and_missing() {
    let p = alert();
    assert!(holds("exists(labels.severity)", &p));
    assert!(holds("exists(nothing)", &p));
    assert!(!holds("exists(labels.team)", &p));
    assert!(holds("not exists(labels.team)", &p));
    assert!(!holds("!exists(labels.severity)", &p));
}

#[test]
fn exists_false_in_a_tree_holds_only_for_a_missing_path() {
    let (cond, problems) = compile_tree("path: labels.team\nexists: false\n");
    assert!(problems.is_empty(), "{problems:?}");
    let cond = cond.expect("compiles");
    assert!(cond.eval(&event(alert())));
    assert!(!cond.eval(&event(json!({"labels": {"team": "core"}}))));
}

#[test]
fn matches_searches_unanchored_and_fails_on_non_strings() {
    let p = alert();
    assert!(holds(r#"labels.alertname =~ "CrashLoop""#, &p));
    assert!(!holds(r#"labels.alertname =~ "^CrashLoop""#, &p));
    assert!(holds(r#"labels.alertname =~ "^Kube.*Looping$""#, &p));
    assert!(holds(r#"annotations.summary =~ "checkout-\d+""#, &p));
    assert!(!holds(r#"count =~ "7""#, &p));
    assert!(!holds(r#"missing =~ ".*""#, &p));
}

#[test]
fn not_matches_is_the_negation_of_matches() {
    let p = alert();
    assert!(holds(r#"labels.severity !~ "^warn""#, &p));
    assert!(!holds(r#"labels.severity !~ "crit""#, &p));
    assert!(holds(r#"missing !~ ".*""#, &p));
}

#[test]
fn contains_checks_substrings_and_array_elements() {
    let p = alert();
    assert!(holds(r#"annotations.summary contains "crash looping""#, &p));
    assert!(!holds(r#"annotations.summary contains "OOM""#, &p));
    assert!(holds(r#"flags contains "paged""#, &p));
    assert!(!holds(r#"flags contains "pag""#, &p));
    assert!(!holds(r#"missing contains "x""#, &p));
    // A number is neither a string nor an array.
    assert!(!holds(r#"count contains "7""#, &p));
    assert!(holds(r#"flags contains "Urgent""#, &p));
}

#[test]
fn contains_finds_numbers_in_arrays_by_value() {
    let p = json!({"codes": [500, 502.0]});
    assert!(holds("codes contains 502", &p));
    assert!(holds("codes contains 500.0", &p));
    assert!(!holds("codes contains 404", &p));
}

#[test]
fn starts_with_and_ends_with_test_strings_only() {
    let p = alert();
    assert!(holds(r#"labels.alertname startswith "Kube""#, &p));
    assert!(holds(r#"labels.alertname starts_with "KubePod""#, &p));
    assert!(!holds(r#"labels.alertname startswith "Pod""#, &p));
    assert!(holds(r#"labels.alertname endswith "Looping""#, &p));
    assert!(holds(r#"labels.alertname ends_with "CrashLooping""#, &p));
    assert!(!holds(r#"labels.alertname endswith "Kube""#, &p));
    assert!(!holds(r#"missing startswith "x""#, &p));
    assert!(!holds(r#"count endswith "7""#, &p));
}

#[test]
fn ordering_compares_numbers() {
    let p = alert();
    assert!(holds("count > 6", &p));
    assert!(!holds("count > 7", &p));
    assert!(holds("count >= 7", &p));
    assert!(holds("count < 7.5", &p));
    assert!(!holds("count < 7", &p));
    assert!(holds("count <= 7", &p));
    assert!(holds("ratio > -1", &p));
    assert!(!holds("missing > 0", &p));
}

#[test]
fn ordering_converts_numeric_strings_from_the_event() {
    let p = json!({"value": "0.93", "big": "1e3", "inf": "+Inf", "text": "high", "padded": " 1"});
    assert!(holds("value > 0.9", &p));
    assert!(!holds("value > 0.95", &p));
    assert!(holds("value <= 0.93", &p));
    assert!(holds("big >= 1000", &p));
    assert!(holds("inf > 1000000", &p));
    assert!(!holds("text > 0", &p));
    assert!(!holds("text < 0", &p));
    // Only exact numeric text converts.
    assert!(!holds("padded >= 1", &p));
}

#[test]
fn ordering_is_false_for_type_mismatches() {
    let p = alert();
    assert!(!holds("enabled > 0", &p));
    assert!(!holds("flags > 0", &p));
    assert!(!holds("labels > 0", &p));
    assert!(!holds("nothing < 1", &p));
    // A number against a timestamp bound never compares: its unit would be a guess.
    assert!(!holds(r#"count < "2024-01-01T00:00:00Z""#, &p));
}

#[test]
fn ordering_compares_rfc3339_timestamps_as_instants() {
    let p = json!({"at": "2024-05-01T14:00:00+02:00", "text": "yesterday"});
    // 14:00+02:00 is 12:00Z.
    assert!(holds(r#"at >= "2024-05-01T12:00:00Z""#, &p));
    assert!(holds(r#"at <= "2024-05-01T12:00:00Z""#, &p));
    assert!(holds(r#"at > "2024-05-01T11:59:59.5Z""#, &p));
    assert!(!holds(r#"at > "2024-05-01T12:00:00Z""#, &p));
    assert!(!holds(r#"text > "2024-05-01T12:00:00Z""#, &p));
    assert!(holds(r#"@timestamp > "2024-05-01T11:00:00Z""#, &p));
    assert!(!holds(r#"@timestamp < "2024-05-01T11:00:00Z""#, &p));
}

#[test]
fn older_than_and_newer_than_measure_from_the_event_time() {
    // Event time is 12:00; startsAt 11:40 is 20 minutes earlier.
    let p = alert();
    assert!(holds("startsAt older_than 10m", &p));
    assert!(!holds("startsAt older_than 20m", &p));
    assert!(!holds("startsAt older_than 1h", &p));
    assert!(holds("startsAt newer_than 20m", &p));
    assert!(holds("startsAt newer_than 1h30m", &p));
    assert!(!holds("startsAt newer_than 19m59s", &p));
    assert!(holds(r#"startsAt older_than "1199s""#, &p));
    assert!(!holds("labels.severity older_than 1m", &p));
    assert!(!holds("missing newer_than 1m", &p));
    assert!(!holds("count older_than 1m", &p));
}

#[test]
fn newer_than_counts_times_after_the_event_as_newer() {
    let p = json!({"future": "2024-05-01T12:30:00Z"});
    assert!(holds("future newer_than 1s", &p));
    assert!(!holds("future older_than 0s", &p));
}

#[test]
fn ignore_case_folds_both_sides_for_string_operators() {
    let p = alert();
    assert!(holds(r#"lower(labels.severity) == "CRITICAL""#, &p));
    assert!(holds(
        r#"lower(labels.severity) in ["Warning", "Critical"]"#,
        &p
    ));
    assert!(!holds(r#"lower(labels.severity) != "Critical""#, &p));
    assert!(holds(r#"lower(labels.severity) not in ["INFO"]"#, &p));
    assert!(holds(
        r#"lower(annotations.summary) contains "CRASH LOOPING""#,
        &p
    ));
    assert!(holds(r#"lower(flags) contains "urgent""#, &p));
    assert!(holds(r#"lower(labels.alertname) startswith "kubepod""#, &p));
    assert!(holds(r#"lower(labels.alertname) endswith "LOOPING""#, &p));
    assert!(holds(r#"lower(labels.alertname) =~ "^kube""#, &p));
    // Without folding the same tests fail.
    assert!(!holds(r#"labels.severity == "CRITICAL""#, &p));
    assert!(!holds(r#"flags contains "urgent""#, &p));
}

#[test]
fn ignore_case_handles_non_ascii_text() {
    let p = json!({"city": "ÉVORA", "note": "Straße GESPERRT"});
    assert!(holds(r#"lower(city) == "évora""#, &p));
    assert!(holds(r#"lower(note) contains "straße gesperrt""#, &p));
    assert!(!holds(r#"lower(city) == "evora""#, &p));
}

#[test]
fn ignore_case_in_a_tree_applies_to_equals_and_in() {
    let (cond, problems) =
        compile_tree("path: labels.severity\nin: [CRITICAL, page]\nignore_case: true\n");
    assert!(problems.is_empty(), "{problems:?}");
    assert!(cond.expect("compiles").eval(&event(alert())));
}

#[test]
fn every_tree_operator_evaluates_like_its_expression_form() {
    let cases = [
        (
            "path: labels.severity\nequals: critical\n",
            r#"labels.severity == "critical""#,
        ),
        (
            "path: labels.severity\nnot_equals: critical\n",
            r#"labels.severity != "critical""#,
        ),
        (
            "path: labels.severity\nin: [critical]\n",
            r#"labels.severity in ["critical"]"#,
        ),
        (
            "path: labels.severity\nnot_in: [critical]\n",
            r#"labels.severity not in ["critical"]"#,
        ),
        ("path: labels.team\nexists: true\n", "exists(labels.team)"),
        (
            "path: labels.alertname\nmatches: '^Kube'\n",
            r#"labels.alertname =~ "^Kube""#,
        ),
        (
            "path: flags\ncontains: paged\n",
            r#"flags contains "paged""#,
        ),
        (
            "path: labels.alertname\nstarts_with: Kube\n",
            r#"labels.alertname startswith "Kube""#,
        ),
        (
            "path: labels.alertname\nends_with: Kube\n",
            r#"labels.alertname endswith "Kube""#,
        ),
        ("path: value\ngt: 0.9\n", "value > 0.9"),
        ("path: value\ngte: 0.93\n", "value >= 0.93"),
        ("path: count\nlt: 7\n", "count < 7"),
        ("path: count\nlte: 7\n", "count <= 7"),
        (
            "path: startsAt\nolder_than: 10m\n",
            "startsAt older_than 10m",
        ),
        (
            "path: startsAt\nnewer_than: 10m\n",
            "startsAt newer_than 10m",
        ),
    ];
    let events = [
        event(alert()),
        event(json!({"labels": {"severity": "warning", "team": "x"}, "count": 3, "value": "0.1"})),
        event(json!({})),
    ];
    for (yaml, src) in cases {
        let (tree, problems) = compile_tree(yaml);
        assert!(problems.is_empty(), "{yaml}: {problems:?}");
        let tree = tree.expect("compiles");
        let expression = super::expr(src);
        for e in &events {
            assert_eq!(
                tree.eval(e),
                expression.eval(e),
                "{yaml} vs {src} on {}",
                e.payload
            );
        }
    }
}
