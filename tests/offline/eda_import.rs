//! `reflex import eda` as a user runs it, on rulebooks shaped like ansible-rulebook's own
//! examples (tests/data/eda/): each converts, the output passes `reflex validate`, and the
//! `.test.yaml` next to each rulebook proves with `reflex test` that the converted rules fire on
//! the events the rulebook's rules would (and not on the others). What does not convert is
//! reported at its `file:line:column`; a property test feeds arbitrary rulebook-shaped YAML.

use std::path::Path;
use std::process::Output;

use crate::support::cli::reflex;

const DATA: &str = "tests/data/eda";

/// Rulebooks that convert completely.
const COMPLETE: [&str; 5] = [
    "alertmanager-remediate",
    "webhook-deploy",
    "kafka-escalate",
    "multi-event",
    "generic-checks",
];

/// A rulebook with a playbook run and a fact, which do not convert.
const PARTIAL: &str = "hello-partial";

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
            "{name}: the rules go to --output, not stdout"
        );
    }
    let out = import(PARTIAL, root, &["--allow-partial"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dir_arg = root.to_str().expect("utf-8 temp path");
    let validate = reflex(&["validate", dir_arg]);
    assert!(validate.status.success(), "{}", text(&validate.stdout));
    assert!(
        text(&validate.stdout).contains("15 rule(s) valid"),
        "{}",
        text(&validate.stdout)
    );
    let tests = reflex(&["test", dir_arg]);
    assert!(tests.status.success(), "{}", text(&tests.stdout));
    assert!(
        text(&tests.stdout).contains("12 passed, 0 failed"),
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
    // Each at the action's line and column in the rulebook.
    for expected in [
        "NOT converted: tests/data/eda/hello-partial.yml:13:9: say-hello: run_playbook `ansible.eda.hello`",
        "NOT converted: tests/data/eda/hello-partial.yml:19:11: remember-the-last-number: set_fact",
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
        stderr.contains(&format!(
            "NOT converted: {}:7:18: uses-a-fact: condition `fact.count > 3",
            rulebook.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("Reflex has no fact store"), "{stderr}");
    // Without its condition the rule would fire on every event: it is off until fixed.
    let rules = text(&out.stdout);
    assert!(rules.contains("    enabled: false\n"), "{rules}");
    assert!(!rules.contains("when:"), "{rules}");
}

#[test]
fn a_converted_rule_reflex_refuses_is_commented_out_and_reported_and_the_file_stays_valid() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rulebook = dir.path().join("half.yml");
    std::fs::write(
        &rulebook,
        "- name: p\n  hosts: all\n  sources: []\n  rules:\n    - name: fine\n      condition: event.i == 1\n      action:\n        debug: {}\n    - name: half a condition\n      condition: event.i == 1 and\n      action:\n        debug: {}\n",
    )
    .expect("write rulebook");
    // Apart from the rulebook, which `validate` would read as a rules file.
    let out_dir = dir.path().join("rules");
    std::fs::create_dir(&out_dir).expect("output dir");
    let out_file = out_dir.join("half.yaml");
    let out = reflex(&[
        "import",
        "eda",
        rulebook.to_str().expect("utf-8"),
        "--output",
        out_file.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "NOT converted: {}:9:7: half-a-condition: the converted rule does not validate: expected a condition after `and`",
            rulebook.display()
        )),
        "{stderr}"
    );
    let rules = std::fs::read_to_string(&out_file).expect("written");
    assert!(rules.contains("  # - name: half-a-condition\n"), "{rules}");
    assert!(rules.contains("  - name: fine\n"), "{rules}");
    let validate = reflex(&["validate", out_dir.to_str().expect("utf-8")]);
    assert!(validate.status.success(), "{}", text(&validate.stdout));
    assert!(
        text(&validate.stdout).contains("1 rule(s) valid"),
        "{}",
        text(&validate.stdout)
    );
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

/// Arbitrary rulebook-shaped documents: plays with sources, rules with conditions (the
/// operators ansible-rulebook has, and arbitrary text), throttles, `all`/`any`/`not_all`, known
/// and unknown actions, with arbitrary strings in every name and argument.
mod props {
    use std::path::Path;

    use proptest::collection::vec;
    use proptest::prelude::*;
    use reflex::cli::import::eda::convert;
    use reflex::rules::{LoadError, load_sources};
    use serde_json::{Map, Value, json};

    fn text() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z][a-z _-]{0,10}", "\\PC{0,16}", any::<String>(),]
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            text().prop_map(Value::from),
            Just(Value::Null),
        ]
    }

    fn path() -> impl Strategy<Value = String> {
        prop_oneof![
            "event\\.[a-z_]{1,8}(\\.[a-z_]{1,8}){0,2}",
            "event\\.(alert|payload|body|meta)\\.[a-z]{1,6}",
            "event\\.labels\\[\"[a-z ]{1,6}\"\\]",
            "events\\.[a-z]{1,4}\\.[a-z]{1,4}",
            "(fact|facts|vars)\\.[a-z]{1,5}",
        ]
    }

    fn literal() -> impl Strategy<Value = String> {
        prop_oneof![
            "\"[a-z .*]{0,6}\"",
            "'[a-z]{0,4}'",
            "-?[0-9]{1,3}(\\.[0-9])?",
            "(true|false|null|True|False|None)",
            "\\[(1|\"a\")(, (2|\"b\")){0,2}\\]",
        ]
    }

    fn leaf() -> impl Strategy<Value = String> {
        let op = "(==|!=|<|<=|>|>=|in|not in|contains|not contains|=|<<)";
        prop_oneof![
            (path(), op, literal()).prop_map(|(p, o, l)| format!("{p} {o} {l}")),
            path().prop_map(|p| format!("{p} is defined")),
            path().prop_map(|p| format!("{p} is not defined")),
            (path(), "(match|search|regex|select|even)", "[a-z.*(]{0,5}")
                .prop_map(|(p, t, re)| format!("{p} is {t}(\"{re}\", ignorecase=true)")),
            path(),
            path().prop_map(|p| format!("not {p}")),
        ]
    }

    fn condition_text() -> impl Strategy<Value = String> {
        let tree = leaf().prop_recursive(3, 12, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} or {b}")),
                inner.clone().prop_map(|a| format!("not ({a})")),
                inner.prop_map(|a| format!("({a})")),
            ]
        });
        prop_oneof![4 => tree, 1 => text()]
    }

    fn duration() -> impl Strategy<Value = Value> {
        prop_oneof![
            "[0-9]{1,3} (second|seconds|minute|minutes|hour|hours|day|days)".prop_map(Value::from),
            scalar(),
        ]
    }

    /// An `all:` item may name its event: `events.down << event.up == false`.
    fn assigned() -> impl Strategy<Value = String> {
        (proptest::option::of("[a-z]{1,4}"), condition_text())
            .prop_map(|(n, c)| n.map_or(c.clone(), |n| format!("events.{n} << {c}")))
    }

    fn condition() -> impl Strategy<Value = Value> {
        prop_oneof![
            4 => condition_text().prop_map(Value::from),
            1 => vec(condition_text(), 0..4).prop_map(|c| json!({"any": c})),
            1 => (vec(assigned(), 0..4), proptest::option::of(duration()))
                .prop_map(|(c, t)| match t {
                    Some(t) => json!({"all": c, "timeout": t}),
                    None => json!({"all": c}),
                }),
            1 => vec(assigned(), 0..3).prop_map(|c| json!({"not_all": c})),
            1 => scalar(),
        ]
    }

    fn throttle() -> impl Strategy<Value = Value> {
        (
            "(once_within|once_after|accumulate_within|other)",
            duration(),
            proptest::option::of(scalar()),
            vec(path(), 0..3),
        )
            .prop_map(|(kind, window, threshold, attrs)| {
                let mut t = Map::new();
                t.insert(kind, window);
                if let Some(threshold) = threshold {
                    t.insert("threshold".into(), threshold);
                }
                t.insert("group_by_attributes".into(), json!(attrs));
                Value::Object(t)
            })
    }

    fn action() -> impl Strategy<Value = Value> {
        let kind = prop_oneof![
            "(debug|print_event|post_event|run_job_template|run_workflow_template)",
            "(run_playbook|run_module|set_fact|retract_fact|shutdown)",
            text(),
        ];
        let template = prop_oneof![path().prop_map(|p| format!("{{{{ {p} }}}}")), text(),];
        let args = prop_oneof![
            Just(Value::Null),
            (scalar(), template.clone(), template, scalar()).prop_map(|(name, msg, var, org)| {
                json!({
                    "name": name, "organization": org, "msg": msg,
                    "event": {"x": var.clone()},
                    "job_args": {"extra_vars": {"v": var}},
                })
            }),
            scalar(),
        ];
        (kind, args).prop_map(|(k, a)| json!({ k: a }))
    }

    fn rule() -> impl Strategy<Value = Value> {
        (
            scalar(),
            proptest::option::of(condition()),
            proptest::option::of(throttle()),
            vec(action(), 0..3),
            any::<bool>(),
            proptest::option::of(any::<bool>()),
        )
            .prop_map(|(name, condition, throttle, actions, one, enabled)| {
                let mut r = Map::new();
                r.insert("name".into(), name);
                if let Some(c) = condition {
                    r.insert("condition".into(), c);
                }
                if let Some(t) = throttle {
                    r.insert("throttle".into(), t);
                }
                match (one, actions.first()) {
                    (true, Some(first)) => r.insert("action".into(), first.clone()),
                    _ => r.insert("actions".into(), json!(actions)),
                };
                if let Some(e) = enabled {
                    r.insert("enabled".into(), json!(e));
                }
                Value::Object(r)
            })
    }

    fn source() -> impl Strategy<Value = Value> {
        prop_oneof![
            proptest::option::of(text())
                .prop_map(|p| json!({"ansible.eda.alertmanager": {"data_host_path": p}})),
            vec(text(), 0..3).prop_map(|t| json!({"ansible.eda.kafka": {"topics": t}})),
            text().prop_map(|t| json!({"ansible.eda.kafka": {"topic": t}})),
            Just(json!({"ansible.eda.webhook": {"port": 5000}})),
            (text(), scalar()).prop_map(|(k, v)| json!({"name": "s", k: v})),
        ]
    }

    fn play() -> impl Strategy<Value = Value> {
        (
            scalar(),
            vec(source(), 0..3),
            vec(rule(), 0..4),
            proptest::option::of(duration()),
        )
            .prop_map(|(name, sources, rules, ttl)| {
                let mut p =
                    json!({"name": name, "hosts": "all", "sources": sources, "rules": rules});
                if let Some(ttl) = ttl {
                    p["default_events_ttl"] = ttl;
                }
                p
            })
    }

    /// Found by the property below: the set-aside rules were written right after `rules:`, and
    /// a long run of comments there is more than the YAML parser looks ahead through.
    #[test]
    fn many_rules_set_aside_in_a_row_still_make_a_valid_file() {
        let half =
            json!({"name": "half", "condition": "event.i == 1 and", "action": {"debug": null}});
        let fine = json!({"name": "fine", "condition": "event.i == 1", "action": {"debug": null}});
        let mut rules = vec![half; 8];
        rules.push(fine);
        let book = json!([{"name": "p", "hosts": "all", "sources": [], "rules": rules}]);
        let yaml = serde_json::to_string_pretty(&book).expect("JSON");
        let (rules, report) = convert(&yaml, Path::new("book.yml")).expect("a rulebook");
        assert_eq!(report.not_converted.len(), 8, "{report:?}");
        assert!(rules.contains("rules:\n  - name: fine\n"), "{rules}");
        if let Err(err) = load_sources(&[("converted.yaml".into(), rules.clone())]) {
            panic!("{err:?}\n{rules}");
        }
    }

    /// `book.yml:LINE:COLUMN: ` or, where the shape hides the line, `book.yml:plays[..]...: `.
    fn has_position(line: &str) -> bool {
        let Some(rest) = line.strip_prefix("book.yml:") else {
            return false;
        };
        let place = rest.split(": ").next().unwrap_or_default();
        let mut numbers = place.split(':');
        let line_col = numbers
            .next()
            .is_some_and(|n| n.parse::<u64>().is_ok_and(|n| n > 0))
            && numbers.next().is_some_and(|n| n.parse::<u64>().is_ok())
            && numbers.next().is_none();
        line_col || place.starts_with("plays[")
    }

    proptest! {
        // No failure files: a failure found here becomes a named regression test instead (as
        // `many_rules_set_aside_in_a_row_still_make_a_valid_file`).
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_rulebook_converts_to_valid_rules_and_places_what_it_leaves_out(
            plays in vec(play(), 0..3),
        ) {
            let yaml = serde_json::to_string_pretty(&plays).expect("JSON is YAML");
            let (rules, report) = match convert(&yaml, Path::new("book.yml")) {
                Ok(converted) => converted,
                // A document serde-saphyr refuses (a character YAML does not allow) is an error
                // naming the file, never a panic.
                Err(err) => {
                    prop_assert!(err.to_string().starts_with("book.yml: "), "{err}");
                    return Ok(());
                }
            };
            match load_sources(&[("converted.yaml".into(), rules.clone())]) {
                Ok(_) => {}
                Err(LoadError::Invalid(problems)) => prop_assert!(
                    false,
                    "the output does not validate:\n{}\n--- output:\n{rules}\n--- rulebook:\n{yaml}",
                    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
                ),
                Err(other) => prop_assert!(false, "{other}"),
            }
            for line in &report.not_converted {
                prop_assert!(has_position(line), "no position in `{line}`");
            }
            let set_aside = rules.matches("# TODO: not converted").count();
            prop_assert!(set_aside <= report.not_converted.len(), "{report:?}\n{rules}");
        }

        #[test]
        fn arbitrary_text_is_converted_or_refused_never_a_panic(yaml in any::<String>()) {
            if let Ok((rules, _)) = convert(&yaml, Path::new("book.yml")) {
                prop_assert!(load_sources(&[("converted.yaml".into(), rules)]).is_ok());
            }
        }
    }
}
