//! The outcome record published to the outcomes topic: a CloudEvents 1.0 JSON document
//! (structured mode) whose `data` is one row of the audit store.
//!
//! `id` is the row's idempotency key plus its status, unique per source as CloudEvents asks, so
//! a consumer can drop the copies an at-least-once redelivery may publish. `subject` (and the
//! Kafka key) is the rendered target, e.g. `deployment/shop/checkout`, or the rule name when the
//! action has no target: Kafka keeps one key's records in order, so one target's history reads
//! in order.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::OutcomeRecord;

/// CloudEvents `source` of every outcome record.
pub const SOURCE: &str = "reflex";

/// Prefix of the CloudEvents `type`; the status follows, e.g. `dev.reflex.outcome.succeeded`.
pub const TYPE_PREFIX: &str = "dev.reflex.outcome.";

/// One outcome record as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeMessage {
    /// Always `1.0`.
    pub specversion: String,
    /// `<idempotency key>.<status>`.
    pub id: String,
    /// Always [`SOURCE`].
    pub source: String,
    /// [`TYPE_PREFIX`] + status.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the outcome became final.
    pub time: DateTime<Utc>,
    /// The target, else the rule, else the event id (also the Kafka key).
    pub subject: String,
    /// Always `application/json`.
    pub datacontenttype: String,
    /// The outcome itself.
    pub data: OutcomeData,
}

/// The `data` of an outcome record: the audit row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeData {
    /// The event that triggered the action.
    pub event_id: String,
    /// The rule that planned it.
    pub rule: String,
    /// Action kind (`none` for `no_match` and rule-level failures).
    pub action_kind: String,
    /// The row's idempotency key.
    pub idempotency_key: String,
    /// Final status (see [`crate::store::OutcomeStatus`]).
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// When the (last) attempt started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// `finished_at - started_at` in milliseconds.
    pub duration_ms: Option<i64>,
    /// What was acted on.
    pub target: Option<String>,
    /// Why it failed or was not executed.
    pub error: Option<String>,
    /// Rendered parameters, source position, executor details.
    pub details: serde_json::Value,
}

impl OutcomeMessage {
    /// The record for a final row of the audit store.
    pub fn from_row(row: &OutcomeRecord) -> Self {
        let time = row.finished_at.unwrap_or(row.started_at);
        // Outcomes without a rule (`no_match`) are keyed by their event.
        let subject = match (&row.target, row.rule.is_empty()) {
            (Some(target), _) => target.clone(),
            (None, false) => row.rule.clone(),
            (None, true) => row.event_id.clone(),
        };
        OutcomeMessage {
            specversion: crate::event::cloudevents::SPEC_VERSION.to_owned(),
            id: format!("{}.{}", row.idempotency_key, row.status.as_str()),
            source: SOURCE.to_owned(),
            event_type: format!("{TYPE_PREFIX}{}", row.status.as_str()),
            time,
            subject,
            datacontenttype: "application/json".to_owned(),
            data: OutcomeData {
                event_id: row.event_id.clone(),
                rule: row.rule.clone(),
                action_kind: row.action_kind.clone(),
                idempotency_key: row.idempotency_key.clone(),
                status: row.status.as_str().to_owned(),
                attempts: row.attempts,
                started_at: row.started_at,
                finished_at: row.finished_at,
                duration_ms: row
                    .finished_at
                    .map(|end| (end - row.started_at).num_milliseconds()),
                target: row.target.clone(),
                error: row.error.clone(),
                details: row.details.clone(),
            },
        }
    }

    /// The Kafka key: the subject.
    pub fn key(&self) -> &str {
        &self.subject
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OutcomeStatus;
    use chrono::TimeZone;

    fn row(target: Option<&str>) -> OutcomeRecord {
        let start = Utc
            .with_ymd_and_hms(2026, 3, 4, 5, 6, 7)
            .single()
            .expect("valid time");
        OutcomeRecord {
            id: 7,
            event_id: "evt".to_owned(),
            rule: "restart-on-oom".to_owned(),
            action_kind: "restart".to_owned(),
            idempotency_key: "abc".to_owned(),
            status: OutcomeStatus::NotImplemented,
            attempts: 1,
            started_at: start,
            finished_at: Some(start + chrono::Duration::milliseconds(42)),
            target: target.map(str::to_owned),
            error: Some("later".to_owned()),
            details: serde_json::json!({ "params": {} }),
            published_at: None,
        }
    }

    #[test]
    fn an_outcome_record_is_a_cloudevent_keyed_by_its_target() {
        let message = OutcomeMessage::from_row(&row(Some("deployment/shop/checkout")));
        let json = serde_json::to_value(&message).expect("serializes");
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["type"], "dev.reflex.outcome.not_implemented");
        assert_eq!(json["id"], "abc.not_implemented");
        assert_eq!(json["source"], "reflex");
        assert_eq!(json["data"]["duration_ms"], 42);
        assert_eq!(message.key(), "deployment/shop/checkout");
    }

    #[test]
    fn an_outcome_without_target_is_keyed_by_its_rule() {
        let message = OutcomeMessage::from_row(&row(None));
        assert_eq!(message.key(), "restart-on-oom");
    }
}
