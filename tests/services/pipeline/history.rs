//! `Store::history` on both backends and the `reflex history` command.

use chrono::Utc;
use reflex::config::PipelineConfig;
use reflex::pipeline::Handled;
use reflex::store::history::HistoryFilter;
use reflex::store::{NewOutcome, OutcomeStatus};
use serde_json::{Value, json};

use super::harness::*;
use crate::support;

async fn history_filters_by_rule_status_target_and_time(db: Db) {
    let store = db.store().await;
    let base = Utc::now() - chrono::Duration::hours(3);
    let rows_in = [
        (
            "r1",
            OutcomeStatus::Succeeded,
            Some("deployment/shop/checkout"),
            0,
        ),
        (
            "r1",
            OutcomeStatus::Failed,
            Some("deployment/shop/payments"),
            60,
        ),
        ("r2", OutcomeStatus::Succeeded, Some("node/worker-1"), 120),
        ("r2", OutcomeStatus::Duplicate, None, 150),
    ];
    for (i, (rule, status, target, minutes)) in rows_in.iter().enumerate() {
        let key = format!("key-{i}");
        let details = json!({});
        let started = base + chrono::Duration::minutes(*minutes);
        store
            .insert_outcome(&NewOutcome {
                event_id: "e",
                rule,
                action_kind: "log",
                idempotency_key: &key,
                status: *status,
                attempts: 1,
                started_at: started,
                finished_at: Some(started),
                target: *target,
                error: None,
                details: &details,
            })
            .await
            .expect("insert");
    }
    let query = |filter: HistoryFilter| {
        let store = store.clone();
        async move {
            store
                .history(&HistoryFilter {
                    limit: if filter.limit == 0 { 50 } else { filter.limit },
                    ..filter
                })
                .await
                .expect("history")
                .into_iter()
                .map(|r| r.idempotency_key)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        query(HistoryFilter::default()).await,
        ["key-3", "key-2", "key-1", "key-0"],
        "newest first"
    );
    assert_eq!(
        query(HistoryFilter {
            rule: Some("r1".into()),
            ..Default::default()
        })
        .await,
        ["key-1", "key-0"]
    );
    assert_eq!(
        query(HistoryFilter {
            status: Some(OutcomeStatus::Succeeded),
            ..Default::default()
        })
        .await,
        ["key-2", "key-0"]
    );
    assert_eq!(
        query(HistoryFilter {
            target_contains: Some("shop/".into()),
            ..Default::default()
        })
        .await,
        ["key-1", "key-0"]
    );
    assert_eq!(
        query(HistoryFilter {
            target_contains: Some("%".into()),
            ..Default::default()
        })
        .await,
        Vec::<String>::new(),
        "the target text is literal, not a LIKE pattern"
    );
    assert_eq!(
        query(HistoryFilter {
            since: Some(base + chrono::Duration::minutes(30)),
            until: Some(base + chrono::Duration::minutes(150)),
            ..Default::default()
        })
        .await,
        ["key-2", "key-1"]
    );
    assert_eq!(
        query(HistoryFilter {
            limit: 1,
            ..Default::default()
        })
        .await,
        ["key-3"]
    );
    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn history_filters_by_rule_status_target_and_time_on_sqlite() {
    history_filters_by_rule_status_target_and_time(Db::sqlite().await).await;
}

#[tokio::test]
async fn history_filters_by_rule_status_target_and_time_on_postgres() {
    history_filters_by_rule_status_target_and_time(Db::postgres().await).await;
}

#[tokio::test]
async fn the_history_command_prints_the_recorded_outcomes() {
    let kafka = Kafka::new().await;
    let db = Db::sqlite().await;
    let store = db.store().await;
    let token = support::unique_name("cli");
    let rule = format!("cli-{token}");
    let rules = rules(&format!(
        "rules:\n  - name: {rule}\n    actions:\n      - restart:\n          target: {{namespace: shop, name: checkout}}\n"
    ));
    let pipeline = pipeline(&rules, &store, &kafka, &PipelineConfig::default()).await;
    let record = Record::json(
        &kafka.source,
        0,
        include_str!("../../data/events/plain.json"),
    );
    assert_eq!(
        handle(&pipeline, &record).await.expect("handled"),
        Handled::Outcomes(1)
    );

    let args = |format: &str, extra: &[&str]| {
        let mut argv = vec![
            "history".to_owned(),
            "--store".to_owned(),
            db.url().to_owned(),
            "--format".to_owned(),
            format.to_owned(),
            "--since".to_owned(),
            "1h".to_owned(),
        ];
        argv.extend(extra.iter().map(|s| (*s).to_owned()));
        <HistoryCli as clap::Parser>::parse_from(argv).args
    };
    let text = reflex::cli::history::query(&args("text", &["--target", "shop/check"]))
        .await
        .expect("query");
    assert!(text.contains("not_implemented"), "{text}");
    assert!(text.contains("deployment/shop/checkout"), "{text}");
    assert!(text.contains(&rule), "{text}");
    let json_text = reflex::cli::history::query(&args("json", &["--status", "succeeded"]))
        .await
        .expect("query");
    let parsed: Value = serde_json::from_str(&json_text).expect("JSON output");
    assert_eq!(parsed, json!([]), "nothing succeeded");
    store.close().await;
    db.cleanup().await;
}

/// A stand-alone parser for `HistoryArgs` (the real CLI wires it under `reflex history`).
#[derive(clap::Parser)]
struct HistoryCli {
    #[command(flatten)]
    args: reflex::cli::history::HistoryArgs,
}
