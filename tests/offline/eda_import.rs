//! `reflex import eda` as a user runs it, on rulebooks shaped like ansible-rulebook's own
//! examples (tests/data/eda/): each converts, the output passes `reflex validate`, and the
//! `.test.yaml` next to each rulebook proves with `reflex test` that the converted rules fire on
//! the events the rulebook's rules would (and not on the others).

use std::path::Path;
use std::process::{Command, Output};

const DATA: &str = "tests/data/eda";

/// Rulebooks that convert completely.
const COMPLETE: [&str; 4] = [
    "alertmanager-remediate",
    "webhook-deploy",
    "kafka-escalate",
    "multi-event",
];

/// A rulebook with a playbook run and a fact, which do not convert.
const PARTIAL: &str = "hello-partial";

fn reflex(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reflex"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the reflex binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Imports `name` into `dir` (as `<name>.yaml`, with its `.test.yaml` beside it).
fn import(name: &str, dir: &Path, extra: &[&str]) -> Output {
    let rulebook = format!("{DATA}/{name}.yml");
    let out = dir.join(format!("{name}.yaml"));
    let mut args = vec![
        "import",
        "eda",
        &rulebook,
        "--out",
        out.to_str().expect("utf-8 temp path"),
    ];
    args.extend_from_slice(extra);
    let output = reflex(&args);
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("{DATA}/{name}.test.yaml")),
        dir.join(format!("{name}.test.yaml")),
    )
    .expect("copy the rule test");
    output
}

#[test]
fn every_example_rulebook_converts_validates_and_fires_like_the_original() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    for name in COMPLETE {
        let out = import(name, root, &[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{name}: {stderr}");
        assert!(stderr.contains("0 not converted"), "{name}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{name}: the rules go to -o, not stdout"
        );
    }
    let out = import(PARTIAL, root, &["--allow-partial"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dir_arg = root.to_str().expect("utf-8 temp path");
    let validate = reflex(&["validate", dir_arg]);
    assert!(validate.status.success(), "{}", text(&validate.stdout));
    assert!(
        text(&validate.stdout).contains("9 rule(s) valid"),
        "{}",
        text(&validate.stdout)
    );
    let tests = reflex(&["test", dir_arg]);
    assert!(tests.status.success(), "{}", text(&tests.stdout));
    assert!(
        text(&tests.stdout).contains("9 passed, 0 failed"),
        "{}",
        text(&tests.stdout)
    );
}

#[test]
fn the_output_uses_reflex_paths_and_the_controller_placeholders() {
    let out = reflex(&[
        "import",
        "eda",
        &format!("{DATA}/alertmanager-remediate.yml"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rules = text(&out.stdout);
    // The alert is the event in Reflex: no `event.alert` wrapper, `event.meta.hosts` is the
    // source's data_host_path.
    assert!(!rules.contains("event.alert."), "{rules}");
    assert!(!rules.contains("event.meta"), "{rules}");
    for expected in [
        r#"key: "{{ event.labels.instance }}/{{ event.labels.alertname }}""#,
        "once_within: 10m",
        "formats: [alertmanager]",
        "job_templates/JOB_TEMPLATE_ID/launch/",
        "Authorization: {env: AAP_AUTHORIZATION}",
        "# TODO: replace aap.example.org",
    ] {
        assert!(rules.contains(expected), "`{expected}` in {rules}");
    }
}

#[test]
fn what_does_not_convert_is_reported_with_exit_1_and_todo_stand_ins() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = import(PARTIAL, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    for expected in [
        "NOT converted: say-hello: run_playbook `ansible.eda.hello`",
        "NOT converted: remember-the-last-number: set_fact",
        "2 not converted",
    ] {
        assert!(stderr.contains(expected), "`{expected}` in {stderr}");
    }
    // The file is still written, valid, with a TODO where each action was.
    let rules =
        std::fs::read_to_string(dir.path().join(format!("{PARTIAL}.yaml"))).expect("written");
    assert_eq!(rules.matches("# TODO: not converted").count(), 2, "{rules}");
    let validate = reflex(&["validate", dir.path().to_str().expect("utf-8")]);
    assert!(validate.status.success(), "{}", text(&validate.stdout));
}

#[test]
fn unconvertible_conditions_are_reported_never_silently_dropped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rulebook = dir.path().join("facts.yml");
    std::fs::write(
        &rulebook,
        "- name: p\n  hosts: all\n  sources:\n    - ansible.eda.range: {limit: 3}\n  rules:\n    - name: uses a fact\n      condition: fact.count > 3 and event.i is even\n      action:\n        debug: {}\n",
    )
    .expect("write rulebook");
    let out = reflex(&["import", "eda", rulebook.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("NOT converted: uses-a-fact: condition `fact.count > 3"),
        "{stderr}"
    );
    assert!(stderr.contains("Reflex has no fact store"), "{stderr}");
}

#[test]
fn a_file_that_is_not_a_rulebook_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rulebook = dir.path().join("not-a-rulebook.yml");
    std::fs::write(&rulebook, "rules: []\n").expect("write");
    let out = reflex(&["import", "eda", rulebook.to_str().expect("utf-8")]);
    assert_ne!(out.status.code(), Some(0));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("not-a-rulebook.yml"), "{stderr}");
    assert!(stderr.contains("a rulebook is a list of plays"), "{stderr}");
}
