//! Executors that carry out planned actions. Only [`log`] exists so far; every other kind is
//! reported as not implemented until its executor arrives (issue #5).

pub mod kafka;
pub mod kubernetes;
pub mod log;
pub mod secrets;
pub mod webhook;

use serde_json::Value;

use crate::rules::PlannedAction;
use crate::rules::action::ActionKind;

/// What executing one planned action came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Execution {
    /// Done; executor details worth keeping in the outcome.
    Succeeded(Value),
    /// Gave up; why, and details.
    Failed {
        /// What went wrong.
        error: String,
        /// Executor details.
        details: Value,
    },
    /// No executor exists for this kind yet; nothing was done.
    NotImplemented(String),
}

/// Whether executing the action twice has the same effect as once. The pipeline re-executes
/// an action whose earlier attempt started but never recorded an end (a crash) only when this
/// holds; otherwise it cannot know whether the first attempt took effect. `log` changes
/// nothing outside the process, so it qualifies; issue #5 decides per executor.
pub fn is_idempotent(kind: ActionKind) -> bool {
    matches!(kind, ActionKind::Log)
}

/// Whether an executor exists for this kind (others are recorded `not_implemented`).
pub fn has_executor(kind: ActionKind) -> bool {
    matches!(kind, ActionKind::Log)
}

/// Executes one planned action (not for dry runs: the pipeline records those itself).
pub async fn execute(action: &PlannedAction) -> Execution {
    match action.kind {
        ActionKind::Log => log::execute(action),
        other => Execution::NotImplemented(format!(
            "executor for `{}` arrives with issue #5; nothing was executed",
            other.as_str()
        )),
    }
}

/// The object an action acts on, as `kind/namespace/name` (Kubernetes objects, lower-case
/// kind), `node/<name>`, `kafka/<topic>` or `webhook/<scheme://host/path>` (query and
/// credentials removed: they may hold secrets). `None` for `log`.
pub fn target(action: &PlannedAction) -> Option<String> {
    let params = &action.params;
    if let Some(target) = params.get("target").and_then(Value::as_object) {
        let kind = target.get("kind").and_then(Value::as_str)?.to_lowercase();
        let name = target.get("name").and_then(Value::as_str)?;
        return Some(match target.get("namespace").and_then(Value::as_str) {
            Some(namespace) => format!("{kind}/{namespace}/{name}"),
            None => format!("{kind}/{name}"),
        });
    }
    match action.kind {
        ActionKind::Cordon | ActionKind::Uncordon => params
            .get("node")
            .and_then(Value::as_str)
            .map(|node| format!("node/{node}")),
        ActionKind::Kafka => params
            .get("topic")
            .and_then(Value::as_str)
            .map(|topic| format!("kafka/{topic}")),
        ActionKind::Webhook => params
            .get("url")
            .and_then(Value::as_str)
            .map(|url| format!("webhook/{}", public_url(url))),
        _ => None,
    }
}

/// A URL without query, fragment and user information.
fn public_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn planned(kind: ActionKind, params: Value) -> PlannedAction {
        PlannedAction {
            rule: "r".to_owned(),
            action_index: 0,
            kind,
            params,
            idempotency_key: "k".to_owned(),
            event_id: "e".to_owned(),
            dry_run: false,
            group_key: None,
        }
    }

    #[test]
    fn a_kubernetes_target_reads_kind_namespace_and_name() {
        let action = planned(
            ActionKind::Restart,
            json!({ "target": { "api_version": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "checkout" } }),
        );
        assert_eq!(target(&action).as_deref(), Some("deployment/shop/checkout"));
    }

    #[test]
    fn a_webhook_target_hides_credentials_and_query() {
        let action = planned(
            ActionKind::Webhook,
            json!({ "url": "https://user:pw@hooks.example/x/y?token=secret" }),
        );
        assert_eq!(
            target(&action).as_deref(),
            Some("webhook/https://hooks.example/x/y")
        );
    }

    #[test]
    fn a_log_action_has_no_target() {
        assert_eq!(
            target(&planned(ActionKind::Log, json!({ "message": "m" }))),
            None
        );
    }

    #[tokio::test]
    async fn kinds_without_an_executor_say_which_issue_brings_it() {
        let outcome = execute(&planned(ActionKind::Restart, json!({}))).await;
        match outcome {
            Execution::NotImplemented(message) => {
                assert!(
                    message.contains("`restart`") && message.contains("issue #5"),
                    "{message}"
                )
            }
            other => panic!("expected NotImplemented, got {other:?}"),
        }
    }
}
