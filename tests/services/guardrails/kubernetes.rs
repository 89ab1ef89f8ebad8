//! The namespace policy and the global dry run against the real kube-apiserver.

use reflex::actions::guard::config::NamespaceLists;
use reflex::config::ActionsConfig;
use reflex::pipeline::Pipeline;
use reflex::store::{OutcomeStatus, Store};

use super::fixtures::{Workload, executors, guarded};
use super::harness::*;
use super::support;

/// A rule restarting Deployment `web` in the event's `namespace`.
fn restart_rule(rule: &str) -> String {
    format!(
        "rules:\n  - name: {rule}\n    actions:\n      - restart:\n          target:\n            \
         namespace: \"{{{{ event.namespace }}}}\"\n            name: web\n"
    )
}

fn event(kafka: &Kafka, offset: i64, namespace: &str) -> Record {
    Record::json(
        &kafka.source,
        offset,
        &format!(r#"{{"namespace": "{namespace}"}}"#),
    )
}

/// A pipeline running `yaml` with a Kubernetes executor and these guard settings.
async fn restarter(
    workload: &Workload,
    store: &Store,
    kafka: &Kafka,
    yaml: &str,
    actions: &ActionsConfig,
) -> Pipeline {
    let executors = executors(Some(workload.client.clone()));
    guarded(&rules(yaml), store, kafka, executors, actions).await
}

/// The error of the one row of `rule` with `status`.
async fn only_error(store: &reflex::store::Store, rule: &str, status: OutcomeStatus) -> String {
    let found = rows(store, rule, Some(status)).await;
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].error.clone().unwrap_or_default()
}

#[tokio::test]
async fn kube_system_is_refused_an_allowed_namespace_is_acted_on_and_deny_and_allow_globs_hold() {
    let workload = Workload::create("guard").await;
    let kafka = Kafka::new().await;
    let db = Db::sqlite().await;
    let store = db.store().await;

    // Defaults plus a deny glob: kube-system is protected, the workload's namespace is free.
    let rule = support::unique_name("ns");
    let denying = ActionsConfig {
        namespaces: NamespaceLists {
            allow: Vec::new(),
            deny: vec!["guard-denied-*".to_owned()],
        },
        ..ActionsConfig::default()
    };
    let pipeline = restarter(&workload, &store, &kafka, &restart_rule(&rule), &denying).await;
    handle(&pipeline, &event(&kafka, 0, "kube-system"))
        .await
        .expect("handled");
    let error = only_error(&store, &rule, OutcomeStatus::SuppressedByGuard).await;
    assert!(
        error.contains("namespace `kube-system` is protected"),
        "{error}"
    );
    assert!(error.contains(&format!("rule `{rule}`")), "{error}");
    assert!(error.contains("actions.namespaces.allow"), "{error}");

    handle(&pipeline, &event(&kafka, 1, &workload.namespace))
        .await
        .expect("handled");
    assert_eq!(
        rows(&store, &rule, Some(OutcomeStatus::Succeeded))
            .await
            .len(),
        1
    );
    assert!(
        workload.restarted_at().await.is_some(),
        "the allowed namespace's Deployment was restarted"
    );

    handle(&pipeline, &event(&kafka, 2, "guard-denied-eu"))
        .await
        .expect("handled");
    let refused = rows(&store, &rule, Some(OutcomeStatus::SuppressedByGuard)).await;
    assert_eq!(refused.len(), 2);
    let error = refused
        .iter()
        .filter_map(|r| r.error.as_deref())
        .find(|e| e.contains("guard-denied-eu"))
        .expect("the denied namespace's refusal");
    assert!(
        error.contains("denied by `guard-denied-*` in actions.namespaces.deny"),
        "{error}"
    );

    // An allow list admits only what it matches, and Reflex's own namespace is protected.
    let other = support::unique_name("ns-allow");
    let allowing = ActionsConfig {
        namespaces: NamespaceLists {
            allow: vec!["guard-*".to_owned()],
            deny: Vec::new(),
        },
        own_namespace: Some(workload.namespace.clone()),
        ..ActionsConfig::default()
    };
    let pipeline = restarter(&workload, &store, &kafka, &restart_rule(&other), &allowing).await;
    handle(&pipeline, &event(&kafka, 3, "shop"))
        .await
        .expect("handled");
    handle(&pipeline, &event(&kafka, 4, &workload.namespace))
        .await
        .expect("handled");
    let refused = rows(&store, &other, Some(OutcomeStatus::SuppressedByGuard)).await;
    let errors: Vec<&str> = refused.iter().filter_map(|r| r.error.as_deref()).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("`shop` is not in actions.namespaces.allow (`guard-*`)")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains(&format!("namespace `{}` is protected", workload.namespace))),
        "own namespace refused despite matching `guard-*`: {errors:?}"
    );
    workload.delete().await;
}

#[tokio::test]
async fn a_global_dry_run_changes_nothing_on_the_apiserver_and_records_the_rendered_action() {
    let workload = Workload::create("guard-dry").await;
    let kafka = Kafka::new().await;
    let db = Db::sqlite().await;
    let store = db.store().await;
    let rule = support::unique_name("dry");
    let pipeline = restarter(
        &workload,
        &store,
        &kafka,
        &restart_rule(&rule),
        &ActionsConfig {
            dry_run: true,
            ..ActionsConfig::default()
        },
    )
    .await;
    handle(&pipeline, &event(&kafka, 0, &workload.namespace))
        .await
        .expect("handled");

    let skipped = rows(&store, &rule, Some(OutcomeStatus::SkippedDryRun)).await;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    let details = &skipped[0].details;
    assert_eq!(details["dry_run_by"], "actions.dry_run");
    assert_eq!(details["params"]["target"]["name"], "web");
    assert_eq!(
        details["params"]["target"]["namespace"],
        workload.namespace.as_str()
    );
    assert_eq!(workload.restarted_at().await, None, "nothing changed");
    let published = kafka.read_all(&kafka.topics.outcomes, 1).await;
    assert_eq!(json_of(&published[0])["data"]["status"], "skipped_dry_run");
    workload.delete().await;
}

#[tokio::test]
async fn a_restart_waits_for_the_deployment_lock_another_replica_holds_in_postgres() {
    let workload = Workload::create("guard-lock").await;
    let kafka = Kafka::new().await;
    let db = Db::postgres().await;
    let store = db.store().await;
    let rule = support::unique_name("locked");
    let pipeline = restarter(
        &workload,
        &store,
        &kafka,
        &restart_rule(&rule),
        &ActionsConfig {
            timeout: std::time::Duration::from_secs(1),
            ..ActionsConfig::default()
        },
    )
    .await;

    // Another session (as another replica's executing action would) holds the Deployment's lock.
    let mut replica = pg_admin(db.url()).await;
    let key = reflex::store::locks::lock_key(&format!("deployment/{}/web", workload.namespace));
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(key)
        .execute(&mut replica)
        .await
        .expect("lock");
    handle(&pipeline, &event(&kafka, 0, &workload.namespace))
        .await
        .expect("handled");
    let error = only_error(&store, &rule, OutcomeStatus::Failed).await;
    assert!(error.contains("stayed locked by another action"), "{error}");
    assert!(error.starts_with("not executed"), "{error}");
    assert_eq!(workload.restarted_at().await, None, "nothing ran");

    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(key)
        .execute(&mut replica)
        .await
        .expect("unlock");
    handle(&pipeline, &event(&kafka, 1, &workload.namespace))
        .await
        .expect("handled");
    assert_eq!(
        rows(&store, &rule, Some(OutcomeStatus::Succeeded))
            .await
            .len(),
        1
    );
    assert!(
        workload.restarted_at().await.is_some(),
        "ran once the lock was free"
    );
    drop(replica);
    workload.delete().await;
    db.cleanup().await;
}

#[tokio::test]
async fn restarts_of_one_deployment_past_its_target_limit_open_that_targets_circuit_in_sqlite() {
    let workload = Workload::create("guard-target").await;
    let kafka = Kafka::new().await;
    let db = Db::sqlite().await;
    let store = db.store().await;
    let rule = support::unique_name("per-target");
    let yaml = restart_rule(&rule).replace(
        "    actions:\n",
        "    guard: {max_per_target: 1}\n    actions:\n",
    );
    let pipeline = restarter(&workload, &store, &kafka, &yaml, &ActionsConfig::default()).await;
    for offset in 0..2 {
        handle(&pipeline, &event(&kafka, offset, &workload.namespace))
            .await
            .expect("handled");
    }
    assert_eq!(
        rows(&store, &rule, Some(OutcomeStatus::Succeeded))
            .await
            .len(),
        1
    );
    let refused = rows(&store, &rule, Some(OutcomeStatus::SuppressedByGuard)).await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    let error = refused[0].error.as_deref().unwrap_or_default();
    let target = format!("deployment/{}/web", workload.namespace);
    assert!(error.contains(&format!("on `{target}`")), "{error}");
    assert!(error.contains("max_per_target"), "{error}");
    assert_eq!(refused[0].details["guard"]["scope"], "target");
    let circuit = store
        .circuit(&rule, &target)
        .await
        .expect("read circuit")
        .expect("the target's circuit is persisted");
    assert_eq!(circuit.executions, 2);
    assert!(circuit.announced_open, "the opening was announced");
    // The announcement went to the outcomes topic (the default), after the two outcomes.
    let published = kafka.read_all(&kafka.topics.outcomes, 3).await;
    let types: Vec<String> = published
        .iter()
        .map(|m| json_of(m)["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "dev.reflex.outcome.succeeded",
            "dev.reflex.circuit.opened",
            "dev.reflex.outcome.suppressed_by_guard"
        ]
    );
    workload.delete().await;
}
