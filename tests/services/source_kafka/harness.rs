//! Shared fixtures of the source tests: a recording handler, per-test topics and groups, a
//! running source, and readers of what was handled and committed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use reflex::config::Config;
use reflex::event::decode::RawRecord;
use reflex::source::{Handler, KafkaSource, Status};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::support;

/// Bound on every wait for records to arrive: generous for a loaded 2-core machine (a group
/// join alone takes a few seconds), finite so a broken consumer fails the test.
pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// What the test handler saw: `(partition, offset, payload)` in handling order.
pub(crate) type Seen = Arc<Mutex<Vec<(i32, i64, String)>>>;

/// Decides per record whether handling fails (an infrastructure error) this time.
pub(crate) type FailWhen = Box<dyn Fn(&RawRecord<'_>) -> bool + Send + Sync>;

pub(crate) struct Recorder {
    pub(crate) seen: Seen,
    pub(crate) fail: FailWhen,
    pub(crate) delay: Duration,
}

impl Handler for Recorder {
    type Error = String;

    async fn handle(&self, record: &RawRecord<'_>) -> Result<(), String> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if (self.fail)(record) {
            return Err(format!(
                "simulated store outage at offset {}",
                record.offset
            ));
        }
        note(&self.seen, record);
        Ok(())
    }
}

/// Adds a handled record to `seen`.
pub(crate) fn note(seen: &Seen, record: &RawRecord<'_>) {
    let payload = String::from_utf8_lossy(record.payload.unwrap_or_default()).into_owned();
    seen.lock()
        .expect("lock")
        .push((record.partition, record.offset, payload));
}

pub(crate) fn recorder(fail: FailWhen) -> (Arc<Recorder>, Seen) {
    let seen = Seen::default();
    let handler = Arc::new(Recorder {
        seen: Arc::clone(&seen),
        fail,
        delay: Duration::ZERO,
    });
    (handler, seen)
}

pub(crate) fn never() -> FailWhen {
    Box::new(|_| false)
}

pub(crate) fn config(bootstrap: &str, topic: &str, group: &str) -> Config {
    let mut config = Config::default();
    config.kafka.bootstrap_servers = bootstrap.to_owned();
    config.kafka.topics.events = vec![topic.to_owned()];
    config.kafka.topics.group_id = group.to_owned();
    // The broker's minimum; a test group settles faster.
    config
        .kafka
        .client
        .insert("session.timeout.ms".to_owned(), "6000".to_owned());
    config.consumer.retry_min_delay = Duration::from_millis(50);
    config.consumer.retry_max_delay = Duration::from_millis(200);
    config.consumer.drain_timeout = Duration::from_secs(5);
    config.consumer.revoke_timeout = Duration::from_secs(5);
    config.consumer.commit_interval = Duration::from_millis(200);
    config
}

pub(crate) fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer")
}

/// Produces `count` records to `partition`, payloads `p<partition>-<i>`.
pub(crate) async fn produce(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    range: std::ops::Range<usize>,
) {
    for i in range {
        let payload = format!("p{partition}-{i}");
        producer
            .send(
                FutureRecord::<(), _>::to(topic)
                    .partition(partition)
                    .payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(err, _)| panic!("produce to {topic}/{partition}: {err}"));
    }
}

pub(crate) struct Running {
    pub(crate) shutdown: CancellationToken,
    pub(crate) task: JoinHandle<reflex::source::Result<()>>,
    pub(crate) status: Arc<Status>,
}

pub(crate) fn start<H: Handler>(config: &Config, handler: Arc<H>) -> Running {
    let source = KafkaSource::new(config, handler).expect("create the source");
    let status = source.status();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(source.run(shutdown.clone()));
    Running {
        shutdown,
        task,
        status,
    }
}

impl Running {
    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the source stops within 30 s of shutdown")
            .expect("no panic")
            .expect("the source stops without error");
    }
}

pub(crate) async fn wait_for_count(seen: &Seen, count: usize, what: &str) {
    support::eventually(what, WAIT, || {
        let n = seen.lock().expect("lock").len();
        async move { (n >= count).then_some(()) }
    })
    .await;
}

/// The group's committed offset per partition (`None`: nothing committed).
pub(crate) async fn committed(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Vec<Option<i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let list = tokio::task::spawn_blocking(move || {
        consumer.committed_offsets(list, Duration::from_secs(10))
    })
    .await
    .expect("no panic")
    .expect("committed offsets");
    (0..partitions)
        .map(
            |p| match list.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => Some(o),
                _ => None,
            },
        )
        .collect()
}

pub(crate) fn by_partition(seen: &Seen) -> BTreeMap<i32, Vec<(i64, String)>> {
    let mut map: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    for (partition, offset, payload) in seen.lock().expect("lock").iter() {
        map.entry(*partition)
            .or_default()
            .push((*offset, payload.clone()));
    }
    map
}

pub(crate) async fn create_topic_and_fill(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    per_partition: usize,
) {
    support::create_topic(bootstrap, topic, partitions).await;
    let producer = producer(bootstrap);
    for partition in 0..partitions {
        produce(&producer, topic, partition, 0..per_partition).await;
    }
}
