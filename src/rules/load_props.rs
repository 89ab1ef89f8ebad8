//! Property tests of the rule loader and the engine: no rules file, however broken, makes loading
//! panic (every problem is a located diagnostic), and no event makes the shipped rules panic
//! while they are evaluated and their actions rendered.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Duration, Utc};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::Value;

use super::*;
use crate::event::Event;
use crate::event::decode::arbitrary::{
    config, document, edit, edited, event, json_value, text_from,
};
use crate::event::decode::{Decoding, decode_json};
use crate::rules::diagnostic::Diagnostics;
use crate::rules::engine::Engine;
use crate::rules::testing::{TestFile, run_case};

/// Pieces of rule files: YAML structure, field names, and values each compiler checks.
const RULE_PIECES: &[&str] = &[
    "rules:",
    "\n",
    "  ",
    "- ",
    ": ",
    "name",
    "when",
    "condition",
    "select",
    "throttle",
    "threshold",
    "correlate",
    "absence",
    "actions",
    "log",
    "message",
    "webhook",
    "url",
    "restart",
    "scale",
    "target",
    "namespace",
    "priority",
    "stop",
    "key",
    "once_within",
    "10m",
    "1h30m",
    "0s",
    "{{ event.x }}",
    "{# é #}",
    "{% if %}",
    "labels.severity == \"critical\"",
    "$..x",
    "@topic",
    "[",
    "]",
    "{",
    "}",
    "&a",
    "*a",
    "!!str",
    "---",
    "|",
    ">",
    "#",
    "'",
    "\"",
    "~",
    "null",
    "-1",
    "99999999999999999999",
];

/// Field names of rule files (see `rules::model`), for structural edits.
const RULE_FIELDS: &[&str] = &[
    "rules",
    "name",
    "description",
    "enabled",
    "priority",
    "stop",
    "dry_run",
    "select",
    "topics",
    "formats",
    "types",
    "alert_status",
    "when",
    "condition",
    "all",
    "any",
    "not",
    "expr",
    "path",
    "equals",
    "in",
    "matches",
    "older_than",
    "throttle",
    "key",
    "once_within",
    "threshold",
    "count",
    "within",
    "correlate",
    "absence",
    "once_after",
    "actions",
    "log",
    "message",
    "webhook",
    "url",
    "body",
    "headers",
    "kafka",
    "topic",
    "value",
    "restart",
    "scale",
    "target",
    "namespace",
    "replicas",
    "patch",
    "delete",
    "kind",
    "guard",
    "cool_down",
    "max_keys",
    "max_per_rule",
    "max_per_target",
    "namespaces",
    "allow",
    "deny",
    "selector",
    "window",
    "expect",
    "mode",
    "verify",
    "alert_resolved",
    "no_refire",
    "every",
    "escalate",
    "loop_guard",
    "max",
    "quarantine",
    "notify",
    "undo",
    "on_resolve",
    "after",
];

/// Field names of rule test files (see `rules::testing`), for structural edits.
const TEST_FIELDS: &[&str] = &[
    "rule_files",
    "tests",
    "name",
    "start",
    "steps",
    "advance",
    "at",
    "topic",
    "payload",
    "file",
    "key",
    "headers",
    "decoding",
    "expect",
    "expect_failures",
    "rule",
    "kind",
    "params",
    "group_key",
    "message_contains",
    "objects",
    "expect_remediations",
    "result",
    "step",
    "target",
];

/// The shipped files under `rules/` that `keep` accepts, with their text.
fn shipped(keep: fn(&Path) -> bool) -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    find_files(&dir, keep)
        .expect("the rules directory lists")
        .into_iter()
        .map(|path| {
            let text = read_source(&path).expect("a shipped file reads");
            (path, text)
        })
        .collect()
}

/// The shipped rule files, as text.
fn shipped_sources() -> &'static [(PathBuf, String)] {
    static SOURCES: OnceLock<Vec<(PathBuf, String)>> = OnceLock::new();
    SOURCES.get_or_init(|| shipped(is_rule_file))
}

/// The shipped rule set, compiled once.
fn shipped_rules() -> Arc<RuleSet> {
    static RULES: OnceLock<Arc<RuleSet>> = OnceLock::new();
    Arc::clone(
        RULES.get_or_init(|| {
            Arc::new(load_sources(shipped_sources()).expect("the shipped rules load"))
        }),
    )
}

/// A shipped rule file with random text inserted or removed at random places.
fn edited_source() -> impl Strategy<Value = String> {
    let edits = vec((any::<usize>(), 0usize..8, text_from(RULE_PIECES)), 1..4);
    (
        select((0..shipped_sources().len()).collect::<Vec<_>>()),
        edits,
    )
        .prop_map(|(i, edits)| {
            let mut chars: Vec<char> = shipped_sources()[i].1.chars().collect();
            for (at, remove, insert) in edits {
                let at = at % (chars.len() + 1);
                let end = (at + remove).min(chars.len());
                chars.splice(at..end, insert.chars());
            }
            chars.into_iter().collect()
        })
}

/// A shipped rule file parsed to a document, with random structural edits, written back as
/// YAML (JSON is YAML): rule-shaped input that gets past the YAML layer to the compilers.
fn edited_document() -> impl Strategy<Value = String> {
    let docs: Vec<Value> = shipped_sources()
        .iter()
        .map(|(path, text)| {
            serde_saphyr::from_str(text)
                .unwrap_or_else(|e| panic!("{} parses as a document: {e}", path.display()))
        })
        .collect();
    let values = prop_oneof![
        2 => text_from(RULE_PIECES).prop_map(Value::String),
        1 => json_value(),
    ]
    .boxed();
    (select(docs), vec(edit(RULE_FIELDS, values), 1..5))
        .prop_map(|(doc, edits)| yaml_text(&edited(doc, &edits)))
}

/// The shipped rule test files, as documents, with the directory each one's paths are relative to.
fn shipped_tests() -> Vec<(PathBuf, Value)> {
    shipped(is_test_file)
        .into_iter()
        .map(|(path, text)| {
            let doc = serde_saphyr::from_str(&text)
                .unwrap_or_else(|e| panic!("{} parses as a document: {e}", path.display()));
            (
                path.parent().expect("a file has a parent").to_path_buf(),
                doc,
            )
        })
        .collect()
}

/// Values rule test files hold: times (at the edges of chrono's range too), clock advances,
/// payload pieces.
const TEST_VALUES: &[&str] = &[
    "\"2026-01-01T00:00:00Z\"",
    "\"9999-12-31T23:59:59Z\"",
    "\"+262142-12-31T23:59:59Z\"",
    "\"-262143-01-01T00:00:00Z\"",
    "\"0000-01-01T00:00:00Z\"",
    "\"365d\"",
    "\"1ms\"",
    "\"0s\"",
    "\"alerts\"",
    "\"../../Cargo.toml\"",
    "\"alertmanager\"",
    "{\"ce_specversion\": \"1.0\"}",
];

/// Times in rule test files, at the edges of chrono's range too.
const TIMES: &[&str] = &[
    "2026-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "+262142-12-31T23:59:59Z",
    "-262143-01-01T00:00:00Z",
    "0000-01-01T00:00:00Z",
];

/// A rule test file built from its grammar: cases with a start time, clock steps (`advance`,
/// `at`) and events.
fn test_file_document() -> impl Strategy<Value = Value> {
    let time = || select(TIMES).prop_map(Value::from);
    let step = (
        proptest::option::of(select(vec!["0s", "1ms", "10m", "365d", "1d"])),
        proptest::option::of(time()),
        proptest::option::of(document()),
    )
        .prop_map(|(advance, at, payload)| {
            let mut step = serde_json::Map::new();
            if let Some(advance) = advance {
                step.insert("advance".into(), Value::from(advance));
            }
            if let Some(at) = at {
                step.insert("at".into(), at);
            }
            if let Some(payload) = payload {
                step.insert("topic".into(), Value::from("alerts"));
                step.insert("payload".into(), payload);
            }
            Value::Object(step)
        });
    (proptest::option::of(time()), vec(step, 1..5)).prop_map(|(start, steps)| {
        let mut case = serde_json::json!({"name": "props", "steps": steps, "expect": []});
        if let Some(start) = start {
            case["start"] = start;
        }
        serde_json::json!({ "tests": [case] })
    })
}

/// `doc` as YAML text: JSON, with the characters YAML does not allow unescaped (DEL, C1
/// controls, U+FFFE/U+FFFF; JSON leaves them raw) written as `\u` escapes, which both read.
fn yaml_text(doc: &Value) -> String {
    let json = serde_json::to_string_pretty(doc).expect("a Value serializes");
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        let printable = matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{7e}' | '\u{85}')
            || matches!(c, '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..);
        if printable {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// Loads one file; a failure must list at least one located problem, never an I/O error.
fn load(text: String) -> Result<(), TestCaseError> {
    match load_sources(&[("props.yaml".into(), text)]) {
        Ok(_) => {}
        Err(LoadError::Invalid(problems)) => prop_assert!(!problems.is_empty()),
        Err(other) => prop_assert!(false, "unexpected error: {other}"),
    }
    Ok(())
}

/// Events as `reflex run` would see them: a document through the decoders, or (when it decodes
/// to nothing) an arbitrary event built directly.
fn events() -> impl Strategy<Value = Vec<Event>> {
    let decoded = (
        document(),
        select(vec!["alerts", "builds", "falco", "k8s-events", "é"]),
    )
        .prop_map(|(doc, topic)| {
            let headers = Default::default();
            decode_json(doc, topic, 0, 7, None, &headers, None, Decoding::Auto).unwrap_or_default()
        });
    vec(prop_oneof![decoded, event().prop_map(|e| vec![e])], 1..4)
        .prop_map(|batches| batches.concat())
}

/// A clock that starts near the present and advances by arbitrary steps up to a year.
fn now(start_ms: i64, step_ms: u32) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_770_000_000_000 + start_ms % 86_400_000).unwrap_or_default()
        + Duration::milliseconds(i64::from(step_ms))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn no_text_panics_the_loader(text in text_from(RULE_PIECES)) {
        load(text)?;
    }

    #[test]
    fn no_edit_of_a_shipped_rule_file_panics_the_loader(text in edited_source()) {
        load(text)?;
    }

    #[test]
    fn no_structured_rule_document_panics_the_loader(text in edited_document()) {
        load(text)?;
    }

    #[test]
    fn no_rule_test_file_panics_the_test_runner(doc in test_file_document()) {
        let mut diags = Diagnostics::new();
        let file = parse_yaml::<TestFile>(&yaml_text(&doc), &mut diags);
        prop_assert!(file.is_some(), "{:?}", diags.into_vec());
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        for case in &file.expect("checked").tests {
            let _ = run_case(&base.join("props.test.yaml"), &base, case, &shipped_rules());
        }
    }

    #[test]
    fn no_edited_rule_test_file_panics_the_test_runner(
        which in any::<usize>(),
        edits in vec(edit(TEST_FIELDS, prop_oneof![
            2 => select(TEST_VALUES).prop_map(|v| serde_json::from_str(v).expect("JSON literal")),
            1 => json_value(),
        ].boxed()), 1..5),
    ) {
        let tests = shipped_tests();
        let (base, doc) = &tests[which % tests.len()];
        let text = yaml_text(&edited(doc.clone(), &edits));
        let mut diags = Diagnostics::new();
        if let Some(file) = parse_yaml::<TestFile>(&text, &mut diags) {
            for case in &file.tests {
                let _ = run_case(&base.join("props.test.yaml"), base, case, &shipped_rules());
            }
        }
    }

    #[test]
    fn no_event_panics_the_shipped_rules(
        events in events(),
        start in any::<i64>(),
        steps in vec(any::<u32>(), 4),
        event_clock in proptest::option::of(prop_oneof![
            Just(DateTime::<Utc>::MAX_UTC.timestamp_millis()),
            DateTime::<Utc>::MIN_UTC.timestamp_millis()..=DateTime::<Utc>::MAX_UTC.timestamp_millis(),
        ]),
    ) {
        let mut engine = Engine::new(shipped_rules());
        for (i, event) in events.iter().enumerate() {
            // The pipeline's clock is the wall clock; `reflex replay`'s is the event time, which
            // can be anywhere in chrono's range.
            let at = match event_clock.and_then(DateTime::from_timestamp_millis) {
                Some(clock) => clock.max(event.meta.timestamp),
                None => now(start, steps[i % steps.len()]),
            };
            if engine.next_deadline().is_some_and(|due| due <= at) {
                engine.tick(at);
            }
            let evaluation = if i % 2 == 0 {
                engine.process(event, at)
            } else {
                engine.process_traced(event, at)
            };
            for planned in &evaluation.planned {
                prop_assert!(!planned.idempotency_key.is_empty());
            }
        }
        engine.tick(now(start, u32::MAX) + Duration::days(365));
    }
}

#[test]
fn the_engine_property_sees_the_shipped_rules() {
    // Guards the property above against silently testing an empty rule set.
    assert!(shipped_rules().len() >= 6);
}

#[test]
fn a_rule_test_clock_past_year_9999_is_a_case_failure_not_a_panic() {
    // Regression (property test): `start: +262142-12-31T23:59:59Z` then `advance: 10m`
    // overflowed chrono's range and `reflex test` exited 101.
    let text = "tests:\n  - name: far\n    start: \"+262142-12-31T23:59:59Z\"\n    \
                steps: [{advance: 10m}]\n    expect: []\n  - name: near\n    \
                start: \"9999-12-31T23:55:00Z\"\n    steps: [{advance: 10m}]\n    expect: []\n";
    let mut diags = Diagnostics::new();
    let file = parse_yaml::<TestFile>(text, &mut diags).expect("the test file parses");
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    for case in &file.tests {
        let result = run_case(&base.join("far.test.yaml"), &base, case, &shipped_rules());
        let failure = result.failure.unwrap_or_default();
        assert!(
            failure.contains("0000 to 9999"),
            "{}: {failure}",
            case.name.value
        );
    }
}

#[test]
fn a_clock_at_the_end_of_time_does_not_panic_the_windows() {
    // Regression (property test): `reflex replay` runs the engine at the event time; at
    // chrono's last instant the throttle's `now + window` overflowed and panicked.
    let sample = crate::event::decode::arbitrary::SAMPLES[0];
    let doc = serde_json::from_str(sample).expect("sample is JSON");
    let events = decode_json(
        doc,
        "alerts",
        0,
        0,
        None,
        &Default::default(),
        None,
        Decoding::Auto,
    )
    .expect("the sample decodes");
    let mut engine = Engine::new(shipped_rules());
    let end = DateTime::<Utc>::MAX_UTC;
    let planned: usize = events
        .iter()
        .map(|e| engine.process(e, end).planned.len())
        .sum();
    assert!(planned > 0, "the crash-loop sample fires the restart rule");
    assert_eq!(engine.next_deadline().map_or(end, |d| d.min(end)), end);
}
