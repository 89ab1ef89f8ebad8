//! Comparing what a case produced with what it expects: each expectation is a subset of its
//! actual counterpart, in order, and a mismatch prints a diff of only the fields asked about.

use serde::Serialize;
use serde_json::Value;

use super::TestCase;
use super::closed_loop::Outcome;

/// `None` when the outcome matches the expectations, else a readable report.
pub(super) fn compare(case: &TestCase, got: &Outcome) -> Option<String> {
    let mut problems = Vec::new();
    let planned: Vec<Value> = got
        .planned
        .iter()
        .map(|p| {
            serde_json::json!({
                "rule": p.action.rule,
                "kind": p.action.kind().as_str(),
                "params": p.action.action.params_json(),
                "dry_run": p.action.dry_run,
                "group_key": p.action.group_key,
                "step": p.step,
            })
        })
        .collect();
    if let Some(diff) = list_diff(&case.expect, &planned) {
        problems.push(format!(
            "planned actions differ (- expected, + actual; fields not in the expectation are hidden):\n{diff}"
        ));
    }
    if let Some(expected) = &case.expect_remediations {
        let actual: Vec<Value> = got
            .remediations
            .iter()
            .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
            .collect();
        if let Some(diff) = list_diff(expected, &actual) {
            let story: Vec<String> = got
                .remediations
                .iter()
                .map(|r| {
                    let step = r.step.map(|s| format!(" step {s}")).unwrap_or_default();
                    let target = r.target.as_deref().unwrap_or("-");
                    let result = r.result.as_str();
                    format!("  {} {} {target}{step}: {result} ({})", r.at, r.rule, r.why)
                })
                .collect();
            problems.push(format!(
                "remediations differ (- expected, + actual; fields not in the expectation are hidden):\n{diff}\
                 what happened:\n{}",
                story.join("\n")
            ));
        }
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

/// `None` when every expectation (serialized without its absent fields) is a subset of the
/// actual entry at its position and the lengths agree; else the diff.
fn list_diff<E: Serialize>(expected: &[E], actual: &[Value]) -> Option<String> {
    let expected: Vec<Value> = expected
        .iter()
        .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
        .collect();
    let matches =
        actual.len() == expected.len() && expected.iter().zip(actual).all(|(e, a)| is_subset(e, a));
    if matches {
        return None;
    }
    let shown: Vec<Value> = actual
        .iter()
        .enumerate()
        .map(|(i, a)| match expected.get(i) {
            Some(e) => project(e, a),
            None => a.clone(),
        })
        .collect();
    Some(diff(&expected, &shown))
}

/// The actual value reduced to the fields the expectation mentions, so the diff shows only
/// what the author asked about.
fn project(want: &Value, got: &Value) -> Value {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => Value::Object(
            w.keys()
                .filter_map(|k| g.get(k).map(|v| (k.clone(), project(&w[k], v))))
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
    use super::{is_subset, list_diff};
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

    #[test]
    fn a_list_diff_hides_fields_the_expectation_leaves_out() {
        let actual = [json!({"rule": "r", "result": "verified", "step": 0, "target": "t"})];
        assert_eq!(list_diff(&[json!({"rule": "r", "step": 0})], &actual), None);
        let diff =
            list_diff(&[json!({"rule": "r", "result": "ineffective"})], &actual).expect("differs");
        assert!(diff.contains("-    \"result\": \"ineffective\""), "{diff}");
        assert!(diff.contains("+    \"result\": \"verified\""), "{diff}");
        assert!(!diff.contains("target"), "{diff}");
        let missing = list_diff::<serde_json::Value>(&[], &actual).expect("an extra entry");
        assert!(missing.contains("+    \"target\": \"t\""), "{missing}");
    }
}
