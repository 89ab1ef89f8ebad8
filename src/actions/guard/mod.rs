//! Guardrails around executing actions: the policies on where an action may act (the
//! [`namespace`] policy, the cluster-[`scope`]d kinds, the Kafka [`topic`]s), global dry run,
//! the [`circuit`] breaker, per-target mutual exclusion ([`crate::store::locks`]), a bound on concurrent
//! executions and a per-action timeout. Settings are in [`crate::config::ActionsConfig`] (its
//! guardrail types re-exported in [`config`]); the pipeline calls them in that order between
//! claiming an action and recording its outcome.

pub mod circuit;
pub mod config;
pub mod namespace;
pub mod scope;
pub mod topic;

use std::future::Future;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::Execution;
use crate::config::{CircuitConfig, Config};
use crate::rules::PlannedAction;
use crate::rules::action::{Action, ActionKind};
use crate::rules::ruleset::RuleGuard;
use crate::store::Store;
use crate::store::locks as lock;

/// Environment variable giving Reflex's own namespace when `actions.own_namespace` is unset
/// (set it from the downward API: `fieldRef: metadata.namespace`).
pub const ENV_POD_NAMESPACE: &str = "POD_NAMESPACE";

/// The policy that refused an action before it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// `actions.namespaces` and the rule's `guard.namespaces` (also for Namespace objects).
    Namespace,
    /// `actions.cluster_scoped`.
    ClusterScoped,
    /// `actions.kafka_allowed_topics` and Reflex's own topics.
    KafkaTopic,
}

impl Policy {
    /// The name recorded in the outcome's `details.guard.guard`.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Namespace => "namespace",
            Policy::ClusterScoped => "cluster_scoped",
            Policy::KafkaTopic => "kafka_topic",
        }
    }
}

/// Why an action was refused: the policy, and a message naming the setting that would allow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The policy that refused.
    pub policy: Policy,
    /// What was refused and how to allow it.
    pub message: String,
}

/// The guardrails' pure verdicts: where an action may act and which circuit limits apply to
/// it, without the slots, locks and store of executing. `reflex backtest` simulates with them.
#[derive(Debug, Clone)]
pub struct Policies {
    namespaces: namespace::NamespacePolicy,
    cluster_scoped: scope::ClusterScopedPolicy,
    topics: topic::TopicPolicy,
    circuit: CircuitConfig,
}

/// The guardrails of one process.
#[derive(Debug)]
pub struct Guard {
    dry_run: bool,
    policies: Policies,
    slots: Semaphore,
    max_concurrent: usize,
    timeout: Duration,
    locks: lock::TargetLocks,
}

impl Guard {
    /// Builds the guardrails from `actions:`, with Reflex's own topics from `kafka:` and
    /// `consumer:`; locks follow the store's backend. Reflex's own namespace is
    /// `actions.own_namespace`, else `POD_NAMESPACE`.
    pub fn new(full: &Config, store: &Store) -> Self {
        let config = &full.actions;
        Self {
            dry_run: config.dry_run,
            policies: Policies::new(full),
            slots: Semaphore::new(config.max_concurrent),
            max_concurrent: config.max_concurrent,
            timeout: config.timeout,
            locks: lock::TargetLocks::for_store(store, config.max_concurrent),
        }
    }

    /// `actions.circuit.announce_topic`, if set.
    pub fn announce_topic(&self) -> Option<&str> {
        self.policies.circuit.announce_topic.as_deref()
    }

    /// `actions.dry_run`: nothing executes.
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// The policies' verdict on where `action` may act ([`Policies::check`]).
    pub fn check(&self, action: &PlannedAction, rule: &RuleGuard) -> Result<(), Refusal> {
        self.policies.check(action, rule)
    }

    /// The circuit limits of an action of a rule ([`Policies::limits`]).
    pub fn limits(&self, kind: ActionKind, rule: &RuleGuard) -> circuit::Limits {
        self.policies.limits(kind, rule)
    }

    /// The object an action is serialized on, if its kind takes the per-target lock:
    /// Kubernetes objects and webhook endpoints (which typically drive a remediation of their
    /// own). `log` changes nothing and a Kafka publication is an event, not a change to an
    /// object, so they run unlocked.
    pub fn lock_target(kind: ActionKind, target: Option<&str>) -> Option<&str> {
        (kind.is_kubernetes() || kind == ActionKind::Webhook)
            .then_some(target)
            .flatten()
    }

    /// Runs `execute` in an execution slot, holding `target`'s lock, within `actions.timeout`
    /// (slot and lock waits included). A missed slot, a lock that stays busy, or the timeout
    /// each become a `Failed` execution saying so; a lock the database cannot be asked for (the
    /// store is down) is `Unreachable`: nothing ran, and the record is retried once it is back.
    pub async fn run<F>(&self, target: Option<&str>, execute: F) -> Execution
    where
        F: Future<Output = Execution>,
    {
        let deadline = Instant::now() + self.timeout;
        let failed = |error: String, guard: &str| Execution::Failed {
            error,
            details: json!({ "guard": guard, "attempts": 0 }),
        };
        let Ok(Ok(_permit)) = tokio::time::timeout_at(deadline, self.slots.acquire()).await else {
            return failed(
                format!(
                    "not executed: all {} execution slots stayed busy for {:?} \
                     (actions.timeout); raise actions.max_concurrent or actions.timeout",
                    self.max_concurrent, self.timeout
                ),
                "max_concurrent",
            );
        };
        let held = match target {
            Some(target) => match self.locks.lock(target, deadline).await {
                Ok(held) => Some(held),
                Err(err @ lock::Error::Database { .. }) => {
                    return Execution::Unreachable(format!("{:#}", anyhow::Error::new(err)));
                }
                Err(err) => {
                    let reason = match &err {
                        lock::Error::Busy { .. } => {
                            "another action on the same object is still \
                             running; raise actions.timeout if such actions are slow"
                        }
                        lock::Error::Database { .. } => "check the PostgreSQL connection",
                    };
                    let cause = match &err {
                        lock::Error::Database { source, .. } => format!(": {source}"),
                        lock::Error::Busy { .. } => String::new(),
                    };
                    return failed(
                        format!("not executed: {err}{cause}; {reason}"),
                        "target_lock",
                    );
                }
            },
            None => None,
        };
        let result = tokio::time::timeout_at(deadline, execute).await;
        if let Some(held) = held {
            held.release().await;
        }
        result.unwrap_or_else(|_| {
            failed(
                format!(
                    "the action did not finish within {:?} (actions.timeout) and was abandoned; \
                     it may have taken effect — check the target",
                    self.timeout
                ),
                "timeout",
            )
        })
    }
}

impl Policies {
    /// The policies of `actions:`, with Reflex's own topics from `kafka:` and `consumer:`.
    /// Reflex's own namespace is `actions.own_namespace`, else `POD_NAMESPACE`.
    pub fn new(full: &Config) -> Self {
        let config = &full.actions;
        let own = config
            .own_namespace
            .clone()
            .or_else(|| std::env::var(ENV_POD_NAMESPACE).ok());
        Self {
            namespaces: namespace::NamespacePolicy::new(&config.namespaces, own.as_deref()),
            cluster_scoped: scope::ClusterScopedPolicy::new(&config.cluster_scoped.allow),
            topics: topic::TopicPolicy::new(full),
            circuit: config.circuit.clone(),
        }
    }

    /// The verdict of the policies on where an action may act: a Kubernetes action's
    /// namespace, or its cluster-scoped kind (and, for a Namespace object, its name under the
    /// namespace policy); a Kafka action's topic. Webhook hosts are confined by their executor;
    /// `log` acts nowhere.
    pub fn check(&self, action: &PlannedAction, rule: &RuleGuard) -> Result<(), Refusal> {
        let refuse = |policy| move |message| Refusal { policy, message };
        let name = action.rule.as_str();
        if let Action::Kafka(kafka) = &action.action {
            return self
                .topics
                .check(&kafka.topic, name)
                .map_err(refuse(Policy::KafkaTopic));
        }
        match scope::action_scope(&action.action) {
            Some(scope::Scope::Namespaced(ns)) => self
                .namespaces
                .check(ns, name, rule)
                .map_err(refuse(Policy::Namespace)),
            Some(scope::Scope::Cluster(object)) => {
                self.cluster_scoped
                    .check(&object, name)
                    .map_err(refuse(Policy::ClusterScoped))?;
                match object.namespace_object() {
                    Some(ns) => self
                        .namespaces
                        .check(ns, name, rule)
                        .map_err(refuse(Policy::Namespace)),
                    None => Ok(()),
                }
            }
            None => Ok(()),
        }
    }

    /// The circuit limits of an action of a rule. Kubernetes actions (the remediations that
    /// can loop) get the global limits unless the rule overrides them; webhook and Kafka
    /// actions (often notifications, legitimately frequent) are limited only when the rule
    /// sets its own `guard.max_per_rule` / `max_per_target`. `log` is never limited.
    pub fn limits(&self, kind: ActionKind, rule: &RuleGuard) -> circuit::Limits {
        if kind == ActionKind::Log {
            return circuit::Limits::for_rule(&unlimited(&self.circuit), &RuleGuard::default());
        }
        if kind.is_kubernetes() {
            circuit::Limits::for_rule(&self.circuit, rule)
        } else {
            circuit::Limits::for_rule(&unlimited(&self.circuit), rule)
        }
    }
}

/// The global settings without their limits.
fn unlimited(global: &CircuitConfig) -> CircuitConfig {
    CircuitConfig {
        max_per_rule: None,
        max_per_target: None,
        ..global.clone()
    }
}

/// A planned action of rule `r` for the policies' unit tests.
#[cfg(test)]
fn planned(kind: ActionKind, params: serde_json::Value) -> PlannedAction {
    PlannedAction {
        rule: "r".into(),
        action_index: 0,
        action: Action::from_parts(kind, params).expect("parameters fit the kind"),
        idempotency_key: "k".into(),
        event_id: "e".into(),
        dry_run: false,
        group_key: None,
        remediation: None,
    }
}

#[cfg(test)]
mod tests;
