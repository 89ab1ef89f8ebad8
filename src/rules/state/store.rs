//! Per-key storage with a key bound (least recently updated evicted first), a deadline index,
//! so eviction and "what is due" cost `O(log n)` instead of a scan of every key, and a record of
//! the keys changed since it was last taken, so a save serializes those keys and no others.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One stored value with its age (update sequence number) and optional deadline.
#[derive(Debug, Clone)]
struct Slot<V> {
    age: u64,
    deadline: Option<DateTime<Utc>>,
    value: V,
}

/// Values per key, bounded, with a deadline index.
///
/// Serialized as a list of `{key, deadline, value}` in age order (least recently updated first),
/// so the output is deterministic and a restored store evicts in the same order.
#[derive(Debug, Clone)]
pub(super) struct KeyStore<V> {
    slots: HashMap<String, Slot<V>>,
    /// Age -> key; the first entry is the eviction candidate.
    by_age: BTreeMap<u64, String>,
    /// (deadline, key) for keys that have one; the first entry is the next deadline.
    by_deadline: BTreeSet<(DateTime<Utc>, String)>,
    next_age: u64,
    /// Keys inserted, removed, evicted or given a new deadline since [`KeyStore::take_changed`]
    /// (values changed in place through [`KeyStore::get_mut`] are not seen: the caller then
    /// also calls [`KeyStore::set_deadline`] or [`KeyStore::remove`]). Not persisted.
    changed: HashSet<String>,
}

impl<V> Default for KeyStore<V> {
    fn default() -> Self {
        Self {
            slots: HashMap::new(),
            by_age: BTreeMap::new(),
            by_deadline: BTreeSet::new(),
            next_age: 0,
            changed: HashSet::new(),
        }
    }
}

impl<V> KeyStore<V> {
    /// Number of keys.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when no key is stored.
    pub(super) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Keys, least recently updated first.
    pub(super) fn keys(&self) -> impl Iterator<Item = &str> {
        self.by_age.values().map(String::as_str)
    }

    /// The value of `key`, to change in place (its age and deadline stay as they are). Not
    /// recorded as a change: follow a change with [`KeyStore::set_deadline`] or a removal.
    pub(super) fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.slots.get_mut(key).map(|s| &mut s.value)
    }

    /// Removes `key` and returns its value.
    pub(super) fn remove(&mut self, key: &str) -> Option<V> {
        let slot = self.slots.remove(key)?;
        self.mark(key);
        self.by_age.remove(&slot.age);
        if let Some(deadline) = slot.deadline {
            self.by_deadline.remove(&(deadline, key.to_owned()));
        }
        Some(slot.value)
    }

    /// Stores `value` under `key` as the most recently updated key. When `key` is new and the
    /// store already holds `max_keys` keys, the least recently updated key is evicted first;
    /// returns whether that happened.
    pub(super) fn insert(
        &mut self,
        key: String,
        value: V,
        deadline: Option<DateTime<Utc>>,
        max_keys: usize,
    ) -> bool {
        let mut evicted = false;
        if self.remove(&key).is_none()
            && self.slots.len() >= max_keys
            && let Some((_, oldest)) = self.by_age.pop_first()
        {
            // Already unlinked from by_age; remove() tolerates that.
            self.remove(&oldest);
            evicted = true;
        }
        let age = self.next_age;
        self.next_age += 1;
        self.link(key, age, deadline, value);
        evicted
    }

    /// Puts a value back that [`KeyStore::remove`] took out during a tick, as the most recently
    /// updated key. Never evicts: the key's place was just freed.
    pub(super) fn restore(&mut self, key: String, value: V, deadline: Option<DateTime<Utc>>) {
        self.insert(key, value, deadline, usize::MAX);
    }

    /// Changes the deadline of `key` (no-op for an unknown key).
    pub(super) fn set_deadline(&mut self, key: &str, deadline: Option<DateTime<Utc>>) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        if !self.changed.contains(key) {
            self.changed.insert(key.to_owned());
        }
        if let Some(old) = slot.deadline {
            self.by_deadline.remove(&(old, key.to_owned()));
        }
        slot.deadline = deadline;
        if let Some(new) = deadline {
            self.by_deadline.insert((new, key.to_owned()));
        }
    }

    /// Every key with its deadline and value, least recently updated first.
    pub(super) fn entries(&self) -> impl Iterator<Item = (&str, Option<DateTime<Utc>>, &V)> {
        self.by_age.values().filter_map(|key| {
            let slot = self.slots.get(key)?;
            Some((key.as_str(), slot.deadline, &slot.value))
        })
    }

    /// Keys whose deadline is at or before `now`, earliest deadline first (ties by key).
    pub(super) fn due(&self, now: DateTime<Utc>) -> Vec<String> {
        self.by_deadline
            .iter()
            .take_while(|(deadline, _)| *deadline <= now)
            .map(|(_, key)| key.clone())
            .collect()
    }

    /// The earliest deadline of any key.
    pub(super) fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.by_deadline.first().map(|(deadline, _)| *deadline)
    }

    /// The keys changed since the last call, forgetting them: keys holding state least recently
    /// updated first (the order a save writes and a restore wants back), then removed keys in
    /// key order.
    pub(super) fn take_changed(&mut self) -> Vec<String> {
        if self.changed.is_empty() {
            // Draining visits every bucket; the set may have been large once.
            return Vec::new();
        }
        let mut keys: Vec<(Option<u64>, String)> = self
            .changed
            .drain()
            .map(|key| (self.slots.get(&key).map(|slot| slot.age), key))
            .collect();
        keys.sort_by(|a, b| (a.0.is_none(), a.0, &a.1).cmp(&(b.0.is_none(), b.0, &b.1)));
        keys.into_iter().map(|(_, key)| key).collect()
    }

    /// Forgets the changes recorded so far (after rebuilding a store from saved state).
    /// Frees the set's memory too: a rebuild marks every key.
    pub(super) fn clear_changed(&mut self) {
        self.changed = HashSet::new();
    }

    /// `key`'s deadline and value, if it holds state.
    pub(super) fn entry(&self, key: &str) -> Option<(Option<DateTime<Utc>>, &V)> {
        self.slots.get(key).map(|slot| (slot.deadline, &slot.value))
    }

    fn mark(&mut self, key: &str) {
        if !self.changed.contains(key) {
            self.changed.insert(key.to_owned());
        }
    }

    fn link(&mut self, key: String, age: u64, deadline: Option<DateTime<Utc>>, value: V) {
        self.mark(&key);
        self.by_age.insert(age, key.clone());
        if let Some(deadline) = deadline {
            self.by_deadline.insert((deadline, key.clone()));
        }
        self.slots.insert(
            key,
            Slot {
                age,
                deadline,
                value,
            },
        );
    }
}

/// The persisted form of one slot (borrowed for serializing).
#[derive(Serialize)]
struct SlotRef<'a, V> {
    key: &'a str,
    deadline: Option<DateTime<Utc>>,
    value: &'a V,
}

/// The persisted form of one slot (owned for deserializing).
#[derive(Deserialize)]
struct SlotOwned<V> {
    key: String,
    deadline: Option<DateTime<Utc>>,
    value: V,
}

impl<V: Serialize> Serialize for KeyStore<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.entries().map(|(key, deadline, value)| SlotRef {
            key,
            deadline,
            value,
        }))
    }
}

impl<'de, V: DeserializeOwned> Deserialize<'de> for KeyStore<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let slots = Vec::<SlotOwned<V>>::deserialize(deserializer)?;
        let mut store = KeyStore::default();
        for slot in slots {
            // Persisted state was bounded when written; restoring never evicts. A repeated key
            // (hand-edited state) keeps its last value.
            store.insert(slot.key, slot.value, slot.deadline, usize::MAX);
        }
        store.clear_changed();
        Ok(store)
    }
}
