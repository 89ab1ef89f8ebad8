//! The expression language: precedence, grouping, every operator, literals, and error messages
//! with columns.

use serde_json::json;

use super::{alert, event, expr, expr_errors, holds};
use crate::rules::diagnostic::Diagnostic;

/// The single problem `src` produces.
fn only_error(src: &str) -> Diagnostic {
    let mut problems = expr_errors(src);
    assert_eq!(problems.len(), 1, "`{src}`: {problems:#?}");
    problems.remove(0)
}

#[test]
fn and_binds_tighter_than_or() {
    let p = json!({"a": 1, "b": 2, "c": 3});
    // true or (false and false) = true; (true or false) and false would be false.
    assert!(holds("a == 1 or b == 0 and c == 0", &p));
    assert!(!holds("(a == 1 or b == 0) and c == 0", &p));
    // (false and true) or true = true
    assert!(holds("a == 0 and b == 2 or c == 3", &p));
}

#[test]
fn not_binds_tighter_than_and_but_looser_than_comparison() {
    let p = json!({"a": 1, "b": 2});
    // (not a == 2) and b == 2
    assert!(holds("not a == 2 and b == 2", &p));
    // not (a == 1 and b == 3) = true; (not a == 1) and b == 3 = false
    assert!(holds("not (a == 1 and b == 3)", &p));
    assert!(!holds("not a == 1 and b == 3", &p));
    assert!(holds("not not a == 1", &p));
}

#[test]
fn symbol_spellings_are_the_same_as_keywords() {
    let p = json!({"a": 1, "b": 2});
    for (words, symbols) in [
        ("a == 1 and b == 2", "a == 1 && b == 2"),
        ("a == 0 or b == 2", "a == 0 || b == 2"),
        ("not a == 0", "!a == 0"),
        ("not (a == 0 or b == 0)", "!(a == 0 || b == 0)"),
    ] {
        assert_eq!(holds(words, &p), holds(symbols, &p), "{words} vs {symbols}");
        assert_eq!(expr(words).to_string(), expr(symbols).to_string());
    }
}

#[test]
fn parentheses_group_and_nest() {
    let p = json!({"a": 1, "b": 2, "c": 3});
    assert!(holds("((a == 1))", &p));
    assert!(holds("(a == 0 or (b == 2 and (c == 3)))", &p));
    assert!(!holds("(a == 0 or b == 0) and (c == 3)", &p));
}

#[test]
fn spacing_is_free_between_tokens() {
    let p = alert();
    assert!(holds(r#"labels.severity=="critical"&&count>=7"#, &p));
    assert!(holds(r#"  labels.severity   in["critical"]  "#, &p));
    assert!(holds("count>6||count<0", &p));
}

#[test]
fn literals_cover_strings_numbers_booleans_null_and_lists() {
    let p = json!({"s": "it's \"q\"\n", "n": -1.5e2, "i": 18446744073709551615u64, "t": true, "z": null,
                   "l": [1, "a", [true]], "u": "é😀"});
    assert!(holds(r#"s == 'it\'s "q"\n'"#, &p));
    assert!(holds(r#"s == "it's \"q\"\u000a""#, &p));
    assert!(holds("n == -150", &p));
    assert!(holds("n < -149.9", &p));
    assert!(holds("i == 18446744073709551615", &p));
    assert!(holds("t == true and z == null", &p));
    assert!(holds(r#"l == [1, "a", [true],]"#, &p));
    assert!(holds(r#"u == "\u00e9\ud83d\ude00""#, &p));
    assert!(holds(r#"u == "\u{e9}\u{1F600}""#, &p));
    assert!(holds("true", &p));
    assert!(!holds("false", &p));
}

#[test]
fn unknown_escapes_stay_as_written_so_regexes_need_no_doubling() {
    let p = json!({"id": "pod-42"});
    assert!(holds(r#"id =~ "^pod-\d+$""#, &p));
    assert!(holds(r#"id =~ "^pod-\\d+$""#, &p));
}

#[test]
fn paths_of_every_form_work_on_the_left() {
    let p = alert();
    assert!(holds(
        r#"labels["app.kubernetes.io/name"] == "checkout""#,
        &p
    ));
    assert!(holds(r#"alerts[0].status == "firing""#, &p));
    assert!(holds(
        r#"$.alerts[?(@.status == "resolved")].name == "b""#,
        &p
    ));
    assert!(holds(r#"@topic == "alerts""#, &p));
    assert!(holds(r#"["status"] == "firing""#, &p));
}

#[test]
fn keywords_are_whole_words_so_paths_may_start_with_them() {
    let p = json!({"notify": true, "index": 1, "order": "x", "android": 2});
    assert!(holds("notify == true", &p));
    assert!(holds("index == 1 and order == \"x\" and android == 2", &p));
}

#[test]
fn matches_keyword_is_the_same_as_the_tilde_operator() {
    let p = alert();
    assert!(holds(r#"labels.severity matches "^crit""#, &p));
}

#[test]
fn display_renders_an_expression_that_parses_back_to_the_same_condition() {
    let sources = [
        r#"labels.severity == "critical" and (count > 5 or not exists(labels.team))"#,
        r#"lower(labels.env) in ["prod", "staging"] and annotations.summary =~ "crash\\s+loop""#,
        r#"@headers.trace-id != "x" or startsAt older_than 1h30m or value >= 0.9"#,
        r#"not (flags contains "paged") and labels.alertname endswith "Looping""#,
        r#"$.alerts[*].status not in ["resolved"] and labels["app.kubernetes.io/name"] startswith "check""#,
    ];
    let events = [
        event(alert()),
        event(json!({"labels": {"env": "PROD"}, "count": 9})),
    ];
    for src in sources {
        let first = expr(src);
        let rendered = first.to_string();
        let second = expr(&rendered);
        assert_eq!(
            second.to_string(),
            rendered,
            "rendering is stable for {src}"
        );
        for e in &events {
            assert_eq!(first.eval(e), second.eval(e), "{src} vs {rendered}");
        }
    }
    assert_eq!(
        expr(r#"a == 1 and (b == 2 or c == 3)"#).to_string(),
        r#"a == 1 and (b == 2 or c == 3)"#
    );
    assert_eq!(
        expr(r#"a == 1 or b == 2 and c == 3"#).to_string(),
        r#"a == 1 or b == 2 and c == 3"#
    );
}

#[test]
fn unterminated_string_reports_where_it_starts() {
    let e = only_error(r#"labels.severity == "critical"#);
    assert!(
        e.message
            .contains("unterminated string starting at column 20"),
        "{}",
        e.message
    );
    assert_eq!(e.column, 19);
    assert_eq!(e.hint.as_deref(), Some("close it with \""));
}

#[test]
fn missing_value_after_an_operator_names_the_operator_and_column() {
    let e = only_error("labels.severity == ");
    assert_eq!(e.message, "expected a value after `==` at column 20");
    assert!(e.hint.is_some());
    let e = only_error("count > and x == 1");
    assert!(
        e.message
            .starts_with("expected a value after `>`, found `and`"),
        "{}",
        e.message
    );
}

#[test]
fn missing_operand_after_and_or_not_is_reported() {
    let e = only_error("a == 1 and");
    assert_eq!(e.message, "expected a condition after `and` at column 11");
    let e = only_error("a == 1 or )");
    assert!(
        e.message
            .starts_with("expected a condition after `or`, found `)`"),
        "{}",
        e.message
    );
    let e = only_error("not");
    assert!(
        e.message.starts_with("expected a condition after `not`"),
        "{}",
        e.message
    );
    let e = only_error("");
    assert_eq!(e.message, "empty expression");
}

#[test]
fn a_bare_equals_sign_hints_at_double_equals() {
    let e = only_error(r#"labels.severity = "critical""#);
    assert_eq!(e.message, "unknown operator `=` at column 17");
    assert_eq!(e.hint.as_deref(), Some("use == for comparison"));
    assert_eq!(e.column, 16);
}

#[test]
fn unknown_operators_suggest_the_right_spelling() {
    let e = only_error(r#"labels.severity equals "critical""#);
    assert_eq!(e.message, "unknown operator `equals` at column 17");
    assert_eq!(e.hint.as_deref(), Some("did you mean `==`?"));
    let e = only_error(r#"labels.severity containz "crit""#);
    assert_eq!(e.hint.as_deref(), Some("did you mean `contains`?"));
    let e = only_error("labels.team exists");
    assert!(
        e.message.contains("`exists` is written as a function"),
        "{}",
        e.message
    );
    assert_eq!(
        e.hint.as_deref(),
        Some("write exists(labels.team) or not exists(labels.team)")
    );
    let e = only_error("labels.team");
    assert_eq!(
        e.message,
        "expected an operator after `labels.team` at column 12"
    );
    let e = only_error("a == 1 & b == 2");
    assert_eq!(e.hint.as_deref(), Some("use `and` (or `&&`)"));
    let e = only_error("a not b");
    assert!(
        e.message.starts_with("expected `in` after `not`"),
        "{}",
        e.message
    );
}

#[test]
fn bad_regex_is_reported_at_its_position_inside_the_string() {
    let e = only_error(r#"labels.severity =~ "crit(ical""#);
    assert!(
        e.message.starts_with("invalid regex `crit(ical`"),
        "{}",
        e.message
    );
    assert!(e.message.contains("unclosed group"), "{}", e.message);
    // The group opens at offset 4 in the pattern; the pattern starts at column 21.
    assert_eq!(e.column, 19 + 1 + 4);
}

#[test]
fn a_regex_over_the_size_limit_is_rejected_at_load() {
    let e = only_error(r#"x =~ "(((a{100}){100}){100})""#);
    assert!(e.message.contains("too big"), "{}", e.message);
}

#[test]
fn nesting_deeper_than_the_limit_is_rejected() {
    let deep = format!("{}a == 1{}", "(".repeat(70), ")".repeat(70));
    let e = only_error(&deep);
    assert!(
        e.message
            .starts_with("expression nests deeper than 64 levels"),
        "{}",
        e.message
    );
    let nots = format!("{}a == 1", "not ".repeat(70));
    assert!(only_error(&nots).message.contains("deeper than 64"));
    let lists = format!("a == {}1{}", "[".repeat(70), "]".repeat(70));
    assert!(only_error(&lists).message.contains("deeper than 64"));
    // Within the limit is fine.
    let ok = format!("{}a == 1{}", "(".repeat(60), ")".repeat(60));
    assert!(holds(&ok, &json!({"a": 1})));
}

#[test]
fn expressions_longer_than_the_bound_are_rejected() {
    let long = format!("a == \"{}\"", "x".repeat(5000));
    let e = only_error(&long);
    assert!(e.message.contains("the limit is 4096"), "{}", e.message);
}

#[test]
fn a_value_on_the_left_is_rejected_with_a_hint() {
    let e = only_error(r#""critical" == labels.severity"#);
    assert_eq!(
        e.message,
        "the left side of a comparison must be a path, found a value at column 1"
    );
}

#[test]
fn an_unquoted_word_as_a_value_hints_at_quotes() {
    let e = only_error("labels.severity == critical");
    assert_eq!(
        e.message,
        "expected a value after `==`, found `critical` at column 20"
    );
    assert!(
        e.hint
            .as_deref()
            .is_some_and(|h| h.contains("\"critical\""))
    );
}

#[test]
fn unbalanced_parentheses_are_reported() {
    let e = only_error("(a == 1 and b == 2");
    assert!(
        e.message
            .starts_with("expected `)` to close the `(` at column 1"),
        "{}",
        e.message
    );
    let e = only_error("a == 1)");
    assert_eq!(e.message, "unmatched `)` at column 7");
}

#[test]
fn trailing_words_suggest_joining_with_and_or_or() {
    let e = only_error("a == 1 b == 2");
    assert_eq!(e.message, "unexpected `b` at column 8");
    let e = only_error("a == 1 AND b == 2");
    assert_eq!(e.hint.as_deref(), Some("keywords are lowercase: `and`"));
}

#[test]
fn wrong_value_types_are_reported_at_the_value() {
    let e = only_error(r#"count > "high""#);
    assert!(
        e.message
            .starts_with("`gt` needs a number or an RFC 3339 timestamp"),
        "{}",
        e.message
    );
    assert_eq!(e.column, 8);
    let e = only_error(r#"count > "0.9""#);
    assert_eq!(e.hint.as_deref(), Some("write 0.9 without quotes"));
    let e = only_error(r#"labels.severity in "critical""#);
    assert!(e.message.starts_with("`in` needs a list"), "{}", e.message);
    let e = only_error("name startswith 3");
    assert!(
        e.message.starts_with("`starts_with` needs a string"),
        "{}",
        e.message
    );
    let e = only_error("lower(count) > 3");
    assert!(
        e.message.starts_with("lower(…) does not apply to `>`"),
        "{}",
        e.message
    );
}

#[test]
fn bad_durations_are_reported() {
    let e = only_error("startsAt older_than 10x");
    assert!(e.message.contains("unknown unit `x`"), "{}", e.message);
    let e = only_error("startsAt older_than 30m1h");
    assert!(e.message.contains("largest to smallest"), "{}", e.message);
    let e = only_error("startsAt newer_than");
    assert!(
        e.message
            .starts_with("expected a duration after `newer_than`"),
        "{}",
        e.message
    );
    let e = only_error("startsAt newer_than 10");
    assert!(e.message.contains("has no unit"), "{}", e.message);
}

#[test]
fn a_number_followed_by_letters_is_reported() {
    let e = only_error("count > 10m");
    assert!(
        e.message.starts_with("unexpected `m` after the number 10"),
        "{}",
        e.message
    );
}

#[test]
fn bad_paths_inside_expressions_point_into_the_path() {
    let e = only_error(r#"labels. == "x""#);
    assert!(
        e.message.starts_with("invalid path `labels.` at column 8"),
        "{}",
        e.message
    );
    let e = only_error(r#"@topc == "x""#);
    assert!(
        e.message.contains("did you mean `@topic`?"),
        "{}",
        e.message
    );
}

#[test]
fn several_independent_problems_are_all_reported() {
    let problems = expr_errors(r#"a =~ "(" and b older_than 5q and c > "x""#);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].message.starts_with("invalid regex"));
    assert!(problems[1].message.contains("unknown unit `q`"));
    assert!(problems[2].message.starts_with("`gt` needs"));
    // In column order.
    assert!(problems[0].column < problems[1].column && problems[1].column < problems[2].column);
}

#[test]
fn problems_are_located_relative_to_the_yaml_scalar() {
    let file: std::collections::BTreeMap<String, crate::rules::model::SpannedString> =
        serde_saphyr::from_str("when: labels.severity = \"critical\"\n").expect("yaml");
    let src = &file["when"];
    let mut diags = crate::rules::diagnostic::Diagnostics::new();
    assert!(super::super::Condition::compile_expr(src, &mut diags).is_none());
    let problems = diags.into_vec();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].line, 1);
    // `=` is the 23rd character of the line (the expression starts at column 7).
    assert_eq!(problems[0].column, 23);
}

#[test]
fn problems_in_quoted_yaml_scalars_skip_the_opening_quote() {
    let file: std::collections::BTreeMap<String, crate::rules::model::SpannedString> =
        serde_saphyr::from_str(
            "single: 'labels.severity = \"critical\"'\ndouble: \"a == 1 and\"\n",
        )
        .expect("yaml");
    let mut diags = crate::rules::diagnostic::Diagnostics::new();
    assert!(super::super::Condition::compile_expr(&file["single"], &mut diags).is_none());
    assert!(super::super::Condition::compile_expr(&file["double"], &mut diags).is_none());
    let problems = diags.into_vec();
    assert_eq!(problems.len(), 2);
    // `single: '` is 9 characters, so the expression starts at column 10 and `=` (its 17th
    // character) is at column 26.
    assert_eq!((problems[0].line, problems[0].column), (1, 26));
    // `double: "` is 9 characters; the missing condition is expected at the 11th character.
    assert_eq!((problems[1].line, problems[1].column), (2, 20));
}
