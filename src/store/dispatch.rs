//! One statement text, either backend: `dispatch!` expands the code that builds and runs a
//! statement once for SQLite and once for PostgreSQL, on a connection of the store's pool or of
//! an open transaction ([`Tx`], from [`Store::begin`]).
//!
//! The statements use `$N` placeholders, which both drivers accept (sqlx's SQLite driver binds
//! `$N` to the N-th argument, so a placeholder may repeat as on PostgreSQL). The code is still
//! expanded twice because sqlx's query types are generic over the database: one expansion per
//! backend is what lets the same `sqlx::query(..).bind(..)` chain type-check against both.

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool, Postgres, Sqlite, Transaction};

use super::{Backend, Error, Result, Store};

/// Runs `$body` on a connection of `$on` (a [`Store`] or a `&mut` [`Tx`]),
/// expanded once per backend with `$db` bound to `&mut SqliteConnection` or `&mut
/// PgConnection`. `$body` evaluates to `Result<T, sqlx::Error>` with the same `T` on both
/// backends (so map driver-specific results, e.g. `.map(|r| r.rows_affected())`); a failure,
/// including taking a pooled connection, becomes [`Error::Query`] named `$operation` and is
/// counted in `reflex_store_errors_total{operation}`.
///
/// ```ignore
/// let removed = dispatch!(self, "release claim", |db| {
///     sqlx::query("DELETE FROM outcomes WHERE idempotency_key = $1")
///         .bind(key)
///         .execute(db)
///         .await
///         .map(|r| r.rows_affected())
/// })?;
/// ```
macro_rules! dispatch {
    // One backend's expansion: `$source` is that backend's `Source`, `$conn` its connection type.
    (@on $source:ident, $conn:ty, |$db:ident| $body:expr) => {
        async {
            let mut conn = $source.connection().await?;
            let $db: &mut $conn = &mut conn;
            let result: ::std::result::Result<_, ::sqlx::Error> = $body;
            result
        }
        .await
    };
    ($on:expr, $operation:expr, |$db:ident| $body:expr) => {{
        let $crate::store::dispatch::Target { url, on } = $on.target();
        let result = match on {
            $crate::store::dispatch::On::Sqlite(source) => {
                $crate::store::dispatch::dispatch!(
                    @on source, ::sqlx::SqliteConnection, |$db| $body
                )
            }
            $crate::store::dispatch::On::Postgres(source) => {
                $crate::store::dispatch::dispatch!(
                    @on source, ::sqlx::PgConnection, |$db| $body
                )
            }
        };
        result.map_err(|source| {
            $crate::metrics::global().store_error($operation);
            $crate::store::Error::Query {
                operation: $operation,
                url: url.to_owned(),
                source,
            }
        })
    }};
}
pub(crate) use dispatch;

/// Where [`dispatch!`] runs a statement: the store's URL (for errors) and a connection source.
pub(crate) struct Target<'a> {
    /// The store URL, password removed.
    pub(crate) url: &'a str,
    /// The backend and connection source.
    pub(crate) on: On<'a>,
}

/// A connection source of one of the backends.
pub(crate) enum On<'a> {
    /// SQLite.
    Sqlite(Source<'a, Sqlite>),
    /// PostgreSQL.
    Postgres(Source<'a, Postgres>),
}

/// The pool (a connection is taken for one operation) or an open transaction's connection.
pub(crate) enum Source<'a, DB: Database> {
    /// Take a connection from the pool.
    Pool(&'a Pool<DB>),
    /// Run inside this transaction.
    Tx(&'a mut DB::Connection),
}

impl<'a, DB: Database> Source<'a, DB> {
    /// The connection to run on.
    pub(crate) async fn connection(self) -> sqlx::Result<Conn<'a, DB>> {
        match self {
            Source::Pool(pool) => pool.acquire().await.map(Conn::Pooled),
            Source::Tx(conn) => Ok(Conn::InTx(conn)),
        }
    }
}

/// A connection taken from the pool (returned to it on drop) or borrowed from a transaction.
pub(crate) enum Conn<'a, DB: Database> {
    /// Taken from the pool.
    Pooled(PoolConnection<DB>),
    /// The transaction's.
    InTx(&'a mut DB::Connection),
}

impl<DB: Database> Deref for Conn<'_, DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        match self {
            Conn::Pooled(conn) => conn,
            Conn::InTx(conn) => conn,
        }
    }
}

impl<DB: Database> DerefMut for Conn<'_, DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        match self {
            Conn::Pooled(conn) => conn,
            Conn::InTx(conn) => conn,
        }
    }
}

/// An open transaction on either backend, from [`Store::begin`]. Statements run in it through
/// `dispatch!` (e.g. [`Tx::save_rule_keys`]); dropped without [`Tx::commit`], it rolls back.
#[derive(Debug)]
pub enum Tx {
    /// SQLite.
    Sqlite {
        /// The transaction.
        tx: Transaction<'static, Sqlite>,
        /// The store URL, password removed.
        url: String,
    },
    /// PostgreSQL.
    Postgres {
        /// The transaction.
        tx: Transaction<'static, Postgres>,
        /// The store URL, password removed.
        url: String,
    },
}

/// The error of a transaction step (`begin`, `commit`, `rollback`) on the store at `url`.
fn tx_err<'a>(url: &'a str, operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error + 'a {
    move |source| {
        crate::metrics::global().store_error(operation);
        Error::Query {
            operation,
            url: url.to_owned(),
            source,
        }
    }
}

impl Store {
    /// Where [`dispatch!`] runs: a connection taken from the pool per operation.
    pub(crate) fn target(&self) -> Target<'_> {
        match self {
            Store::Sqlite { pool, url } => Target {
                url,
                on: On::Sqlite(Source::Pool(pool)),
            },
            Store::Postgres { pool, url } => Target {
                url,
                on: On::Postgres(Source::Pool(pool)),
            },
        }
    }

    /// Opens a transaction: statements run in the returned [`Tx`] take effect together at
    /// [`Tx::commit`], or not at all.
    pub async fn begin(&self) -> Result<Tx> {
        let url = self.url().to_owned();
        let begun = match self {
            Store::Sqlite { pool, .. } => pool.begin().await.map(|tx| Tx::Sqlite {
                tx,
                url: url.clone(),
            }),
            Store::Postgres { pool, .. } => pool.begin().await.map(|tx| Tx::Postgres {
                tx,
                url: url.clone(),
            }),
        };
        begun.map_err(tx_err(&url, "begin transaction"))
    }
}

impl Tx {
    /// Where [`dispatch!`] runs: this transaction's connection.
    pub(crate) fn target(&mut self) -> Target<'_> {
        match self {
            Tx::Sqlite { tx, url } => Target {
                url,
                on: On::Sqlite(Source::Tx(&mut **tx)),
            },
            Tx::Postgres { tx, url } => Target {
                url,
                on: On::Postgres(Source::Tx(&mut **tx)),
            },
        }
    }

    /// Which backend this transaction runs on.
    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite { .. } => Backend::Sqlite,
            Tx::Postgres { .. } => Backend::Postgres,
        }
    }

    /// Makes the transaction's statements durable, together.
    pub async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite { tx, url } => tx.commit().await.map_err(tx_err(&url, "commit")),
            Tx::Postgres { tx, url } => tx.commit().await.map_err(tx_err(&url, "commit")),
        }
    }

    /// Discards the transaction's statements (dropping a `Tx` does too, without waiting).
    pub async fn rollback(self) -> Result<()> {
        match self {
            Tx::Sqlite { tx, url } => tx.rollback().await.map_err(tx_err(&url, "rollback")),
            Tx::Postgres { tx, url } => tx.rollback().await.map_err(tx_err(&url, "rollback")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_statement_is_named_in_its_error_and_counted_in_the_metric() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("audit.db").display());
        let store = Store::connect(&url).await.expect("store");
        // A closed pool refuses every statement, as a store that went away would.
        store.close().await;
        let err = store
            .load_rule_state("metric-check")
            .await
            .expect_err("the pool is closed");
        assert!(
            matches!(
                err,
                Error::Query {
                    operation: "load rule state",
                    ..
                }
            ),
            "{err:?}"
        );
        let metrics = crate::metrics::global().encode();
        assert!(
            metrics.contains("reflex_store_errors_total{operation=\"load rule state\"}"),
            "{metrics}"
        );
    }
}
