//! Rule state per (rule, group key): the `rule_state_keys` table, plus the rule-wide counters
//! kept in `rule_state`.
//!
//! A key's row is the only copy of its state: a record that may touch a key LOCKS the row for
//! its whole decision ([`Store::lock_keys`]: on PostgreSQL a row lock in a transaction that stays
//! open while the record's actions run; on SQLite, one process, the caller's in-process lock is
//! the lock), reads it, and writes the new state in that same transaction
//! ([`KeyLease::write`], [`KeyLease::commit`]). Due timers are claimed the same way by whichever
//! replica looks first ([`Store::due_keys`], `FOR UPDATE SKIP LOCKED`). So one (rule, key) is
//! decided by one process at a time, whatever partition or replica its events arrive on.
//!
//! Every statement is written once for both databases (`$N` placeholders; due times are
//! integer milliseconds so both compare them alike); only the lock differs ([`Dialect`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{Postgres, Sqlite, Transaction};

use super::store::{Result, Store};
use crate::rules::StateKey;

/// Per input partition (`topic/partition`), the offset of the last record applied to a key: a
/// record at or below it is a redelivery (after a crash or a rebalance) and is not counted
/// again. Bounded by the number of input partitions.
pub type Applied = BTreeMap<String, i64>;

/// One locked key as the store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRow {
    /// The rule and group key.
    pub key: StateKey,
    /// The key's state document (`None`: the key holds no state; its row, if any, only
    /// remembers which records were applied).
    pub state: Option<Value>,
    /// Records applied to the key.
    pub applied: Applied,
    /// The row existed before this lock (`false`: the lock created an empty placeholder,
    /// which [`KeyLease::write`] removes unless it writes the key).
    pub existed: bool,
}

/// The new content of one locked key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyWrite {
    /// Store this state (`None`: none, the row only remembers applied records), due at
    /// `due` (the key's next deadline; for a row without state, when it may be forgotten).
    Put {
        /// The key.
        key: StateKey,
        /// Its state document.
        state: Option<Value>,
        /// Records applied to it.
        applied: Applied,
        /// When the timer sweep must look at it.
        due: Option<DateTime<Utc>>,
    },
    /// Remove the row.
    Delete(StateKey),
}

/// The locks a decision holds until [`KeyLease::commit`] (or until dropped, which rolls back:
/// nothing written, the rows keep what they held).
#[derive(Debug)]
pub enum KeyLease {
    /// SQLite: the caller's in-process key locks are the locks; writes are applied at commit,
    /// in one transaction.
    Sqlite {
        /// The pool.
        pool: sqlx::SqlitePool,
        /// Writes to apply at commit.
        pending: Vec<KeyWrite>,
    },
    /// PostgreSQL: the transaction holding the rows' locks.
    Postgres(Transaction<'static, Postgres>),
}

/// Where the two databases differ: how a key is read for a decision, and how due keys are
/// claimed.
struct Dialect {
    /// Reads one key for a decision.
    lock: &'static str,
    /// Due keys, earliest first.
    due: &'static str,
}

/// PostgreSQL: the upsert takes the row lock even for a key that has no row yet (a concurrent
/// decision on the same new key waits on the unique index until this one commits), and due rows
/// another replica holds are skipped, not waited for.
const POSTGRES: Dialect = Dialect {
    lock: "INSERT INTO rule_state_keys (rule, key, state, updated_at) VALUES ($1, $2, 'null', $3) \
           ON CONFLICT (rule, key) DO UPDATE SET rule = excluded.rule \
           RETURNING state, applied",
    due: "SELECT rule, key, state, applied FROM rule_state_keys WHERE due_ms <= $1 \
          ORDER BY due_ms LIMIT $2 FOR UPDATE SKIP LOCKED",
};

/// SQLite: one process, whose in-process key locks serialize decisions; a plain read (no
/// placeholder row written per event).
const SQLITE: Dialect = Dialect {
    lock: "SELECT state, applied FROM rule_state_keys WHERE rule = $1 AND key = $2",
    due: "SELECT rule, key, state, applied FROM rule_state_keys WHERE due_ms <= $1 \
          ORDER BY due_ms LIMIT $2",
};

const UPSERT: &str = "INSERT INTO rule_state_keys (rule, key, state, applied, due_ms, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (rule, key) DO UPDATE SET \
     state = excluded.state, applied = excluded.applied, due_ms = excluded.due_ms, \
     updated_at = excluded.updated_at";

const DELETE: &str = "DELETE FROM rule_state_keys WHERE rule = $1 AND key = $2";

/// Every key of a rule holding state, by key.
const LOAD: &str = "SELECT key, state FROM rule_state_keys WHERE rule = $1 AND state <> 'null' \
     ORDER BY key";

/// Keys holding state, per rule (rows that only remember applied records hold `null`).
const SUMMARY: &str = "SELECT rule, COUNT(*) FROM rule_state_keys WHERE state <> 'null' \
     GROUP BY rule";

/// A row as read: state, applied.
type Read = (Json<Value>, Json<Applied>);

/// A due row as read: rule, key, state, applied.
type DueRead = (String, String, Json<Value>, Json<Applied>);

fn row(key: StateKey, read: Option<Read>) -> KeyRow {
    match read {
        Some((state, applied)) => {
            let state = Some(state.0).filter(|s| !s.is_null());
            let applied = applied.0;
            // A placeholder the lock itself inserted reads back as null and empty.
            let existed = state.is_some() || !applied.is_empty();
            KeyRow {
                key,
                state,
                applied,
                existed,
            }
        }
        None => KeyRow {
            key,
            state: None,
            applied: Applied::new(),
            existed: false,
        },
    }
}

fn millis(at: Option<DateTime<Utc>>) -> Option<i64> {
    at.map(|at| at.timestamp_millis())
}

/// Runs one [`KeyWrite`] on `$conn`.
macro_rules! apply_write {
    ($conn:expr, $write:expr, $now:expr) => {
        match $write {
            KeyWrite::Put {
                key,
                state,
                applied,
                due,
            } => {
                sqlx::query(UPSERT)
                    .bind(&key.rule)
                    .bind(&key.key)
                    .bind(Json(state.as_ref().unwrap_or(&Value::Null)))
                    .bind(Json(applied))
                    .bind(millis(*due))
                    .bind($now)
                    .execute(&mut *$conn)
                    .await
            }
            KeyWrite::Delete(key) => {
                sqlx::query(DELETE)
                    .bind(&key.rule)
                    .bind(&key.key)
                    .execute(&mut *$conn)
                    .await
            }
        }
    };
}

impl Store {
    /// Locks `keys` (in their order, which is sorted: two decisions sharing keys take them in
    /// the same order and cannot deadlock) and reads them. On PostgreSQL each lock waits while
    /// another process holds the key.
    pub async fn lock_keys(
        &self,
        keys: &BTreeSet<StateKey>,
        now: DateTime<Utc>,
    ) -> Result<(KeyLease, Vec<KeyRow>)> {
        let mut rows = Vec::with_capacity(keys.len());
        let lease = match self {
            Store::Sqlite { pool, .. } => {
                for key in keys {
                    let read: Option<Read> = sqlx::query_as(SQLITE.lock)
                        .bind(&key.rule)
                        .bind(&key.key)
                        .fetch_optional(pool)
                        .await
                        .map_err(self.query_err("read rule state keys"))?;
                    rows.push(row(key.clone(), read));
                }
                KeyLease::Sqlite {
                    pool: pool.clone(),
                    pending: Vec::new(),
                }
            }
            Store::Postgres { pool, .. } => {
                let mut tx = pool
                    .begin()
                    .await
                    .map_err(self.query_err("lock rule state keys"))?;
                for key in keys {
                    let read: Read = sqlx::query_as(POSTGRES.lock)
                        .bind(&key.rule)
                        .bind(&key.key)
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(self.query_err("lock rule state keys"))?;
                    rows.push(row(key.clone(), Some(read)));
                }
                KeyLease::Postgres(tx)
            }
        };
        Ok((lease, rows))
    }

    /// Claims up to `limit` keys whose timer is due at `now`, earliest first, skipping (on
    /// PostgreSQL) keys another process holds; the caller skips keys it holds itself.
    pub async fn due_keys(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<(KeyLease, Vec<KeyRow>)> {
        let now_ms = now.timestamp_millis();
        let to_row = |(rule, key, state, applied): DueRead| {
            row(StateKey { rule, key }, Some((state, applied)))
        };
        match self {
            Store::Sqlite { pool, .. } => {
                let due: Vec<DueRead> = sqlx::query_as(SQLITE.due)
                    .bind(now_ms)
                    .bind(limit)
                    .fetch_all(pool)
                    .await
                    .map_err(self.query_err("read due rule state keys"))?;
                let lease = KeyLease::Sqlite {
                    pool: pool.clone(),
                    pending: Vec::new(),
                };
                Ok((lease, due.into_iter().map(to_row).collect()))
            }
            Store::Postgres { pool, .. } => {
                let mut tx = pool
                    .begin()
                    .await
                    .map_err(self.query_err("claim due rule state keys"))?;
                let due: Vec<DueRead> = sqlx::query_as(POSTGRES.due)
                    .bind(now_ms)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(self.query_err("claim due rule state keys"))?;
                Ok((
                    KeyLease::Postgres(tx),
                    due.into_iter().map(to_row).collect(),
                ))
            }
        }
    }

    /// Every key of `rule` holding state, with its document, by key (for inspection and for
    /// tests; decisions read keys through [`Store::lock_keys`]).
    pub async fn load_rule_keys(&self, rule: &str) -> Result<Vec<(String, Value)>> {
        let rows: Vec<(String, Json<Value>)> = match self {
            Store::Sqlite { pool, .. } => sqlx::query_as(LOAD).bind(rule).fetch_all(pool).await,
            Store::Postgres { pool, .. } => sqlx::query_as(LOAD).bind(rule).fetch_all(pool).await,
        }
        .map_err(self.query_err("load rule state keys"))?;
        Ok(rows
            .into_iter()
            .map(|(key, state)| (key, state.0))
            .collect())
    }

    /// Keys holding state, per rule.
    pub async fn state_key_counts(&self) -> Result<BTreeMap<String, u64>> {
        let rows: Vec<(String, i64)> = match self {
            Store::Sqlite { pool, .. } => sqlx::query_as(SUMMARY).fetch_all(pool).await,
            Store::Postgres { pool, .. } => sqlx::query_as(SUMMARY).fetch_all(pool).await,
        }
        .map_err(self.query_err("count rule state keys"))?;
        Ok(rows
            .into_iter()
            .map(|(rule, n)| (rule, u64::try_from(n).unwrap_or_default()))
            .collect())
    }
}

impl KeyLease {
    /// Writes the keys' new content under the held locks (SQLite: at commit).
    pub async fn write(&mut self, store: &Store, writes: Vec<KeyWrite>) -> Result<()> {
        match self {
            KeyLease::Sqlite { pending, .. } => {
                pending.extend(writes);
                Ok(())
            }
            KeyLease::Postgres(tx) => {
                let now = Utc::now();
                for write in &writes {
                    apply_write!(*tx, write, now)
                        .map_err(store.query_err("save rule state keys"))?;
                }
                Ok(())
            }
        }
    }

    /// Makes the writes durable and releases the locks.
    pub async fn commit(self, store: &Store) -> Result<()> {
        let now = Utc::now();
        let result: std::result::Result<(), sqlx::Error> = async {
            match self {
                KeyLease::Sqlite { pool, pending } => {
                    if pending.is_empty() {
                        return Ok(());
                    }
                    let mut tx: Transaction<'static, Sqlite> = pool.begin().await?;
                    for write in &pending {
                        apply_write!(tx, write, now)?;
                    }
                    tx.commit().await
                }
                KeyLease::Postgres(tx) => tx.commit().await,
            }
        }
        .await;
        result.map_err(store.query_err("save rule state keys"))
    }
}
