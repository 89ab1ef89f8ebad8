//! Persisting the rules' state: one `rule_state` row per stateful rule, written when a record
//! changed it (see the module docs of [`super`] for when and why).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use serde_json::Value;

use super::{Error, Inner};
use crate::outcome::store::Store;
use crate::rules::state::RuleState;
use crate::rules::{Engine, EngineState, RuleSet};

/// Loads every rule's saved state. A row this version cannot read is reported at ERROR level
/// and the rule starts empty: refusing to start would stop every other rule too, and the
/// operator can see (and the log names) which rule lost its windows.
pub(super) async fn restore(
    rules: &Arc<RuleSet>,
    store: &Store,
) -> Result<(Engine, BTreeMap<String, Value>), Error> {
    let mut state = EngineState::default();
    let mut saved = BTreeMap::new();
    for rule in rules.rules() {
        let Some(value) = store
            .load_rule_state(&rule.name)
            .await
            .map_err(Error::store(format!(
                "loading the state of rule `{}`",
                rule.name
            )))?
        else {
            continue;
        };
        match serde_json::from_value::<RuleState>(value.clone()) {
            Ok(rule_state) => {
                state.rules.insert(rule.name.clone(), rule_state);
                saved.insert(rule.name.clone(), value);
            }
            Err(err) => tracing::error!(
                rule = %rule.name,
                error = %err,
                "saved rule state is unreadable; the rule starts with empty windows \
                 (delete its rule_state row to silence this)"
            ),
        }
    }
    let engine = Engine::with_state(Arc::clone(rules), state);
    // Keep the cache in step with what the engine kept (it drops rules that no longer exist).
    saved.retain(|name, _| engine.state().rules.contains_key(name));
    Ok((engine, saved))
}

/// The rules whose state differs from what was last saved, serialized. Only the rules the
/// engine reports as touched since the last call are serialized and compared: the others
/// cannot have changed, and serializing every stateful rule on every record cost more than
/// the rest of the record's handling once a rule held a few hundred keys.
pub(super) fn changed(inner: &mut Inner) -> Result<Vec<(String, Value)>, Error> {
    let mut changed = Vec::new();
    let mut names = inner.engine.take_dirty();
    names.append(&mut inner.unsaved);
    for name in names {
        let Some(rule_state) = inner.engine.state().rules.get(&name) else {
            continue;
        };
        let value = serde_json::to_value(rule_state).map_err(|source| Error::State {
            rule: name.clone(),
            source,
        })?;
        if inner.saved.get(&name) != Some(&value) {
            changed.push((name, value));
        }
    }
    Ok(changed)
}

/// Writes `changed` and records it as saved. On failure the rules not written are remembered,
/// so the next [`changed`] compares them again even if no record touches them meanwhile.
pub(super) async fn save(
    store: &Store,
    inner: &mut Inner,
    changed: Vec<(String, Value)>,
) -> Result<(), Error> {
    let now = Utc::now();
    let mut changed = changed.into_iter();
    while let Some((name, value)) = changed.next() {
        if let Err(err) = store.save_rule_state(&name, &value, now).await {
            inner.unsaved.insert(name.clone());
            inner.unsaved.extend(changed.map(|(name, _)| name));
            return Err(Error::store(format!("saving the state of rule `{name}`"))(err));
        }
        inner.saved.insert(name, value);
    }
    Ok(())
}

/// Returns the engine to the last saved state, so a retried record is evaluated as if it had
/// never been seen.
pub(super) fn rollback(inner: &mut Inner) {
    let rules = Arc::clone(inner.engine.rules());
    let mut state = EngineState::default();
    for (name, value) in &inner.saved {
        // These values were serialized from a RuleState by this process; reading them back
        // cannot fail short of a bug, which empties that rule's windows instead of panicking.
        match serde_json::from_value::<RuleState>(value.clone()) {
            Ok(rule_state) => {
                state.rules.insert(name.clone(), rule_state);
            }
            Err(err) => {
                tracing::error!(rule = %name, error = %err, "cannot roll back rule state")
            }
        }
    }
    inner.engine = Engine::with_state(rules, state);
    // The engine now holds exactly what was saved.
    inner.unsaved.clear();
}
