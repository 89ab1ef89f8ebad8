//! The consumer context: the partition registry and the rebalance callbacks that start, stop
//! and commit partition workers; plus the offset store and commit helpers they share with the
//! polling loop.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::OwnedMessage;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::worker::{self, NOTHING_DONE, Retry, WorkerContext};
use super::{Handler, Status};
use crate::metrics::{PartitionLabels, TopicLabels};

/// A topic partition.
pub(super) type Key = (String, i32);

/// The consumer's settings derived from [`crate::config::Config`].
#[derive(Debug, Clone)]
pub(super) struct Settings {
    /// `consumer.partition_queue`: capacity of each worker's channel.
    pub(super) queue: usize,
    /// Backoff of a failed record.
    pub(super) retry: Retry,
    /// `consumer.revoke_timeout`.
    pub(super) revoke_timeout: Duration,
    /// `consumer.drain_timeout`.
    pub(super) drain_timeout: Duration,
}

/// One assigned partition as the polling thread sees it.
pub(super) struct Partition {
    /// Feeds the worker; `None` once closed for a shutdown drain.
    pub(super) queue: Option<mpsc::Sender<OwnedMessage>>,
    /// Records taken from librdkafka while the queue was full, oldest first. Bounded: past the
    /// slack (`HELD_SLACK` × queue capacity records, `HELD_MAX_BYTES`) the partition is paused,
    /// so this grows only by what librdkafka had already handed over before the pause.
    pub(super) held: VecDeque<OwnedMessage>,
    /// Payload bytes of `held`.
    pub(super) held_bytes: usize,
    /// Offset after the last record taken from librdkafka (where a resumed partition goes on).
    pub(super) next: i64,
    /// Whether this source paused the partition in librdkafka.
    pub(super) paused: bool,
    /// Offset to commit next, as reported by the worker.
    pub(super) done: Arc<AtomicI64>,
    /// Last offset given to librdkafka's offset store.
    pub(super) stored: i64,
    /// Tells the worker to stop after the record in hand.
    pub(super) stop: CancellationToken,
    /// The worker; taken when the source waits for it.
    pub(super) task: Option<JoinHandle<()>>,
    /// `events_consumed{topic}`, cached so the polling thread does not look it up per record.
    pub(super) consumed: Counter,
}

/// The consumer context: owns the partition workers so the rebalance callbacks can reach them.
pub(super) struct SourceContext<H> {
    /// Shared by every worker.
    pub(super) handler: Arc<H>,
    /// Runs the workers; the polling thread blocks on it for bounded waits.
    pub(super) runtime: tokio::runtime::Handle,
    /// Bounds and delays.
    pub(super) settings: Settings,
    /// What readiness reports.
    pub(super) status: Arc<Status>,
    /// The assigned partitions and their workers.
    pub(super) partitions: Mutex<HashMap<Key, Partition>>,
    /// Set during shutdown: the final revoke (consumer close) has nothing left to commit.
    pub(super) closing: AtomicBool,
}

impl<H> ClientContext for SourceContext<H>
where
    H: Handler,
{
    /// Refreshes `consumer_lag{topic,partition}` of the assigned partitions from librdkafka's
    /// statistics (every `statistics.interval.ms`, on the polling thread): the high watermark
    /// minus the offset stored as handled, so records fetched but not yet handled count as lag.
    fn stats(&self, statistics: Statistics) {
        let partitions = self.lock();
        for (topic, stats) in &statistics.topics {
            for (&partition, p) in &stats.partitions {
                let key = (topic.clone(), partition);
                if !partitions.contains_key(&key) {
                    // Librdkafka's internal "unassigned" partition (-1) and released ones.
                    continue;
                }
                // -1: not known yet (nothing stored, or no watermark fetched).
                let lag = if p.consumer_lag_stored >= 0 {
                    p.consumer_lag_stored
                } else {
                    p.consumer_lag
                };
                if lag >= 0 {
                    crate::metrics::global()
                        .consumer_lag
                        .get_or_create(&PartitionLabels {
                            topic: key.0,
                            partition,
                        })
                        .set(lag);
                }
            }
        }
    }
}

impl<H: Handler> ConsumerContext for SourceContext<H> {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            self.revoke(consumer, list);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => self.assign(consumer, list),
            Rebalance::Revoke(_) => {}
            Rebalance::Error(err) => {
                tracing::warn!(error = %err, "Kafka group rebalance failed; librdkafka retries")
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => tracing::debug!(partitions = offsets.count(), "offsets committed"),
            // Nothing new was stored since the last commit: the normal idle case.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(err) => tracing::warn!(
                error = %err,
                "committing offsets failed; the next commit includes them"
            ),
        }
    }
}

impl<H: Handler> SourceContext<H> {
    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<Key, Partition>> {
        // A poisoned lock means a panic on the polling thread, which ends the consumer anyway;
        // the map itself is still consistent (every update is a single insert/remove).
        self.partitions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a worker for each newly assigned partition and makes sure librdkafka fetches it.
    fn assign(&self, consumer: &BaseConsumer<Self>, list: &TopicPartitionList) {
        let mut partitions = self.lock();
        let mut added = TopicPartitionList::new();
        for element in list.elements() {
            let key = (element.topic().to_owned(), element.partition());
            if partitions.contains_key(&key) {
                continue;
            }
            added.add_partition(&key.0, key.1);
            let (queue, records) = mpsc::channel(self.settings.queue);
            let done = Arc::new(AtomicI64::new(NOTHING_DONE));
            let stop = CancellationToken::new();
            let cx = WorkerContext {
                handler: Arc::clone(&self.handler),
                status: Arc::clone(&self.status),
                retry: self.settings.retry,
                done: Arc::clone(&done),
                stop: stop.clone(),
            };
            let task = self.runtime.spawn(worker::run(cx, records));
            let consumed = crate::metrics::global()
                .events_consumed
                .get_or_create(&TopicLabels {
                    topic: key.0.clone(),
                })
                .clone();
            tracing::info!(topic = %key.0, partition = key.1, "partition assigned");
            partitions.insert(
                key,
                Partition {
                    queue: Some(queue),
                    held: VecDeque::new(),
                    held_bytes: 0,
                    next: NOTHING_DONE,
                    paused: false,
                    done,
                    stored: NOTHING_DONE,
                    stop,
                    task: Some(task),
                    consumed,
                },
            );
        }
        // librdkafka keeps a partition's pause flag across unassign and assign: a partition this
        // process paused (back-pressure), lost in a rebalance and got back would stay paused
        // forever, while its new entry here says it is not. A new partition starts unpaused.
        if added.count() > 0
            && let Err(err) = consumer.resume(&added)
        {
            tracing::error!(
                error = %err,
                "cannot resume newly assigned partitions; a partition paused before a rebalance \
                 may stay stopped until the process restarts"
            );
        }
        self.status.add_assigned(added.count());
        self.status.set_joined();
    }

    /// Stops the workers of revoked partitions after their record in hand (waiting at most
    /// `revoke_timeout`), stores their offsets and commits synchronously, all before librdkafka
    /// releases the partitions. Runs on the polling thread, which it blocks for that long:
    /// nothing else needs the thread meanwhile, and the group waits for this callback anyway.
    fn revoke(&self, consumer: &BaseConsumer<Self>, list: &TopicPartitionList) {
        let lost = consumer.assignment_lost();
        if lost {
            self.status.clear_joined();
        }
        let mut revoked: Vec<(Key, Partition)> = {
            let mut partitions = self.lock();
            list.elements()
                .iter()
                .filter_map(|e| {
                    let key = (e.topic().to_owned(), e.partition());
                    partitions.remove(&key).map(|p| (key, p))
                })
                .collect()
        };
        if revoked.is_empty() {
            return;
        }
        self.status.sub_assigned(revoked.len());
        for (key, partition) in &mut revoked {
            // A released partition's lag is its next owner's to report.
            crate::metrics::global()
                .consumer_lag
                .remove(&PartitionLabels {
                    topic: key.0.clone(),
                    partition: key.1,
                });
            partition.queue = None;
            partition.stop.cancel();
            if partition.paused {
                self.status.paused_changed(false);
            }
        }
        let tasks = revoked
            .iter_mut()
            .filter_map(|(key, p)| p.task.take().map(|t| (key.clone(), t)))
            .collect();
        let finished = self
            .runtime
            .block_on(join_within(tasks, self.settings.revoke_timeout));
        if !finished {
            tracing::warn!(
                timeout_ms = millis(self.settings.revoke_timeout),
                "a revoked partition's worker is still busy; its record will be redelivered to \
                 the partition's next owner"
            );
        }
        if lost || self.closing.load(Ordering::Relaxed) {
            // Lost partitions already belong to someone else: a commit would be refused.
            for (key, _) in &revoked {
                tracing::info!(topic = %key.0, partition = key.1, lost, "partition released");
            }
            return;
        }
        store(consumer, revoked.iter_mut().map(|(k, p)| (&*k, p)));
        commit_now(consumer, "rebalance");
        for (key, partition) in &revoked {
            tracing::info!(
                topic = %key.0,
                partition = key.1,
                committed = partition.stored,
                "partition revoked"
            );
        }
    }
}

/// Waits for every task until `limit` has passed; true when all ended in time.
pub(super) async fn join_within(tasks: Vec<(Key, JoinHandle<()>)>, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut all = true;
    for ((topic, partition), task) in tasks {
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::error!(%topic, partition, error = %err, "partition worker failed")
            }
            Err(_) => all = false,
        }
    }
    all
}

/// Hands every partition's newly finished offset to librdkafka's offset store.
pub(super) fn store<'a, C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partitions: impl Iterator<Item = (&'a Key, &'a mut Partition)>,
) {
    let mut list = TopicPartitionList::new();
    let mut updated = Vec::new();
    for (key, partition) in partitions {
        let done = partition.done.load(Ordering::Acquire);
        if done > partition.stored {
            // Offsets in the list are stored as given: `done` already is "last handled + 1".
            if list
                .add_partition_offset(&key.0, key.1, Offset::Offset(done))
                .is_ok()
            {
                updated.push((partition, done));
            }
        }
    }
    if updated.is_empty() {
        return;
    }
    match consumer.store_offsets(&list) {
        Ok(()) => {
            for (partition, done) in updated {
                partition.stored = done;
            }
        }
        Err(err) => tracing::warn!(error = %err, "storing offsets failed; retried shortly"),
    }
}

/// Commits the stored offsets and waits for the broker's answer.
pub(super) fn commit_now<C: ConsumerContext>(consumer: &BaseConsumer<C>, when: &str) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => tracing::debug!(when, "offsets committed"),
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(err) => tracing::warn!(
            when,
            error = %err,
            "committing offsets failed; records handled since the last commit will be \
             redelivered (their actions are not repeated: idempotency keys)"
        ),
    }
}

pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
