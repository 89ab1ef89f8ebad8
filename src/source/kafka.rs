//! The librdkafka consumer and its polling thread (see the module docs of [`crate::source`]
//! for the design); the rebalance callbacks live in [`super::rebalance`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientConfig, Message};
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::error_log::ErrorLog;
use super::rebalance::{
    Key, Partition, Settings, SourceContext, commit_now, join_within, millis, store,
};
use super::worker::Retry;
use super::{Error, Handler, Result, Status};
use crate::config::Config;

/// Poll timeout while nothing is paused. Bounds how late the thread notices a shutdown.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// Poll timeout while a partition is paused: how soon a drained queue gets its partition
/// resumed. Short, because a paused partition is a busy one.
const PAUSED_POLL: Duration = Duration::from_millis(5);

/// A partition whose worker is busy keeps up to this many times its queue capacity in records
/// taken from librdkafka (its `held` records) before it is paused. Pausing is expensive:
/// librdkafka drops the partition's prefetched records and, measured with the bundled 2.12,
/// delivers the partition's next records about a second after the resume, so pausing at every
/// short stall (one action's store writes, ~10 ms) cut a 54,000 events/s backlog run to
/// 2,400/s at 1% firing. The slack absorbs such stalls; a partition stuck for longer (a store
/// outage, a slow webhook) still gets paused.
const HELD_SLACK: usize = 16;

/// ... and never holds more than this many payload bytes, whatever the queue capacity, so
/// large records (up to `pipeline.max_payload_bytes`) cannot multiply the slack's memory.
const HELD_MAX_BYTES: usize = 4 * 1024 * 1024;

/// How often held records are moved into queues with room: not after every polled record (a
/// lock and a scan of every partition); half a queue of 128 lasts several milliseconds at full
/// speed, so a millisecond loses nothing.
const REFILL_EVERY: Duration = Duration::from_millis(1);

/// How often finished offsets are handed to librdkafka. Well under the commit interval (1 s by
/// default), so a commit never lags by more than one store round.
const STORE_EVERY: Duration = Duration::from_millis(50);

/// The Kafka source: a consumer group member feeding a [`Handler`].
pub struct KafkaSource<H: Handler> {
    consumer: BaseConsumer<SourceContext<H>>,
    subscription: Vec<String>,
    status: Arc<Status>,
}

impl<H: Handler> KafkaSource<H> {
    /// Creates the consumer (not yet subscribed). Must be called inside a Tokio runtime, which
    /// runs the partition workers.
    pub fn new(config: &Config, handler: Arc<H>) -> Result<Self> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let status = Arc::new(Status::default());
        let consumer_config = &config.consumer;
        let context = SourceContext {
            handler,
            runtime,
            settings: Settings {
                queue: consumer_config.partition_queue.max(1),
                retry: Retry {
                    min_delay: consumer_config.retry_min_delay,
                    max_delay: consumer_config.retry_max_delay,
                },
                revoke_timeout: consumer_config.revoke_timeout,
                drain_timeout: consumer_config.drain_timeout,
            },
            status: Arc::clone(&status),
            partitions: Mutex::new(HashMap::new()),
            closing: AtomicBool::new(false),
        };
        let consumer = client_config(config)
            .create_with_context(context)
            .map_err(|source| Error::Create {
                servers: config.kafka.bootstrap_servers.clone(),
                source,
            })?;
        let subscription = config
            .kafka
            .topics
            .events
            .iter()
            .chain(&consumer_config.topic_patterns)
            .cloned()
            .collect();
        Ok(Self {
            consumer,
            subscription,
            status,
        })
    }

    /// Live state for readiness.
    pub fn status(&self) -> Arc<Status> {
        Arc::clone(&self.status)
    }

    /// Subscribes, then consumes until `shutdown` is cancelled; returns after the final commit
    /// and leaving the group.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let topics: Vec<&str> = self.subscription.iter().map(String::as_str).collect();
        self.consumer
            .subscribe(&topics)
            .map_err(|source| Error::Subscribe {
                topics: self.subscription.join(", "),
                source,
            })?;
        tracing::info!(topics = %self.subscription.join(", "), "consuming");
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("reflex-consumer".to_owned())
            .spawn(move || {
                let result = self.poll_until(&shutdown);
                // `self` (the consumer) is dropped here: librdkafka closes it and leaves the
                // group before the caller hears the result.
                drop(self);
                let _ = done_tx.send(result);
            })
            .map_err(Error::Thread)?;
        done_rx.await.map_err(|_| Error::ThreadPanicked)?
    }

    /// The polling loop (on the consumer thread), then the shutdown sequence.
    fn poll_until(&self, shutdown: &CancellationToken) -> Result<()> {
        self.status.set_running(true);
        let context = self.consumer.context();
        let mut last_store = Instant::now();
        let mut failure = None;
        // Some partition holds records (paused or not): they are moved into its queue as soon
        // as there is room, so the poll must not sleep long.
        let mut holding = false;
        let mut errors = ErrorLog::default();
        let mut last_refill = Instant::now();
        while !shutdown.is_cancelled() {
            match self
                .consumer
                .poll(if holding { PAUSED_POLL } else { IDLE_POLL })
            {
                Some(Ok(message)) => match self.dispatch(message.detach()) {
                    Ok(held) => holding |= held,
                    Err(err) => {
                        failure = Some(err);
                        break;
                    }
                },
                Some(Err(err)) => errors.report(&err.to_string()),
                None => {}
            }
            if holding && last_refill.elapsed() >= REFILL_EVERY {
                match self.resume_drained() {
                    Ok(held) => holding = held,
                    Err(err) => {
                        failure = Some(err);
                        break;
                    }
                }
                last_refill = Instant::now();
            }
            if last_store.elapsed() >= STORE_EVERY {
                let mut partitions = context.lock();
                store(&self.consumer, partitions.iter_mut());
                if let Some(err) = dead_worker(&partitions) {
                    failure = Some(err);
                    break;
                }
                drop(partitions);
                last_store = Instant::now();
            }
        }
        self.drain();
        self.status.set_running(false);
        failure.map_or(Ok(()), Err)
    }

    /// Queues `message` for its partition's worker; when the queue is full the record is held,
    /// and the partition paused once it holds more than the slack ([`HELD_SLACK`],
    /// [`HELD_MAX_BYTES`]). True when the record was held.
    fn dispatch(&self, message: OwnedMessage) -> Result<bool> {
        let context = self.consumer.context();
        let mut partitions = context.lock();
        let key = (message.topic().to_owned(), message.partition());
        let Some(partition) = partitions.get_mut(&key) else {
            // Fetched before a revoke: not ours any more, and not stored, so the partition's
            // owner receives it.
            tracing::debug!(topic = %key.0, partition = key.1, "record of an unassigned partition ignored");
            return Ok(false);
        };
        let Some(queue) = &partition.queue else {
            return Ok(false);
        };
        if message.offset() < partition.next {
            // Already taken (a fetch that raced the seek of a resume): handing it over again
            // would run it twice and out of order.
            tracing::debug!(topic = %key.0, partition = key.1, offset = message.offset(), "record taken twice ignored");
            return Ok(false);
        }
        partition.consumed.inc();
        partition.next = message.offset() + 1;
        let message = if partition.held.is_empty() {
            match queue.try_send(message) {
                Ok(()) => return Ok(false),
                Err(TrySendError::Full(message)) => message,
                Err(TrySendError::Closed(_)) => return Err(worker_died(&key)),
            }
        } else {
            message
        };
        // Keep the order: earlier held records go first.
        partition.held_bytes += message.payload().map_or(0, <[u8]>::len);
        partition.held.push_back(message);
        let over = partition.held.len() > context.settings.queue.saturating_mul(HELD_SLACK)
            || partition.held_bytes > HELD_MAX_BYTES;
        if over && !partition.paused {
            // Should pausing fail, the next record of the partition tries again.
            partition.paused = self.set_paused(&key, true);
        }
        Ok(true)
    }

    /// Moves held records into queues that are at least half empty and resumes paused
    /// partitions once nothing is held. Waiting for half keeps a busy partition from flapping
    /// between paused and resumed on every record. True while some partition still holds
    /// records or is paused; an error when a worker died (its queue is closed: nothing would
    /// ever drain it, and a paused partition gets no new record to reveal it).
    fn resume_drained(&self) -> Result<bool> {
        let context = self.consumer.context();
        let half = context.settings.queue.div_ceil(2);
        let mut partitions = context.lock();
        let mut holding = false;
        for (key, partition) in partitions.iter_mut() {
            let Some(queue) = &partition.queue else {
                continue;
            };
            if partition.held.is_empty() && !partition.paused {
                continue;
            }
            if queue.is_closed() {
                return Err(worker_died(key));
            }
            if queue.capacity() >= half {
                while let Some(message) = partition.held.pop_front() {
                    let size = message.payload().map_or(0, <[u8]>::len);
                    match queue.try_send(message) {
                        Ok(()) => partition.held_bytes -= size,
                        Err(TrySendError::Full(message)) => {
                            partition.held.push_front(message);
                            break;
                        }
                        Err(TrySendError::Closed(_)) => return Err(worker_died(key)),
                    }
                }
                if partition.held.is_empty() && partition.paused && self.set_paused(key, false) {
                    partition.paused = false;
                    self.restart_fetch(key, partition.next);
                }
            }
            holding |= !partition.held.is_empty() || partition.paused;
        }
        Ok(holding)
    }

    /// Makes librdkafka fetch a resumed partition now. A resume alone left the partition idle
    /// for about a second (measured: pauses exactly one second apart, 5,400 events/s over two
    /// partitions) when no other fetch was in flight to wake librdkafka's broker thread; an
    /// asynchronous seek to where the partition stopped starts the fetch at once. `next` is the
    /// offset after the last record taken from librdkafka, so nothing is skipped or repeated.
    fn restart_fetch(&self, key: &Key, next: i64) {
        if next < 0 {
            return;
        }
        if let Err(err) = self
            .consumer
            .seek(&key.0, key.1, Offset::Offset(next), Duration::ZERO)
        {
            // The resume stands; the partition's records just come a little later.
            tracing::debug!(topic = %key.0, partition = key.1, error = %err, "seek after resume failed");
        }
    }

    /// Pauses or resumes one partition; true when librdkafka accepted.
    fn set_paused(&self, key: &Key, pause: bool) -> bool {
        let mut list = TopicPartitionList::new();
        list.add_partition(&key.0, key.1);
        let result = if pause {
            self.consumer.pause(&list)
        } else {
            self.consumer.resume(&list)
        };
        match result {
            Ok(()) => {
                self.status.paused_changed(pause);
                tracing::debug!(topic = %key.0, partition = key.1, pause, "partition flow control");
                true
            }
            Err(err) => {
                tracing::warn!(
                    topic = %key.0,
                    partition = key.1,
                    pause,
                    error = %err,
                    "cannot pause/resume a partition; trying again shortly"
                );
                false
            }
        }
    }

    /// Shutdown: stop feeding, let workers drain for at most `drain_timeout`, stop the rest
    /// after their record in hand, store offsets, tell the handler, commit.
    fn drain(&self) {
        let context = self.consumer.context();
        context.closing.store(true, Ordering::Relaxed);
        let drain_timeout = context.settings.drain_timeout;
        let tasks: Vec<(Key, JoinHandle<()>)> = {
            let mut partitions = context.lock();
            partitions
                .iter_mut()
                .filter_map(|(key, p)| {
                    // Closing the queue lets the worker finish what is queued, then end.
                    p.queue = None;
                    // Held records were never queued; they are redelivered after a restart.
                    p.held.clear();
                    p.held_bytes = 0;
                    p.task.take().map(|t| (key.clone(), t))
                })
                .collect()
        };
        tracing::info!(
            partitions = tasks.len(),
            timeout_ms = millis(drain_timeout),
            "draining"
        );
        let started = Instant::now();
        let drained = context.runtime.block_on(join_within(tasks, drain_timeout));
        if !drained {
            tracing::warn!(
                timeout_ms = millis(drain_timeout),
                "drain timeout reached; records not handled yet will be redelivered"
            );
            for partition in context.lock().values() {
                partition.stop.cancel();
            }
        }
        store(&self.consumer, context.lock().iter_mut());
        context.runtime.block_on(async {
            if tokio::time::timeout(drain_timeout, context.handler.drained())
                .await
                .is_err()
            {
                tracing::warn!("the handler's shutdown step did not finish in time");
            }
        });
        commit_now(&self.consumer, "shutdown");
        let released = {
            let mut partitions = context.lock();
            for partition in partitions.values().filter(|p| p.paused) {
                debug_assert!(partition.held.is_empty());
                self.status.paused_changed(false);
            }
            let n = partitions.len();
            for (topic, partition) in partitions.keys() {
                // The lag of a partition this process no longer consumes is not its to report.
                crate::metrics::global()
                    .consumer_lag
                    .remove(&crate::metrics::PartitionLabels {
                        topic: topic.clone(),
                        partition: *partition,
                    });
            }
            partitions.clear();
            n
        };
        self.status.sub_assigned(released);
        tracing::info!(
            drained,
            millis = millis(started.elapsed()),
            "consumer drained and committed; leaving the group"
        );
    }
}

/// The first partition whose worker ended by itself. A worker ends only when the source closes
/// its queue (shutdown) or stops it (revoke, which also removes the partition from the map), so
/// a closed queue the source still holds means the worker panicked: the partition cannot make
/// progress, whatever its state (idle, holding records, paused), and the source must end.
fn dead_worker(partitions: &HashMap<Key, Partition>) -> Option<Error> {
    partitions
        .iter()
        .find(|(_, p)| p.queue.as_ref().is_some_and(|q| q.is_closed()))
        .map(|(key, _)| worker_died(key))
}

fn worker_died(key: &Key) -> Error {
    tracing::error!(
        topic = %key.0,
        partition = key.1,
        "a partition worker stopped unexpectedly (the handler panicked); stopping the consumer"
    );
    Error::WorkerDied {
        topic: key.0.clone(),
        partition: key.1,
    }
}

/// The librdkafka configuration of the consumer: Reflex's defaults, then the `kafka.client`
/// pass-through, then the settings the delivery contract depends on.
pub fn client_config(config: &Config) -> ClientConfig {
    let mut client = ClientConfig::new();
    // Defaults an operator may override through kafka.client:
    client
        // Only moved partitions are revoked in a rebalance; the others keep flowing.
        .set("partition.assignment.strategy", "cooperative-sticky")
        // A new group starts at the oldest retained event rather than skipping events produced
        // while Reflex was being deployed. Set `latest` for topics with long retention.
        .set("auto.offset.reset", "earliest")
        // A replica that dies is noticed within 10 s (librdkafka's default is 45 s); heartbeats
        // run on librdkafka's own thread, so a busy handler cannot miss them.
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "3000")
        // A resumed partition waits for the fetch request in flight before fetching again from
        // where it paused; librdkafka's 500 ms long poll made every pause cost half a second
        // (measured: 200 records through a queue of 4 took 20 s; 4 s with 100 ms). The price is
        // a few more idle fetch requests per second.
        .set("fetch.wait.max.ms", "100")
        // Feeds `reflex_consumer_lag` (see the `stats` callback); every 5 s is fresh enough
        // for a lag gauge and costs one JSON document per interval.
        .set("statistics.interval.ms", "5000");
    for (key, value) in &config.kafka.client {
        client.set(key, value);
    }
    client
        .set("bootstrap.servers", &config.kafka.bootstrap_servers)
        .set("client.id", "reflex")
        .set("group.id", &config.kafka.topics.group_id)
        // At-least-once: an offset is stored only once its record is handled ...
        .set("enable.auto.offset.store", "false")
        // ... and librdkafka commits what was stored, periodically and on close.
        .set("enable.auto.commit", "true")
        .set(
            "auto.commit.interval.ms",
            millis(config.consumer.commit_interval).to_string(),
        );
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consumer_stores_offsets_only_by_hand_and_the_passthrough_keeps_its_say() {
        let mut config = Config::default();
        config.kafka.topics.group_id = "g1".to_owned();
        config
            .kafka
            .client
            .insert("auto.offset.reset".to_owned(), "latest".to_owned());
        let client = client_config(&config);
        assert_eq!(client.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(client.get("enable.auto.commit"), Some("true"));
        assert_eq!(client.get("auto.commit.interval.ms"), Some("1000"));
        assert_eq!(client.get("group.id"), Some("g1"));
        assert_eq!(client.get("auto.offset.reset"), Some("latest"));
        assert_eq!(
            client.get("partition.assignment.strategy"),
            Some("cooperative-sticky")
        );
    }
}
