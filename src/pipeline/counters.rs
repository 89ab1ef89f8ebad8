//! The pipeline's per-record metrics, with the counter handles cached per topic so a record
//! costs a read lock and a hash of its topic name instead of building owned label sets (two
//! string allocations) and a family lookup for every counter it touches.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::Utc;
use prometheus_client::metrics::counter::Counter;

use crate::event::Format;
use crate::event::decode::RawRecord;
use crate::metrics::{self, DeadLetterLabels, DecodedLabels, RuleLabels};
use crate::rules::Evaluation;

/// The counters of one source topic.
#[derive(Debug)]
struct TopicCounters {
    /// `events_decoded{topic, format}`, indexed like [`Format::ALL`].
    decoded: [Counter; Format::ALL.len()],
}

/// Cached handles into [`metrics::global()`]. Topics come from the configuration (or its
/// patterns), so the map stays as small as the metric's own label set.
#[derive(Debug, Default)]
pub(super) struct Counters {
    topics: RwLock<HashMap<String, Arc<TopicCounters>>>,
}

impl Counters {
    /// Counts the events decoded from one record, by format.
    pub(super) fn decoded(&self, topic: &str, events: &[crate::event::Event]) {
        let counters = self.topic(topic);
        for event in events {
            let index = Format::ALL
                .iter()
                .position(|f| *f == event.meta.format)
                .unwrap_or_default();
            counters.decoded[index].inc();
        }
    }

    /// Counts a dead-lettered record (rare: no caching).
    pub(super) fn dead_lettered(topic: &str, reason: &str) {
        metrics::global()
            .events_dead_lettered
            .get_or_create(&DeadLetterLabels {
                topic: topic.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts one match per rule that planned actions in `evaluation`. Only firing rules are
    /// counted here (a small fraction of records), so the label allocation is not per record.
    pub(super) fn matches(evaluation: &Evaluation) {
        let mut last: Option<&str> = None;
        // Planned actions come in rule order: a rule's actions are adjacent.
        for action in &evaluation.planned {
            if last != Some(action.rule.as_str()) {
                metrics::global()
                    .rule_matches
                    .get_or_create(&RuleLabels {
                        rule: action.rule.clone(),
                    })
                    .inc();
                last = Some(action.rule.as_str());
            }
        }
    }

    /// Observes the end-to-end latency of a record whose outcomes are durable: from its Kafka
    /// timestamp (producer create time, or broker append time) to now. Records without a
    /// timestamp, or stamped in the future by a skewed producer clock, are not observed.
    pub(super) fn latency(record: &RawRecord<'_>) {
        let Some(stamped) = record.timestamp else {
            return;
        };
        if let Ok(took) = (Utc::now() - stamped).to_std() {
            metrics::global().event_latency.observe(took.as_secs_f64());
        }
    }

    fn topic(&self, topic: &str) -> Arc<TopicCounters> {
        {
            let topics = self.topics.read().unwrap_or_else(|p| p.into_inner());
            if let Some(counters) = topics.get(topic) {
                return Arc::clone(counters);
            }
        }
        let family = &metrics::global().events_decoded;
        let counters = Arc::new(TopicCounters {
            decoded: Format::ALL.map(|format| {
                family
                    .get_or_create(&DecodedLabels {
                        topic: topic.to_owned(),
                        format: format.as_str().to_owned(),
                    })
                    .clone()
            }),
        });
        let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
        Arc::clone(topics.entry(topic.to_owned()).or_insert(counters))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::decode::{self, DecodeLimits, Decoding};

    fn decoded_count(topic: &str, format: Format) -> u64 {
        metrics::global()
            .events_decoded
            .get_or_create(&DecodedLabels {
                topic: topic.to_owned(),
                format: format.as_str().to_owned(),
            })
            .get()
    }

    #[test]
    fn decoded_events_are_counted_per_topic_and_format_through_cached_handles() {
        let counters = Counters::default();
        let topic = "counters-test-topic";
        let payload = include_bytes!("../../tests/data/events/falco-event.json");
        let record = RawRecord {
            topic,
            partition: 0,
            offset: 0,
            key: None,
            headers: Vec::new(),
            payload: Some(payload),
            timestamp: None,
        };
        let events = decode::decode(&record, Decoding::Auto, &DecodeLimits::default())
            .expect("the Falco sample decodes");
        let (falco, json) = (
            decoded_count(topic, Format::Falco),
            decoded_count(topic, Format::Json),
        );
        counters.decoded(topic, &events);
        counters.decoded(topic, &events);
        assert_eq!(decoded_count(topic, Format::Falco) - falco, 2);
        assert_eq!(decoded_count(topic, Format::Json), json);
        let cached = counters.topics.read().map(|t| t.len()).unwrap_or(0);
        assert_eq!(cached, 1, "one cache entry per topic");
    }
}
