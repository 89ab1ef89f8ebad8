//! Persisting the rules' state: one `rule_state_keys` row per (stateful rule, group key),
//! written when a record changed that key, plus the rule-wide counters in `rule_state` (see the
//! module docs of [`super`] for when and why).
//!
//! Keys are saved separately so replicas sharing a database do not erase each other's keys: a
//! process writes only the keys it changed and deletes only the keys it dropped (and only while
//! the row still holds what it last saw), and a start restores the union of the rows.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Error, Inner};
use crate::rules::state::RuleState;
use crate::rules::{Engine, EngineState, RuleSet};
use crate::store::rule_state::RuleKeysWrite;
use crate::store::{self, Store};

#[cfg(test)]
mod tests;

/// What this process last wrote to (or read from) the store for one rule: what a save diffs
/// against and what a rollback restores.
#[derive(Debug, Default)]
pub(super) struct Saved {
    /// Per key: when it was saved (counted in this rule's saved keys, so a rollback rebuilds the
    /// eviction order) and its state document.
    keys: HashMap<String, (u64, Value)>,
    /// The `evictions` count last written to `rule_state`; `None` until this process wrote or
    /// read a current-format row, so the next save writes one.
    evictions: Option<u64>,
    /// Numbers the next saved key.
    next_seq: u64,
}

impl Saved {
    /// Records a successful write of `change`.
    fn apply(&mut self, change: Change) {
        for (key, _) in &change.deletes {
            self.keys.remove(key);
        }
        for (key, doc) in change.upserts {
            self.keys.insert(key, (self.next_seq, doc));
            self.next_seq += 1;
        }
        if change.evictions.is_some() {
            self.evictions = change.evictions;
        }
    }

    /// The saved state, rebuilt; unreadable keys (a bug: this process wrote or read them) are
    /// logged and left out.
    fn rebuild(&self, rule: &str) -> RuleState {
        let mut docs: Vec<_> = self.keys.iter().collect();
        docs.sort_by_key(|(_, (seq, _))| *seq);
        let docs = docs
            .into_iter()
            .map(|(key, (_, doc))| (key.clone(), doc.clone()));
        let (state, unreadable) = RuleState::from_keys(docs, self.evictions.unwrap_or(0));
        for bad in unreadable {
            tracing::error!(rule, key = %bad.key, error = %bad.source, "cannot roll back key state");
        }
        state
    }
}

/// One rule's changes since its last save, found by [`changed`] and written by [`save`].
#[derive(Debug)]
pub(super) struct Change {
    rule: String,
    /// Changed or new keys, least recently updated first.
    upserts: Vec<(String, Value)>,
    /// Keys gone since the last save, with the state last saved for them.
    deletes: Vec<(String, Value)>,
    /// The new `evictions` count, when `rule_state` must be written.
    evictions: Option<u64>,
}

impl Change {
    /// Compares `keys` of `state` with what was last saved for `rule` (nothing if `saved` is
    /// `None`): a key holding state is written if its document differs, a key holding none is
    /// deleted if it was saved. Serializes those keys only, so the cost follows what a record
    /// changed, not how many keys the rule holds.
    fn diff<'a>(
        rule: &str,
        state: &RuleState,
        keys: impl IntoIterator<Item = &'a str>,
        saved: Option<&Saved>,
    ) -> Result<Option<Change>, Error> {
        let empty = Saved::default();
        let saved = saved.unwrap_or(&empty);
        let mut upserts = Vec::new();
        let mut deletes = Vec::new();
        for key in keys {
            let last = saved.keys.get(key).map(|(_, doc)| doc);
            match state.export_key(key) {
                Some(doc) => {
                    let doc = doc.map_err(|source| Error::State {
                        rule: rule.to_owned(),
                        source,
                    })?;
                    if last != Some(&doc) {
                        upserts.push((key.to_owned(), doc));
                    }
                }
                None => deletes.extend(last.map(|doc| (key.to_owned(), doc.clone()))),
            }
        }
        let evictions = (saved.evictions != Some(state.evictions)).then_some(state.evictions);
        if upserts.is_empty() && deletes.is_empty() && evictions.is_none() {
            return Ok(None);
        }
        Ok(Some(Change {
            rule: rule.to_owned(),
            upserts,
            deletes,
            evictions,
        }))
    }

    /// The keys this change writes or deletes.
    fn keys(&self) -> impl Iterator<Item = String> + '_ {
        self.upserts
            .iter()
            .chain(&self.deletes)
            .map(|(key, _)| key.clone())
    }

    /// Writes the change atomically.
    async fn write(&self, store: &Store, now: DateTime<Utc>) -> store::Result<()> {
        let scalars = self
            .evictions
            .map(|evictions| json!({ "evictions": evictions }));
        store
            .save_rule_keys(&RuleKeysWrite {
                rule: &self.rule,
                upserts: &self.upserts,
                deletes: &self.deletes,
                scalars: scalars.as_ref(),
                updated_at: now,
            })
            .await
    }
}

/// Loads every rule's saved state: the union of its key rows, oldest first. A key this
/// version cannot read is reported at ERROR level and starts empty: refusing to start would
/// stop every other rule too, and the log names the rule and key that lost their window.
///
/// A `rule_state` row written by an earlier version (one document holding every key) is
/// migrated when the rule has no key rows yet: its keys are written as key rows and the row is
/// reduced to the rule-wide counters, so later saves and other replicas see them per key.
pub(super) async fn restore(
    rules: &Arc<RuleSet>,
    store: &Store,
) -> Result<(Engine, BTreeMap<String, Saved>), Error> {
    let mut state = EngineState::default();
    let mut saved = BTreeMap::new();
    for rule in rules.rules() {
        let name = rule.name.as_str();
        let loading = || Error::store(format!("loading the state of rule `{name}`"));
        let mut docs = store.load_rule_keys(name).await.map_err(loading())?;
        let row = store.load_rule_state(name).await.map_err(loading())?;
        if docs.is_empty() && row.is_none() {
            continue;
        }
        let row = row.unwrap_or_default();
        let evictions = row.get("evictions").and_then(Value::as_u64);
        // A row that still holds `keys` is the earlier format: rewrite it on the next save.
        let legacy = row.get("keys").is_some();
        let mut rule_saved = Saved {
            evictions: evictions.filter(|_| !legacy),
            ..Saved::default()
        };
        if legacy && docs.is_empty() {
            docs = migrate(store, name, row, &mut rule_saved).await?;
        }
        let (rule_state, unreadable) =
            RuleState::from_keys(docs.iter().cloned(), evictions.unwrap_or(0));
        let unreadable: HashSet<String> = unreadable
            .into_iter()
            .map(|bad| {
                tracing::error!(
                    rule = name,
                    key = %bad.key,
                    error = %bad.source,
                    "saved state of a key is unreadable; the key starts with an empty window \
                     (delete its rule_state_keys row to silence this)"
                );
                bad.key
            })
            .collect();
        // What the rows hold is what this process has "saved": an unchanged key is not
        // rewritten, and a rollback returns to it. Unreadable rows are left alone.
        rule_saved.apply(Change {
            rule: name.to_owned(),
            upserts: docs
                .into_iter()
                .filter(|(key, _)| !unreadable.contains(key))
                .collect(),
            deletes: Vec::new(),
            evictions: None,
        });
        state.rules.insert(name.to_owned(), rule_state);
        saved.insert(name.to_owned(), rule_saved);
    }
    let engine = Engine::with_state(Arc::clone(rules), state);
    // Keep the cache in step with what the engine kept (it drops rules that no longer exist).
    saved.retain(|name, _| engine.state().rules.contains_key(name));
    Ok((engine, saved))
}

/// Moves a `rule_state` row of the earlier format into key rows and returns the key documents
/// (empty, with an ERROR log, if the row cannot be read: the rule then starts empty and its next
/// save overwrites the row).
async fn migrate(
    store: &Store,
    rule: &str,
    row: Value,
    saved: &mut Saved,
) -> Result<Vec<(String, Value)>, Error> {
    let legacy = match serde_json::from_value::<RuleState>(row) {
        Ok(legacy) => legacy,
        Err(err) => {
            tracing::error!(
                rule,
                error = %err,
                "saved rule state is unreadable; the rule starts with empty windows \
                 (delete its rule_state row to silence this)"
            );
            return Ok(Vec::new());
        }
    };
    let Some(change) = Change::diff(rule, &legacy, legacy.keys(), None)? else {
        return Ok(Vec::new());
    };
    change
        .write(store, Utc::now())
        .await
        .map_err(Error::store(format!(
            "migrating the state of rule `{rule}`"
        )))?;
    tracing::info!(
        rule,
        keys = change.upserts.len(),
        "moved the rule's saved state to per-key rows (rule_state_keys)"
    );
    saved.evictions = change.evictions;
    Ok(change.upserts)
}

/// The keys whose state differs from what was last saved, per rule. Only the keys the engine
/// reports as changed since the last call are serialized and compared: the others cannot have
/// changed, and serializing every key of a touched rule on every record cost ~0.1 s per record
/// once a rule held 10,000 keys of 1 KB events (docs/performance.md).
pub(super) fn changed(inner: &mut Inner) -> Result<Vec<Change>, Error> {
    let mut dirty = inner.engine.take_dirty();
    for (rule, keys) in std::mem::take(&mut inner.unsaved) {
        dirty.entry(rule).or_default().extend(keys);
    }
    let mut changed = Vec::new();
    for (name, keys) in dirty {
        let Some(rule_state) = inner.engine.state().rules.get(&name) else {
            continue;
        };
        // A key may be listed twice (unsaved and changed again); compare it once.
        let mut seen = HashSet::new();
        let keys = keys
            .iter()
            .map(String::as_str)
            .filter(|key| seen.insert(*key));
        changed.extend(Change::diff(
            &name,
            rule_state,
            keys,
            inner.saved.get(&name),
        )?);
    }
    Ok(changed)
}

/// Writes `changed` and records it as saved. On failure the keys not written are remembered,
/// so the next [`changed`] compares them again even if no record touches them meanwhile.
pub(super) async fn save(
    store: &Store,
    inner: &mut Inner,
    changed: Vec<Change>,
) -> Result<(), Error> {
    let now = Utc::now();
    let mut changed = changed.into_iter();
    while let Some(change) = changed.next() {
        if let Err(err) = change.write(store, now).await {
            let name = change.rule.clone();
            for change in std::iter::once(change).chain(changed) {
                // Listed even without keys: the rule's eviction count is compared again too.
                let keys: BTreeSet<String> = change.keys().collect();
                inner.unsaved.entry(change.rule).or_default().extend(keys);
            }
            return Err(Error::store(format!("saving the state of rule `{name}`"))(
                err,
            ));
        }
        inner
            .saved
            .entry(change.rule.clone())
            .or_default()
            .apply(change);
    }
    Ok(())
}

/// Returns the engine to the last saved state, so a retried record is evaluated as if it had
/// never been seen.
pub(super) fn rollback(inner: &mut Inner) {
    let rules = Arc::clone(inner.engine.rules());
    let mut state = EngineState::default();
    for (name, saved) in &inner.saved {
        state.rules.insert(name.clone(), saved.rebuild(name));
    }
    inner.engine = Engine::with_state(rules, state);
    // The engine now holds exactly what was saved.
    inner.unsaved.clear();
}
