//! The `consumer:` section: subscriptions, buffering, retries, rebalance and shutdown bounds.

use serde::{Deserialize, Serialize};

use super::{KafkaConfig, Problems, duration_text};

/// The Kafka consumer: subscriptions, buffering, retries, rebalance and shutdown bounds.
/// librdkafka's own consumer settings (`session.timeout.ms`, `auto.offset.reset`, ...) go in
/// `kafka.client`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Topic regular expressions consumed besides `kafka.topics.events`, each starting with `^`
    /// (librdkafka's marker for a pattern), e.g. `^alerts\..*`. Topics created later are
    /// picked up at the next metadata refresh (`topic.metadata.refresh.interval.ms`). Default:
    /// none.
    pub topic_patterns: Vec<String>,
    /// Records buffered per assigned partition between the fetcher and the partition's worker.
    /// When the buffer is full the partition is paused until it is half empty. Default 128.
    pub partition_queue: usize,
    /// First delay before a record whose handling failed (store or Kafka unavailable) is tried
    /// again; the delay doubles, with jitter, up to `retry_max_delay`. Default `200ms`.
    #[serde(with = "duration_text")]
    #[schemars(with = "String")]
    pub retry_min_delay: std::time::Duration,
    /// Longest delay between two tries of the same record. Default `30s`.
    #[serde(with = "duration_text")]
    #[schemars(with = "String")]
    pub retry_max_delay: std::time::Duration,
    /// How long a rebalance waits for the workers of revoked partitions to finish the record in
    /// hand before committing their offsets and releasing them. Default `10s`.
    #[serde(with = "duration_text")]
    #[schemars(with = "String")]
    pub revoke_timeout: std::time::Duration,
    /// How long a shutdown (SIGTERM) waits for buffered records to be handled before it
    /// commits and leaves the group. Default `10s`; keep it under the pod's
    /// `terminationGracePeriodSeconds` (30 s by default).
    #[serde(with = "duration_text")]
    #[schemars(with = "String")]
    pub drain_timeout: std::time::Duration,
    /// How often offsets of handled records are committed (`auto.commit.interval.ms`). Default
    /// `1s`. A crash redelivers at most this much work; actions are not run twice because of
    /// their idempotency keys.
    #[serde(with = "duration_text")]
    #[schemars(with = "String")]
    pub commit_interval: std::time::Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        use std::time::Duration;
        Self {
            topic_patterns: Vec::new(),
            partition_queue: 128,
            retry_min_delay: Duration::from_millis(200),
            retry_max_delay: Duration::from_secs(30),
            revoke_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            commit_interval: Duration::from_secs(1),
        }
    }
}

/// librdkafka properties Reflex sets itself because at-least-once delivery depends on them.
pub const RESERVED_CONSUMER_PROPERTIES: [&str; 4] = [
    "group.id",
    "enable.auto.offset.store",
    "enable.auto.commit",
    "auto.commit.interval.ms",
];

/// Largest `consumer.partition_queue`: with records of up to 1 MiB, a larger buffer could hold
/// gigabytes for one partition.
const MAX_PARTITION_QUEUE: usize = 4096;

impl ConsumerConfig {
    /// Checks the bounds, the patterns and that `kafka.client` does not override what the
    /// delivery contract needs.
    pub(crate) fn validate(&self, kafka: &KafkaConfig, problems: &mut Problems) {
        if let Some(key) = RESERVED_CONSUMER_PROPERTIES
            .iter()
            .find(|key| kafka.client.contains_key(**key))
        {
            problems.add(
                "kafka.client",
                format!(
                    "sets {key}, which Reflex manages for at-least-once delivery; use \
                     kafka.topics.group_id or consumer.commit_interval instead"
                ),
            );
        }
        if !(1..=MAX_PARTITION_QUEUE).contains(&self.partition_queue) {
            problems.add(
                "consumer.partition_queue",
                format!("must be between 1 and {MAX_PARTITION_QUEUE}"),
            );
        }
        if self.retry_min_delay.is_zero() || self.retry_min_delay > self.retry_max_delay {
            problems.add(
                "consumer.retry_min_delay",
                "must be above zero and at most consumer.retry_max_delay",
            );
        }
        if self.commit_interval.is_zero() {
            problems.add("consumer.commit_interval", "must be above zero");
        }
        for pattern in &self.topic_patterns {
            if !pattern.starts_with('^') {
                problems.add(
                    "consumer.topic_patterns",
                    format!("`{pattern}` must start with `^` (write `^{pattern}`)"),
                );
            } else if let Err(err) = regex::Regex::new(pattern) {
                problems.add(
                    "consumer.topic_patterns",
                    format!("`{pattern}` is not a valid regular expression: {err}"),
                );
            }
        }
        if kafka.topics.events.is_empty() && self.topic_patterns.is_empty() {
            problems.add(
                "kafka.topics.events",
                "is empty and consumer.topic_patterns too; name at least one topic",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse;

    #[test]
    fn consumer_durations_are_written_like_rule_durations() {
        let config = parse(
            "consumer:\n  drain_timeout: 1m30s\n  retry_min_delay: 50ms\n  \
             topic_patterns: ['^alerts\\..*']\n",
        )
        .expect("valid");
        assert_eq!(config.consumer.drain_timeout.as_secs(), 90);
        assert_eq!(config.consumer.retry_min_delay.as_millis(), 50);
        assert_eq!(
            config.consumer.topic_patterns,
            vec!["^alerts\\..*".to_owned()]
        );
        assert_eq!(config.consumer.partition_queue, 128);
    }

    #[test]
    fn the_passthrough_cannot_turn_off_at_least_once_offset_storage() {
        let err = parse("kafka:\n  client:\n    enable.auto.offset.store: 'true'\n")
            .expect_err("reserved");
        assert!(
            err.to_string().contains("enable.auto.offset.store"),
            "{err}"
        );
    }

    #[test]
    fn a_topic_pattern_without_a_caret_is_rejected_with_the_fix() {
        let err = parse("consumer:\n  topic_patterns: ['alerts.*']\n").expect_err("no ^");
        assert!(err.to_string().contains("write `^alerts.*`"), "{err}");
        let err = parse("consumer:\n  topic_patterns: ['^(']\n").expect_err("bad regex");
        assert!(
            err.to_string().contains("not a valid regular expression"),
            "{err}"
        );
    }
}
