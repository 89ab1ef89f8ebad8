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
mod tests {
    use super::*;

    use crate::config::ActionsConfig;

    async fn guard(actions: ActionsConfig) -> (Guard, tempfile::TempDir) {
        guard_of(&Config {
            actions,
            ..Config::default()
        })
        .await
    }

    async fn guard_of(config: &Config) -> (Guard, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let store = Store::connect(&url).await.expect("store");
        (Guard::new(config, &store), dir)
    }

    #[tokio::test]
    async fn an_action_past_the_timeout_fails_saying_it_may_have_taken_effect() {
        let (guard, _dir) = guard(ActionsConfig {
            timeout: Duration::from_millis(50),
            ..ActionsConfig::default()
        })
        .await;
        let outcome = guard
            .run(Some("t"), async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Execution::Succeeded(json!({}))
            })
            .await;
        match outcome {
            Execution::Failed { error, details } => {
                assert!(error.contains("actions.timeout"), "{error}");
                assert!(error.contains("may have taken effect"), "{error}");
                assert_eq!(details["guard"], "timeout");
            }
            other => panic!("expected a timeout failure, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_second_action_on_a_busy_target_waits_and_fails_clearly_at_the_deadline() {
        let (guard, _dir) = guard(ActionsConfig {
            timeout: Duration::from_millis(200),
            ..ActionsConfig::default()
        })
        .await;
        let slow = guard.run(Some("deployment/shop/web"), async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            Execution::Succeeded(json!({ "first": true }))
        });
        let second = async {
            // Start after the first holds the lock.
            tokio::time::sleep(Duration::from_millis(20)).await;
            guard
                .run(Some("deployment/shop/web"), async {
                    Execution::Succeeded(json!({ "second": true }))
                })
                .await
        };
        let (first, second) = tokio::join!(slow, second);
        assert!(matches!(first, Execution::Succeeded(_)), "{first:?}");
        // The second waited for the first (150 ms) and then ran within its own 200 ms.
        assert_eq!(second, Execution::Succeeded(json!({ "second": true })));
    }

    #[tokio::test]
    async fn a_target_locked_past_the_deadline_is_not_executed() {
        let (guard, _dir) = guard(ActionsConfig {
            timeout: Duration::from_millis(100),
            ..ActionsConfig::default()
        })
        .await;
        let far = Instant::now() + Duration::from_secs(60);
        let held = guard.locks.lock("node/n1", far).await.expect("free");
        let outcome = guard
            .run(Some("node/n1"), async { Execution::Succeeded(json!({})) })
            .await;
        held.release().await;
        match outcome {
            Execution::Failed { error, details } => {
                assert!(
                    error.starts_with("not executed: target `node/n1`"),
                    "{error}"
                );
                assert_eq!(details["guard"], "target_lock");
            }
            other => panic!("expected a lock failure, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn no_free_slot_within_the_timeout_fails_naming_max_concurrent() {
        let (guard, _dir) = guard(ActionsConfig {
            max_concurrent: 1,
            timeout: Duration::from_millis(100),
            ..ActionsConfig::default()
        })
        .await;
        let _hog = guard.slots.acquire().await.expect("the only slot");
        let starved = guard
            .run(None, async { Execution::Succeeded(json!({})) })
            .await;
        match starved {
            Execution::Failed { error, .. } => {
                assert!(error.contains("actions.max_concurrent"), "{error}")
            }
            other => panic!("expected no slot, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn only_kubernetes_actions_get_the_global_limits_by_default() {
        let (guard, _dir) = guard(ActionsConfig::default()).await;
        let none = RuleGuard::default();
        let kube = guard.limits(ActionKind::Restart, &none);
        assert_eq!(kube.per_rule, Some(30));
        assert_eq!(kube.per_target, Some(5));
        let hook = guard.limits(ActionKind::Webhook, &none);
        assert_eq!((hook.per_rule, hook.per_target), (None, None));
        let explicit = RuleGuard {
            max_per_rule: Some(3),
            ..RuleGuard::default()
        };
        assert_eq!(
            guard.limits(ActionKind::Webhook, &explicit).per_rule,
            Some(3)
        );
        let log = guard.limits(ActionKind::Log, &explicit);
        assert_eq!((log.per_rule, log.per_target), (None, None));
    }

    #[tokio::test]
    async fn a_namespace_object_needs_its_kind_allowed_and_its_name_through_the_namespace_policy() {
        let delete = |name: &str| {
            planned(
                ActionKind::Delete,
                json!({"target": {"api_version": "v1", "kind": "Namespace", "name": name},
                       "allow_bare_pods": false}),
            )
        };
        let none = RuleGuard::default();
        let (closed, _dir) = guard(closed_actions()).await;
        let refused = closed.check(&delete("team-a"), &none).expect_err("kind");
        assert_eq!(refused.policy, Policy::ClusterScoped);
        let (open, _dir) = guard(ActionsConfig {
            cluster_scoped: crate::config::ClusterScopedLists {
                allow: vec!["Namespace".into()],
            },
            ..closed_actions()
        })
        .await;
        assert_eq!(open.check(&delete("team-a"), &none), Ok(()));
        for protected in ["kube-system", "team-reflex", "shop"] {
            let refused = open.check(&delete(protected), &none).expect_err(protected);
            assert_eq!(refused.policy, Policy::Namespace, "{protected}");
            assert!(refused.message.contains(protected), "{refused:?}");
        }
    }

    /// Namespaces `team-*`, Reflex's own `team-reflex`, no cluster-scoped kind.
    fn closed_actions() -> ActionsConfig {
        ActionsConfig {
            namespaces: crate::config::NamespaceLists {
                allow: vec!["team-*".into()],
                deny: Vec::new(),
            },
            own_namespace: Some("team-reflex".into()),
            ..ActionsConfig::default()
        }
    }

    #[tokio::test]
    async fn the_shipped_cordon_rule_passes_the_guard_of_the_shipped_example_config() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let path = root.join("deploy/config.example.yaml");
        let text = std::fs::read_to_string(&path).expect("example config");
        let config = Config::from_yaml(&text, &path).expect("valid example config");
        let rules = crate::rules::load_dir(&root.join("rules/nodes")).expect("node rules");
        let rule = &rules.rules()[0];
        let kind = rule.actions[0].kind;
        assert_eq!(kind, ActionKind::Cordon, "{}", rule.name);
        let (example, _dir) = guard_of(&config).await;
        let cordon = planned(kind, json!({ "node": "worker-3" }));
        assert_eq!(example.check(&cordon, &rule.guard), Ok(()));
        let (default, _dir) = guard(ActionsConfig::default()).await;
        let refused = default
            .check(&cordon, &rule.guard)
            .expect_err("no Node allowed");
        assert_eq!(refused.policy, Policy::ClusterScoped);
    }

    #[tokio::test]
    async fn a_kafka_action_aimed_at_the_outcomes_topic_is_refused() {
        let (guard, _dir) = guard(ActionsConfig::default()).await;
        let none = RuleGuard::default();
        let publish = |topic: &str| {
            planned(
                ActionKind::Kafka,
                json!({ "topic": topic, "value": null, "headers": {} }),
            )
        };
        let refused = guard
            .check(&publish("reflex.outcomes"), &none)
            .expect_err("own topic");
        assert_eq!(refused.policy, Policy::KafkaTopic);
        assert_eq!(guard.check(&publish("notify.sre"), &none), Ok(()));
        let log = planned(ActionKind::Log, json!({ "message": "m", "level": "info" }));
        assert_eq!(guard.check(&log, &none), Ok(()));
    }

    #[test]
    fn kubernetes_objects_and_webhook_endpoints_are_locked_not_logs_or_topics() {
        let t = Some("x");
        assert_eq!(Guard::lock_target(ActionKind::Restart, t), t);
        assert_eq!(Guard::lock_target(ActionKind::Webhook, t), t);
        assert_eq!(Guard::lock_target(ActionKind::Kafka, t), None);
        assert_eq!(Guard::lock_target(ActionKind::Log, t), None);
    }
}
