//! The Kafka consumer that feeds records to the pipeline, with at-least-once offset handling.
//!
//! # Design
//!
//! - **One polling thread** (`reflex-consumer`, a plain OS thread) owns the librdkafka consumer.
//!   It fetches records, hands each to its partition's worker, stores the offsets the workers
//!   report as done, pauses and resumes partitions, and runs the rebalance callbacks. Keeping it
//!   off the async runtime is what lets a rebalance callback *block* (bounded) while revoked
//!   partitions finish their record in hand, without stalling any async task.
//! - **One worker task per assigned partition**, fed by a bounded channel
//!   (`consumer.partition_queue` records). A worker handles its records one after the other,
//!   so a partition is processed in order (and so is every key, since a key maps to one
//!   partition); partitions run concurrently. When a partition's channel is full the polling
//!   thread holds its further records (in order) and moves them into the channel as it drains;
//!   only past a bounded slack (16 × the queue capacity records, at most 4 MiB) does it
//!   **pause** the partition (librdkafka drops what it had prefetched for it and refetches
//!   from there on resume) until nothing is held and the channel is half empty. A pause costs
//!   about a second before the partition's records flow again, so short stalls (one action's
//!   store writes) are absorbed by the slack instead. Nothing is buffered without bound.
//! - **Retries**: a [`Handler`] error means an infrastructure failure (store or Kafka down): the
//!   worker tries the same record again after an exponential backoff (`retry_min_delay` up to
//!   `retry_max_delay`, with jitter), for as long as it takes, logging WARN, and reports the
//!   partition as *retrying* in [`Status`] (readiness). Later records of that partition wait;
//!   other partitions continue.
//! - **Offsets**: `enable.auto.offset.store=false`; an offset is stored only after the handler
//!   returned `Ok` for that record *and every earlier one of its partition*. Stored offsets are
//!   committed by librdkafka's auto-commit every `commit_interval` (cheap: one request per
//!   interval, not per record), and synchronously on revoke and on shutdown. A crash redelivers
//!   at most the records handled since the last commit; the pipeline's idempotency keys keep
//!   their actions from running twice.
//! - **Rebalance** (`cooperative-sticky`, so only moved partitions are revoked): on revoke the
//!   polling thread stops feeding the revoked partitions, asks their workers to stop after the
//!   record in hand, waits for them at most `revoke_timeout`, stores their offsets and commits
//!   synchronously before librdkafka releases the partitions. On assign it starts the workers
//!   and resumes the new partitions in librdkafka, which keeps a partition's pause flag across
//!   unassign and assign: a partition paused, revoked and assigned back would otherwise never
//!   be fetched again. (librdkafka itself resets the stored offsets of a released partition,
//!   and a new assignment fetches from the committed offset, so nothing else carries over.)
//! - **A worker that dies** (the handler panicked) is noticed within 50 ms whatever its
//!   partition's state (idle, holding records, paused): the source stops with
//!   [`Error::WorkerDied`], a critical failure that ends the process, rather than leaving the
//!   partition stalled with readiness green. A restart redelivers from the committed offset.
//! - **Shutdown** (the cancellation token): stop fetching, let the workers drain their queues for
//!   at most `drain_timeout`, then stop them after the record in hand, store offsets, call
//!   [`Handler::drained`] (the pipeline saves its rule state), commit synchronously and close
//!   the consumer, which leaves the group.

mod error_log;
mod kafka;
mod rebalance;
mod status;
mod worker;

use std::future::Future;

pub use kafka::KafkaSource;
pub use status::{Status, StatusSnapshot};
pub use worker::raw_record;

use crate::event::decode::RawRecord;

/// Handles one record to completion. The production implementation is
/// [`crate::pipeline::Pipeline`]; tests use their own.
pub trait Handler: Send + Sync + 'static {
    /// An infrastructure failure: the record is not done and will be tried again.
    type Error: std::fmt::Display + Send;

    /// Handles `record`. `Ok` means the record is done and its offset may be committed; `Err`
    /// means it must be tried again later (the same record, before any later one of its
    /// partition).
    fn handle(
        &self,
        record: &RawRecord<'_>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Called once on shutdown, after the workers stopped and before the final commit.
    fn drained(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

impl Handler for crate::pipeline::Pipeline {
    type Error = crate::pipeline::Error;

    async fn handle(&self, record: &RawRecord<'_>) -> Result<(), Self::Error> {
        crate::pipeline::Pipeline::handle(self, record)
            .await
            .map(drop)
    }
}

/// Why the consumer could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `KafkaSource::new` was called outside a Tokio runtime.
    #[error("the Kafka consumer must be created inside a Tokio runtime")]
    NoRuntime,
    /// librdkafka rejected the configuration.
    #[error("invalid Kafka consumer configuration for {servers} (check kafka.client)")]
    Create {
        /// The bootstrap servers.
        servers: String,
        /// What librdkafka said.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The subscription was refused (an invalid pattern, usually).
    #[error("cannot subscribe to {topics} (check kafka.topics.events and consumer.topic_patterns)")]
    Subscribe {
        /// The topics and patterns, comma-separated.
        topics: String,
        /// What librdkafka said.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The polling thread could not be started.
    #[error("cannot start the Kafka consumer thread")]
    Thread(#[source] std::io::Error),
    /// The polling thread panicked (a bug).
    #[error("the Kafka consumer thread panicked")]
    ThreadPanicked,
    /// A partition worker panicked (a bug in the handler); its partition cannot make progress.
    #[error(
        "the worker of {topic}/{partition} stopped unexpectedly (the handler panicked); \
         restarting the process redelivers its records"
    )]
    WorkerDied {
        /// Topic of the partition.
        topic: String,
        /// The partition.
        partition: i32,
    },
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;
