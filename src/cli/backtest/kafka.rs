//! Reading a time slice of topics' history from Kafka without touching any consumer group's
//! offsets: a consumer with a throwaway `group.id` that is only ever `assign`ed (never
//! `subscribe`d, so it joins no group), commits nothing and stores no offset. Every partition
//! starts at the offset for `--since` and ends at `--until` or at its high watermark taken at
//! the start; the partitions are merged in timestamp order so stateful rules and timers see
//! event time move forward as it did.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::config::Config;

/// Records buffered per partition before it is paused: enough to keep the merge fed across
/// fetches, small enough that a partition far ahead of the others in time does not fill
/// memory while the merge waits for the slowest one.
const MAX_BUFFERED: usize = 20_000;
/// A paused partition resumes once its buffer falls to this.
const RESUME_AT: usize = MAX_BUFFERED / 4;
/// How long one poll waits for records.
const POLL: Duration = Duration::from_millis(100);
/// How often progress is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// What to read.
#[derive(Debug, Clone)]
pub struct Slice {
    /// The topics.
    pub topics: Vec<String>,
    /// Records at or after this time.
    pub since: DateTime<Utc>,
    /// Records at or before this time (record timestamps); `None`: up to the high watermarks.
    pub until: Option<DateTime<Utc>>,
    /// How long metadata and offset requests, and a read without any new record, may take.
    pub timeout: Duration,
    /// Print progress to stderr even when it is not a terminal.
    pub progress: bool,
    /// Threads decoding records beside the reading one; 0: the reading thread decodes.
    pub decode_threads: usize,
}

/// One partition's part of the slice.
#[derive(Debug)]
struct Part {
    topic: String,
    partition: i32,
    /// The high watermark at the start: the read stops before it.
    end: i64,
    buffer: VecDeque<OwnedMessage>,
    /// Nothing more will be added to `buffer`.
    done: bool,
    paused: bool,
}

/// The records of a [`Slice`], in timestamp order across partitions.
pub struct History {
    consumer: BaseConsumer,
    parts: Vec<Part>,
    until_ms: Option<i64>,
    timeout: Duration,
    /// Records in the slice, estimated from the offsets (an upper bound past `--until`).
    total: i64,
    read: u64,
    show_progress: bool,
    last_progress: Instant,
    last_record: Instant,
    group: String,
}

impl History {
    /// Connects, finds every partition of the topics and where the slice begins and ends in
    /// each, and assigns them.
    pub fn open(config: &Config, slice: &Slice) -> anyhow::Result<Self> {
        // A group id nothing else uses: librdkafka wants one even for `assign`, and a fresh
        // one guarantees no production group's offsets are read or written.
        let group = format!(
            "reflex-backtest-{}-{}",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        let consumer: BaseConsumer = crate::app::kafka_client_config(config)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            // A history read drains the local queue as fast as it can decode: when librdkafka's
            // pre-fetch queue is full (`queued.max.messages.kbytes`, 64 MiB: a third of a
            // 200,000-record slice) it waits `fetch.queue.backoff.ms` (1 s by default) before
            // fetching again, and the reader sat idle for most of that second (measured:
            // 0.58 CPU per wall second on an idle machine). Ask again soon instead.
            .set("fetch.queue.backoff.ms", "10")
            .create()
            .with_context(|| {
                format!(
                    "cannot create a Kafka consumer for {}",
                    config.kafka.bootstrap_servers
                )
            })?;
        let since_ms = slice.since.timestamp_millis();
        let mut wanted = TopicPartitionList::new();
        let mut parts = Vec::new();
        for topic in &slice.topics {
            let metadata = consumer
                .fetch_metadata(Some(topic), slice.timeout)
                .with_context(|| {
                    format!(
                        "cannot read the metadata of topic `{topic}` from {} (is Kafka \
                         reachable? --bootstrap-servers or KAFKA_BOOTSTRAP_SERVERS)",
                        config.kafka.bootstrap_servers
                    )
                })?;
            let Some(meta) = metadata.topics().iter().find(|t| t.name() == topic) else {
                bail!("topic `{topic}` is not in the cluster's metadata");
            };
            if meta.error().is_some() || meta.partitions().is_empty() {
                bail!(
                    "topic `{topic}` does not exist on {} (check the name with your Kafka tools)",
                    config.kafka.bootstrap_servers
                );
            }
            for p in meta.partitions() {
                wanted
                    .add_partition_offset(topic, p.id(), Offset::Offset(since_ms))
                    .context("building the partition list")?;
                parts.push(Part {
                    topic: topic.clone(),
                    partition: p.id(),
                    end: 0,
                    buffer: VecDeque::new(),
                    done: false,
                    paused: false,
                });
            }
        }
        let starts = consumer
            .offsets_for_times(wanted, slice.timeout)
            .context("cannot look up the offsets for --since")?;
        let mut assignment = TopicPartitionList::new();
        let mut total = 0;
        for part in &mut parts {
            let (_, high) = consumer
                .fetch_watermarks(&part.topic, part.partition, slice.timeout)
                .with_context(|| {
                    format!("cannot read the end of {}/{}", part.topic, part.partition)
                })?;
            part.end = high;
            let start = starts
                .find_partition(&part.topic, part.partition)
                .map(|e| e.offset());
            match start {
                // A record at or after `since` exists below the end taken now.
                Some(Offset::Offset(start)) if start < high => {
                    total += high - start;
                    assignment
                        .add_partition_offset(&part.topic, part.partition, Offset::Offset(start))
                        .context("building the assignment")?;
                }
                _ => part.done = true,
            }
        }
        if assignment.count() > 0 {
            consumer
                .assign(&assignment)
                .context("cannot assign the partitions")?;
        }
        Ok(Self {
            consumer,
            parts,
            until_ms: slice.until.map(|u| u.timestamp_millis()),
            timeout: slice.timeout,
            total,
            read: 0,
            show_progress: slice.progress || std::io::stderr().is_terminal(),
            last_progress: Instant::now(),
            last_record: Instant::now(),
            group,
        })
    }

    /// The throwaway group id the reader used (it never joins it nor commits to it).
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The next record in timestamp order (ties: in topic and partition order), `None` once
    /// every partition reached its end.
    pub fn next_record(&mut self) -> anyhow::Result<Option<OwnedMessage>> {
        loop {
            if let Some(record) = self.pop()? {
                return Ok(Some(record));
            }
            if self.parts.iter().all(|p| p.done && p.buffer.is_empty()) {
                self.finish_progress();
                return Ok(None);
            }
            self.poll()?;
        }
    }

    /// The earliest buffered record, once every partition that may still deliver one has one
    /// buffered (else an earlier record may still arrive).
    fn pop(&mut self) -> anyhow::Result<Option<OwnedMessage>> {
        if self.parts.iter().any(|p| !p.done && p.buffer.is_empty()) {
            return Ok(None);
        }
        let Some(i) = (0..self.parts.len())
            .filter(|&i| !self.parts[i].buffer.is_empty())
            .min_by_key(|&i| timestamp_ms(&self.parts[i].buffer[0]))
        else {
            return Ok(None);
        };
        let part = &mut self.parts[i];
        let record = part.buffer.pop_front();
        if part.paused && part.buffer.len() <= RESUME_AT && !part.done {
            part.paused = false;
            self.consumer
                .resume(&one(&part.topic, part.partition))
                .context("cannot resume a partition")?;
        }
        Ok(record)
    }

    fn poll(&mut self) -> anyhow::Result<()> {
        self.progress();
        match self.consumer.poll(POLL) {
            Some(Ok(message)) => {
                self.last_record = Instant::now();
                self.add(message.detach())
            }
            Some(Err(err)) => {
                // librdkafka reports transient broker trouble here and retries by itself;
                // only a read that stops advancing fails (below).
                tracing::warn!(error = %err, "reading history: Kafka reported an error");
                self.stalled()
            }
            None => self.stalled(),
        }
    }

    fn stalled(&self) -> anyhow::Result<()> {
        if self.last_record.elapsed() < self.timeout {
            return Ok(());
        }
        let waiting: Vec<String> = self
            .parts
            .iter()
            .filter(|p| !p.done)
            .map(|p| format!("{}/{}", p.topic, p.partition))
            .collect();
        bail!(
            "no record arrived for {:?} (--timeout) while partitions {} had not reached their end; \
             is Kafka reachable?",
            self.timeout,
            waiting.join(", ")
        )
    }

    fn add(&mut self, message: OwnedMessage) -> anyhow::Result<()> {
        // A linear search: a slice has a handful of partitions, and it allocates nothing.
        let Some(i) = self
            .parts
            .iter()
            .position(|p| p.partition == message.partition() && p.topic == message.topic())
        else {
            return Ok(());
        };
        self.read += 1;
        let part = &mut self.parts[i];
        if part.done {
            return Ok(());
        }
        let offset = message.offset();
        if self
            .until_ms
            .is_some_and(|until| timestamp_ms(&message) > until)
        {
            // Past the slice: this partition is finished (records are appended in time order;
            // a producer-set timestamp out of order past `--until` ends it early too).
            part.done = true;
        } else {
            part.buffer.push_back(message);
            part.done = offset + 1 >= part.end;
        }
        if part.done || part.buffer.len() >= MAX_BUFFERED {
            part.paused = true;
            self.consumer
                .pause(&one(&part.topic, part.partition))
                .context("cannot pause a partition")?;
        }
        Ok(())
    }

    fn progress(&mut self) {
        if self.show_progress && self.last_progress.elapsed() >= PROGRESS_EVERY {
            self.last_progress = Instant::now();
            let mut err = std::io::stderr();
            // Best effort: progress is for the person watching.
            let _ = write!(
                err,
                "\rbacktest: read {} of ~{} record(s)",
                self.read, self.total
            );
            let _ = err.flush();
        }
    }

    fn finish_progress(&mut self) {
        if self.show_progress {
            eprintln!(
                "\rbacktest: read {} record(s) from {} partition(s)",
                self.read,
                self.parts.len()
            );
            // Once only.
            self.show_progress = false;
        }
    }
}

/// A record's timestamp in milliseconds (`i64::MIN` without one: it sorts first and the
/// decoder dates it at read time, as `reflex run` does).
fn timestamp_ms(message: &OwnedMessage) -> i64 {
    message.timestamp().to_millis().unwrap_or(i64::MIN)
}

fn one(topic: &str, partition: i32) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, partition);
    list
}
