//! Rule state per (rule, group key): the `rule_state_keys` table, plus the rule-wide counters
//! kept in `rule_state`. A process writes only the keys it changed and deletes a key only while
//! the row still holds what it last saw, so replicas sharing the database keep each other's
//! keys; a restore reads the union (see [`crate::pipeline`], "Rule state").

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use super::store::{Result, Store};

/// One save of a rule's state: applied atomically, so a crash leaves either the
/// previous or the new set of rows.
#[derive(Debug, Clone, Copy)]
pub struct RuleKeysWrite<'a> {
    /// The rule.
    pub rule: &'a str,
    /// Keys whose state changed: written over whatever the row holds.
    pub upserts: &'a [(String, Value)],
    /// Keys this process no longer holds (expired, fired or evicted), each with the state this
    /// process last saved or restored: the row is deleted only if it still holds that state, so
    /// a key another replica has written since is kept.
    pub deletes: &'a [(String, Value)],
    /// The rule-wide document for `rule_state` (`{"evictions": n}`), when it changed.
    pub scalars: Option<&'a Value>,
    /// Stamped on every written row; a restore reads keys oldest first.
    pub updated_at: DateTime<Utc>,
}

/// What happens to one key row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Upsert,
    Delete,
}

impl<'a> RuleKeysWrite<'a> {
    /// Upserts and deletes merged in key order: two replicas' transactions then lock shared
    /// rows in the same order and cannot deadlock each other on PostgreSQL.
    fn in_key_order(&self) -> Vec<(&'a str, Op, &'a Value)> {
        let mut ops: Vec<_> = self
            .upserts
            .iter()
            .map(|(key, state)| (key.as_str(), Op::Upsert, state))
            .chain(
                self.deletes
                    .iter()
                    .map(|(key, state)| (key.as_str(), Op::Delete, state)),
            )
            .collect();
        ops.sort_by(|a, b| a.0.cmp(b.0));
        ops
    }

    /// How many statements the write takes.
    fn statements(&self) -> usize {
        self.upserts.len() + self.deletes.len() + usize::from(self.scalars.is_some())
    }
}

/// The statements of [`Store::save_rule_keys`], in a backend's placeholder syntax.
struct Statements {
    upsert: &'static str,
    delete: &'static str,
    scalars: &'static str,
}

const SQLITE: Statements = Statements {
    upsert: "INSERT INTO rule_state_keys (rule, key, state, updated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (rule, key) DO UPDATE SET state = excluded.state, \
             updated_at = excluded.updated_at",
    // Both sides are serde_json's compact text of equal values, so text equality is value
    // equality here.
    delete: "DELETE FROM rule_state_keys WHERE rule = ? AND key = ? AND state = ?",
    scalars: "INSERT INTO rule_state (rule, state, updated_at) VALUES (?, ?, ?) \
              ON CONFLICT (rule) DO UPDATE SET state = excluded.state, \
              updated_at = excluded.updated_at",
};

const POSTGRES: Statements = Statements {
    upsert: "INSERT INTO rule_state_keys (rule, key, state, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (rule, key) DO UPDATE SET state = excluded.state, \
             updated_at = excluded.updated_at",
    delete: "DELETE FROM rule_state_keys WHERE rule = $1 AND key = $2 AND state = $3",
    scalars: "INSERT INTO rule_state (rule, state, updated_at) VALUES ($1, $2, $3) \
              ON CONFLICT (rule) DO UPDATE SET state = excluded.state, \
              updated_at = excluded.updated_at",
};

/// Runs the statements of one [`RuleKeysWrite`] on `$conn` (the statements differ per backend
/// only in placeholder syntax; the binding sequence is the same).
macro_rules! run_statements {
    ($conn:expr, $sql:expr, $write:expr) => {{
        let write = $write;
        for (key, op, state) in write.in_key_order() {
            let query = match op {
                Op::Upsert => sqlx::query($sql.upsert),
                Op::Delete => sqlx::query($sql.delete),
            }
            .bind(write.rule)
            .bind(key)
            .bind(Json(state));
            match op {
                Op::Upsert => query.bind(write.updated_at),
                Op::Delete => query,
            }
            .execute(&mut *$conn)
            .await?;
        }
        if let Some(scalars) = write.scalars {
            sqlx::query($sql.scalars)
                .bind(write.rule)
                .bind(Json(scalars))
                .bind(write.updated_at)
                .execute(&mut *$conn)
                .await?;
        }
    }};
}

/// Applies one [`RuleKeysWrite`] on `$pool`: a single statement (the usual case, one record
/// changing one key) runs on its own, which is atomic already and saves the BEGIN and COMMIT
/// round trips; several run in a transaction.
macro_rules! write_keys {
    ($pool:expr, $sql:expr, $write:expr) => {{
        let write = $write;
        if write.statements() == 1 {
            let mut conn = $pool.acquire().await?;
            run_statements!(conn, $sql, write);
            Ok(())
        } else {
            let mut tx = $pool.begin().await?;
            run_statements!(tx, $sql, write);
            tx.commit().await
        }
    }};
}

impl Store {
    /// Applies one save of a rule's state (see [`RuleKeysWrite`]) atomically.
    pub async fn save_rule_keys(&self, write: &RuleKeysWrite<'_>) -> Result<()> {
        let result: std::result::Result<(), sqlx::Error> = async {
            match self {
                Store::Sqlite { pool, .. } => write_keys!(pool, SQLITE, write),
                Store::Postgres { pool, .. } => write_keys!(pool, POSTGRES, write),
            }
        }
        .await;
        result.map_err(self.query_err("save rule state keys"))
    }

    /// Every saved key of `rule` with its state document, least recently written first (ties,
    /// keys written by one save, by key).
    pub async fn load_rule_keys(&self, rule: &str) -> Result<Vec<(String, Value)>> {
        let rows: Vec<(String, Json<Value>)> = match self {
            Store::Sqlite { pool, .. } => {
                // SQLite keeps RFC 3339 text; julianday() compares it as time whatever the
                // number of fraction digits.
                sqlx::query_as(
                    "SELECT key, state FROM rule_state_keys WHERE rule = ? \
                     ORDER BY julianday(updated_at), key",
                )
                .bind(rule)
                .fetch_all(pool)
                .await
            }
            Store::Postgres { pool, .. } => {
                sqlx::query_as(
                    "SELECT key, state FROM rule_state_keys WHERE rule = $1 \
                     ORDER BY updated_at, key",
                )
                .bind(rule)
                .fetch_all(pool)
                .await
            }
        }
        .map_err(self.query_err("load rule state keys"))?;
        Ok(rows
            .into_iter()
            .map(|(key, state)| (key, state.0))
            .collect())
    }
}
