//! Rule unit tests (`*.test.yaml`, like `promtool test rules`): a sequence of events and clock
//! advances in, the expected planned actions out, compared with a readable diff.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::diagnostic::{Diagnostic, Diagnostics};
use super::engine::{Engine, Evaluation};
use super::load::{
    LoadError, find_files, is_rule_file, is_test_file, load_sources, parse_yaml, read_source,
};
use super::model::SpannedString;
use crate::event::decode::{Decoding, decode_json};

/// A rule test file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// Rule files under test, relative to this file. Default: the file with the same stem
    /// (`crashloop.test.yaml` tests `crashloop.yaml`), else every rule in the directory.
    #[serde(default)]
    pub rule_files: Vec<String>,
    /// The test cases.
    pub tests: Vec<TestCase>,
}

/// One test case: steps in, expected actions out.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// What the case proves, as a sentence.
    #[schemars(with = "String")]
    pub name: SpannedString,
    /// Clock at the start (RFC 3339). Default `2026-01-01T00:00:00Z`.
    #[serde(default)]
    pub start: Option<DateTime<Utc>>,
    /// Events and clock advances, in order.
    pub steps: Vec<Step>,
    /// Every action the rules must plan over the whole case, in order. `[]` = no action at all.
    pub expect: Vec<Expected>,
    /// Rule failures expected (e.g. a template that cannot render for this event). Default none.
    #[serde(default)]
    pub expect_failures: Vec<ExpectedFailure>,
}

/// One step: an event arrives, or time passes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Move the clock forward by this duration before the event (or alone: just let time pass,
    /// firing due `once_after` and `absence` timers).
    #[schemars(with = "Option<String>")]
    pub advance: Option<SpannedString>,
    /// Set the clock to this instant (RFC 3339) before the event, firing due timers on the way.
    /// It may not go back in time; give `advance` or `at`, not both.
    pub at: Option<DateTime<Utc>>,
    /// Kafka topic the event arrives on. Default `events`.
    pub topic: Option<String>,
    /// Record key.
    pub key: Option<String>,
    /// Record headers (e.g. CloudEvents `ce_` headers for binary mode).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Force a decoder instead of auto-detection.
    #[serde(default)]
    pub decoding: Decoding,
    /// The record value, inline (YAML is converted to JSON).
    pub payload: Option<Value>,
    /// The record value from a JSON file, relative to this test file.
    pub file: Option<String>,
}

/// One expected planned action. Only the fields given are compared; `params` is compared as a
/// subset (keys not listed are ignored, listed values must be equal).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    /// The rule that fired.
    pub rule: String,
    /// The action kind (`restart`, `webhook`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Rendered parameters (subset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    /// Whether the rule is in dry-run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// The stateful group key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_key: Option<String>,
}

/// One expected rule failure.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectedFailure {
    /// The rule that failed.
    pub rule: String,
    /// A substring of the failure message.
    pub message_contains: String,
}

/// Result of one test case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// The test file.
    pub file: PathBuf,
    /// The case's name.
    pub name: String,
    /// Line of the case's name.
    pub line: u64,
    /// Passed or not.
    pub passed: bool,
    /// Why not: a readable diff or an error.
    pub failure: Option<String>,
}

/// Why a test run could not even start.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// Rules or test files are invalid or unreadable.
    #[error(transparent)]
    Load(#[from] LoadError),
}

const DEFAULT_TOPIC: &str = "events";

fn default_start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("constant is RFC 3339")
        .with_timezone(&Utc)
}

/// Runs every `*.test.yaml` under `dir`.
pub fn run_dir(dir: &Path) -> Result<Vec<CaseResult>, TestError> {
    let test_files = find_files(dir, is_test_file)?;
    let rule_files = find_files(dir, is_rule_file)?;
    let mut results = Vec::new();
    let mut problems: Vec<Diagnostic> = Vec::new();
    for test_path in test_files {
        let text = read_source(&test_path)?;
        let mut diags = Diagnostics::new();
        diags.set_file(&test_path);
        let Some(file) = parse_yaml::<TestFile>(&text, &mut diags) else {
            problems.extend(diags.into_vec());
            continue;
        };
        let base = test_path.parent().unwrap_or(Path::new("."));
        let under_test = select_rule_files(&test_path, &file, &rule_files, base);
        let mut sources = Vec::new();
        for path in under_test {
            sources.push((path.clone(), read_source(&path)?));
        }
        let rules = match load_sources(&sources) {
            Ok(rules) => Arc::new(rules),
            Err(LoadError::Invalid(p)) => {
                problems.extend(p);
                continue;
            }
            Err(other) => return Err(other.into()),
        };
        for case in &file.tests {
            results.push(run_case(&test_path, base, case, &rules));
        }
    }
    if problems.is_empty() {
        Ok(results)
    } else {
        problems.dedup();
        Err(LoadError::Invalid(problems).into())
    }
}

fn select_rule_files(
    test_path: &Path,
    file: &TestFile,
    all: &[PathBuf],
    base: &Path,
) -> Vec<PathBuf> {
    if !file.rule_files.is_empty() {
        return file.rule_files.iter().map(|f| base.join(f)).collect();
    }
    let name = test_path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let stem = name
        .strip_suffix(".test.yaml")
        .or_else(|| name.strip_suffix(".test.yml"))
        .unwrap_or(name);
    for ext in ["yaml", "yml"] {
        let sibling = base.join(format!("{stem}.{ext}"));
        if sibling.is_file() {
            return vec![sibling];
        }
    }
    all.to_vec()
}

/// Runs one case against a fresh engine.
pub fn run_case(
    file: &Path,
    base: &Path,
    case: &TestCase,
    rules: &Arc<super::RuleSet>,
) -> CaseResult {
    let mut result = CaseResult {
        file: file.to_path_buf(),
        name: case.name.value.clone(),
        line: case.name.referenced.line(),
        passed: false,
        failure: None,
    };
    match execute(base, case, rules) {
        Ok(outcome) => match compare(case, &outcome) {
            None => result.passed = true,
            Some(diff) => result.failure = Some(diff),
        },
        Err(message) => result.failure = Some(message),
    }
    result
}

/// Runs a case's steps and returns everything the engine produced.
fn execute(
    base: &Path,
    case: &TestCase,
    rules: &Arc<super::RuleSet>,
) -> Result<Evaluation, String> {
    let mut engine = Engine::new(Arc::clone(rules));
    let mut now = case.start.unwrap_or_else(default_start);
    check_year(now).map_err(|e| format!("`start`: {e}"))?;
    let mut all = Evaluation::default();
    for (index, step) in case.steps.iter().enumerate() {
        let at = |what: &str| format!("step {}: {what}", index + 1);
        if let Some(at_time) = step.at {
            check_year(at_time).map_err(|e| at(&format!("`at`: {e}")))?;
            if step.advance.is_some() {
                return Err(at("give `advance` or `at`, not both"));
            }
            if at_time < now {
                return Err(at(&format!("`at: {at_time}` is before the clock ({now})")));
            }
            run_timers(&mut engine, at_time, &mut all);
            now = at_time;
        }
        if let Some(advance) = &step.advance {
            let by = super::duration::parse(&advance.value).map_err(|e| at(&e))?;
            if by < Duration::zero() {
                return Err(at("`advance` cannot go back in time"));
            }
            let until = now
                .checked_add_signed(by)
                .filter(|t| check_year(*t).is_ok())
                .ok_or_else(|| {
                    at(&format!(
                        "advancing {} from {now} leaves {YEARS}",
                        advance.value
                    ))
                })?;
            run_timers(&mut engine, until, &mut all);
            now = until;
        }
        let value = match (&step.payload, &step.file) {
            (Some(_), Some(_)) => return Err(at("give `payload` or `file`, not both")),
            (Some(v), None) => v.clone(),
            (None, Some(f)) => {
                let path = base.join(f);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| at(&format!("cannot read {}: {e}", path.display())))?;
                serde_json::from_str(&text)
                    .map_err(|e| at(&format!("{} is not JSON: {e}", path.display())))?
            }
            (None, None) if step.advance.is_some() || step.at.is_some() => continue,
            (None, None) => return Err(at("a step needs `payload`, `file`, `advance` or `at`")),
        };
        let topic = step.topic.as_deref().unwrap_or(DEFAULT_TOPIC);
        let events = decode_json(
            value,
            topic,
            0,
            index as i64,
            step.key.as_deref(),
            &step.headers,
            Some(now),
            step.decoding,
        )
        .map_err(|e| at(&e.to_string()))?;
        for event in &events {
            let eval = engine.process(event, now);
            all.planned.extend(eval.planned);
            all.failures.extend(eval.failures);
        }
    }
    Ok(all)
}

/// The clock range of a test case: the years RFC 3339 can write. Rule windows are added to the
/// clock, so a clock near the end of chrono's range (year 262142) would overflow.
const YEARS: &str = "the years 0000 to 9999 a test clock must stay in";

fn check_year(t: DateTime<Utc>) -> Result<(), String> {
    if (0..=9999).contains(&t.year()) {
        Ok(())
    } else {
        Err(format!("{t} is outside {YEARS}"))
    }
}

/// Fires every timer due up to `until`, each at its own deadline (so a firing sees the clock at
/// the moment it was due, as the pipeline's timer would).
pub fn run_timers(engine: &mut Engine, until: DateTime<Utc>, all: &mut Evaluation) {
    // Each tick consumes at least one due deadline; the bound guards against a behaviour bug
    // that would report a deadline it never clears.
    for _ in 0..100_000 {
        match engine.next_deadline() {
            Some(due) if due <= until => {
                let eval = engine.tick(due);
                all.planned.extend(eval.planned);
                all.failures.extend(eval.failures);
            }
            _ => break,
        }
    }
}

/// `None` when the outcome matches the expectations, else a readable report.
fn compare(case: &TestCase, got: &Evaluation) -> Option<String> {
    let actual: Vec<Value> = got
        .planned
        .iter()
        .map(|p| {
            serde_json::json!({
                "rule": p.rule,
                "kind": p.kind().as_str(),
                "params": p.action.params_json(),
                "dry_run": p.dry_run,
                "group_key": p.group_key,
            })
        })
        .collect();
    let mut problems = Vec::new();
    let matches = actual.len() == case.expect.len()
        && case
            .expect
            .iter()
            .zip(&actual)
            .all(|(e, a)| expected_matches(e, a));
    if !matches {
        let expected: Vec<Value> = case
            .expect
            .iter()
            .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
            .collect();
        let shown: Vec<Value> = actual
            .iter()
            .enumerate()
            .map(|(i, a)| match case.expect.get(i) {
                Some(e) => project(e, a),
                None => a.clone(),
            })
            .collect();
        problems.push(format!(
            "planned actions differ (- expected, + actual; fields not in the expectation are hidden):\n{}",
            diff(&expected, &shown)
        ));
    }
    for want in &case.expect_failures {
        if !got
            .failures
            .iter()
            .any(|f| f.rule == want.rule && f.message.contains(&want.message_contains))
        {
            problems.push(format!(
                "expected a failure of rule `{}` containing {:?}; failures were: {:?}",
                want.rule,
                want.message_contains,
                got.failures
                    .iter()
                    .map(|f| (&f.rule, &f.message))
                    .collect::<Vec<_>>()
            ));
        }
    }
    if case.expect_failures.is_empty() && !got.failures.is_empty() {
        problems.push(format!(
            "unexpected rule failures: {}",
            got.failures
                .iter()
                .map(|f| format!("`{}`: {}", f.rule, f.message))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    (!problems.is_empty()).then(|| problems.join("\n"))
}

fn expected_matches(e: &Expected, a: &Value) -> bool {
    a["rule"] == e.rule.as_str()
        && e.kind.as_ref().is_none_or(|k| a["kind"] == k.as_str())
        && e.dry_run.is_none_or(|d| a["dry_run"] == d)
        && e.group_key
            .as_ref()
            .is_none_or(|g| a["group_key"] == g.as_str())
        && e.params.as_ref().is_none_or(|p| is_subset(p, &a["params"]))
}

/// The actual action reduced to the fields the expectation mentions, so the diff shows only
/// what the author asked about.
fn project(e: &Expected, a: &Value) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("rule".into(), a["rule"].clone());
    if e.kind.is_some() {
        out.insert("kind".into(), a["kind"].clone());
    }
    if let Some(p) = &e.params {
        out.insert("params".into(), project_value(p, &a["params"]));
    }
    if e.dry_run.is_some() {
        out.insert("dry_run".into(), a["dry_run"].clone());
    }
    if e.group_key.is_some() {
        out.insert("group_key".into(), a["group_key"].clone());
    }
    Value::Object(out)
}

fn project_value(want: &Value, got: &Value) -> Value {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => Value::Object(
            w.keys()
                .filter_map(|k| g.get(k).map(|v| (k.clone(), project_value(&w[k], v))))
                .collect(),
        ),
        _ => got.clone(),
    }
}

/// `want` is contained in `got`: objects by key (recursively), everything else by equality
/// (numbers compare by value, so 2 equals 2.0).
pub fn is_subset(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => w
            .iter()
            .all(|(k, v)| g.get(k).is_some_and(|gv| is_subset(v, gv))),
        (Value::Array(w), Value::Array(g)) => {
            w.len() == g.len() && w.iter().zip(g).all(|(a, b)| is_subset(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => want == got,
    }
}

fn diff(expected: &[Value], actual: &[Value]) -> String {
    let left = serde_json::to_string_pretty(expected).unwrap_or_default();
    let right = serde_json::to_string_pretty(actual).unwrap_or_default();
    let text_diff = similar::TextDiff::from_lines(&left, &right);
    let mut out = String::new();
    for change in text_diff.iter_all_changes() {
        let sign = match change.tag() {
            similar::ChangeTag::Delete => "-",
            similar::ChangeTag::Insert => "+",
            similar::ChangeTag::Equal => " ",
        };
        out.push_str(sign);
        out.push_str(change.as_str().unwrap_or_default());
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::is_subset;
    use serde_json::json;

    #[test]
    fn subset_ignores_unlisted_keys_but_not_wrong_values() {
        let got = json!({"target": {"name": "checkout", "namespace": "shop"}, "replicas": 3});
        assert!(is_subset(&json!({"target": {"name": "checkout"}}), &got));
        assert!(is_subset(&json!({"replicas": 3.0}), &got));
        assert!(!is_subset(&json!({"target": {"name": "cart"}}), &got));
        assert!(!is_subset(&json!({"missing": 1}), &got));
    }

    #[test]
    fn subset_compares_arrays_element_by_element() {
        assert!(is_subset(&json!([{"a": 1}]), &json!([{"a": 1, "b": 2}])));
        assert!(!is_subset(&json!([1]), &json!([1, 2])));
    }
}
