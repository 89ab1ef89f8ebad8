//! The Kafka topic policy: which topics `kafka` actions may publish to.
//!
//! A rule writes the topic, or a literal prefix of it, itself (checked at load); the rendered
//! topic then passes when (1) it is not one of Reflex's own topics — every consumed topic
//! (`kafka.topics.events` and any topic matching `consumer.topic_patterns`), the outcomes, the
//! dead-letter and the circuit-announcement topics — unless `actions.kafka_allowed_topics` names
//! it literally (a glob never reaches it by accident), and (2) the allow list is empty or one of
//! its globs matches. Publishing to an input topic feeds Reflex its own actions (a loop that
//! the circuit breaker only slows down); publishing to the outcomes or dead-letter topics forges
//! records that consumers trust.

use regex::Regex;

use crate::config::Config;
use crate::rules::ruleset::Glob;

/// A topic of Reflex's own, and what it is (for the refusal message).
#[derive(Debug, Clone)]
struct OwnTopic {
    name: String,
    role: &'static str,
}

/// The compiled policy.
#[derive(Debug, Clone, Default)]
pub struct TopicPolicy {
    allow: Vec<Glob>,
    own: Vec<OwnTopic>,
    /// `consumer.topic_patterns`: topics matching them are consumed too.
    consumed_patterns: Vec<Regex>,
}

impl TopicPolicy {
    /// Compiles `actions.kafka_allowed_topics` and collects Reflex's own topics from `config`.
    pub fn new(config: &Config) -> Self {
        let topics = &config.kafka.topics;
        let mut own: Vec<OwnTopic> = topics
            .events
            .iter()
            .map(|name| OwnTopic {
                name: name.clone(),
                role: "a consumed input topic",
            })
            .collect();
        own.push(OwnTopic {
            name: topics.outcomes.clone(),
            role: "the outcomes topic",
        });
        own.push(OwnTopic {
            name: topics.dead_letters.clone(),
            role: "the dead-letter topic",
        });
        if let Some(announce) = &config.actions.circuit.announce_topic {
            own.push(OwnTopic {
                name: announce.clone(),
                role: "the circuit-announcement topic",
            });
        }
        Self {
            allow: config
                .actions
                .kafka_allowed_topics
                .iter()
                .map(|g| Glob::new(g))
                .collect(),
            own,
            // Validated with the configuration; an invalid one cannot reach here.
            consumed_patterns: config
                .consumer
                .topic_patterns
                .iter()
                .filter_map(|p| Regex::new(p).ok())
                .collect(),
        }
    }

    /// Whether an action of `rule` may publish to `topic`; the error names the setting to
    /// change.
    pub fn check(&self, topic: &str, rule: &str) -> Result<(), String> {
        let named_literally = self.allow.iter().any(|g| g.exact() == Some(topic));
        let own_role = self
            .own
            .iter()
            .find(|own| own.name == topic)
            .map(|own| own.role)
            .or_else(|| {
                self.consumed_patterns
                    .iter()
                    .any(|p| p.is_match(topic))
                    .then_some("consumed (it matches consumer.topic_patterns)")
            });
        if let Some(role) = own_role
            && !named_literally
        {
            return Err(format!(
                "topic `{topic}` is Reflex's own ({role}); rule `{rule}` may not publish to it, \
                 as Reflex would consume its own actions or forge its own records — add \
                 `{topic}` literally to actions.kafka_allowed_topics if this is intended"
            ));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|g| g.matches(topic)) {
            let list: Vec<String> = self
                .allow
                .iter()
                .map(|g| format!("`{}`", g.as_str()))
                .collect();
            return Err(format!(
                "topic `{topic}` is not in actions.kafka_allowed_topics ({}); rule `{rule}` may \
                 not publish to it (add it to that list in the configuration)",
                list.join(", ")
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], patterns: &[&str]) -> TopicPolicy {
        let mut config = Config::default();
        config.kafka.topics.events = vec!["in".into()];
        config.kafka.topics.outcomes = "out".into();
        config.kafka.topics.dead_letters = "dlq".into();
        config.actions.circuit.announce_topic = Some("circuits".into());
        config.actions.kafka_allowed_topics = allow.iter().map(|s| (*s).to_owned()).collect();
        config.consumer.topic_patterns = patterns.iter().map(|s| (*s).to_owned()).collect();
        TopicPolicy::new(&config)
    }

    #[test]
    fn reflex_own_topics_are_refused_by_default_and_others_pass() {
        let policy = policy(&[], &["^alerts\\..*"]);
        for (topic, role) in [
            ("in", "a consumed input topic"),
            ("out", "the outcomes topic"),
            ("dlq", "the dead-letter topic"),
            ("circuits", "the circuit-announcement topic"),
            ("alerts.eu", "consumer.topic_patterns"),
        ] {
            let err = policy.check(topic, "r").expect_err(topic);
            assert!(err.contains(role), "{err}");
            assert!(err.contains("rule `r`"), "{err}");
            assert!(err.contains("actions.kafka_allowed_topics"), "{err}");
        }
        assert!(policy.check("notifications.sre", "r").is_ok());
    }

    #[test]
    fn an_own_topic_passes_only_when_named_literally() {
        assert!(policy(&["*"], &[]).check("out", "r").is_err());
        assert!(policy(&["o*"], &[]).check("out", "r").is_err());
        assert!(policy(&["out"], &[]).check("out", "r").is_ok());
    }

    #[test]
    fn an_allow_list_admits_only_the_topics_it_matches() {
        let policy = policy(&["notify.*", "tickets"], &[]);
        assert!(policy.check("notify.sre", "r").is_ok());
        assert!(policy.check("tickets", "r").is_ok());
        let err = policy.check("audit", "r").expect_err("not allowed");
        assert!(
            err.contains("not in actions.kafka_allowed_topics (`notify.*`, `tickets`)"),
            "{err}"
        );
    }
}
