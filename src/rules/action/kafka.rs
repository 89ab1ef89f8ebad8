//! `kafka`: produce a record (optionally a CloudEvent) to a topic.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::freeform::{Compiled, FreeForm};
use super::{Param, all, no_control_chars, opt_param, param_checked, reject};
use crate::rules::diagnostic::Diagnostics;
use crate::rules::model::SpannedString;
use crate::rules::template::{RenderContext, RenderError};

/// Longest Kafka topic name (a broker limit).
const MAX_TOPIC_LEN: usize = 249;

/// The CloudEvents Kafka binding's header prefix; the executor writes these headers itself.
const CE_PREFIX: &str = "ce_";

/// What may end the literal prefix of a templated topic: Kafka's name separators, so the
/// prefix names a family of topics (`notify.`) rather than any topic starting with some letters.
const PREFIX_SEPARATORS: [char; 3] = ['.', '_', '-'];

/// `kafka`: produce a record.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaSpec {
    /// Topic; must be a legal topic name (letters, digits, `.`, `_`, `-`). Written literally, or
    /// as a literal prefix ending in `.`, `_` or `-` followed by a template
    /// (`notify.{{ event.team | dns_label }}`): event data never chooses an arbitrary topic.
    /// The configuration can confine topics further (`actions.kafka_allowed_topics`), and
    /// Reflex's own topics are refused unless allowed there by name.
    #[schemars(with = "String")]
    pub topic: SpannedString,
    /// Record key (template), e.g. `"{{ match.key }}"` to keep a key's records in order.
    #[schemars(with = "Option<String>")]
    pub key: Option<SpannedString>,
    /// Record value as YAML, JSON-encoded; string leaves are templates (a leaf that is exactly
    /// `{{ expr }}` keeps its type, so `value: "{{ event }}"` forwards the payload).
    pub value: FreeForm,
    /// Record headers; values are templates.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub headers: BTreeMap<String, SpannedString>,
    /// Send as a CloudEvent (Kafka binary mode: `ce_` headers, the value as `data`).
    pub cloudevent: Option<CloudEventSpec>,
}

/// CloudEvent attributes of a produced record. `id` is the action's idempotency key and `time`
/// the planning time, both set by the executor.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudEventSpec {
    /// CloudEvents `type` (template), e.g. `io.reflex.remediation.requested`.
    #[serde(rename = "type")]
    #[schemars(with = "String")]
    pub event_type: SpannedString,
    /// CloudEvents `source` (template), e.g. `/reflex/{{ rule.name }}`.
    #[schemars(with = "String")]
    pub source: SpannedString,
    /// CloudEvents `subject` (template).
    #[schemars(with = "Option<String>")]
    pub subject: Option<SpannedString>,
}

/// A compiled kafka action.
#[derive(Debug, Clone)]
pub struct Kafka {
    topic: Param,
    key: Option<Param>,
    value: Compiled,
    headers: Vec<(String, Param)>,
    cloudevent: Option<(Param, Param, Option<Param>)>,
}

/// Rendered CloudEvent attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudEventParams {
    /// `type`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// `source`.
    pub source: String,
    /// `subject`.
    pub subject: Option<String>,
}

/// Rendered parameters of `kafka`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KafkaAction {
    /// Topic.
    pub topic: String,
    /// Record key.
    pub key: Option<String>,
    /// Record value (JSON-encoded by the executor).
    pub value: serde_json::Value,
    /// Record headers.
    pub headers: BTreeMap<String, String>,
    /// CloudEvent attributes, when sent as a CloudEvent.
    pub cloudevent: Option<CloudEventParams>,
}

fn check_topic(t: &str) -> Result<(), String> {
    let ok = !t.is_empty()
        && t.len() <= MAX_TOPIC_LEN
        && t != "."
        && t != ".."
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "is not a Kafka topic name (1 to {MAX_TOPIC_LEN} letters, digits, `.`, `_`, `-`)"
        ))
    }
}

/// Checks that a templated topic starts with a literal prefix ending in a separator, so event
/// data only picks a topic inside the family the rule names: never Reflex's own input or
/// outcomes topics (an automation loop) or any other topic.
fn check_topic_confined(src: &SpannedString, diags: &mut Diagnostics) -> bool {
    let text = &src.value;
    let Some(start) = ["{{", "{%", "{#"].iter().filter_map(|t| text.find(t)).min() else {
        return true;
    };
    let prefix = &text[..start];
    let legal = prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if legal && prefix.ends_with(PREFIX_SEPARATORS) {
        return true;
    }
    reject(
        diags,
        src.referenced,
        format!(
            "the kafka topic `{text}` is chosen by a template from its start `{prefix}`: event \
             data must not choose the topic (it could aim at Reflex's own input or outcomes \
             topics, a loop)"
        ),
        Some(
            "write the topic literally, or start it with a literal prefix ending in `.`, `_` \
             or `-`, e.g. `topic: \"notify.{{ event.team | dns_label }}\"`"
                .into(),
        ),
    )
}

fn check_not_empty(v: &str) -> Result<(), String> {
    if v.trim().is_empty() {
        Err("is empty".into())
    } else {
        no_control_chars(v)
    }
}

impl KafkaSpec {
    pub(crate) fn compile(&self, diags: &mut Diagnostics) -> Option<Kafka> {
        let mut ok = check_topic_confined(&self.topic, diags);
        let topic = param_checked("topic", &self.topic, check_topic, diags);
        let key = opt_param("key", self.key.as_ref(), diags);
        let value = Compiled::compile(&self.value, "value", diags);
        let mut headers = Vec::new();
        for (name, value) in &self.headers {
            if name.is_empty() || name.contains("{{") || name.contains("{%") {
                ok = reject(
                    diags,
                    value.referenced,
                    "a header name must be a non-empty literal (not a template)".into(),
                    None,
                );
            }
            if self.cloudevent.is_some() && name.starts_with(CE_PREFIX) {
                ok = reject(
                    diags,
                    value.referenced,
                    format!(
                        "header `{name}` collides with the CloudEvents headers the executor writes"
                    ),
                    Some("set CloudEvent attributes under `cloudevent:`".into()),
                );
            }
            match Param::compile(format!("headers.{name}"), value, diags) {
                Some(p) => headers.push((name.clone(), p)),
                None => ok = false,
            }
        }
        let cloudevent = match &self.cloudevent {
            None => Some(None),
            Some(ce) => {
                let t = param_checked("cloudevent.type", &ce.event_type, check_not_empty, diags);
                let s = param_checked("cloudevent.source", &ce.source, check_not_empty, diags);
                let sub = opt_param("cloudevent.subject", ce.subject.as_ref(), diags);
                match (t, s, sub) {
                    (Some(t), Some(s), Some(sub)) => Some(Some((t, s, sub))),
                    _ => None,
                }
            }
        };
        all(&[ok])?;
        Some(Kafka {
            topic: topic?,
            key: key?,
            value: value?,
            headers,
            cloudevent: cloudevent?,
        })
    }
}

impl Kafka {
    pub(crate) fn render(&self, ctx: &RenderContext) -> Result<KafkaAction, RenderError> {
        let mut headers = BTreeMap::new();
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.render(ctx)?);
        }
        let cloudevent = match &self.cloudevent {
            None => None,
            Some((t, s, sub)) => Some(CloudEventParams {
                event_type: t.render_checked(ctx, check_not_empty)?,
                source: s.render_checked(ctx, check_not_empty)?,
                subject: match sub {
                    Some(p) => Some(p.render(ctx)?),
                    None => None,
                },
            }),
        };
        Ok(KafkaAction {
            topic: self.topic.render_checked(ctx, check_topic)?,
            key: match &self.key {
                Some(k) => Some(k.render(ctx)?),
                None => None,
            },
            value: self.value.render(ctx)?,
            headers,
            cloudevent,
        })
    }
}
