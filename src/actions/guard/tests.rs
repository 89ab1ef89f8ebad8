//! Unit tests of the guard: policies, dry run and the execution slot.
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
