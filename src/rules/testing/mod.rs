//! Rule unit tests (`*.test.yaml`, like `promtool test rules`): a sequence of events, clock
//! advances and Kubernetes objects in; the expected planned actions and remediation results out,
//! compared with a readable diff.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::diagnostic::{Diagnostic, Diagnostics};
use super::load::{
    LoadError, find_files, is_rule_file, is_test_file, load_sources, parse_yaml, read_source,
};
use super::model::SpannedString;
use crate::event::decode::Decoding;

mod closed_loop;
mod compare;
mod run;

pub use closed_loop::RemediationResult;
pub use compare::is_subset;
pub use run::run_timers;

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
    /// Every remediation result over the whole case, in the order they became known (see
    /// [`ExpectedRemediation`]). Absent: not checked; `[]`: no remediation at all.
    pub expect_remediations: Option<Vec<ExpectedRemediation>>,
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
    /// Force a decoder instead of auto-detection (a log topic's decoding: `log`, `syslog`,
    /// `logfmt`, `log_json`, `otlp_json`).
    #[serde(default)]
    pub decoding: Decoding,
    /// The record value, inline (YAML is converted to JSON; under a text decoding, a string is
    /// the line).
    pub payload: Option<Value>,
    /// The record value from a JSON file, relative to this test file.
    pub file: Option<String>,
    /// Raw records, one per line (a syslog line, a Fluent Bit JSON record...), each read from
    /// its bytes by the decoder `reflex run` uses for a topic with this step's `decoding`; they
    /// arrive in order at the step's clock.
    pub lines: Option<Vec<String>>,
    /// Raw records from a text file (e.g. a `.log` file), one per non-empty line, relative to
    /// this test file; read as `lines` are.
    pub lines_file: Option<String>,
    /// Kubernetes objects as the API server would return them (`kind`, `metadata.name`,
    /// `metadata.namespace`, `status`, ...), set after the clock moves and before the event. A
    /// `verify.kubernetes` check reads them by kind, namespace and name; an object never given
    /// does not exist; a later object with the same kind, namespace and name replaces it.
    #[serde(default)]
    pub objects: Vec<Value>,
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
    /// The remediation step the action belongs to: 0 for the rule's `actions`, N for
    /// `escalate[N-1]`. Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
}

/// One expected remediation result. Only the fields given are compared.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectedRemediation {
    /// The rule.
    pub rule: String,
    /// `verified`, `ineffective`, `failed`, `completed`, `not_acted`, `quarantined`, `undone`
    /// or `pending` (still verifying when the case ended).
    pub result: RemediationResult,
    /// The step it ended at (0: the rule's `actions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// The object acted on, `kind/namespace/name` in lower-case kind (e.g.
    /// `deployment/shop/checkout`), or the group key when no action names an object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
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
    match run::execute(base, case, rules) {
        Ok(outcome) => match compare::compare(case, &outcome) {
            None => result.passed = true,
            Some(diff) => result.failure = Some(diff),
        },
        Err(message) => result.failure = Some(message),
    }
    result
}
