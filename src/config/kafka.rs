//! The `kafka:` section: brokers, client passthrough and topic names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Problems;

/// Kafka connection and topics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list of brokers. Default `127.0.0.1:9092`; the environment
    /// variable `KAFKA_BOOTSTRAP_SERVERS` overrides it.
    pub bootstrap_servers: String,
    /// Extra librdkafka properties passed through unchanged, e.g. `security.protocol: SASL_SSL`
    /// (see librdkafka's CONFIGURATION.md). Default: none. `bootstrap.servers` is set from
    /// `bootstrap_servers` and may not appear here.
    pub client: BTreeMap<String, String>,
    /// Topic names.
    pub topics: TopicsConfig,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: "127.0.0.1:9092".to_owned(),
            client: BTreeMap::new(),
            topics: TopicsConfig::default(),
        }
    }
}

/// Topic names Reflex reads and writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TopicsConfig {
    /// Topics consumed as events. Default `[reflex.events]`.
    pub events: Vec<String>,
    /// Topic where one outcome record per executed action is published. Default
    /// `reflex.outcomes`.
    pub outcomes: String,
    /// Consumer group id shared by all replicas. Default `reflex`.
    pub group_id: String,
    /// Topic where undecodable records are copied, with headers naming the reason and the
    /// source topic/partition/offset. Default `reflex.dead-letters`.
    pub dead_letters: String,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        Self {
            events: vec!["reflex.events".to_owned()],
            outcomes: "reflex.outcomes".to_owned(),
            group_id: "reflex".to_owned(),
            dead_letters: "reflex.dead-letters".to_owned(),
        }
    }
}

impl KafkaConfig {
    /// Checks the broker list, the passthrough and the topic names.
    pub(crate) fn validate(&self, problems: &mut Problems) {
        if self
            .bootstrap_servers
            .split(',')
            .all(|s| s.trim().is_empty())
        {
            problems.add(
                "kafka.bootstrap_servers",
                "is empty; give at least one host:port",
            );
        }
        if self.client.contains_key("bootstrap.servers") {
            problems.add(
                "kafka.client",
                "sets bootstrap.servers; use kafka.bootstrap_servers instead",
            );
        }
        if self.topics.events.iter().any(|t| t.trim().is_empty()) {
            problems.add("kafka.topics.events", "contains an empty topic name");
        }
        if self.topics.outcomes.trim().is_empty() {
            problems.add("kafka.topics.outcomes", "is empty");
        }
        if self.topics.dead_letters.trim().is_empty() {
            problems.add("kafka.topics.dead_letters", "is empty");
        }
        if self.topics.group_id.trim().is_empty() {
            problems.add("kafka.topics.group_id", "is empty");
        }
    }
}
