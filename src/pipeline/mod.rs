//! Wires the stages for one Kafka record: decode → rules → execute → durable outcomes (store and
//! outcomes topic) or a dead letter. The consumer in [`crate::source`] calls [`Pipeline::handle`]
//! and stores the record's offset only when it returns `Ok`.
//
// CONTRACT STUB (owned by the pipeline helper; replace freely, keep the public signatures).

use chrono::{DateTime, Utc};

use crate::event::decode::RawRecord;

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Decoded and evaluated; this many outcomes were recorded.
    Outcomes(usize),
    /// Could not be decoded; written to the dead-letter topic.
    DeadLettered,
}

/// An infrastructure failure (store or Kafka unavailable): the record is not done, its offset
/// must not be stored, and the caller retries it after a backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Placeholder until the pipeline exists.
    #[error("pipeline not built yet")]
    NotBuilt,
}

/// The per-process pipeline, shared by every partition worker (`Arc<Pipeline>`).
#[derive(Debug)]
pub struct Pipeline {}

impl Pipeline {
    /// Handles one record to completion (see the module docs).
    pub async fn handle(&self, _record: &RawRecord<'_>) -> Result<Handled, Error> {
        Err(Error::NotBuilt)
    }

    /// Fires due stateful timers (`once_after`, `absence`) at `now`.
    pub async fn tick(&self, _now: DateTime<Utc>) -> Result<usize, Error> {
        Err(Error::NotBuilt)
    }

    /// Persists the rules' state to the store (on shutdown and periodically).
    pub async fn save_state(&self) -> Result<(), Error> {
        Err(Error::NotBuilt)
    }
}
