//! Rule state with one owner per (rule, group key) at a time.
//!
//! No process keeps rule state in memory between records. A record that may touch stateful
//! keys ([`Engine::state_keys`]) locks them — in this process ([`KeyLocks`]) and in the store
//! ([`Store::lock_keys`]: a PostgreSQL row lock held until the decision commits) — reads them,
//! builds a fresh engine holding exactly those keys ([`engine_for`]), evaluates, runs its
//! actions, and writes back what changed ([`writes`]) before releasing the locks. Due timers are
//! claimed the same way by the periodic sweep of whichever replica gets there first
//! ([`Store::due_keys`]). So whichever replica consumes an event, the decision for its key is
//! taken against the key's one current state, and never by two processes at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use chrono::{DateTime, Utc};
use tokio::sync::OwnedMutexGuard;

use super::Error;
use crate::rules::state::RuleState;
use crate::rules::{Engine, EngineState, RuleSet, StateKey};
use crate::store::{Applied, KeyRow, KeyWrite, Store};

#[cfg(test)]
mod tests;

/// How long a key without state keeps its row, remembering which records were applied to it
/// (so a redelivery right after a firing or a disarm is not counted into a fresh window). A
/// redelivery comes within a rebalance (seconds to a minute); an hour is far beyond it.
pub(super) const FORGET_AFTER: chrono::Duration = chrono::Duration::hours(1);

/// This process's locks on state keys: two partitions of one replica contend here rather than
/// in the store, and on SQLite (one process) these are the only locks. An entry lives while a
/// guard holds it.
#[derive(Debug, Default)]
pub(super) struct KeyLocks {
    locks: Mutex<HashMap<StateKey, Weak<tokio::sync::Mutex<()>>>>,
}

impl KeyLocks {
    fn entry(&self, key: &StateKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(lock) = locks.get(key).and_then(Weak::upgrade) {
            return lock;
        }
        // Forget keys nobody holds any more, now and then, so the map follows what is locked.
        if locks.len() >= 1024 {
            locks.retain(|_, lock| lock.strong_count() > 0);
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(key.clone(), Arc::downgrade(&lock));
        lock
    }

    /// Locks every key of `keys`, in their (sorted) order.
    pub(super) async fn lock_all(&self, keys: &BTreeSet<StateKey>) -> Vec<OwnedMutexGuard<()>> {
        let mut guards = Vec::with_capacity(keys.len());
        for key in keys {
            guards.push(self.entry(key).lock_owned().await);
        }
        guards
    }

    /// Locks `key` if nobody in this process holds it.
    pub(super) fn try_lock(&self, key: &StateKey) -> Option<OwnedMutexGuard<()>> {
        self.entry(key).try_lock_owned().ok()
    }
}

/// A fresh engine holding exactly the state of `rows` (rows of rules no longer loaded are left
/// out by [`Engine::with_state`]). A document this version cannot read is reported at ERROR
/// level and the key starts empty: refusing would block every record touching the key, and the
/// log names the rule and key that lost their window.
pub(super) fn engine_for(rules: &Arc<RuleSet>, rows: &[KeyRow]) -> Engine {
    let mut docs: BTreeMap<&str, Vec<(String, serde_json::Value)>> = BTreeMap::new();
    for row in rows {
        if let Some(state) = &row.state {
            docs.entry(&row.key.rule)
                .or_default()
                .push((row.key.key.clone(), state.clone()));
        }
    }
    let mut state = EngineState::default();
    for (rule, docs) in docs {
        let (rule_state, unreadable) = RuleState::from_keys(docs, 0);
        for bad in unreadable {
            tracing::error!(
                rule,
                key = %bad.key,
                error = %bad.source,
                "saved state of a key is unreadable; the key starts with an empty window"
            );
        }
        state.rules.insert(rule.to_owned(), rule_state);
    }
    Engine::with_state(Arc::clone(rules), state)
}

/// The keys among `rows` that the record at `offset` of `source` (`topic/partition`) was
/// already applied to: it is a redelivery for them.
pub(super) fn already_applied(rows: &[KeyRow], source: &str, offset: i64) -> BTreeSet<StateKey> {
    rows.iter()
        .filter(|row| row.applied.get(source).is_some_and(|last| *last >= offset))
        .map(|row| row.key.clone())
        .collect()
}

/// What the decision changed, as writes of the locked `rows`:
/// - a key the engine changed, or whose event it decided on without changing it
///   (`decided`: a throttled event), gets its new state and, for a record, the record's offset
///   in its `applied` map;
/// - a key left without state keeps a row without state until [`FORGET_AFTER`], remembering
///   the records applied, unless none were;
/// - a key nothing touched is left as it is, except an empty placeholder the lock created,
///   which is removed;
/// - in the timer sweep (`source` is `None`), a row that was due and that the tick left
///   without state — a row without state whose time has come, a rule no longer loaded, a
///   document this version cannot read — is removed, so it does not come back every second.
pub(super) fn writes(
    engine: &mut Engine,
    rows: Vec<KeyRow>,
    decided: &BTreeSet<StateKey>,
    source: Option<(&str, i64)>,
    now: DateTime<Utc>,
) -> Result<Vec<KeyWrite>, Error> {
    let changed: BTreeSet<StateKey> = engine
        .take_dirty()
        .into_iter()
        .flat_map(|(rule, keys)| {
            keys.into_iter().map(move |key| StateKey {
                rule: rule.clone(),
                key,
            })
        })
        .collect();
    let mut out = Vec::new();
    for row in rows {
        let rule_state = engine.state().rules.get(&row.key.rule);
        let sweep = source.is_none();
        if !(changed.contains(&row.key) || decided.contains(&row.key)) {
            // Untouched: not serialized, only checked for being left without state.
            let holds = rule_state.is_some_and(|s| s.holds(&row.key.key));
            let was_due = row.due.is_some_and(|due| due <= now);
            if (sweep && was_due && !holds) || (!sweep && !row.existed) {
                out.push(KeyWrite::Delete(row.key));
            }
            continue;
        }
        let state = match rule_state.and_then(|s| s.export_key(&row.key.key)) {
            Some(doc) => Some(doc.map_err(|source| Error::State {
                rule: row.key.rule.clone(),
                source,
            })?),
            None => None,
        };
        let mut applied: Applied = row.applied;
        if let Some((source, offset)) = source {
            applied.insert(source.to_owned(), offset);
        }
        let write = match state {
            Some(state) => KeyWrite::Put {
                due: rule_state.and_then(|s| s.deadline_of(&row.key.key)),
                key: row.key,
                state: Some(state),
                applied,
            },
            None if applied.is_empty() => KeyWrite::Delete(row.key),
            None => KeyWrite::Put {
                key: row.key,
                state: None,
                applied,
                due: Some(crate::rules::state::later(now, FORGET_AFTER)),
            },
        };
        out.push(write);
    }
    Ok(out)
}

/// Moves `rule_state` rows of the earliest format (one document holding every key of a rule,
/// `{"keys": [...], "evictions": n}`) into key rows, once: a key that already has a row keeps
/// it, and the rule's row is reduced to its counters. A document that cannot be read is
/// reported at ERROR level and reduced the same way: the rule starts with empty windows rather
/// than not at all.
pub(super) async fn migrate_legacy(rules: &RuleSet, store: &Store) -> Result<(), Error> {
    for rule in rules.rules().iter().filter(|r| !r.behaviour.is_stateless()) {
        let name = rule.name.as_str();
        let failed = || {
            Error::store(format!(
                "moving the saved state of rule `{name}` to key rows"
            ))
        };
        let Some(row) = store.load_rule_state(name).await.map_err(failed())? else {
            continue;
        };
        if row.get("keys").is_none() {
            continue;
        }
        let evictions = row.get("evictions").and_then(serde_json::Value::as_u64);
        match serde_json::from_value::<RuleState>(row) {
            Ok(legacy) => {
                let docs = legacy.export_keys().map_err(|source| Error::State {
                    rule: name.to_owned(),
                    source,
                })?;
                let keys: BTreeSet<StateKey> = docs
                    .iter()
                    .map(|(key, _)| StateKey {
                        rule: name.to_owned(),
                        key: key.clone(),
                    })
                    .collect();
                let now = Utc::now();
                let (mut lease, rows) = store.lock_keys(&keys, now).await.map_err(failed())?;
                let existing: BTreeSet<&StateKey> =
                    rows.iter().filter(|r| r.existed).map(|r| &r.key).collect();
                let writes = docs
                    .into_iter()
                    .map(|(key, doc)| {
                        (
                            StateKey {
                                rule: name.to_owned(),
                                key,
                            },
                            doc,
                        )
                    })
                    .filter(|(key, _)| !existing.contains(key))
                    .map(|(key, doc)| KeyWrite::Put {
                        due: legacy.deadline_of(&key.key),
                        key,
                        state: Some(doc),
                        applied: Applied::new(),
                    })
                    .collect::<Vec<_>>();
                let moved = writes.len();
                lease.write(writes).await.map_err(failed())?;
                lease.commit(store).await.map_err(failed())?;
                tracing::info!(
                    rule = name,
                    keys = moved,
                    "moved the rule's saved state to key rows"
                );
            }
            Err(err) => tracing::error!(
                rule = name,
                error = %err,
                "saved rule state is unreadable; the rule starts with empty windows"
            ),
        }
        let counters = serde_json::json!({ "evictions": evictions.unwrap_or(0) });
        store
            .save_rule_state(name, &counters, Utc::now())
            .await
            .map_err(failed())?;
    }
    Ok(())
}
