//! Unit tests for conditions: operators, paths, the expression language, YAML trees,
//! explanations and index facts. Events are built directly, no decoder involved.

mod event_prefix;
mod explain;
mod expressions;
mod operators;
mod paths;
mod props;
mod trees;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use serde_saphyr::{Location, Spanned};

use super::Condition;
use crate::event::{Event, Format, Metadata};
use crate::rules::diagnostic::{Diagnostic, Diagnostics};
use crate::rules::model;

/// The event time every test event carries.
pub(super) const EVENT_TIME: &str = "2024-05-01T12:00:00Z";

pub(super) fn time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("test timestamp")
        .with_timezone(&Utc)
}

/// An event with `payload` and fixed, fully populated metadata.
pub(super) fn event(payload: Value) -> Event {
    Event {
        payload,
        meta: Metadata {
            id: "ev-1".into(),
            topic: "alerts".into(),
            partition: 3,
            offset: 42,
            key: Some("pod-a".into()),
            headers: BTreeMap::from([
                ("trace-id".to_owned(), "abc123".to_owned()),
                ("x.dotted".to_owned(), "yes".to_owned()),
            ]),
            timestamp: time(EVENT_TIME),
            format: Format::Alertmanager,
            event_type: Some("KubePodCrashLooping".into()),
            source: None,
            attributes: BTreeMap::from([
                ("status".to_owned(), json!("firing")),
                ("group".to_owned(), json!({"labels": {"team": "core"}})),
            ]),
        },
    }
}

/// A typical Alertmanager-style payload.
pub(super) fn alert() -> Value {
    json!({
        "status": "firing",
        "labels": {
            "alertname": "KubePodCrashLooping",
            "severity": "critical",
            "namespace": "shop",
            "app.kubernetes.io/name": "checkout",
        },
        "annotations": {"summary": "Pod shop/checkout-7d9 is crash looping"},
        "value": "0.93",
        "count": 7,
        "ratio": 0.5,
        "startsAt": "2024-05-01T11:40:00Z",
        "flags": ["paged", "Urgent"],
        "nothing": null,
        "enabled": true,
        "alerts": [
            {"status": "firing", "name": "a"},
            {"status": "resolved", "name": "b"},
        ],
    })
}

pub(super) fn spanned(text: &str) -> model::SpannedString {
    Spanned::new(text.to_owned(), Location::UNKNOWN, Location::UNKNOWN)
}

/// Compiles an expression that must be valid.
pub(super) fn expr(src: &str) -> Condition {
    let mut diags = Diagnostics::new();
    let cond = Condition::compile_expr(&spanned(src), &mut diags);
    let problems = diags.into_vec();
    assert!(
        problems.is_empty(),
        "`{src}` should compile, got {problems:#?}"
    );
    cond.expect("compiled condition")
}

/// Compiles an expression that must be rejected; returns the problems.
pub(super) fn expr_errors(src: &str) -> Vec<Diagnostic> {
    let mut diags = Diagnostics::new();
    let cond = Condition::compile_expr(&spanned(src), &mut diags);
    assert!(cond.is_none(), "`{src}` should be rejected");
    let problems = diags.into_vec();
    assert!(
        !problems.is_empty(),
        "`{src}` was rejected without a diagnostic"
    );
    problems
}

/// Evaluates `src` against `payload`.
pub(super) fn holds(src: &str, payload: &Value) -> bool {
    expr(src).eval(&event(payload.clone()))
}

/// Parses a YAML condition tree (with real locations).
pub(super) fn yaml_tree(yaml: &str) -> model::Condition {
    serde_saphyr::from_str(yaml).expect("test YAML parses")
}

/// Compiles a YAML tree; returns the condition and the problems.
pub(super) fn compile_tree(yaml: &str) -> (Option<Condition>, Vec<Diagnostic>) {
    let mut diags = Diagnostics::new();
    let cond = Condition::compile(&yaml_tree(yaml), &mut diags);
    (cond, diags.into_vec())
}
