//! Rule state per (rule, group key): the `rule_state_keys` table, plus the rule-wide counters
//! kept in `rule_state`.
//!
//! A key's row is the only copy of its state: a record that may touch a key LOCKS the row for
//! its whole decision ([`Store::lock_keys`]: on PostgreSQL a row lock in a transaction that
//! stays open while the record's actions run; on SQLite, one process, the caller's in-process
//! lock is the lock), reads it, and writes the new state under that lock ([`KeyLease::write`],
//! [`KeyLease::commit`]). Due timers are claimed the same way by whichever replica looks first
//! ([`Store::due_keys`], `FOR UPDATE SKIP LOCKED`). So one (rule, key) is decided by one
//! process at a time, whatever partition or replica its events arrive on.
//!
//! Due times are integer milliseconds, so both databases compare them alike; only the lock
//! differs ([`Dialect`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use super::dispatch::{Tx, dispatch};
use super::{Backend, Result, Store};
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
    /// which the decision removes unless it writes the key).
    pub existed: bool,
    /// When the timer sweep is to look at the row.
    pub due: Option<DateTime<Utc>>,
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
    /// SQLite: the caller's in-process key locks are the locks, and no transaction may stay
    /// open while actions write their outcomes through other connections (the writes would
    /// wait on it); the writes are applied at commit, in one transaction.
    Deferred {
        /// Writes to apply at commit.
        pending: Vec<KeyWrite>,
    },
    /// PostgreSQL: the transaction holding the rows' locks.
    Held(Tx),
}

/// Where the two databases differ: how a key is read for a decision, and how due keys are
/// claimed.
struct Dialect {
    /// Reads one key for a decision (`$1` rule, `$2` key, `$3` now).
    lock: &'static str,
    /// Due keys, earliest first (`$1` now in ms, `$2` limit).
    due: &'static str,
    /// Removes the `$2` keys of rule `$1` holding state whose deadline comes first.
    evict: &'static str,
}

impl Dialect {
    fn of(backend: Backend) -> &'static Dialect {
        match backend {
            Backend::Sqlite => &SQLITE,
            Backend::Postgres => &POSTGRES,
        }
    }
}

/// PostgreSQL: the upsert takes the row lock even for a key that has no row yet (a concurrent
/// decision on the same new key waits on the unique index until this one commits), and due rows
/// another replica holds are skipped, not waited for.
const POSTGRES: Dialect = Dialect {
    lock: "INSERT INTO rule_state_keys (rule, key, state, updated_at) VALUES ($1, $2, 'null', $3) \
           ON CONFLICT (rule, key) DO UPDATE SET rule = excluded.rule \
           RETURNING state, applied, due_ms",
    due: "SELECT rule, key, state, applied, due_ms FROM rule_state_keys WHERE due_ms <= $1 \
          ORDER BY due_ms LIMIT $2 FOR UPDATE SKIP LOCKED",
    evict: "DELETE FROM rule_state_keys WHERE rule = $1 AND key IN (SELECT key \
            FROM rule_state_keys WHERE rule = $1 AND state <> 'null' ORDER BY due_ms, key \
            LIMIT $2 FOR UPDATE SKIP LOCKED)",
};

/// SQLite: one process, whose in-process key locks serialize decisions; a plain read (no
/// placeholder row written per event; `$3` only keeps the parameters alike).
const SQLITE: Dialect = Dialect {
    lock: "SELECT state, applied, due_ms FROM rule_state_keys WHERE rule = $1 AND key = $2 \
           AND $3 IS NOT NULL",
    due: "SELECT rule, key, state, applied, due_ms FROM rule_state_keys WHERE due_ms <= $1 \
          ORDER BY due_ms LIMIT $2",
    evict: "DELETE FROM rule_state_keys WHERE rule = $1 AND key IN (SELECT key \
            FROM rule_state_keys WHERE rule = $1 AND state <> 'null' ORDER BY due_ms, key \
            LIMIT $2)",
};

const UPSERT: &str = "INSERT INTO rule_state_keys (rule, key, state, applied, due_ms, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (rule, key) DO UPDATE SET \
     state = excluded.state, applied = excluded.applied, due_ms = excluded.due_ms, \
     updated_at = excluded.updated_at";

const DELETE: &str = "DELETE FROM rule_state_keys WHERE rule = $1 AND key = $2";

/// Upserts a rule's rule-wide document in `rule_state` (`$1` rule, `$2` state, `$3` updated
/// at): its counters (`{"evictions": n}`), or a whole document of the earliest format.
const SAVE_RULE_STATE: &str = "INSERT INTO rule_state (rule, state, updated_at) \
     VALUES ($1, $2, $3) ON CONFLICT (rule) DO UPDATE SET state = excluded.state, \
     updated_at = excluded.updated_at";

/// A row as read: state, applied, due (ms).
type Read = (Json<Value>, Json<Applied>, Option<i64>);

/// A due row as read: rule, key, state, applied, due (ms).
type DueRead = (String, String, Json<Value>, Json<Applied>, Option<i64>);

fn row(key: StateKey, read: Option<Read>) -> KeyRow {
    match read {
        Some((state, applied, due)) => {
            let state = Some(state.0).filter(|s| !s.is_null());
            let applied = applied.0;
            // A placeholder the lock itself inserted reads back as null and empty.
            let existed = state.is_some() || !applied.is_empty();
            KeyRow {
                key,
                state,
                applied,
                existed,
                due: due.and_then(DateTime::from_timestamp_millis),
            }
        }
        None => KeyRow {
            key,
            state: None,
            applied: Applied::new(),
            existed: false,
            due: None,
        },
    }
}

/// Applies `writes` in `tx`.
async fn apply(tx: &mut Tx, writes: &[KeyWrite]) -> Result<()> {
    let now = Utc::now();
    dispatch!(tx, "save rule state keys", |db| {
        for write in writes {
            match write {
                KeyWrite::Put {
                    key,
                    state,
                    applied,
                    due,
                } => sqlx::query(UPSERT)
                    .bind(&key.rule)
                    .bind(&key.key)
                    .bind(Json(state.as_ref().unwrap_or(&Value::Null)))
                    .bind(Json(applied))
                    .bind(due.map(|at| at.timestamp_millis()))
                    .bind(now),
                KeyWrite::Delete(key) => sqlx::query(DELETE).bind(&key.rule).bind(&key.key),
            }
            .execute(&mut *db)
            .await?;
        }
        Ok(())
    })
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
        let dialect = Dialect::of(self.backend());
        let mut lease = match self.backend() {
            Backend::Sqlite => KeyLease::Deferred {
                pending: Vec::new(),
            },
            Backend::Postgres => KeyLease::Held(self.begin().await?),
        };
        let mut rows = Vec::with_capacity(keys.len());
        for key in keys {
            // Expanded per backend by `dispatch!`: the query types differ per database.
            macro_rules! read {
                ($db:ident) => {
                    sqlx::query_as::<_, Read>(dialect.lock)
                        .bind(&key.rule)
                        .bind(&key.key)
                        .bind(now)
                        .fetch_optional($db)
                        .await
                };
            }
            let read: Option<Read> = match &mut lease {
                KeyLease::Deferred { .. } => {
                    dispatch!(self, "read rule state keys", |db| read!(db))?
                }
                KeyLease::Held(tx) => dispatch!(tx, "lock rule state keys", |db| read!(db))?,
            };
            rows.push(row(key.clone(), read));
        }
        Ok((lease, rows))
    }

    /// Claims up to `limit` keys whose timer is due at `now`, earliest first, skipping (on
    /// PostgreSQL) keys another process holds; the caller skips keys it holds itself. On
    /// SQLite the rows are only candidates, read before the caller's lock: it reads them again
    /// under its lock ([`Store::lock_keys`]) before deciding.
    pub async fn due_keys(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<(KeyLease, Vec<KeyRow>)> {
        let dialect = Dialect::of(self.backend());
        // Expanded per backend by `dispatch!`: the query types differ per database.
        macro_rules! due {
            ($db:ident) => {
                sqlx::query_as::<_, DueRead>(dialect.due)
                    .bind(now.timestamp_millis())
                    .bind(limit)
                    .fetch_all($db)
                    .await
            };
        }
        let (lease, due) = match self.backend() {
            Backend::Sqlite => {
                let due = dispatch!(self, "read due rule state keys", |db| due!(db))?;
                let lease = KeyLease::Deferred {
                    pending: Vec::new(),
                };
                (lease, due)
            }
            Backend::Postgres => {
                let mut tx = self.begin().await?;
                let due = dispatch!(&mut tx, "claim due rule state keys", |db| due!(db))?;
                (KeyLease::Held(tx), due)
            }
        };
        let rows = due
            .into_iter()
            .map(|(rule, key, state, applied, due)| {
                row(StateKey { rule, key }, Some((state, applied, due)))
            })
            .collect();
        Ok((lease, rows))
    }

    /// Every key of `rule` holding state, with its document, by key (for inspection and
    /// tests; decisions read keys through [`Store::lock_keys`]).
    pub async fn load_rule_keys(&self, rule: &str) -> Result<Vec<(String, Value)>> {
        let rows: Vec<(String, Json<Value>)> = dispatch!(self, "load rule state keys", |db| {
            sqlx::query_as(
                "SELECT key, state FROM rule_state_keys WHERE rule = $1 AND state <> 'null' \
                 ORDER BY key",
            )
            .bind(rule)
            .fetch_all(db)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(key, state)| (key, state.0))
            .collect())
    }

    /// Keys holding state, per rule (rows that only remember applied records hold `null`).
    pub async fn state_key_counts(&self) -> Result<BTreeMap<String, u64>> {
        let rows: Vec<(String, i64)> = dispatch!(self, "count rule state keys", |db| {
            sqlx::query_as(
                "SELECT rule, COUNT(*) FROM rule_state_keys WHERE state <> 'null' GROUP BY rule",
            )
            .fetch_all(db)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(rule, n)| (rule, u64::try_from(n).unwrap_or_default()))
            .collect())
    }

    /// Evicts up to `excess` keys of `rule` holding state, those whose deadline comes first
    /// (keys another process is deciding on are skipped on PostgreSQL), and counts them in
    /// the rule's `evictions`; returns how many went.
    pub async fn evict_keys(&self, rule: &str, excess: u64) -> Result<u64> {
        let evict = Dialect::of(self.backend()).evict;
        let limit = i64::try_from(excess).unwrap_or(i64::MAX);
        let evicted = dispatch!(self, "evict rule state keys", |db| {
            sqlx::query(evict)
                .bind(rule)
                .bind(limit)
                .execute(db)
                .await
                .map(|r| r.rows_affected())
        })?;
        if evicted > 0 {
            // Read-modify-write: replicas evicting the same rule at the same instant may
            // undercount; the count is for operators, the bound holds either way.
            let before = self.evictions(rule).await?;
            let counters = serde_json::json!({ "evictions": before + evicted });
            self.save_rule_state(rule, &counters, Utc::now()).await?;
        }
        Ok(evicted)
    }

    /// Keys of `rule` evicted so far (its `rule_state` counters).
    pub async fn evictions(&self, rule: &str) -> Result<u64> {
        let counters = self.load_rule_state(rule).await?;
        Ok(counters
            .as_ref()
            .and_then(|c| c.get("evictions"))
            .and_then(Value::as_u64)
            .unwrap_or(0))
    }

    /// Saves a rule's rule-wide document, replacing the previous one.
    pub async fn save_rule_state(
        &self,
        rule: &str,
        state: &Value,
        updated_at: DateTime<Utc>,
    ) -> Result<()> {
        dispatch!(self, "save rule state", |db| {
            sqlx::query(SAVE_RULE_STATE)
                .bind(rule)
                .bind(Json(state))
                .bind(updated_at)
                .execute(db)
                .await
                .map(drop)
        })
    }

    /// Loads a rule's rule-wide document, if one was saved.
    pub async fn load_rule_state(&self, rule: &str) -> Result<Option<Value>> {
        let state: Option<Json<Value>> = dispatch!(self, "load rule state", |db| {
            sqlx::query_scalar("SELECT state FROM rule_state WHERE rule = $1")
                .bind(rule)
                .fetch_optional(db)
                .await
        })?;
        Ok(state.map(|json| json.0))
    }
}

impl KeyLease {
    /// Writes the keys' new content under the held locks (SQLite: at commit).
    pub async fn write(&mut self, writes: Vec<KeyWrite>) -> Result<()> {
        match self {
            KeyLease::Deferred { pending } => {
                pending.extend(writes);
                Ok(())
            }
            KeyLease::Held(tx) => apply(tx, &writes).await,
        }
    }

    /// Makes the writes durable and releases the locks.
    pub async fn commit(self, store: &Store) -> Result<()> {
        match self {
            KeyLease::Deferred { pending } if pending.is_empty() => Ok(()),
            KeyLease::Deferred { pending } => {
                let mut tx = store.begin().await?;
                apply(&mut tx, &pending).await?;
                tx.commit().await
            }
            KeyLease::Held(tx) => tx.commit().await,
        }
    }
}
