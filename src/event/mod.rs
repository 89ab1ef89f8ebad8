//! The decoded event the rules see: a JSON payload plus Kafka and format metadata.

pub mod cloudevents;
pub mod decode;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The wire format an event was decoded from. Closed set: add a variant and a decoder together.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Any JSON document that no more specific decoder claimed.
    Json,
    /// CloudEvents 1.0, structured JSON mode or Kafka binary mode (`ce_` headers).
    Cloudevents,
    /// One alert out of a Prometheus Alertmanager webhook notification (version 4).
    Alertmanager,
    /// A core/v1 (or events.k8s.io/v1) Kubernetes Event object.
    KubernetesEvent,
    /// A Falco alert as Falco or Falcosidekick emit it.
    Falco,
    /// A log line or log record, whatever its shape (plain text, syslog, logfmt, a log
    /// shipper's JSON envelope, an OpenTelemetry log record): `meta.attributes.log_format` says
    /// which. The payload is always `{message, level, host, timestamp, fields}`.
    Log,
}

impl Format {
    /// Every format, in a stable order (for schemas and error hints).
    pub const ALL: [Format; 6] = [
        Format::Json,
        Format::Cloudevents,
        Format::Alertmanager,
        Format::KubernetesEvent,
        Format::Falco,
        Format::Log,
    ];

    /// The name used in rule files and outcomes.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Cloudevents => "cloudevents",
            Format::Alertmanager => "alertmanager",
            Format::KubernetesEvent => "kubernetes_event",
            Format::Falco => "falco",
            Format::Log => "log",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an event came from and what the decoder learnt about it. Rules address these fields with
/// `@name` paths (e.g. `@topic`, `@headers.trace-id`) and templates with `meta.name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Stable identity used for idempotency keys: CloudEvents `id`; Alertmanager
    /// fingerprint + startsAt + status; otherwise `topic/partition/offset`.
    pub id: String,
    /// Kafka topic the record was read from.
    pub topic: String,
    /// Kafka partition.
    pub partition: i32,
    /// Kafka offset.
    pub offset: i64,
    /// Record key, if any, as UTF-8 (lossy).
    pub key: Option<String>,
    /// Record headers, as UTF-8 (lossy). Last value wins for repeated names.
    pub headers: BTreeMap<String, String>,
    /// Event time: the CloudEvents `time`, the alert's `startsAt`/`endsAt`, the Kubernetes Event's
    /// last timestamp, the Falco `time`, else the Kafka record timestamp.
    pub timestamp: DateTime<Utc>,
    /// Which decoder produced this event.
    pub format: Format,
    /// A short type name: CloudEvents `type`, Alertmanager `alertname`, Kubernetes Event `reason`,
    /// Falco `rule`, a log line's normalised level, or a top-level string `type` field of plain
    /// JSON.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// CloudEvents `source`, Alertmanager `generatorURL`, Kubernetes `source.component`, Falco
    /// `source`/`hostname`, a log line's host, if known.
    pub source: Option<String>,
    /// Format-specific attributes: CloudEvents attributes and extensions; for Alertmanager the
    /// `status`, `fingerprint`, `receiver`, `groupKey`; for Kubernetes the involved object; for
    /// logs `log_format`; for CDEvents `cdevents_type`, `cdevents_subject_id`/`_type`.
    pub attributes: BTreeMap<String, serde_json::Value>,
}

/// One decoded event: what the rule engine evaluates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The JSON document conditions and templates see as `event` (CloudEvents: the `data`;
    /// Alertmanager: one alert with the group labels merged into its labels).
    pub payload: serde_json::Value,
    /// Kafka and format metadata.
    pub meta: Metadata,
}

impl Event {
    /// Alertmanager status of this event (`firing`/`resolved`), if it is an alert.
    pub fn alert_status(&self) -> Option<&str> {
        if self.meta.format != Format::Alertmanager {
            return None;
        }
        self.meta.attributes.get("status").and_then(|v| v.as_str())
    }

    /// Alertmanager fingerprint of this event, if it is an alert.
    pub fn alert_fingerprint(&self) -> Option<&str> {
        if self.meta.format != Format::Alertmanager {
            return None;
        }
        self.meta
            .attributes
            .get("fingerprint")
            .and_then(|v| v.as_str())
    }
}
