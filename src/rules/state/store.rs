//! Per-key storage with a key bound (least recently updated evicted first) and a deadline index,
//! so eviction and "what is due" cost `O(log n)` instead of a scan of every key.

use std::collections::{BTreeMap, BTreeSet, HashMap};

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
}

impl<V> Default for KeyStore<V> {
    fn default() -> Self {
        Self {
            slots: HashMap::new(),
            by_age: BTreeMap::new(),
            by_deadline: BTreeSet::new(),
            next_age: 0,
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

    /// The value of `key`, to change in place (its age and deadline stay as they are).
    pub(super) fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.slots.get_mut(key).map(|s| &mut s.value)
    }

    /// Removes `key` and returns its value.
    pub(super) fn remove(&mut self, key: &str) -> Option<V> {
        let slot = self.slots.remove(key)?;
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

    fn link(&mut self, key: String, age: u64, deadline: Option<DateTime<Utc>>, value: V) {
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
        Ok(store)
    }
}
