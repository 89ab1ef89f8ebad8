//! A rule's state as one JSON document per group key, so the pipeline can keep each key on its
//! own row and load, for a record, exactly the keys it reaches. Pure conversion, no I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{KeyState, MAX_STORED_EVENT_BYTES, RuleState, too_large};

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

    /// The JSON document of one key, in the form of [`RuleState::export_keys`]; `None` when
    /// the key holds no state. Costs the serialization of that key only.
    pub fn export_key(&self, key: &str) -> Option<Result<Value, serde_json::Error>> {
        let (deadline, value) = self.keys.entry(key)?;
        Some(serde_json::to_value(EntryRef { deadline, value }))
    }

    /// Rebuilds a rule's state from documents made by [`RuleState::export_keys`], given least
    /// recently updated first (that order becomes the eviction order). Rebuilding never evicts.
    /// A repeated key keeps its last document. Unreadable documents are skipped and
    /// returned, so one bad row costs one key, not the rule; so are documents keeping an event
    /// above [`MAX_STORED_EVENT_BYTES`] (saved by a version without the bound). The rebuilt
    /// state records no changed key.
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
                Ok(entry) if entry.value.events().into_iter().any(too_large) => {
                    unreadable.push(UnreadableKey {
                        key,
                        source: serde::de::Error::custom(format!(
                            "it keeps an event of more than {MAX_STORED_EVENT_BYTES} bytes of \
                             JSON, the most a stateful rule keeps per event"
                        )),
                    });
                }
                Ok(entry) => {
                    state
                        .keys
                        .insert(key, entry.value, entry.deadline, usize::MAX);
                }
                Err(source) => unreadable.push(UnreadableKey { key, source }),
            }
        }
        state.keys.clear_changed();
        (state, unreadable)
    }
}
