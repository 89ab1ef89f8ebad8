//! One partition's worker: handles its records in order, retrying a failed record until it
//! succeeds or the worker is told to stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::DateTime;
use rdkafka::Message;
use rdkafka::message::{Headers, OwnedMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Handler, Status};
use crate::event::decode::RawRecord;

/// `next` offset value meaning "nothing handled yet".
pub(super) const NOTHING_DONE: i64 = -1;

/// Retry delays for a failed record.
#[derive(Debug, Clone, Copy)]
pub(super) struct Retry {
    /// First delay.
    pub min_delay: Duration,
    /// Largest delay.
    pub max_delay: Duration,
}

/// What a worker needs besides its channel.
pub(super) struct WorkerContext<H> {
    pub handler: Arc<H>,
    pub status: Arc<Status>,
    pub retry: Retry,
    /// Offset of the last handled record + 1 (the offset to commit), or [`NOTHING_DONE`].
    pub done: Arc<AtomicI64>,
    /// Stop after the record in hand (revoke, shutdown deadline).
    pub stop: CancellationToken,
}

/// The record as the decoders see it, borrowing from the rdkafka message.
pub fn raw_record(message: &OwnedMessage) -> RawRecord<'_> {
    let headers = message
        .headers()
        .map(|headers| headers.iter().map(|h| (h.key, h.value)).collect())
        .unwrap_or_default();
    RawRecord {
        topic: message.topic(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key(),
        headers,
        payload: message.payload(),
        timestamp: message
            .timestamp()
            .to_millis()
            .and_then(DateTime::from_timestamp_millis),
    }
}

/// Handles the records of one partition until its channel closes (shutdown: drain) or `stop`
/// is cancelled (revoke, or the shutdown deadline).
pub(super) async fn run<H: Handler>(
    cx: WorkerContext<H>,
    mut records: mpsc::Receiver<OwnedMessage>,
) {
    loop {
        // Biased: once told to stop, do not start another record even if some are queued.
        let message = tokio::select! {
            biased;
            () = cx.stop.cancelled() => return,
            message = records.recv() => match message {
                Some(message) => message,
                None => return,
            },
        };
        if !handle_until_done(&cx, &message).await {
            return;
        }
        cx.done.store(message.offset() + 1, Ordering::Release);
    }
}

/// Tries `message` until the handler succeeds (true) or the worker is stopped (false).
async fn handle_until_done<H: Handler>(cx: &WorkerContext<H>, message: &OwnedMessage) -> bool {
    let record = raw_record(message);
    // Unbounded tries, bounded delay: skipping the record would break at-least-once, and
    // giving up would only move the wait to a restart loop. The worker stays stoppable.
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(cx.retry.min_delay)
        .with_max_delay(cx.retry.max_delay)
        .with_jitter()
        .without_max_times()
        .build();
    let mut attempt: u32 = 0;
    let mut retrying = RetryingFlag::new(&cx.status);
    loop {
        attempt = attempt.saturating_add(1);
        match cx.handler.handle(&record).await {
            Ok(()) => {
                if attempt > 1 {
                    tracing::info!(
                        topic = record.topic,
                        partition = record.partition,
                        offset = record.offset,
                        attempts = attempt,
                        "record handled after retries"
                    );
                }
                return true;
            }
            Err(err) => {
                retrying.set();
                let delay = delays.next().unwrap_or(cx.retry.max_delay);
                tracing::warn!(
                    topic = record.topic,
                    partition = record.partition,
                    offset = record.offset,
                    attempt,
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    error = %err,
                    "handling a record failed; retrying it (later records of this partition wait)"
                );
                tokio::select! {
                    () = cx.stop.cancelled() => return false,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Counts this partition in [`Status`]'s retrying partitions while set, whatever way the retry
/// loop ends.
struct RetryingFlag<'a> {
    status: &'a Status,
    set: bool,
}

impl<'a> RetryingFlag<'a> {
    fn new(status: &'a Status) -> Self {
        Self { status, set: false }
    }

    fn set(&mut self) {
        if !self.set {
            self.set = true;
            self.status.retrying_changed(true);
        }
    }
}

impl Drop for RetryingFlag<'_> {
    fn drop(&mut self) {
        if self.set {
            self.status.retrying_changed(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use rdkafka::Timestamp;
    use rdkafka::message::{Header, OwnedHeaders};

    use super::*;

    /// Fails the first `failures` calls, then records offsets.
    struct Flaky {
        failures: Mutex<u32>,
        seen: Mutex<Vec<i64>>,
    }

    impl Handler for Flaky {
        type Error = String;

        async fn handle(&self, record: &RawRecord<'_>) -> Result<(), String> {
            {
                let mut failures = self.failures.lock().expect("lock");
                if *failures > 0 {
                    *failures -= 1;
                    return Err("store down".to_owned());
                }
            }
            self.seen.lock().expect("lock").push(record.offset);
            Ok(())
        }
    }

    fn message(offset: i64) -> OwnedMessage {
        let headers = OwnedHeaders::new().insert(Header {
            key: "ce_id",
            value: Some("x"),
        });
        OwnedMessage::new(
            Some(b"{}".to_vec()),
            Some(b"k".to_vec()),
            "t".to_owned(),
            Timestamp::CreateTime(1_700_000_000_000),
            0,
            offset,
            Some(headers),
        )
    }

    fn context(failures: u32) -> (WorkerContext<Flaky>, Arc<Flaky>) {
        let handler = Arc::new(Flaky {
            failures: Mutex::new(failures),
            seen: Mutex::new(Vec::new()),
        });
        let cx = WorkerContext {
            handler: Arc::clone(&handler),
            status: Arc::new(Status::default()),
            retry: Retry {
                min_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(1),
            },
            done: Arc::new(AtomicI64::new(NOTHING_DONE)),
            stop: CancellationToken::new(),
        };
        (cx, handler)
    }

    #[test]
    fn the_raw_record_carries_every_field_of_the_kafka_message() {
        let message = message(7);
        let record = raw_record(&message);
        assert_eq!(record.topic, "t");
        assert_eq!(record.offset, 7);
        assert_eq!(record.key, Some(&b"k"[..]));
        assert_eq!(record.payload, Some(&b"{}"[..]));
        assert_eq!(record.headers, vec![("ce_id", Some(&b"x"[..]))]);
        assert_eq!(
            record.timestamp.map(|t| t.timestamp_millis()),
            Some(1_700_000_000_000)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_record_is_retried_before_the_next_one_and_offsets_advance_in_order() {
        let (cx, handler) = context(3);
        let done = Arc::clone(&cx.done);
        let status = Arc::clone(&cx.status);
        let (tx, rx) = mpsc::channel(4);
        for offset in [10, 11, 12] {
            tx.send(message(offset)).await.expect("queue");
        }
        let worker = tokio::spawn(run(cx, rx));
        // While the first record fails, nothing is done and the partition counts as retrying.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(done.load(Ordering::Acquire), NOTHING_DONE);
        assert_eq!(status.snapshot().retrying, 1);
        drop(tx);
        tokio::time::timeout(Duration::from_secs(60), worker)
            .await
            .expect("worker finishes once its queue is drained")
            .expect("no panic");
        assert_eq!(*handler.seen.lock().expect("lock"), vec![10, 11, 12]);
        assert_eq!(done.load(Ordering::Acquire), 13);
        assert_eq!(status.snapshot().retrying, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopped_worker_leaves_its_failing_record_undone() {
        let (cx, handler) = context(u32::MAX);
        let done = Arc::clone(&cx.done);
        let stop = cx.stop.clone();
        let status = Arc::clone(&cx.status);
        let (tx, rx) = mpsc::channel(4);
        tx.send(message(5)).await.expect("queue");
        let worker = tokio::spawn(run(cx, rx));
        tokio::time::sleep(Duration::from_secs(5)).await;
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(1), worker)
            .await
            .expect("a stopped worker ends during its backoff")
            .expect("no panic");
        assert!(handler.seen.lock().expect("lock").is_empty());
        assert_eq!(done.load(Ordering::Acquire), NOTHING_DONE);
        assert_eq!(status.snapshot().retrying, 0);
    }
}
