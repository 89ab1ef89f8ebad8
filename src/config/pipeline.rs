//! The `pipeline:` section: decoding per topic, decode limits and what is recorded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Problems;

/// How the pipeline decodes, evaluates and records each record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Decoding per topic name (`auto`, `json`, `cloudevents`, `alertmanager`,
    /// `kubernetes_event`, `falco`, and for logs `log`, `syslog`, `logfmt`, `log_json`,
    /// `otlp_json`, `otlp_proto`). Topics not listed are auto-detected; log lines never are, so
    /// a log topic must be listed. Default: none.
    pub decoding: BTreeMap<String, crate::event::decode::Decoding>,
    /// Largest record value decoded, in bytes; larger records are dead-lettered. Default 1 MiB
    /// (Kafka's default `message.max.bytes` is about 1 MB).
    pub max_payload_bytes: usize,
    /// Deepest JSON nesting decoded; deeper records are dead-lettered. Default 64.
    pub max_depth: usize,
    /// Record one `no_match` outcome per event that no rule fired for. Default `false`: on a
    /// busy topic most events match nothing, and the audit store would fill with them.
    pub record_no_match: bool,
    /// Seconds a `started` claim of another process is respected before that process is
    /// presumed dead and the action is taken over (see `crate::pipeline`). A running action
    /// renews its claim every third of the lease; the lease must exceed `actions.timeout`
    /// (checked at start). Default 60.
    pub claim_lease_secs: u64,
    /// Record one `throttled` outcome per event a rule's `throttle.once_within` suppressed.
    /// Default `true`; turn it off when a noisy rule fills the audit store.
    pub record_throttled: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        let limits = crate::event::decode::DecodeLimits::default();
        Self {
            decoding: BTreeMap::new(),
            max_payload_bytes: limits.max_payload_bytes,
            max_depth: limits.max_depth,
            record_no_match: false,
            claim_lease_secs: 60,
            record_throttled: true,
        }
    }
}

impl PipelineConfig {
    /// The decode limits these settings describe.
    pub fn decode_limits(&self) -> crate::event::decode::DecodeLimits {
        crate::event::decode::DecodeLimits {
            max_payload_bytes: self.max_payload_bytes,
            max_depth: self.max_depth,
        }
    }

    /// Checks the decode limits.
    pub(crate) fn validate(&self, problems: &mut Problems) {
        if self.max_payload_bytes == 0 || self.max_depth == 0 {
            problems.add(
                "pipeline",
                "max_payload_bytes and max_depth must be at least 1",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, parse};

    #[test]
    fn the_pipeline_section_maps_topics_to_decodings() {
        let config = parse(
            "kafka:\n  topics:\n    dead_letters: dlq\npipeline:\n  decoding:\n    alerts: alertmanager\n  record_no_match: true\n",
        )
        .expect("valid");
        assert_eq!(config.kafka.topics.dead_letters, "dlq");
        assert_eq!(
            config.pipeline.decoding.get("alerts"),
            Some(&crate::event::decode::Decoding::Alertmanager)
        );
        assert!(config.pipeline.record_no_match);
        assert_eq!(config.pipeline.claim_lease_secs, 60);
        assert_eq!(
            Config::default().kafka.topics.dead_letters,
            "reflex.dead-letters"
        );
        let err = parse("pipeline:\n  decoding:\n    alerts: prometheus\n").expect_err("unknown");
        assert!(format!("{:#}", anyhow::Error::new(err)).contains("prometheus"));
    }
}
