//! The persisted state of stateful rules: one row per (rule, group key) in `rule_state_keys`,
//! plus one document per rule in `rule_state` (the rule-wide counters, or the whole state of
//! a rule written by an earlier version). A process writes only the keys it changed and
//! deletes a key only while the row still holds what it last saw, so replicas sharing the
//! database keep each other's keys; a restore reads the union (see [`crate::pipeline`], "Rule
//! state").

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use super::dispatch::{Target, dispatch};
use super::{Result, Store, Tx};

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

/// Upserts a rule's state document in `rule_state` (`$1` rule, `$2` state, `$3` updated at):
/// the whole document of a rule-wide state, or the rule-wide counters of a keyed one.
const SAVE_RULE_STATE: &str = "INSERT INTO rule_state (rule, state, updated_at) \
     VALUES ($1, $2, $3) ON CONFLICT (rule) DO UPDATE SET state = excluded.state, \
     updated_at = excluded.updated_at";

/// Runs the statements of one [`RuleKeysWrite`] on `target` (the pool or a transaction).
async fn apply(target: Target<'_>, write: &RuleKeysWrite<'_>) -> Result<()> {
    dispatch!(target, "save rule state keys", |db| {
        for (key, op, state) in write.in_key_order() {
            match op {
                Op::Upsert => sqlx::query(
                    "INSERT INTO rule_state_keys (rule, key, state, updated_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (rule, key) DO UPDATE SET \
                     state = excluded.state, updated_at = excluded.updated_at",
                )
                .bind(write.rule)
                .bind(key)
                .bind(Json(state))
                .bind(write.updated_at),
                // Both sides are serde_json's compact text of equal values on SQLite (JSONB
                // equality on PostgreSQL), so text equality is value equality here.
                Op::Delete => sqlx::query(
                    "DELETE FROM rule_state_keys WHERE rule = $1 AND key = $2 AND state = $3",
                )
                .bind(write.rule)
                .bind(key)
                .bind(Json(state)),
            }
            .execute(&mut *db)
            .await?;
        }
        if let Some(scalars) = write.scalars {
            sqlx::query(SAVE_RULE_STATE)
                .bind(write.rule)
                .bind(Json(scalars))
                .bind(write.updated_at)
                .execute(&mut *db)
                .await?;
        }
        Ok(())
    })
}

impl Store {
    /// Applies one save of a rule's state (see [`RuleKeysWrite`]) atomically: a single
    /// statement (the usual case, one record changing one key) runs on its own, which is
    /// atomic already and saves the BEGIN and COMMIT round trips; several run in a
    /// transaction.
    pub async fn save_rule_keys(&self, write: &RuleKeysWrite<'_>) -> Result<()> {
        if write.statements() == 1 {
            apply(self.target(), write).await
        } else {
            let mut tx = self.begin().await?;
            tx.save_rule_keys(write).await?;
            tx.commit().await
        }
    }

    /// Every saved key of `rule` with its state document, least recently written first (ties,
    /// keys written by one save, by key).
    pub async fn load_rule_keys(&self, rule: &str) -> Result<Vec<(String, Value)>> {
        let sql = format!(
            "SELECT key, state FROM rule_state_keys WHERE rule = $1 ORDER BY {}, key",
            self.backend().time("updated_at")
        );
        let rows: Vec<(String, Json<Value>)> = dispatch!(self, "load rule state keys", |db| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(rule)
                .fetch_all(db)
                .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(key, state)| (key, state.0))
            .collect())
    }

    /// Saves a rule's state document, replacing the previous one.
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

    /// Loads a rule's state document, if one was saved.
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

impl Tx {
    /// Applies one save of a rule's state (see [`RuleKeysWrite`]) inside this transaction:
    /// it takes effect when the transaction commits, with whatever else it holds.
    pub async fn save_rule_keys(&mut self, write: &RuleKeysWrite<'_>) -> Result<()> {
        apply(self.target(), write).await
    }
}
