//! `reflex test` following remediations, as a user runs it: the fixture under
//! tests/data/rules-closed-loop/ passes (verify, refire, escalation, loop guard, dry run, a
//! failing escalation), and each kind of mistake in an expectation or a step is reported.

use std::path::Path;
use std::process::Output;

use crate::support::cli::reflex;

const FIXTURE: &str = "tests/data/rules-closed-loop";

/// Runs `reflex test` on the fixture's rules with `tests` as the test file.
fn test_with(tests: &str) -> (Output, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(FIXTURE)
        .join("closed-loop.yaml");
    std::fs::copy(rules, dir.path().join("closed-loop.yaml")).expect("copy the rules");
    std::fs::write(dir.path().join("closed-loop.test.yaml"), tests).expect("write the tests");
    let out = reflex(&["test", dir.path().to_str().expect("utf-8 path")]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out, text)
}

#[test]
fn the_closed_loop_fixture_passes() {
    let out = reflex(&["test", FIXTURE]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("rule tests: 7 passed, 0 failed"), "{text}");
}

#[test]
fn a_remediation_that_ends_otherwise_shows_a_diff_and_what_happened() {
    let (out, text) = test_with(
        r#"tests:
  - name: the object never gets ready
    steps:
      - topic: load
        payload: {deployment: web}
        objects: [{kind: Deployment, metadata: {namespace: shop, name: web}, status: {readyReplicas: 1}}]
      - advance: 5m
    expect:
      - {rule: scale-until-ready, step: 1}
    expect_remediations:
      - {rule: scale-until-ready, result: verified}
"#,
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL "), "{text}");
    assert!(text.contains(":2: the object never gets ready"), "{text}");
    assert!(text.contains("-    \"step\": 1"), "{text}");
    assert!(text.contains("+    \"step\": 0"), "{text}");
    assert!(text.contains("remediations differ"), "{text}");
    assert!(text.contains("-    \"result\": \"verified\""), "{text}");
    assert!(text.contains("+    \"result\": \"ineffective\""), "{text}");
    assert!(
        text.contains(
            "2026-01-01 00:05:00 UTC scale-until-ready deployment/shop/web step 0: ineffective \
             (deployment/shop/web: `when` does not hold)"
        ),
        "{text}"
    );
    assert!(text.contains("rule tests: 0 passed, 1 failed"), "{text}");
}

#[test]
fn a_remediation_still_verifying_at_the_end_is_pending() {
    let (out, text) = test_with(
        r#"tests:
  - name: the case ends before the deadline
    steps:
      - {topic: load, payload: {deployment: web}}
      - advance: 4m
    expect: [{rule: scale-until-ready}]
    expect_remediations: []
"#,
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("+    \"result\": \"pending\""), "{text}");
    assert!(
        text.contains("step 0: pending (deployment/shop/web does not exist)"),
        "{text}"
    );
}

#[test]
fn an_object_without_kind_or_name_fails_its_step() {
    let (out, text) = test_with(
        r#"tests:
  - name: an object from a half-written manifest
    steps:
      - {topic: load, payload: {deployment: web}}
      - advance: 1m
        objects: [{metadata: {namespace: shop, name: web}}]
    expect: []
"#,
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("step 2: an object in `objects` needs `kind` and `metadata.name`"),
        "{text}"
    );
}

#[test]
fn an_unknown_result_is_reported_at_its_line_before_any_test_runs() {
    let (out, text) = test_with(
        r#"tests:
  - name: a result that does not exist
    steps: [{topic: load, payload: {deployment: web}}]
    expect: []
    expect_remediations:
      - {rule: scale-until-ready, result: fixed}
"#,
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("closed-loop.test.yaml:6:"), "{text}");
    assert!(text.contains("fixed"), "{text}");
    assert!(
        text.contains("verified"),
        "the valid results are listed: {text}"
    );
    assert!(text.contains("no test ran"), "{text}");
}

#[test]
fn a_step_with_only_objects_is_valid_and_an_empty_step_is_not() {
    let (out, text) = test_with(
        r#"tests:
  - name: objects alone
    steps:
      - objects: [{kind: Deployment, metadata: {namespace: shop, name: web}, status: {readyReplicas: 3}}]
      - {topic: load, payload: {deployment: web}}
    expect: [{rule: scale-until-ready}]
    expect_remediations: [{rule: scale-until-ready, result: verified}]
  - name: nothing at all
    steps: [{}]
    expect: []
"#,
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("ok   "), "{text}");
    assert!(
        text.contains("step 1: a step needs `payload`, `file`, `advance`, `at` or `objects`"),
        "{text}"
    );
    assert!(text.contains("rule tests: 1 passed, 1 failed"), "{text}");
}
