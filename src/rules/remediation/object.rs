//! The Kubernetes object of a verification: which object a step's check reads, and whether
//! the object as read satisfies it (a named readiness condition and/or a `when` expression).

use chrono::Utc;
use serde_json::Value;

use super::plan::KubeCheck;
use super::progress::Progress;
use super::readiness;
use crate::event::{Event, Format, Metadata};
use crate::rules::action::kubernetes::TargetParams;
use crate::rules::action::{Action, KubernetesAction, ObjectRef};
use crate::rules::ruleset::Rule;
use crate::rules::template::RenderContext;

/// The object a Kubernetes action names, as a target to read.
pub fn object_of(action: &Action) -> Option<TargetParams> {
    let Action::Kubernetes(k) = action else {
        return None;
    };
    match k.object() {
        ObjectRef::Existing(t) => Some(t.clone()),
        ObjectRef::Node(node) => Some(TargetParams {
            api_version: "v1".to_owned(),
            kind: "Node".to_owned(),
            namespace: None,
            name: node.to_string(),
        }),
        ObjectRef::Created(_) => None,
    }
}

/// `kind/namespace/name` of a target, as outcomes name it.
pub fn describe_target(t: &TargetParams) -> String {
    let kind = t.kind.to_lowercase();
    match &t.namespace {
        Some(ns) => format!("{kind}/{ns}/{}", t.name),
        None => format!("{kind}/{}", t.name),
    }
}

/// The object `check` reads: its own `target`, else the step's first Kubernetes object.
pub(super) fn check_object(
    check: &KubeCheck,
    rule: &Rule,
    progress: &Progress,
    planned: &[&Action],
) -> Option<TargetParams> {
    match &check.target {
        Some(target) => {
            let ctx = RenderContext::new(&progress.event, &rule.name, Some(&progress.info));
            target.render(&ctx).ok()
        }
        None => planned.iter().find_map(|a| match a {
            Action::Kubernetes(KubernetesAction::Create(_)) => None,
            other => object_of(other),
        }),
    }
}

/// Whether `object` satisfies `check`, with a line saying what was found.
pub fn object_holds(check: &KubeCheck, object: &Value, name: &str) -> (bool, String) {
    let mut reasons = Vec::new();
    let mut holds = true;
    if let Some(readiness) = check.readiness {
        match readiness::holds(readiness, object) {
            Ok(true) => reasons.push(format!("{name}: {} holds", readiness.as_str())),
            Ok(false) => {
                holds = false;
                reasons.push(format!(
                    "{name}: not {} yet ({})",
                    readiness.as_str(),
                    readiness::describe(readiness, object)
                ));
            }
            Err(err) => {
                holds = false;
                reasons.push(format!(
                    "{name}: {} cannot be judged: {err}",
                    readiness.as_str()
                ));
            }
        }
    }
    if let Some(when) = &check.when {
        let event = object_event(object, name);
        if when.eval(&event) {
            reasons.push(format!("{name}: `when` holds"));
        } else {
            holds = false;
            reasons.push(format!("{name}: `when` does not hold"));
        }
    }
    (holds, reasons.join("; "))
}

/// An object as the event a `when` expression is evaluated on (its fields at the top level).
fn object_event(object: &Value, name: &str) -> Event {
    Event {
        payload: object.clone(),
        meta: Metadata {
            id: name.to_owned(),
            topic: String::new(),
            partition: 0,
            offset: 0,
            key: None,
            headers: Default::default(),
            timestamp: Utc::now(),
            format: Format::Json,
            event_type: object
                .get("kind")
                .and_then(Value::as_str)
                .map(str::to_owned),
            source: None,
            attributes: Default::default(),
        },
    }
}
