//! The `server:` section: the HTTP listener and its ingest endpoints.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{KafkaConfig, PipelineConfig, Problems, duration_text};

/// The HTTP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address for `/healthz`, `/readyz`, `/metrics`, `/v1/rules` and the ingest endpoints.
    /// Default `127.0.0.1:8080`; use `0.0.0.0:8080` inside a pod so the kubelet's probes (and
    /// Alertmanager) reach it.
    pub listen: SocketAddr,
    /// `POST /v1/alertmanager` and `POST /v1/events`: write what is posted to Kafka.
    pub ingest: IngestConfig,
    /// Require the ingest bearer token on `GET /v1/rules` and `GET /v1/quarantines` too.
    /// Default `false`: like `/metrics`, the listings are read-only.
    pub rules_api_auth: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            ingest: IngestConfig::default(),
            rules_api_auth: false,
        }
    }
}

/// The HTTP ingest endpoints (`server.ingest`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Serve the ingest endpoints. Default `true`, but they stay off while no token is
    /// configured, unless `allow_unauthenticated` is set.
    pub enabled: bool,
    /// File holding the bearer token clients must send (`Authorization: Bearer <token>`),
    /// e.g. a mounted Secret key. Surrounding whitespace is ignored. Read at start-up.
    pub token_file: Option<PathBuf>,
    /// Name of an environment variable holding the token (used when `token_file` is unset).
    pub token_env: Option<String>,
    /// Serve ingest (and `POST /v1/quarantines/release`, which the token also protects) without
    /// a token. Default `false`: anyone who can reach the port could otherwise inject events
    /// that trigger remediation actions (restarts, scaling...). Only for a listener no
    /// untrusted client can reach (localhost, a strict NetworkPolicy).
    pub allow_unauthenticated: bool,
    /// Largest request body accepted, in bytes; larger requests get 413. Default 1 MiB (the
    /// pipeline's default `max_payload_bytes` and about Kafka's default `message.max.bytes`).
    pub max_body_bytes: usize,
    /// Topic `POST /v1/alertmanager` writes to. Default: the first of `kafka.topics.events`.
    pub alertmanager_topic: Option<String>,
    /// Topic `POST /v1/events` writes to. Default: the first of `kafka.topics.events`.
    pub events_topic: Option<String>,
    /// How long a request waits for the broker's acknowledgement before answering 503 (the
    /// sender retries). Default `10s`, Alertmanager's usual webhook timeout.
    #[serde(with = "duration_text")]
    #[schemars(with = "String")]
    pub ack_timeout: std::time::Duration,
    /// `POST /v1/github`: GitHub webhooks, verified by their `X-Hub-Signature-256`. Unset: the
    /// endpoint answers 404.
    pub github: Option<GitWebhookConfig>,
    /// `POST /v1/gitlab`: GitLab webhooks, verified by their `X-Gitlab-Token`. Unset: the
    /// endpoint answers 404.
    pub gitlab: Option<GitWebhookConfig>,
}

/// One Git/CI webhook source (`server.ingest.github`, `server.ingest.gitlab`). The bearer token
/// does not apply: the source's secret authenticates its requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GitWebhookConfig {
    /// File holding the webhook secret configured at the provider (GitHub: "Secret"; GitLab:
    /// "Secret token"), e.g. a mounted Secret key. Surrounding whitespace is ignored. Read at
    /// start-up.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Name of an environment variable holding the secret (used when `secret_file` is unset).
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Topic the webhooks are written to, as CloudEvents. Default: `server.ingest.events_topic`.
    #[serde(default)]
    pub topic: Option<String>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            token_file: None,
            token_env: None,
            allow_unauthenticated: false,
            max_body_bytes: crate::event::decode::DecodeLimits::DEFAULT_MAX_PAYLOAD_BYTES,
            alertmanager_topic: None,
            events_topic: None,
            ack_timeout: std::time::Duration::from_secs(10),
            github: None,
            gitlab: None,
        }
    }
}

impl IngestConfig {
    /// The topic `POST /v1/alertmanager` writes to (`None` only when no topic can be derived).
    pub fn alertmanager_topic<'a>(&'a self, kafka: &'a KafkaConfig) -> Option<&'a str> {
        self.alertmanager_topic
            .as_deref()
            .or_else(|| kafka.topics.events.first().map(String::as_str))
    }

    /// The topic `POST /v1/events` writes to (`None` only when no topic can be derived).
    pub fn events_topic<'a>(&'a self, kafka: &'a KafkaConfig) -> Option<&'a str> {
        self.events_topic
            .as_deref()
            .or_else(|| kafka.topics.events.first().map(String::as_str))
    }

    /// The topic a webhook source writes to (`None` only when no topic can be derived).
    pub fn git_topic<'a>(
        &'a self,
        source: &'a GitWebhookConfig,
        kafka: &'a KafkaConfig,
    ) -> Option<&'a str> {
        source.topic.as_deref().or_else(|| self.events_topic(kafka))
    }

    /// Checks the ingest topics exist (or can be derived) and are decoded the way the endpoint
    /// writes them, so an accepted request can never end on the dead-letter topic.
    pub(crate) fn validate(
        &self,
        kafka: &KafkaConfig,
        pipeline: &PipelineConfig,
        problems: &mut Problems,
    ) {
        use crate::event::decode::Decoding;
        if !self.enabled {
            return;
        }
        if self.max_body_bytes == 0 {
            problems.add("server.ingest.max_body_bytes", "must be at least 1");
        }
        let mut endpoints = vec![
            (
                "server.ingest.alertmanager_topic",
                self.alertmanager_topic(kafka),
                Decoding::Alertmanager,
            ),
            (
                "server.ingest.events_topic",
                self.events_topic(kafka),
                Decoding::Cloudevents,
            ),
        ];
        for (field, source) in [
            ("server.ingest.github", &self.github),
            ("server.ingest.gitlab", &self.gitlab),
        ] {
            let Some(source) = source else { continue };
            if source.secret_file.is_none() && source.secret_env.is_none() {
                problems.add(
                    field,
                    "has neither secret_file nor secret_env; set the secret the provider \
                     signs its webhooks with (unsigned webhooks would let anyone inject events)",
                );
            }
            let topic_field = if field.ends_with("github") {
                "server.ingest.github.topic"
            } else {
                "server.ingest.gitlab.topic"
            };
            endpoints.push((
                topic_field,
                self.git_topic(source, kafka),
                Decoding::Cloudevents,
            ));
        }
        for (field, topic, wanted) in endpoints {
            let Some(topic) = topic.filter(|t| !t.trim().is_empty()) else {
                problems.add(
                    field,
                    "is unset and kafka.topics.events is empty; name the topic (or set \
                     server.ingest.enabled: false)",
                );
                continue;
            };
            let decoding = pipeline.decoding.get(topic).copied().unwrap_or_default();
            if decoding != Decoding::Auto && decoding != wanted {
                problems.add(
                    field,
                    format!(
                        "topic `{topic}` is decoded as `{decoding}` (pipeline.decoding), so \
                         what this endpoint writes would be dead-lettered; decode it as \
                         `{wanted}` or `auto`, or write to another topic"
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse;

    #[test]
    fn ingest_topics_default_to_the_first_consumed_topic_and_reload_to_five_seconds() {
        let config = parse("kafka:\n  topics:\n    events: [alerts, other]\n").expect("valid");
        let ingest = &config.server.ingest;
        assert_eq!(ingest.alertmanager_topic(&config.kafka), Some("alerts"));
        assert_eq!(ingest.events_topic(&config.kafka), Some("alerts"));
        assert_eq!(ingest.max_body_bytes, 1024 * 1024);
        assert!(ingest.enabled && !ingest.allow_unauthenticated);
        assert_eq!(config.rules.reload_interval.as_secs(), 5);
        let config =
            parse("rules:\n  reload_interval: 0s\nserver:\n  ingest:\n    ack_timeout: 3s\n")
                .expect("zero turns polling off");
        assert!(config.rules.reload_interval.is_zero());
        assert_eq!(config.server.ingest.ack_timeout.as_secs(), 3);
    }

    #[test]
    fn an_ingest_topic_decoded_as_another_format_is_rejected_with_the_fix() {
        let err = parse(
            "server:\n  ingest:\n    events_topic: k8s\npipeline:\n  decoding:\n    k8s: kubernetes_event\n",
        )
        .expect_err("CloudEvents written to a kubernetes_event topic would be dead-lettered");
        let text = err.to_string();
        assert!(text.contains("server.ingest.events_topic"), "{text}");
        assert!(text.contains("`cloudevents` or `auto`"), "{text}");
        let err = parse("kafka:\n  topics:\n    events: []\nconsumer:\n  topic_patterns: ['^a']\n")
            .expect_err("no topic to derive");
        assert!(
            err.to_string().contains("server.ingest.alertmanager_topic"),
            "{err}"
        );
        parse(
            "kafka:\n  topics:\n    events: []\nconsumer:\n  topic_patterns: ['^a']\n\
             server:\n  ingest:\n    enabled: false\n",
        )
        .expect("disabled ingest needs no topic");
    }

    #[test]
    fn git_webhook_sources_need_a_secret_and_a_cloudevents_topic() {
        let config = parse(
            "kafka:\n  topics:\n    events: [alerts]\nserver:\n  ingest:\n    github:\n      \
             secret_env: GH\n    gitlab:\n      secret_file: /s\n      topic: ci\n",
        )
        .expect("valid");
        let ingest = &config.server.ingest;
        let github = ingest.github.as_ref().expect("github");
        assert_eq!(ingest.git_topic(github, &config.kafka), Some("alerts"));
        let gitlab = ingest.gitlab.as_ref().expect("gitlab");
        assert_eq!(ingest.git_topic(gitlab, &config.kafka), Some("ci"));

        let err =
            parse("server:\n  ingest:\n    github:\n      topic: ci\n").expect_err("no secret");
        assert!(err.to_string().contains("server.ingest.github"), "{err}");
        assert!(err.to_string().contains("secret_file"), "{err}");
        let err = parse(
            "server:\n  ingest:\n    gitlab:\n      secret_env: GL\n      topic: k8s\n\
             pipeline:\n  decoding:\n    k8s: kubernetes_event\n",
        )
        .expect_err("a topic decoded as another format");
        assert!(
            err.to_string().contains("server.ingest.gitlab.topic"),
            "{err}"
        );
    }
}
