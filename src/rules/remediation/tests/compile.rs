//! Every bad closed-loop field is reported, all in one load, at its line.

use crate::rules::diagnostic::Diagnostic;
use crate::rules::load::LoadError;

const BAD: &str = r#"rules:
  - name: escalates-blindly
    select: {formats: [alertmanager]}
    actions: [{restart: {target: {namespace: shop, name: web}}}]
    escalate:
      - actions: [{log: {message: page}}]
  - name: checks-nothing
    actions: [{log: {message: hi}}]
    verify: {within: 5m}
  - name: resolves-a-json-event
    select: {formats: [json]}
    actions: [{log: {message: hi}}]
    verify: {within: 5m, alert_resolved: true}
  - name: undoes-a-restart
    actions: [{restart: {target: {namespace: shop, name: web}}}]
    undo: {on_resolve: true}
  - name: undoes-whenever
    actions: [{scale: {target: {namespace: shop, name: web}, replicas: 3}}]
    undo: {}
  - name: guards-nothing
    actions: [{restart: {target: {namespace: shop, name: web}}}]
    loop_guard: {max: 0}
  - name: waits-in-words
    actions: [{log: {message: hi}}]
    verify: {within: ten minutes, no_refire: true}
  - name: waits-no-time
    actions: [{log: {message: hi}}]
    verify: {within: 0s, no_refire: true}
  - name: polls-weekly
    actions: [{restart: {target: {namespace: shop, name: web}}}]
    verify: {within: 1h, every: 8d, kubernetes: {condition: available}}
  - name: guards-a-year-and-a-day
    actions: [{restart: {target: {namespace: shop, name: web}}}]
    loop_guard: {within: 366d, quarantine: soon}
  - name: undoes-too-late
    actions: [{scale: {target: {namespace: shop, name: web}, replicas: 3}}]
    undo: {after: 30d}
  - name: checks-an-unnamed-object
    actions: [{log: {message: hi}}]
    verify: {within: 5m, kubernetes: {when: 'status.ready == true'}}
  - name: checks-no-condition
    actions: [{restart: {target: {namespace: shop, name: web}}}]
    verify: {within: 5m, kubernetes: {}}
  - name: escalates-to-a-check-of-nothing
    actions: [{restart: {target: {namespace: shop, name: web}}}]
    verify: {within: 5m, no_refire: true}
    escalate:
      - actions: [{rollback: {target: {namespace: shop, name: web}}}]
        verify: {within: 5m}
"#;

/// 1-based line of the first line of [`BAD`] containing `needle`.
fn line_of(needle: &str) -> u64 {
    let index = BAD
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} is in the YAML"));
    index as u64 + 1
}

fn problems() -> Vec<Diagnostic> {
    match crate::rules::load_sources(&[("bad.yaml".into(), BAD.to_owned())]) {
        Err(LoadError::Invalid(problems)) => problems,
        other => panic!("the rules are refused: {other:?}"),
    }
}

#[test]
fn every_bad_closed_loop_field_is_reported_at_once_with_its_line() {
    let problems = problems();
    let expected: &[(&str, &str, &str)] = &[
        (
            "escalates-blindly",
            "name: escalates-blindly",
            "`escalate` needs a `verify`",
        ),
        (
            "checks-nothing",
            "verify: {within: 5m}",
            "`verify` checks nothing",
        ),
        (
            "resolves-a-json-event",
            "alert_resolved: true}",
            "`verify.alert_resolved` needs a rule that selects Alertmanager events",
        ),
        (
            "undoes-a-restart",
            "name: undoes-a-restart",
            "`undo` on a rule with nothing reversible",
        ),
        (
            "undoes-whenever",
            "name: undoes-whenever",
            "`undo` says neither when nor after",
        ),
        (
            "guards-nothing",
            "max: 0",
            "`loop_guard.max` must be at least 1",
        ),
        ("waits-in-words", "ten minutes", ""),
        (
            "waits-no-time",
            "within: 0s",
            "`verify.within` must be more than 0s",
        ),
        (
            "polls-weekly",
            "every: 8d",
            "`verify.every` must be more than 0s and at most 7d",
        ),
        (
            "guards-a-year-and-a-day",
            "within: 366d",
            "is too large (at most 365d)",
        ),
        ("guards-a-year-and-a-day", "quarantine: soon", ""),
        ("undoes-too-late", "after: 30d", "`undo.after` must be"),
        (
            "checks-an-unnamed-object",
            "status.ready == true",
            "the step has no Kubernetes action naming an object",
        ),
        (
            "checks-no-condition",
            "kubernetes: {}",
            "`verify.kubernetes` needs a `condition` or a `when`",
        ),
        (
            "escalates-to-a-check-of-nothing",
            "        verify: {within: 5m}",
            "`verify` checks nothing",
        ),
    ];
    let mut missing = Vec::new();
    for &(rule, at, message) in expected {
        let line = line_of(at);
        let found = problems.iter().any(|p| {
            p.rule.as_deref() == Some(rule) && p.line == line && p.message.contains(message)
        });
        if !found {
            missing.push(format!("{rule} at line {line}: {message:?}"));
        }
    }
    let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert!(
        missing.is_empty(),
        "not reported: {missing:#?}\nreported:\n{}",
        shown.join("\n")
    );
    assert_eq!(
        problems.len(),
        expected.len(),
        "one problem each:\n{}",
        shown.join("\n")
    );
}

#[test]
fn each_problem_says_how_to_fix_it() {
    for p in problems() {
        let durations = p.message.contains("must be more than") || p.message.contains("duration");
        assert!(p.hint.is_some() || durations, "no hint: {p}");
    }
}
