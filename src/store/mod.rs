//! The SQL store, every table in one place: SQLite (default, one file) or PostgreSQL (shared by
//! replicas).
//!
//! Layout, one file per table group:
//! - this file: the [`Store`] (connect, migrations, ping, close), its [`Error`], the [`Backend`]
//!   and the one spelling that differs between the dialects ([`Backend::time`]);
//! - [`dispatch`]: the `dispatch!` helper that runs one statement text on either backend, on
//!   the pool or inside a [`Tx`] (`Store::begin`);
//! - [`outcomes`]: the `outcomes` row (insert, read back);
//! - [`claims`]: the claim lifecycle of an outcome row (release, take-over, finish, publish);
//! - [`circuit`]: execution counts and the `circuits` table of the circuit breaker;
//! - [`rule_state`]: `rule_state` and `rule_state_keys`, the persisted state of stateful rules;
//! - [`remediations`]: `remediations`, `alert_resolutions` and `quarantines`, what closed-loop
//!   remediation follows up (leased to one replica at a time) and the loop guard's quarantines;
//! - [`history`]: the query behind `reflex history`;
//! - [`locks`]: per-target locks (PostgreSQL advisory locks, in-process mutexes on SQLite);
//! - [`url`]: the store URL with its secrets masked.
//!
//! Each statement is written once, with `$N` placeholders, which sqlx's SQLite driver accepts
//! too. The backend is chosen by the URL scheme. Each backend has its own migration folder
//! (`migrations/sqlite`, `migrations/postgres`), embedded in the binary and applied at connect,
//! because the two dialects differ in types (JSONB, TIMESTAMPTZ, identity columns).

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{Migrate, Migrator};
use sqlx::pool::PoolOptions;
use sqlx::postgres::PgPool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool};
use sqlx::{Connection, Database, Pool};

use dispatch::dispatch;

pub mod circuit;
pub mod claims;
pub mod dispatch;
pub mod history;
pub mod locks;
pub mod outcomes;
pub mod remediations;
pub mod rule_state;
pub mod url;

/// The store URL with its secrets masked, for logs and errors (see [`url`]).
pub use self::url::redact as redact_url;
pub use circuit::{Announcement, CircuitRow};
pub use claims::{Finish, Finished};
pub use dispatch::Tx;
pub use history::{HistoryFilter, MAX_HISTORY_LIMIT};
pub use outcomes::{NewOutcome, OutcomeRecord, OutcomeStatus};
pub use remediations::{Inserted, NewRemediation, Phase, QuarantineRow, RemediationRow};
pub use rule_state::{Applied, KeyLease, KeyRow, KeyWrite};

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

    /// `expr` (a timestamp column or parameter) in a form that compares and sorts as an
    /// instant. The one place the dialects really differ in the statements: SQLite keeps
    /// timestamps as RFC 3339 text whose number of fraction digits varies, so text order is
    /// not time order and `julianday()` converts them; PostgreSQL has `TIMESTAMPTZ`, compared
    /// directly (and `julianday` does not exist there).
    pub fn time(self, expr: &str) -> String {
        match self {
            Backend::Sqlite => format!("julianday({expr})"),
            Backend::Postgres => expr.to_owned(),
        }
    }
}

/// A pool of at most `max_connections` to the database of `options`, its schema migrated;
/// `url` (password removed) names it in errors.
async fn open<DB>(
    options: <DB::Connection as Connection>::Options,
    max_connections: u32,
    migrations: &Migrator,
    url: &str,
) -> Result<Pool<DB>>
where
    DB: Database,
    DB::Connection: Migrate,
{
    let pool = PoolOptions::<DB>::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|source| Error::Connect {
            url: url.to_owned(),
            source,
        })?;
    migrations
        .run(&pool)
        .await
        .map_err(|source| Error::Migrate {
            url: url.to_owned(),
            source,
        })?;
    Ok(pool)
}

/// The store: a connection pool to one of the two backends.
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
                Store::Sqlite {
                    pool: open(options, SQLITE_MAX_CONNECTIONS, &SQLITE_MIGRATIONS, &shown).await?,
                    url: shown,
                }
            }
            Some(Backend::Postgres) => {
                let options = self::url::postgres_options(url).map_err(connect_err)?;
                Store::Postgres {
                    pool: open(
                        options,
                        POSTGRES_MAX_CONNECTIONS,
                        &POSTGRES_MIGRATIONS,
                        &shown,
                    )
                    .await?,
                    url: shown,
                }
            }
            None => return Err(Error::UnknownScheme { url: shown }),
        };
        Ok(store)
    }

    /// The pool's size.
    pub fn max_connections(&self) -> usize {
        let n = match self {
            Store::Sqlite { .. } => SQLITE_MAX_CONNECTIONS,
            Store::Postgres { .. } => POSTGRES_MAX_CONNECTIONS,
        };
        n as usize
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

    /// Checks the database answers a trivial query (used by `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        let one: i32 = dispatch!(self, "ping", |db| {
            sqlx::query_scalar("SELECT 1").fetch_one(db).await
        })?;
        debug_assert_eq!(one, 1);
        Ok(())
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
