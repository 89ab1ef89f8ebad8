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
use crate::rules::action::{Action, ActionKind};

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
        let key = action.idempotency_key.as_str();
        let not_configured = || {
            Execution::NotImplemented(format!(
                "no `{}` executor is configured in this process; nothing was executed",
                action.kind().as_str()
            ))
        };
        match &action.action {
            Action::Log(params) => log::execute(action, params),
            Action::Webhook(params) => match &self.webhook {
                Some(executor) => settle(executor.execute(params, key).await, 1, |e| e.to_string()),
                None => not_configured(),
            },
            Action::Kafka(params) => match &self.kafka {
                Some(executor) => {
                    with_transient_retries(
                        || executor.execute(params, key),
                        kafka::Error::retryable,
                        // A broker outage holds the record in the producer's queue instead.
                        |_| false,
                    )
                    .await
                }
                None => not_configured(),
            },
            Action::Kubernetes(params) => match &self.kubernetes {
                Some(executor) => {
                    let retried = retry_transient(
                        || executor.execute(params),
                        kubernetes::Error::retryable,
                        kubernetes::Error::not_sent,
                    )
                    .await;
                    // The Event about the action, once, after its last attempt (none when the
                    // request never left: the action runs again later).
                    if let Retried::Done { result, .. } = &retried {
                        let cause = kubernetes::events::Cause {
                            rule: &action.rule,
                            trigger: kubernetes::events::Trigger::Event(&action.event_id),
                            outcome: key,
                        };
                        executor
                            .report_action(&cause, params, result.as_ref())
                            .await;
                    }
                    retried.into_execution()
                }
                None => not_configured(),
            },
        }
    }
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
    retry_transient(attempt, retryable, not_sent)
        .await
        .into_execution()
}

/// The last attempt of [`retry_transient`].
enum Retried<T, E> {
    /// It reached the service: its result, and how many attempts it took.
    Done { result: Result<T, E>, tries: u32 },
    /// It could not be sent (see [`Execution::Unreachable`]).
    Unreachable(String),
}

impl<T: serde::Serialize, E: std::fmt::Display> Retried<T, E> {
    fn into_execution(self) -> Execution {
        match self {
            Retried::Done { result, tries } => settle(result, tries, |e| e.to_string()),
            Retried::Unreachable(message) => Execution::Unreachable(message),
        }
    }
}

/// [`with_transient_retries`] without turning the result into an [`Execution`], for callers
/// that look at the typed result first.
async fn retry_transient<T, E, F, Fut>(
    attempt: F,
    retryable: fn(&E) -> bool,
    not_sent: fn(&E) -> bool,
) -> Retried<T, E>
where
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
                return Retried::Unreachable(format!("{err} ({tries} attempts)"));
            }
            _ => return Retried::Done { result, tries },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::action::{KubernetesAction, RestartAction, TargetParams};

    #[tokio::test]
    async fn kinds_without_a_configured_executor_are_not_implemented() {
        let restart = RestartAction {
            target: TargetParams {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: Some("shop".into()),
                name: "web".into(),
            },
        };
        let planned = PlannedAction {
            rule: "r".to_owned(),
            action_index: 0,
            action: KubernetesAction::Restart(restart).into(),
            idempotency_key: "k".to_owned(),
            event_id: "e".to_owned(),
            dry_run: false,
            group_key: None,
            remediation: None,
        };
        let outcome = Executors::log_only().execute(&planned).await;
        match outcome {
            Execution::NotImplemented(message) => {
                assert!(message.contains("`restart`"), "{message}")
            }
            other => panic!("expected NotImplemented, got {other:?}"),
        }
    }
}
