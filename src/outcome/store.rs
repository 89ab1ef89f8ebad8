//! The SQL audit store: SQLite (default, one file) or PostgreSQL (shared by replicas).
//!
//! The backend is chosen by the URL scheme. Each backend has its own migration folder
//! (`migrations/sqlite`, `migrations/postgres`), embedded in the binary and applied at connect,
//! because the two dialects differ in types (JSONB, TIMESTAMPTZ, identity columns).

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::types::Json;

pub use super::claim::Finish;
/// The store URL with its secrets masked, for logs and errors (see [`super::store_url`]).
pub use super::store_url::redact as redact_url;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// How long to wait for a connection (including the first one at start). Long enough for a
/// PostgreSQL failover, short enough that a wrong address fails `reflex run` within seconds
/// instead of hanging.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// PostgreSQL connections per replica. Writes are one row per action, so a handful covers
/// bursts while leaving the server's connection slots to everyone else; a decision on stateful
/// keys keeps one for its transaction while its actions use others, and at most half of them
/// are held that way (see `Pipeline`).
const POSTGRES_MAX_CONNECTIONS: u32 = 10;

/// SQLite connections. WAL lets readers run beside the single writer; more than a few gains
/// nothing because writes serialise on the file lock anyway.
const SQLITE_MAX_CONNECTIONS: u32 = 4;

/// How long a SQLite writer waits for another writer's lock before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a store operation failed. Every variant names the (password-free) database URL.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL is neither `sqlite:` nor `postgres://`.
    #[error("unsupported store URL `{url}`: use sqlite://<file> or postgres://user@host:port/db")]
    UnknownScheme {
        /// The URL, password removed.
        url: String,
    },
    /// Connecting (or parsing the URL) failed.
    #[error("cannot connect to the store at {url}")]
    Connect {
        /// The URL, password removed.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the embedded migrations failed.
    #[error("cannot apply the store migrations to {url}")]
    Migrate {
        /// The URL, password removed.
        url: String,
        /// The migrator's error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed.
    #[error("store query `{operation}` failed on {url}")]
    Query {
        /// What was being done, e.g. `insert outcome`.
        operation: &'static str,
        /// The URL, password removed.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A row held a value this version does not understand (e.g. an unknown status).
    #[error("store row is invalid on {url}: {message}")]
    InvalidRow {
        /// The URL, password removed.
        url: String,
        /// What was wrong.
        message: String,
    },
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// Picks the backend from a URL's scheme.
    pub fn from_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// Where an action's execution stands. Every status but `started` is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutcomeStatus {
    /// The idempotency key is claimed and the action is executing (or the process died while
    /// it ran: a redelivery then decides whether to execute again, see [`crate::pipeline`]).
    Started,
    /// Executed, and the target accepted it.
    Succeeded,
    /// Could not be planned (a template failed to render) or executing failed for good.
    Failed,
    /// The rule is in dry-run mode: recorded, not executed.
    SkippedDryRun,
    /// A redelivered event planned an action whose idempotency key already has a final
    /// outcome; it was not executed again. One row per duplicated action, keyed
    /// `<original key>.duplicate`, refreshed by every later redelivery or retry.
    Duplicate,
    /// No executor exists yet for this action kind; nothing was executed.
    NotImplemented,
    /// The event matched no rule (recorded only when `pipeline.record_no_match` is on).
    NoMatch,
    /// A guardrail refused the action (namespace policy or open circuit breaker); the error
    /// names the guard and the setting that would allow it. Nothing was executed.
    SuppressedByGuard,
    /// The rule's `throttle.once_within` suppressed this firing (recorded only when
    /// `pipeline.record_throttled` is on).
    Throttled,
}

impl OutcomeStatus {
    /// Every status, in a stable order (CLI help, tests).
    pub const ALL: [OutcomeStatus; 9] = [
        OutcomeStatus::Started,
        OutcomeStatus::Succeeded,
        OutcomeStatus::Failed,
        OutcomeStatus::SkippedDryRun,
        OutcomeStatus::Duplicate,
        OutcomeStatus::NotImplemented,
        OutcomeStatus::NoMatch,
        OutcomeStatus::SuppressedByGuard,
        OutcomeStatus::Throttled,
    ];

    /// The value stored in the `status` column and used in outcome record types.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::SkippedDryRun => "skipped_dry_run",
            Self::Duplicate => "duplicate",
            Self::NotImplemented => "not_implemented",
            Self::NoMatch => "no_match",
            Self::SuppressedByGuard => "suppressed_by_guard",
            Self::Throttled => "throttled",
        }
    }

    /// True for every status except [`OutcomeStatus::Started`].
    pub fn is_final(self) -> bool {
        self != Self::Started
    }
}

impl std::fmt::Display for OutcomeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OutcomeStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                let valid: Vec<&str> = Self::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown outcome status `{s}`; valid: {}", valid.join(", "))
            })
    }
}

/// An outcome to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOutcome<'a> {
    /// The event that triggered the action.
    pub event_id: &'a str,
    /// The rule that planned it.
    pub rule: &'a str,
    /// The action kind, e.g. `restart`.
    pub action_kind: &'a str,
    /// Unique per (event, rule, action); a second insert with the same key is ignored.
    pub idempotency_key: &'a str,
    /// Current status.
    pub status: OutcomeStatus,
    /// Attempts made so far.
    pub attempts: i32,
    /// When execution started.
    pub started_at: DateTime<Utc>,
    /// When it finished, if it has.
    pub finished_at: Option<DateTime<Utc>>,
    /// What was acted on, e.g. `deployment/shop/checkout`.
    pub target: Option<&'a str>,
    /// The last error, if any.
    pub error: Option<&'a str>,
    /// Anything else worth keeping (rendered parameters, HTTP status...).
    pub details: &'a serde_json::Value,
}

/// A recorded outcome, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeRecord {
    /// Row id, increasing with insertion order.
    pub id: i64,
    /// The event that triggered the action.
    pub event_id: String,
    /// The rule that planned it.
    pub rule: String,
    /// The action kind.
    pub action_kind: String,
    /// The idempotency key.
    pub idempotency_key: String,
    /// Status.
    pub status: OutcomeStatus,
    /// Attempts made.
    pub attempts: i32,
    /// When execution started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// What was acted on.
    pub target: Option<String>,
    /// The last error.
    pub error: Option<String>,
    /// Extra details.
    pub details: serde_json::Value,
    /// When the outcome record reached the outcomes topic; `None` while it has not.
    pub published_at: Option<DateTime<Utc>>,
}

/// Columns of `outcomes` in the order [`Store::outcome_from_row`] reads them.
pub(crate) const OUTCOME_COLUMNS: &str = "id, event_id, rule, action_kind, idempotency_key, \
     status, attempts, started_at, finished_at, target, error, details, published_at";

/// The audit store: a connection pool to one of the two backends.
#[derive(Debug, Clone)]
pub enum Store {
    /// SQLite.
    Sqlite {
        /// The pool.
        pool: SqlitePool,
        /// The URL it was opened with.
        url: String,
    },
    /// PostgreSQL.
    Postgres {
        /// The pool.
        pool: PgPool,
        /// The URL, password removed.
        url: String,
    },
}

impl Store {
    /// Connects to the database the URL names, creating a SQLite file if missing, and applies
    /// the embedded migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let shown = redact_url(url);
        let connect_err = |source| Error::Connect {
            url: shown.clone(),
            source,
        };
        let store = match Backend::from_url(url) {
            Some(Backend::Sqlite) => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(connect_err)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .foreign_keys(true);
                let pool = SqlitePoolOptions::new()
                    .max_connections(SQLITE_MAX_CONNECTIONS)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(connect_err)?;
                SQLITE_MIGRATIONS
                    .run(&pool)
                    .await
                    .map_err(|source| Error::Migrate {
                        url: shown.clone(),
                        source,
                    })?;
                Store::Sqlite {
                    pool,
                    url: shown.clone(),
                }
            }
            Some(Backend::Postgres) => {
                let options = super::store_url::postgres_options(url).map_err(connect_err)?;
                let pool = PgPoolOptions::new()
                    .max_connections(POSTGRES_MAX_CONNECTIONS)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(connect_err)?;
                POSTGRES_MIGRATIONS
                    .run(&pool)
                    .await
                    .map_err(|source| Error::Migrate {
                        url: shown.clone(),
                        source,
                    })?;
                Store::Postgres {
                    pool,
                    url: shown.clone(),
                }
            }
            None => return Err(Error::UnknownScheme { url: shown }),
        };
        Ok(store)
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self {
            Store::Sqlite { .. } => Backend::Sqlite,
            Store::Postgres { .. } => Backend::Postgres,
        }
    }

    /// The URL it was opened with, password removed.
    pub fn url(&self) -> &str {
        match self {
            Store::Sqlite { url, .. } | Store::Postgres { url, .. } => url,
        }
    }

    pub(crate) fn query_err(
        &self,
        operation: &'static str,
    ) -> impl FnOnce(sqlx::Error) -> Error + '_ {
        move |source| Error::Query {
            operation,
            url: self.url().to_owned(),
            source,
        }
    }

    /// The pool's size.
    pub fn max_connections(&self) -> usize {
        let n = match self {
            Store::Sqlite { .. } => SQLITE_MAX_CONNECTIONS,
            Store::Postgres { .. } => POSTGRES_MAX_CONNECTIONS,
        };
        n as usize
    }

    /// Checks the database answers a trivial query (used by `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        let one: i32 = match self {
            Store::Sqlite { pool, .. } => sqlx::query_scalar("SELECT 1").fetch_one(pool).await,
            Store::Postgres { pool, .. } => sqlx::query_scalar("SELECT 1").fetch_one(pool).await,
        }
        .map_err(self.query_err("ping"))?;
        debug_assert_eq!(one, 1);
        Ok(())
    }

    /// Records an outcome unless one with the same idempotency key exists. Returns whether a
    /// row was inserted (false means: this action was already recorded, do not repeat it).
    pub async fn insert_outcome(&self, outcome: &NewOutcome<'_>) -> Result<bool> {
        Ok(self.insert_outcome_or(outcome, "DO NOTHING").await? == 1)
    }

    /// Inserts an outcome row; `on_conflict` says what happens when its key exists (`DO
    /// NOTHING`, or a `DO UPDATE` in the syntax both dialects share). Returns the rows affected.
    pub(crate) async fn insert_outcome_or(
        &self,
        outcome: &NewOutcome<'_>,
        on_conflict: &str,
    ) -> Result<u64> {
        let details = Json(outcome.details);
        let columns = "INSERT INTO outcomes (event_id, rule, action_kind, idempotency_key, \
             status, attempts, started_at, finished_at, target, error, details)";
        match self {
            Store::Sqlite { pool, .. } => sqlx::query(sqlx::AssertSqlSafe(format!(
                "{columns} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (idempotency_key) {on_conflict}"
            )))
            .bind(outcome.event_id)
            .bind(outcome.rule)
            .bind(outcome.action_kind)
            .bind(outcome.idempotency_key)
            .bind(outcome.status.as_str())
            .bind(outcome.attempts)
            .bind(outcome.started_at)
            .bind(outcome.finished_at)
            .bind(outcome.target)
            .bind(outcome.error)
            .bind(details)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
            Store::Postgres { pool, .. } => sqlx::query(sqlx::AssertSqlSafe(format!(
                "{columns} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (idempotency_key) {on_conflict}"
            )))
            .bind(outcome.event_id)
            .bind(outcome.rule)
            .bind(outcome.action_kind)
            .bind(outcome.idempotency_key)
            .bind(outcome.status.as_str())
            .bind(outcome.attempts)
            .bind(outcome.started_at)
            .bind(outcome.finished_at)
            .bind(outcome.target)
            .bind(outcome.error)
            .bind(details)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
        }
        .map_err(self.query_err("insert outcome"))
    }

    /// Reads the outcome recorded under an idempotency key.
    pub async fn outcome_by_key(&self, idempotency_key: &str) -> Result<Option<OutcomeRecord>> {
        match self {
            Store::Sqlite { pool, .. } => {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {OUTCOME_COLUMNS} FROM outcomes WHERE idempotency_key = ?"
                )))
                .bind(idempotency_key)
                .fetch_optional(pool)
                .await
                .map_err(self.query_err("read outcome"))?;
                row.map(|row| self.outcome_from_row(&row)).transpose()
            }
            Store::Postgres { pool, .. } => {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {OUTCOME_COLUMNS} FROM outcomes WHERE idempotency_key = $1"
                )))
                .bind(idempotency_key)
                .fetch_optional(pool)
                .await
                .map_err(self.query_err("read outcome"))?;
                row.map(|row| self.outcome_from_row(&row)).transpose()
            }
        }
    }

    pub(crate) fn outcome_from_row<R>(&self, row: &R) -> Result<OutcomeRecord>
    where
        R: Row,
        usize: sqlx::ColumnIndex<R>,
        for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> DateTime<Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Json<serde_json::Value>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        let err = self.query_err("decode outcome");
        let decoded = (|| -> Result<_, sqlx::Error> {
            Ok((
                row.try_get::<i64, _>(0)?,
                row.try_get::<String, _>(1)?,
                row.try_get::<String, _>(2)?,
                row.try_get::<String, _>(3)?,
                row.try_get::<String, _>(4)?,
                row.try_get::<String, _>(5)?,
                row.try_get::<i32, _>(6)?,
                row.try_get::<DateTime<Utc>, _>(7)?,
                row.try_get::<Option<DateTime<Utc>>, _>(8)?,
                row.try_get::<Option<String>, _>(9)?,
                row.try_get::<Option<String>, _>(10)?,
                row.try_get::<Json<serde_json::Value>, _>(11)?,
                row.try_get::<Option<DateTime<Utc>>, _>(12)?,
            ))
        })();
        let (
            id,
            event_id,
            rule,
            action_kind,
            idempotency_key,
            status,
            attempts,
            started_at,
            finished_at,
            target,
            error,
            details,
            published_at,
        ) = decoded.map_err(err)?;
        let status = status.parse().map_err(|message| Error::InvalidRow {
            url: self.url().to_owned(),
            message,
        })?;
        Ok(OutcomeRecord {
            id,
            event_id,
            rule,
            action_kind,
            idempotency_key,
            status,
            attempts,
            started_at,
            finished_at,
            target,
            error,
            details: details.0,
            published_at,
        })
    }

    /// Saves a rule's state document, replacing the previous one.
    pub async fn save_rule_state(
        &self,
        rule: &str,
        state: &serde_json::Value,
        updated_at: DateTime<Utc>,
    ) -> Result<()> {
        match self {
            Store::Sqlite { pool, .. } => sqlx::query(
                "INSERT INTO rule_state (rule, state, updated_at) VALUES (?, ?, ?) \
                 ON CONFLICT (rule) DO UPDATE SET state = excluded.state, \
                 updated_at = excluded.updated_at",
            )
            .bind(rule)
            .bind(Json(state))
            .bind(updated_at)
            .execute(pool)
            .await
            .map(drop),
            Store::Postgres { pool, .. } => sqlx::query(
                "INSERT INTO rule_state (rule, state, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (rule) DO UPDATE SET state = excluded.state, \
                 updated_at = excluded.updated_at",
            )
            .bind(rule)
            .bind(Json(state))
            .bind(updated_at)
            .execute(pool)
            .await
            .map(drop),
        }
        .map_err(self.query_err("save rule state"))
    }

    /// Loads a rule's state document, if one was saved.
    pub async fn load_rule_state(&self, rule: &str) -> Result<Option<serde_json::Value>> {
        let state: Option<Json<serde_json::Value>> = match self {
            Store::Sqlite { pool, .. } => {
                sqlx::query_scalar("SELECT state FROM rule_state WHERE rule = ?")
                    .bind(rule)
                    .fetch_optional(pool)
                    .await
            }
            Store::Postgres { pool, .. } => {
                sqlx::query_scalar("SELECT state FROM rule_state WHERE rule = $1")
                    .bind(rule)
                    .fetch_optional(pool)
                    .await
            }
        }
        .map_err(self.query_err("load rule state"))?;
        Ok(state.map(|json| json.0))
    }

    /// Closes the pool, waiting for in-flight queries (part of a clean shutdown).
    pub async fn close(&self) {
        match self {
            Store::Sqlite { pool, .. } => pool.close().await,
            Store::Postgres { pool, .. } => pool.close().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_follows_the_url_scheme() {
        assert_eq!(
            Backend::from_url("sqlite://reflex.db"),
            Some(Backend::Sqlite)
        );
        assert_eq!(Backend::from_url("sqlite::memory:"), Some(Backend::Sqlite));
        assert_eq!(
            Backend::from_url("postgres://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("postgresql://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::from_url("mysql://u@h/db"), None);
    }

    #[test]
    fn every_status_round_trips_through_its_column_value() {
        for status in OutcomeStatus::ALL {
            assert_eq!(status.as_str().parse::<OutcomeStatus>(), Ok(status));
        }
        let err = "done".parse::<OutcomeStatus>().expect_err("unknown");
        assert!(err.contains("skipped_dry_run"), "{err}");
        assert!(!OutcomeStatus::Started.is_final());
        assert!(OutcomeStatus::Duplicate.is_final());
    }

    #[tokio::test]
    async fn an_unknown_scheme_is_refused_before_connecting() {
        let err = Store::connect("mysql://root:pw@localhost/x")
            .await
            .expect_err("unsupported");
        let text = err.to_string();
        assert!(text.contains("mysql://root:***@localhost/x"), "{text}");
        assert!(!text.contains("pw"), "{text}");
    }
}
