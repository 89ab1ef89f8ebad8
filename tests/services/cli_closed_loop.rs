//! The operator commands of closed-loop remediation against both real stores (a SQLite file and
//! a fresh database on the shared PostgreSQL): `reflex history --remediation ID` telling one
//! remediation as a story in order, `reflex history --remediations` listing them, the store's
//! remediation filter, and `reflex release` / `reflex quarantines` on PostgreSQL.

use std::process::{Command, Output};

use chrono::{DateTime, Duration, Utc};
use reflex::store::history::HistoryFilter;
use reflex::store::remediations::{NewRemediation, Phase};
use reflex::store::{NewOutcome, OutcomeStatus, Store};
use serde_json::{Value, json};

use crate::support;

fn reflex(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reflex"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("DATABASE_URL")
        .env_remove("REFLEX_CONFIG")
        .env("USER", "bob")
        .output()
        .expect("the reflex binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A store of either kind, removed at the end.
enum Db {
    // The directory is held only to be removed when the store is dropped.
    Sqlite(#[allow(dead_code)] tempfile::TempDir, String),
    Postgres(support::TempDatabase),
}

impl Db {
    async fn sqlite() -> Db {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("audit.db").display());
        Db::Sqlite(dir, url)
    }

    async fn postgres() -> Db {
        Db::Postgres(support::TempDatabase::create("closedloop").await)
    }

    fn url(&self) -> &str {
        match self {
            Db::Sqlite(_, url) => url,
            Db::Postgres(db) => &db.url,
        }
    }

    async fn cleanup(self) {
        if let Db::Postgres(db) = self {
            db.drop_now().await;
        }
    }
}

const RULE: &str = "restart-then-rollback-then-page";
const TARGET: &str = "deployment/shop/checkout";

/// Records one outcome `minutes` after `base`, of remediation `remediation` at `step`.
async fn outcome(
    store: &Store,
    base: DateTime<Utc>,
    minutes: i64,
    (kind, status): (&str, OutcomeStatus),
    remediation: Option<(&str, u64)>,
) {
    let started = base + Duration::minutes(minutes);
    let key = format!("{kind}-{minutes}-{}", remediation.map_or("none", |r| r.0));
    let details = match remediation {
        Some((id, step)) => json!({"remediation": {"id": id, "step": step}}),
        None => json!({}),
    };
    store
        .insert_outcome(&NewOutcome {
            event_id: "alert-1",
            rule: RULE,
            action_kind: kind,
            idempotency_key: &key,
            status,
            attempts: 1,
            started_at: started,
            finished_at: Some(started),
            target: Some(TARGET),
            error: None,
            details: &details,
        })
        .await
        .expect("insert outcome");
}

/// Remediation `rem-a`: restart, ineffective, rollback, ineffective, page; done. Around it, an
/// outcome of another remediation and one of none.
async fn seed(store: &Store) -> DateTime<Utc> {
    let base = Utc::now() - Duration::hours(1);
    let story = [
        (0, ("restart", OutcomeStatus::Succeeded), 0),
        (10, ("verify", OutcomeStatus::Ineffective), 0),
        (10, ("rollback", OutcomeStatus::Succeeded), 1),
        (20, ("verify", OutcomeStatus::Ineffective), 1),
        (20, ("webhook", OutcomeStatus::Succeeded), 2),
    ];
    for (minutes, what, step) in story {
        outcome(store, base, minutes, what, Some(("rem-a", step))).await;
    }
    outcome(
        store,
        base,
        5,
        ("restart", OutcomeStatus::Succeeded),
        Some(("rem-b", 0)),
    )
    .await;
    outcome(store, base, 6, ("log", OutcomeStatus::Succeeded), None).await;

    let created = base.timestamp_millis();
    let doc = json!({"id": "rem-a", "step": 2, "ending": "completed"});
    let inserted = store
        .insert_remediation(&NewRemediation {
            id: "rem-a",
            rule: RULE,
            target: Some(TARGET),
            occurrence: Some("f1/2026-01-01T00:00:00Z"),
            group_key: None,
            phase: Phase::Acting,
            doc: &doc,
            due_ms: None,
            now_ms: created,
            lease_owner: "test",
            lease_until_ms: created + 60_000,
        })
        .await
        .expect("insert remediation");
    assert_eq!(inserted, reflex::store::remediations::Inserted::Created);
    let saved = store
        .save_remediation(
            "rem-a",
            "test",
            Phase::Done,
            &doc,
            None,
            created + 20 * 60_000,
            None,
        )
        .await
        .expect("save remediation");
    assert!(saved);
    base
}

async fn a_remediation_reads_as_one_story(db: Db) {
    let store = Store::connect(db.url()).await.expect("connect + migrate");
    seed(&store).await;
    let keys: Vec<String> = store
        .history(&HistoryFilter {
            remediation: Some("rem-a".to_owned()),
            limit: 50,
            ..HistoryFilter::default()
        })
        .await
        .expect("history")
        .into_iter()
        .map(|r| r.idempotency_key)
        .collect();
    assert_eq!(
        keys,
        [
            "webhook-20-rem-a",
            "verify-20-rem-a",
            "rollback-10-rem-a",
            "verify-10-rem-a",
            "restart-0-rem-a"
        ],
        "only rem-a's outcomes, newest first"
    );
    store.close().await;

    let out = reflex(&["history", "--store", db.url(), "--remediation", "rem-a"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(
            "remediation rem-a: rule restart-then-rollback-then-page on \
             deployment/shop/checkout, done at step 2, ended completed"
        ),
        "{text}"
    );
    let story: Vec<String> = lines
        .map(|l| {
            let mut words = l.split_whitespace();
            let step = words.nth(1).unwrap_or("?");
            let status = words.nth(1).unwrap_or("?");
            let kind = words.nth(1).unwrap_or("?");
            format!("{step} {status} {kind}")
        })
        .collect();
    assert_eq!(
        story,
        [
            "0 succeeded restart",
            "0 ineffective verify",
            "1 succeeded rollback",
            "1 ineffective verify",
            "2 succeeded webhook",
        ],
        "oldest first: {text}"
    );

    let out = reflex(&["history", "--store", db.url(), "--since", "2h"]);
    let text = stdout(&out);
    assert_eq!(
        text.lines().count(),
        1 + 7,
        "a header row, then 7 outcomes: {text}"
    );
    assert!(text.lines().any(|l| l.contains(" rem-b/0 ")), "{text}");

    let out = reflex(&[
        "history",
        "--store",
        db.url(),
        "--remediations",
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let row = &rows[0];
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(
        (
            &row["id"],
            &row["phase"],
            &row["step"],
            &row["ending"],
            &row["target"]
        ),
        (
            &json!("rem-a"),
            &json!("done"),
            &json!(2),
            &json!("completed"),
            &json!(TARGET)
        )
    );
    let text = stdout(&reflex(&[
        "history",
        "--store",
        db.url(),
        "--remediations",
        "--target",
        "deployment/shop/other",
    ]));
    assert_eq!(text, "no remediations match\n");
    db.cleanup().await;
}

#[tokio::test]
async fn a_remediation_reads_as_one_story_on_sqlite() {
    a_remediation_reads_as_one_story(Db::sqlite().await).await;
}

#[tokio::test]
async fn a_remediation_reads_as_one_story_on_postgres() {
    a_remediation_reads_as_one_story(Db::postgres().await).await;
}

#[tokio::test]
async fn release_and_quarantines_work_on_postgres() {
    let db = Db::postgres().await;
    let store = Store::connect(db.url()).await.expect("connect + migrate");
    let now = Utc::now().timestamp_millis();
    for rule in ["restart", "scale"] {
        assert!(
            store
                .open_quarantine(rule, TARGET, now - 1000, now + 3_600_000, "looping", None)
                .await
                .expect("open quarantine")
        );
    }
    let listed = stdout(&reflex(&["quarantines", "--store", db.url()]));
    assert_eq!(listed.lines().count(), 2, "{listed}");

    let out = reflex(&["release", TARGET, "--store", db.url()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 2, "both rules' quarantines: {text}");
    let row = store
        .quarantine("scale", TARGET)
        .await
        .expect("read")
        .expect("kept as history");
    assert_eq!(row.released_by.as_deref(), Some("cli:bob"));
    assert!(!row.active(Utc::now().timestamp_millis()));

    let again = reflex(&["release", TARGET, "--store", db.url()]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        stdout(&reflex(&["quarantines", "--store", db.url()])),
        "no target is quarantined\n"
    );
    store.close().await;
    db.cleanup().await;
}
