//! Executors that carry out planned actions: [`log`], [`kubernetes`], [`webhook`] and [`kafka`],
//! gathered in [`Executors`], behind the [`guard`]rails; a kind whose executor is not configured is reported as not
//! implemented and nothing is done.

pub mod guard;
pub mod kafka;
pub mod kubernetes;
pub mod log;
pub mod secrets;
pub mod webhook;

use serde_json::Value;

use crate::rules::PlannedAction;
use crate::rules::action::{ActionKind, SecretRef};

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
    /// Nothing was sent: no connection to the service the action needs could be opened (the
    /// Kubernetes API server down or unreachable). Not an outcome: the pipeline withdraws its
    /// claim and retries the record later, as when the store or Kafka is down, so an outage
    /// delays actions instead of failing them for good.
    Unreachable(String),
}

/// Whether executing the action twice has the same effect as once, as far as its receiver is
/// concerned. The pipeline re-executes an action whose earlier attempt started but never
/// recorded an end (a crash) only when this holds; otherwise it cannot know whether the first
/// attempt took effect.
///
/// Absolute changes qualify (set replicas to 5, set this image, cordon, set a label, a merge or
/// apply patch); relative or creating ones do not (scale +1, restart, rollback to "the previous"
/// revision, create, delete). A webhook qualifies when its rule declares `idempotent_receiver`
/// (the receiver drops a repeated `Idempotency-Key`); a Kafka publish always does: Kafka
/// delivery is at-least-once for every consumer anyway, and the repeat carries the same
/// idempotency key (`ce_id`, or the `idempotency-key` header) to deduplicate on.
pub fn is_idempotent(kind: ActionKind, params: &Value) -> bool {
    match kind {
        ActionKind::Log
        | ActionKind::SetImage
        | ActionKind::Cordon
        | ActionKind::Uncordon
        | ActionKind::Label
        | ActionKind::Annotate => true,
        ActionKind::Scale => params.get("replicas").is_some_and(|r| !r.is_null()),
        ActionKind::Rollback => params.get("to_revision").is_some_and(|r| !r.is_null()),
        ActionKind::Patch => matches!(
            params.get("patch_type").and_then(Value::as_str),
            Some("merge" | "apply")
        ),
        ActionKind::Webhook => params
            .get("idempotent_receiver")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        ActionKind::Kafka => true,
        ActionKind::Restart | ActionKind::Delete | ActionKind::Create => false,
    }
}

/// Attempts at a Kubernetes or Kafka action whose error is transient (API server or broker
/// unavailable, timeout, conflict left after the executor's own re-reads). Webhooks retry inside
/// their executor with the rule's own `retries`. Three attempts over ~3 s ride out a leader
/// election or a rolling apiserver restart without holding the partition for long.
const TRANSIENT_ATTEMPTS: u32 = 3;

/// First pause between those attempts; doubled each time.
const TRANSIENT_BACKOFF: std::time::Duration = std::time::Duration::from_secs(1);

/// The executors this process can use. Each is optional: `reflex run` builds the ones its
/// configuration allows, and a kind without one is recorded `not_implemented`.
#[derive(Default)]
pub struct Executors {
    /// Kubernetes actions (scale, restart, set_image, rollback, patch, delete, create, cordon,
    /// uncordon, label, annotate).
    pub kubernetes: Option<kubernetes::KubeExecutor>,
    /// Webhook calls.
    pub webhook: Option<webhook::WebhookExecutor>,
    /// Kafka publishing.
    pub kafka: Option<kafka::KafkaExecutor>,
}

impl std::fmt::Debug for Executors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The executors hold clients (and, for webhooks, secret-bearing configuration): show
        // which are configured, nothing more.
        f.debug_struct("Executors")
            .field("kubernetes", &self.kubernetes.is_some())
            .field("webhook", &self.webhook.is_some())
            .field("kafka", &self.kafka.is_some())
            .finish()
    }
}

impl Executors {
    /// Only the `log` executor (tests, and runs without Kubernetes or outbound access).
    pub fn log_only() -> Self {
        Self::default()
    }

    /// Whether an executor exists for this kind (others are recorded `not_implemented`).
    pub fn has_executor(&self, kind: ActionKind) -> bool {
        match kind {
            ActionKind::Log => true,
            ActionKind::Webhook => self.webhook.is_some(),
            ActionKind::Kafka => self.kafka.is_some(),
            _ => kind.is_kubernetes() && self.kubernetes.is_some(),
        }
    }

    /// Executes one planned action (not for dry runs: the pipeline records those itself).
    pub async fn execute(&self, action: &PlannedAction) -> Execution {
        let kind = action.kind;
        if kind == ActionKind::Log {
            return log::execute(action);
        }
        if !self.has_executor(kind) {
            return Execution::NotImplemented(format!(
                "no `{}` executor is configured in this process; nothing was executed",
                kind.as_str()
            ));
        }
        let key = action.idempotency_key.as_str();
        match kind {
            ActionKind::Webhook => match &self.webhook {
                Some(executor) => settle(executor.execute(&action.params, key).await, 1, |e| {
                    e.to_string()
                }),
                None => unreachable_executor(kind),
            },
            ActionKind::Kafka => match &self.kafka {
                Some(executor) => {
                    with_transient_retries(
                        || executor.execute(&action.params, key),
                        kafka::Error::retryable,
                        // A broker outage holds the record in the producer's queue instead.
                        |_| false,
                    )
                    .await
                }
                None => unreachable_executor(kind),
            },
            _ => match &self.kubernetes {
                Some(executor) => {
                    with_transient_retries(
                        || executor.execute(kind, &action.params),
                        kubernetes::Error::retryable,
                        kubernetes::Error::not_sent,
                    )
                    .await
                }
                None => unreachable_executor(kind),
            },
        }
    }
}

fn unreachable_executor(kind: ActionKind) -> Execution {
    Execution::NotImplemented(format!("no `{}` executor is configured", kind.as_str()))
}

/// Runs `attempt` until it succeeds, fails permanently, or [`TRANSIENT_ATTEMPTS`] are used;
/// when the last attempt could not even be sent (`not_sent`), the action is
/// [`Execution::Unreachable`] rather than failed.
async fn with_transient_retries<T, E, F, Fut>(
    attempt: F,
    retryable: fn(&E) -> bool,
    not_sent: fn(&E) -> bool,
) -> Execution
where
    T: serde::Serialize,
    E: std::fmt::Display,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut pause = TRANSIENT_BACKOFF;
    let mut tries = 1;
    loop {
        let result = attempt().await;
        match &result {
            Err(err) if retryable(err) && tries < TRANSIENT_ATTEMPTS => {
                tracing::warn!(attempt = tries, error = %err, "transient action failure, retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
                tries += 1;
            }
            Err(err) if not_sent(err) => {
                return Execution::Unreachable(format!("{err} ({tries} attempts)"));
            }
            _ => return settle(result, tries, |e| e.to_string()),
        }
    }
}

/// Turns an executor's result into an [`Execution`], keeping the attempt count in the details.
fn settle<T: serde::Serialize, E>(
    result: Result<T, E>,
    attempts: u32,
    describe: impl Fn(&E) -> String,
) -> Execution {
    match result {
        Ok(done) => {
            let mut details = serde_json::to_value(done).unwrap_or(Value::Null);
            if let Value::Object(map) = &mut details {
                map.entry("attempts").or_insert(Value::from(attempts));
            }
            Execution::Succeeded(details)
        }
        Err(err) => Execution::Failed {
            error: describe(&err),
            details: serde_json::json!({ "attempts": attempts }),
        },
    }
}

/// The object an action acts on, as `kind/namespace/name` (Kubernetes objects, lower-case
/// kind), `node/<name>`, `kafka/<topic>`, `webhook/<scheme://host/path>` (query and
/// credentials removed: they may hold secrets) or, for a URL read from a secret,
/// `webhook/env:NAME` / `webhook/file:/path` (the reference, never the URL). `None` for `log`.
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
        ActionKind::Webhook => match params.get("url")? {
            Value::String(url) => Some(format!("webhook/{}", public_url(url))),
            reference => match serde_json::from_value(reference.clone()).ok()? {
                SecretRef::Env(name) => Some(format!("webhook/env:{name}")),
                SecretRef::File(path) => Some(format!("webhook/file:{path}")),
            },
        },
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
    fn a_webhook_url_from_a_secret_is_targeted_by_its_reference() {
        let env = planned(
            ActionKind::Webhook,
            json!({ "url": { "env": "SLACK_URL" } }),
        );
        assert_eq!(target(&env).as_deref(), Some("webhook/env:SLACK_URL"));
        let file = planned(ActionKind::Webhook, json!({ "url": { "file": "/s/url" } }));
        assert_eq!(target(&file).as_deref(), Some("webhook/file:/s/url"));
    }

    #[test]
    fn a_log_action_has_no_target() {
        assert_eq!(
            target(&planned(ActionKind::Log, json!({ "message": "m" }))),
            None
        );
    }

    #[tokio::test]
    async fn kinds_without_a_configured_executor_are_not_implemented() {
        let outcome = Executors::log_only()
            .execute(&planned(ActionKind::Restart, json!({})))
            .await;
        match outcome {
            Execution::NotImplemented(message) => {
                assert!(message.contains("`restart`"), "{message}")
            }
            other => panic!("expected NotImplemented, got {other:?}"),
        }
    }

    #[test]
    fn only_absolute_changes_count_as_safe_to_repeat() {
        assert!(is_idempotent(ActionKind::Scale, &json!({"replicas": 3})));
        assert!(!is_idempotent(
            ActionKind::Scale,
            &json!({"change": {"add": 1}})
        ));
        assert!(is_idempotent(
            ActionKind::Patch,
            &json!({"patch_type": "merge"})
        ));
        assert!(!is_idempotent(
            ActionKind::Patch,
            &json!({"patch_type": "json"})
        ));
        assert!(!is_idempotent(ActionKind::Restart, &json!({})));
        assert!(!is_idempotent(ActionKind::Webhook, &json!({})));
        assert!(!is_idempotent(
            ActionKind::Webhook,
            &json!({"idempotent_receiver": false})
        ));
        assert!(is_idempotent(
            ActionKind::Webhook,
            &json!({"idempotent_receiver": true})
        ));
        assert!(is_idempotent(ActionKind::Kafka, &json!({})));
    }
}
