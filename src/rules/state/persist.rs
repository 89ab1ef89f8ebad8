//! A rule's state as one JSON document per group key, so the pipeline can persist each key on
//! its own row: replicas that touch different keys of one rule then never overwrite each
//! other's keys, and a restart restores the union. Pure conversion, no I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{KeyState, RuleState};

/// The persisted document of one key (borrowed for exporting). The key itself is the row's key.
#[derive(Serialize)]
struct EntryRef<'a> {
    deadline: Option<DateTime<Utc>>,
    value: &'a KeyState,
}

/// The persisted document of one key (owned for rebuilding).
#[derive(Deserialize)]
struct EntryOwned {
    deadline: Option<DateTime<Utc>>,
    value: KeyState,
}

/// A key document [`RuleState::from_keys`] could not read (written by another version, or
/// edited by hand). The key is left out of the rebuilt state.
#[derive(Debug, thiserror::Error)]
#[error("state of key `{key}` is unreadable: {source}")]
pub struct UnreadableKey {
    /// The group key.
    pub key: String,
    /// Why it could not be read.
    #[source]
    pub source: serde_json::Error,
}

impl RuleState {
    /// Each key's state as a JSON document, least recently updated first (the order
    /// [`RuleState::from_keys`] wants back). Fails only if a value cannot be represented in
    /// JSON, which the state types rule out short of a bug.
    pub fn export_keys(&self) -> Result<Vec<(String, Value)>, serde_json::Error> {
        self.keys
            .entries()
            .map(|(key, deadline, value)| {
                serde_json::to_value(EntryRef { deadline, value }).map(|doc| (key.to_owned(), doc))
            })
            .collect()
    }

    /// Rebuilds a rule's state from documents made by [`RuleState::export_keys`], given least
    /// recently updated first (that order becomes the eviction order). Restoring never evicts:
    /// the union of several replicas' keys may exceed the key bound until new keys push the
    /// oldest out. A repeated key keeps its last document. Unreadable documents are skipped and
    /// returned, so one bad row costs one key, not the rule.
    pub fn from_keys(
        keys: impl IntoIterator<Item = (String, Value)>,
        evictions: u64,
    ) -> (RuleState, Vec<UnreadableKey>) {
        let mut state = RuleState {
            evictions,
            ..RuleState::default()
        };
        let mut unreadable = Vec::new();
        for (key, doc) in keys {
            match serde_json::from_value::<EntryOwned>(doc) {
                Ok(entry) => {
                    state
                        .keys
                        .insert(key, entry.value, entry.deadline, usize::MAX);
                }
                Err(source) => unreadable.push(UnreadableKey { key, source }),
            }
        }
        (state, unreadable)
    }
}
