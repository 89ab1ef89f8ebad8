//! What this process knows about actions whose store write failed (the store went down, its
//! disk filled up): the retry of the record must not mistake them for attempts of a crashed
//! process.
//!
//! Without this, an action that ran and whose end could not be written is found `started` by
//! the retry, taken over, and — if not safe to repeat — recorded `failed` ("may have taken
//! effect") although this very process saw it succeed; and a claim whose write failed before
//! anything ran is refused the same way although nothing ran. A crashed process knows neither,
//! so the store alone cannot tell; the process that is still running can.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::store::OutcomeStatus;

/// Most entries kept. At most one record per assigned partition is in hand at a time, so the
/// live entries stay far below this; the bound only keeps entries of records whose partition
/// was revoked meanwhile (never retried here) from accumulating. A key that finds no room is
/// not remembered, which falls back to the conservative take-over of a crashed attempt.
const MAX_ENTRIES: usize = 4096;

/// An execution whose final row is still to be written.
#[derive(Debug, Clone)]
pub(super) struct Done {
    pub status: OutcomeStatus,
    pub error: Option<String>,
    pub details: Value,
    pub attempts: i32,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub target: Option<String>,
}

/// What the last attempt at a key left behind when the store failed under it.
#[derive(Debug, Clone)]
pub(super) enum Unrecorded {
    /// A claim (or take-over) may have been written, but nothing was executed.
    NotExecuted,
    /// The action ran to this end; only its final row is missing.
    Executed(Done),
}

/// Per idempotency key, what this process left unrecorded.
#[derive(Debug, Default)]
pub(super) struct Memory(Mutex<HashMap<String, Unrecorded>>);

impl Memory {
    /// Remembers `what` for `key` (replacing what was there), room permitting.
    pub fn remember(&self, key: &str, what: Unrecorded) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() < MAX_ENTRIES || map.contains_key(key) {
            map.insert(key.to_owned(), what);
        }
    }

    /// Takes what is known about `key`, forgetting it.
    pub fn take(&self, key: &str) -> Option<Unrecorded> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_remembered_until_taken_and_the_memory_is_bounded() {
        let memory = Memory::default();
        memory.remember("a", Unrecorded::NotExecuted);
        assert!(matches!(memory.take("a"), Some(Unrecorded::NotExecuted)));
        assert!(memory.take("a").is_none());
        for n in 0..MAX_ENTRIES + 10 {
            memory.remember(&n.to_string(), Unrecorded::NotExecuted);
        }
        assert!(memory.take(&(MAX_ENTRIES + 5).to_string()).is_none());
        // A key already held is updated even when the memory is full.
        memory.remember("0", Unrecorded::NotExecuted);
        assert!(memory.take("0").is_some());
    }
}
