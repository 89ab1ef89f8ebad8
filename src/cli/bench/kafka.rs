//! The bench's Kafka side: its topics, its producer, starting and stopping the pipeline on a
//! topic, and reading back what reached the broker (committed offsets, outcome records).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::measure::{self, Measured};
use super::{BROKER_TIMEOUT, Bench, COMMIT_TIMEOUT, CONSUME_TIMEOUT, JOIN_TIMEOUT, POLL_EVERY};
use crate::config::Config;
use crate::source::KafkaSource;

/// Topic admin and offset helpers.
impl Bench {
    pub(super) async fn create_topic(&mut self, name: &str, partitions: i32) -> anyhow::Result<()> {
        let results = self
            .admin
            .create_topics(
                &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(BROKER_TIMEOUT)),
            )
            .await
            .with_context(|| format!("cannot create topic {name}"))?;
        for result in results {
            result.map_err(|(topic, err)| anyhow::anyhow!("cannot create topic {topic}: {err}"))?;
        }
        self.topics.push(name.to_owned());
        Ok(())
    }

    pub(super) async fn delete_topics(&self) {
        let names: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        if names.is_empty() {
            return;
        }
        if let Err(err) = self
            .admin
            .delete_topics(
                &names,
                &AdminOptions::new().operation_timeout(Some(BROKER_TIMEOUT)),
            )
            .await
        {
            tracing::warn!(error = %err, topics = %names.join(", "), "cannot delete the bench topics");
        }
    }

    /// Sum of the high watermarks of `topic` (records written to a fresh topic).
    pub(super) async fn records_on(&self, topic: &str, partitions: i32) -> anyhow::Result<u64> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.args.bootstrap_servers)
            .create()?;
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut total = 0u64;
            for partition in 0..partitions {
                let (low, high) = consumer.fetch_watermarks(&topic, partition, BROKER_TIMEOUT)?;
                total += u64::try_from(high - low).unwrap_or_default();
            }
            Ok::<_, anyhow::Error>(total)
        })
        .await?
    }

    /// Waits until the committed offsets of `group` on `topic` add up to `want`; returns the
    /// clock time (ns) they did, or the last sum seen when the wait timed out.
    pub(super) async fn wait_committed(
        &self,
        group: &str,
        topic: &str,
        want: u64,
    ) -> anyhow::Result<(u64, Option<u64>)> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.args.bootstrap_servers)
            .set("group.id", group)
            .create()?;
        let mut list = TopicPartitionList::new();
        for partition in 0..self.args.partitions {
            list.add_partition(topic, partition);
        }
        let clock = self.clock;
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + COMMIT_TIMEOUT;
            loop {
                let committed = consumer.committed_offsets(list.clone(), BROKER_TIMEOUT)?;
                let sum: u64 = committed
                    .elements()
                    .iter()
                    .map(|e| match e.offset() {
                        Offset::Offset(n) => u64::try_from(n).unwrap_or_default(),
                        _ => 0,
                    })
                    .sum();
                if sum >= want {
                    return Ok((sum, Some(clock.now_ns())));
                }
                if Instant::now() >= deadline {
                    return Ok((sum, None));
                }
                std::thread::sleep(POLL_EVERY * 4);
            }
        })
        .await?
    }

    /// Starts the pipeline and its consumer on `topic` as `reflex run` does; returns the
    /// measuring handler, the consumer task and its shutdown token.
    pub(super) async fn start(
        &self,
        topic: &str,
        outcomes: &str,
        group: &str,
    ) -> anyhow::Result<Running> {
        let mut config = Config::default();
        config
            .kafka
            .bootstrap_servers
            .clone_from(&self.args.bootstrap_servers);
        config.kafka.topics.events = vec![topic.to_owned()];
        config.kafka.topics.outcomes = outcomes.to_owned();
        config.kafka.topics.dead_letters = format!("{}.dead-letters", self.prefix);
        config.kafka.topics.group_id = group.to_owned();
        config
            .kafka
            .client
            .extend(self.args.kafka_client.iter().cloned());
        if let Some(queue) = self.args.partition_queue {
            config.consumer.partition_queue = queue;
        }
        let pipeline =
            crate::app::build_pipeline(&config, Arc::clone(&self.rules), self.store.clone())
                .await?;
        let measured = Arc::new(Measured::new(Arc::new(pipeline), self.clock));
        let source = KafkaSource::new(&config, Arc::clone(&measured))
            .context("cannot create the Kafka consumer")?;
        let status = source.status();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(source.run(shutdown.clone()));
        let deadline = Instant::now() + JOIN_TIMEOUT;
        while status.snapshot().assigned < usize::try_from(self.args.partitions).unwrap_or(1) {
            if Instant::now() >= deadline || task.is_finished() {
                shutdown.cancel();
                let outcome = task.await;
                bail!(
                    "the consumer did not get the {} partitions of {topic} within {JOIN_TIMEOUT:?} \
                     ({outcome:?})",
                    self.args.partitions
                );
            }
            tokio::time::sleep(POLL_EVERY * 10).await;
        }
        Ok(Running {
            measured,
            shutdown,
            task,
        })
    }

    /// Sends event `index` (stamped with the send time when `stamp`); returns its delivery.
    pub(super) fn send(
        &self,
        topic: &str,
        index: u64,
        fire_ppm: u64,
        stamp: bool,
    ) -> rdkafka::producer::DeliveryFuture {
        let (payload, key) = self.workload.event(topic, index, fire_ppm);
        let mut record = FutureRecord::to(topic).payload(&payload).key(&key);
        if stamp {
            let sent = self.clock.now_ns().to_string();
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: measure::SENT_HEADER,
                value: Some(&sent),
            }));
        }
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => return delivery,
                // librdkafka's queue is full (`queue.buffering.max.messages`): block this
                // thread briefly while deliveries drain, then try the same record again.
                Err((_, returned)) => {
                    record = returned;
                    self.producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
}

/// A pipeline running on one topic.
pub(super) struct Running {
    pub(super) measured: Arc<Measured>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<crate::source::Result<()>>,
}

impl Running {
    /// Waits until `want` records were handled, the consumer stopped, or [`CONSUME_TIMEOUT`].
    pub(super) async fn wait(&self, want: u64) {
        let deadline = Instant::now() + CONSUME_TIMEOUT;
        while self.measured.handled() < want
            && Instant::now() < deadline
            && !self.task.is_finished()
        {
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Stops the consumer as a SIGTERM stops `reflex run`: drain, commit, leave the group.
    pub(super) async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task
            .await
            .context("the consumer task panicked")?
            .context("the Kafka consumer failed")
    }
}
