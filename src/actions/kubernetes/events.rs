//! Kubernetes Events on the objects Reflex acts on, so `kubectl describe deployment web` shows
//! `Normal  ReflexRestarted  reflex  rule "crashloop" (event …): restarted at …; outcome …:
//! reflex history --rule crashloop` next to the controllers' own events, and leads to the audit
//! trail.
//!
//! Published through kube's event recorder (`events.k8s.io/v1`; reporting controller
//! [`REPORTING_CONTROLLER`], instance the pod name from `POD_NAME`) after an action's last
//! attempt: `Normal` when it changed the object, `Warning` when it failed. Nothing is published
//! for an action that changed nothing (already in the desired state), for dry runs and shadow
//! rules (the pipeline records those without calling the executor: nothing was changed, and an
//! Event would say otherwise), nor for an action that never reached the API server (it is
//! retried later). Events of cluster-scoped objects (Nodes) go to the `default` namespace, where
//! `kubectl describe node` finds them.
//!
//! An Event is a pointer to the outcome, not the record: one that cannot be published is logged
//! and counted (`reflex_kubernetes_events_failed_total`) and never fails the action.

use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use serde_json::Value;

use super::undo::node_target;
use super::{Change, ChangeDetail, Error, KubeExecutor, UndoPlan, Undone};
use crate::rules::action::{ActionKind, KubernetesAction, ObjectRef, TargetParams};

/// `reportingController` of every Event (and the name `kubectl describe` shows in `From`).
pub const REPORTING_CONTROLLER: &str = "reflex";

/// The environment variable holding the pod name (the chart sets it from the downward API);
/// the Events' `reportingInstance`, so replicas can be told apart.
pub const ENV_POD_NAME: &str = "POD_NAME";

/// Bound on publishing one Event, the UID look-up of a failed action's object included. An
/// Event is one small create; the bound keeps a slow API server from holding the action's
/// executor slot much past the action itself.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The API server refuses a `note` longer than 1 KiB.
const MAX_NOTE_BYTES: usize = 1024;

/// Why an Event could not be published (logged and counted, never an action's error).
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The API server refused the Event.
    #[error("the API server refused the Event about {what} in namespace `{namespace}` ({code}): {message}{}", if *.code == 403 { "; grant `create` on `events` (API group `events.k8s.io`) there: `reflex rbac` prints it" } else { "" })]
    Rejected {
        /// The object the Event is about.
        what: String,
        /// Where the Event was created.
        namespace: String,
        /// HTTP status code.
        code: u16,
        /// The API server's message.
        message: String,
    },
    /// The request failed on the way (connection, TLS, decoding).
    #[error("cannot publish the Event about {what}: {source}")]
    Client {
        /// The object the Event is about.
        what: String,
        /// What the client said.
        source: kube::Error,
    },
    /// Publishing took longer than [`EVENT_TIMEOUT`].
    #[error("publishing the Event about {what} took longer than {limit:?}")]
    Timeout {
        /// The object the Event is about.
        what: String,
        /// The bound.
        limit: Duration,
    },
}

/// What started an action: named in the Event's note, with the command that finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger<'a> {
    /// An event (for an alert: `fingerprint/startsAt/status`).
    Event(&'a str),
    /// A closed-loop remediation (an undo).
    Remediation(&'a str),
}

/// Why Reflex acted: the rule, its trigger and the outcome (its idempotency key, the
/// `idempotency_key` of `reflex history -o json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cause<'a> {
    /// The rule.
    pub rule: &'a str,
    /// What triggered it.
    pub trigger: Trigger<'a>,
    /// The outcome's idempotency key.
    pub outcome: &'a str,
}

/// What Reflex did to the object: an action kind, or the undo of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acted {
    /// A Kubernetes action.
    Action(ActionKind),
    /// The undo of a temporary fix.
    Undo,
}

impl Acted {
    /// The Event's `reason` (`ReflexRestarted`, `ReflexRestartFailed`, ...); `None` for kinds
    /// that act on no Kubernetes object.
    pub fn reason(self, succeeded: bool) -> Option<&'static str> {
        use ActionKind as K;
        let (done, failed) = match self {
            Acted::Undo => ("ReflexUndone", "ReflexUndoFailed"),
            Acted::Action(kind) => match kind {
                K::Scale => ("ReflexScaled", "ReflexScaleFailed"),
                K::Restart => ("ReflexRestarted", "ReflexRestartFailed"),
                K::SetImage => ("ReflexImageSet", "ReflexSetImageFailed"),
                K::Rollback => ("ReflexRolledBack", "ReflexRollbackFailed"),
                K::Patch => ("ReflexPatched", "ReflexPatchFailed"),
                K::Delete => ("ReflexDeleted", "ReflexDeleteFailed"),
                K::Create => ("ReflexCreated", "ReflexCreateFailed"),
                K::Cordon => ("ReflexCordoned", "ReflexCordonFailed"),
                K::Uncordon => ("ReflexUncordoned", "ReflexUncordonFailed"),
                K::Label => ("ReflexLabeled", "ReflexLabelFailed"),
                K::Annotate => ("ReflexAnnotated", "ReflexAnnotateFailed"),
                K::Webhook | K::Kafka | K::Log => return None,
            },
        };
        Some(if succeeded { done } else { failed })
    }

    /// The Event's `action`: the action kind as it appears in rules, or `undo`.
    fn action(self) -> &'static str {
        match self {
            Acted::Action(kind) => kind.as_str(),
            Acted::Undo => "undo",
        }
    }
}

/// The Event's note: the rule and trigger first, what happened (the part cut to fit 1 KiB),
/// then the outcome and the command that lists it.
pub fn note(cause: &Cause<'_>, what_happened: &str) -> String {
    let head = match cause.trigger {
        Trigger::Event(id) => format!("rule \"{}\" (event {id})", cause.rule),
        Trigger::Remediation(id) => format!("rule \"{}\" (remediation {id})", cause.rule),
    };
    let history = match cause.trigger {
        Trigger::Event(_) => format!("reflex history --rule {}", cause.rule),
        Trigger::Remediation(id) => format!("reflex history --remediation {id}"),
    };
    let tail = format!("; outcome {}: {history}", cause.outcome);
    let room = MAX_NOTE_BYTES.saturating_sub(head.len() + tail.len());
    let note = format!("{head}{}{tail}", cut(what_happened, room));
    cut(&note, MAX_NOTE_BYTES).into_owned()
}

/// `text` within `max` bytes, cut at a character boundary and ending in `…` when cut.
fn cut(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let ellipsis = "…";
    let mut end = max.saturating_sub(ellipsis.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ellipsis}", &text[..end]).into()
}

/// The object an Event is about. `uid` is what `kubectl describe` selects on.
fn reference(
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    uid: Option<String>,
) -> ObjectReference {
    ObjectReference {
        api_version: Some(api_version.to_owned()),
        kind: Some(kind.to_owned()),
        namespace: namespace.map(str::to_owned),
        name: Some(name.to_owned()),
        uid,
        ..Default::default()
    }
}

fn target_reference(t: &TargetParams, uid: Option<String>) -> ObjectReference {
    reference(
        &t.api_version,
        &t.kind,
        t.namespace.as_deref(),
        &t.name,
        uid,
    )
}

/// Publishes Reflex's Events. Cheap to clone.
#[derive(Clone)]
pub struct EventPublisher {
    client: Client,
    reporter: Reporter,
}

impl std::fmt::Debug for EventPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPublisher")
            .field("reporter", &self.reporter)
            .finish()
    }
}

impl EventPublisher {
    /// A publisher reporting as `instance` (`None`: the controller name).
    pub fn new(client: Client, instance: Option<String>) -> Self {
        EventPublisher {
            client,
            reporter: Reporter {
                controller: REPORTING_CONTROLLER.to_owned(),
                instance,
            },
        }
    }

    /// A publisher reporting as the pod named by [`ENV_POD_NAME`], else `HOSTNAME` (a pod's
    /// hostname is its name).
    pub fn from_env(client: Client) -> Self {
        let instance = [ENV_POD_NAME, "HOSTNAME"]
            .iter()
            .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()));
        Self::new(client, instance)
    }

    /// Creates one Event about `regarding`.
    async fn publish(&self, event: &Event, regarding: &ObjectReference) -> Result<(), EventError> {
        // A recorder per Event: kube's recorder folds a repeat of the same reason on the same
        // object into a series that keeps the first note, which would name another rule run's
        // trigger and outcome. Reflex's actions are few (guardrails bound them), so each gets
        // its own Event, and only `create` is needed.
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        recorder
            .publish(event, regarding)
            .await
            .map_err(|err| match err {
                kube::Error::Api(status) => EventError::Rejected {
                    what: describe_reference(regarding),
                    namespace: regarding
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".to_owned()),
                    code: status.code,
                    message: status.message,
                },
                source => EventError::Client {
                    what: describe_reference(regarding),
                    source,
                },
            })
    }
}

fn describe_reference(r: &ObjectReference) -> String {
    super::describe(
        r.api_version.as_deref().unwrap_or_default(),
        r.kind.as_deref().unwrap_or_default(),
        r.namespace.as_deref(),
        r.name.as_deref().unwrap_or_default(),
    )
}

/// Whether the object of a failed action may exist and answer a read: a look-up of its UID
/// is pointless when it is gone or the API server is not answering.
fn worth_looking_up(err: &Error) -> bool {
    !matches!(
        err,
        Error::NotFound { .. } | Error::Unavailable { .. } | Error::Timeout { .. }
    )
}

impl KubeExecutor {
    /// Publishes Events through `events` (none without it).
    pub fn with_events(mut self, events: EventPublisher) -> Self {
        self.events = Some(events);
        self
    }

    /// Publishes the Event about one executed action (see the module doc for when there is
    /// none). Never fails: a failure to publish is logged and counted.
    pub async fn report_action(
        &self,
        cause: &Cause<'_>,
        action: &KubernetesAction,
        result: Result<&Change, &Error>,
    ) {
        if self.events.is_none() || matches!(result, Ok(change) if !change.changed) {
            return;
        }
        let acted = Acted::Action(action.kind());
        // Boxed: the look-up and the publish are rare next to the action, and inline they would
        // grow every executing future (the pipeline's included) past a test thread's stack.
        let publish = Box::pin(async {
            let regarding = match action.object() {
                ObjectRef::Existing(t) => target_reference(t, self.uid_after(t, result).await),
                ObjectRef::Node(node) => {
                    let t = node_target(node);
                    target_reference(&t, self.uid_after(&t, result).await)
                }
                ObjectRef::Created(create) => {
                    let (name, namespace, uid) = match result {
                        Ok(Change {
                            detail:
                                ChangeDetail::Create {
                                    name, namespace, ..
                                },
                            uid,
                            ..
                        }) => (Some(name.as_str()), namespace.as_deref(), uid.clone()),
                        // A failed create made nothing, unless the manifest named the object.
                        _ => (
                            create
                                .manifest
                                .pointer("/metadata/name")
                                .and_then(Value::as_str),
                            create.namespace.as_deref(),
                            None,
                        ),
                    };
                    let Some(name) = name else {
                        return Ok(());
                    };
                    reference(&create.api_version, &create.kind, namespace, name, uid)
                }
            };
            let what_happened = match result {
                Ok(change) => format!(": {}", change.summary),
                Err(err) => format!(" failed: {err}"),
            };
            self.publish_event(acted, result.is_ok(), cause, &what_happened, &regarding)
                .await
        });
        self.settle_event(acted, cause, publish).await;
    }

    /// Publishes the Event about one undo: `ReflexUndone` when it restored something,
    /// `ReflexUndoFailed` when it failed; nothing when it was skipped (nothing was written).
    pub async fn report_undo(
        &self,
        cause: &Cause<'_>,
        plan: &UndoPlan,
        result: Result<&Undone, &Error>,
    ) {
        if self.events.is_none() {
            return;
        }
        // Boxed for the same reason as in `report_action`.
        let publish = Box::pin(async {
            let (regarding, what_happened) = match result {
                Ok(Undone::Skipped { .. }) => return Ok(()),
                Ok(Undone::Restored(change)) => (
                    target_reference(&plan.target, change.uid.clone()),
                    format!(": {} ({})", plan.describe(), change.summary),
                ),
                Err(err) => (
                    target_reference(&plan.target, self.uid_of(&plan.target, err).await),
                    format!(" could not {}: {err}", plan.describe()),
                ),
            };
            self.publish_event(
                Acted::Undo,
                result.is_ok(),
                cause,
                &what_happened,
                &regarding,
            )
            .await
        });
        self.settle_event(Acted::Undo, cause, publish).await;
    }

    async fn publish_event(
        &self,
        acted: Acted,
        succeeded: bool,
        cause: &Cause<'_>,
        what_happened: &str,
        regarding: &ObjectReference,
    ) -> Result<(), EventError> {
        let (Some(events), Some(reason)) = (&self.events, acted.reason(succeeded)) else {
            return Ok(());
        };
        let event = Event {
            type_: if succeeded {
                EventType::Normal
            } else {
                EventType::Warning
            },
            reason: reason.to_owned(),
            note: Some(note(cause, what_happened)),
            action: acted.action().to_owned(),
            secondary: None,
        };
        events.publish(&event, regarding).await
    }

    /// Runs `publish` within [`EVENT_TIMEOUT`]; logs and counts a failure.
    async fn settle_event(
        &self,
        acted: Acted,
        cause: &Cause<'_>,
        publish: impl Future<Output = Result<(), EventError>>,
    ) {
        let outcome = match tokio::time::timeout(EVENT_TIMEOUT, publish).await {
            Ok(outcome) => outcome,
            Err(_) => Err(EventError::Timeout {
                what: format!("a `{}`", acted.action()),
                limit: EVENT_TIMEOUT,
            }),
        };
        if let Err(err) = outcome {
            crate::metrics::global().kubernetes_events_failed.inc();
            // WARN: the action itself stands and is recorded; only its pointer is missing.
            tracing::warn!(
                rule = cause.rule,
                action = acted.action(),
                outcome = cause.outcome,
                error = %err,
                "Kubernetes Event not published"
            );
        }
    }

    /// The UID of the object after the action: the one it returned, else (a failed action) a
    /// look-up.
    async fn uid_after(
        &self,
        target: &TargetParams,
        result: Result<&Change, &Error>,
    ) -> Option<String> {
        match result {
            Ok(change) => change.uid.clone(),
            Err(err) => self.uid_of(target, err).await,
        }
    }

    /// The UID of a failed action's object, when it exists and may be read; best effort (an
    /// Event without one is still listed by `kubectl get events`).
    async fn uid_of(&self, target: &TargetParams, err: &Error) -> Option<String> {
        if !worth_looking_up(err) {
            return None;
        }
        let object = self.get_object(target).await.ok()??;
        object
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
}

#[cfg(test)]
mod tests;
