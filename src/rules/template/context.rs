//! What templates see ([`RenderContext`]) and the conversions between JSON and minijinja values.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use minijinja::Value;
use minijinja::value::ValueKind;

use crate::event::{Event, Metadata};
use crate::rules::state::MatchInfo;

/// The variables of one render, built once per (event, firing) by the engine and shared by every
/// template rendered for it. Cheap to clone.
///
/// | variable | content |
/// |---|---|
/// | `event` | the event payload |
/// | `meta` | `id`, `topic`, `partition`, `offset`, `key`, `headers`, `timestamp` (RFC 3339), `format`, `type`, `source`, `attributes` |
/// | `rule` | `name` |
/// | `match` | action parameters only: `key`, `count`, `first_at` (RFC 3339 or none), `events.<step>` |
#[derive(Debug, Clone)]
pub struct RenderContext {
    event: Value,
    meta: Value,
    rule: Value,
    matched: Option<Value>,
    root: Value,
}

impl RenderContext {
    /// The context for `event` in rule `rule_name`; `matched` is what `match` shows (actions
    /// only; group-key templates get `None` and cannot reference `match`).
    pub fn new(event: &Event, rule_name: &str, matched: Option<&MatchInfo>) -> RenderContext {
        Self::build(
            json_to_value(&event.payload),
            meta_to_value(&event.meta),
            rule_to_value(rule_name),
            matched.map(match_to_value),
        )
    }

    /// The same event and rule with `match` set to `matched`, reusing the converted event (for
    /// an engine that renders the group key first and the actions after the rule fired).
    pub fn with_match(&self, matched: &MatchInfo) -> RenderContext {
        Self::build(
            self.event.clone(),
            self.meta.clone(),
            self.rule.clone(),
            Some(match_to_value(matched)),
        )
    }

    /// The same event (and `match`, if any) for another rule, reusing the converted event: an
    /// engine evaluating many rules against one event converts the payload once (converting is
    /// linear in the payload size; rendering a typical template is much cheaper).
    pub fn with_rule(&self, rule_name: &str) -> RenderContext {
        Self::build(
            self.event.clone(),
            self.meta.clone(),
            rule_to_value(rule_name),
            self.matched.clone(),
        )
    }

    pub(super) fn value(&self) -> &Value {
        &self.root
    }

    /// Values are reference-counted, so building the root map copies pointers, not the event.
    fn build(event: Value, meta: Value, rule: Value, matched: Option<Value>) -> RenderContext {
        let mut root = BTreeMap::from([
            ("event", event.clone()),
            ("meta", meta.clone()),
            ("rule", rule.clone()),
        ]);
        if let Some(m) = &matched {
            root.insert("match", m.clone());
        }
        RenderContext {
            event,
            meta,
            rule,
            matched,
            root: Value::from(root),
        }
    }
}

fn rule_to_value(name: &str) -> Value {
    Value::from(BTreeMap::from([("name", Value::from(name))]))
}

fn timestamp(t: &DateTime<Utc>) -> Value {
    Value::from(t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

fn meta_to_value(meta: &Metadata) -> Value {
    let headers: BTreeMap<&str, Value> = meta
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), Value::from(v.as_str())))
        .collect();
    let attributes: BTreeMap<&str, Value> = meta
        .attributes
        .iter()
        .map(|(k, v)| (k.as_str(), json_to_value(v)))
        .collect();
    Value::from(BTreeMap::from([
        ("id", Value::from(meta.id.as_str())),
        ("topic", Value::from(meta.topic.as_str())),
        ("partition", Value::from(meta.partition)),
        ("offset", Value::from(meta.offset)),
        ("key", Value::from(meta.key.as_deref())),
        ("headers", Value::from(headers)),
        ("timestamp", timestamp(&meta.timestamp)),
        ("format", Value::from(meta.format.as_str())),
        ("type", Value::from(meta.event_type.as_deref())),
        ("source", Value::from(meta.source.as_deref())),
        ("attributes", Value::from(attributes)),
    ]))
}

fn match_to_value(m: &MatchInfo) -> Value {
    let events: BTreeMap<&str, Value> = m
        .events
        .iter()
        .map(|(k, v)| (k.as_str(), json_to_value(v)))
        .collect();
    Value::from(BTreeMap::from([
        ("key", Value::from(m.key.as_deref())),
        ("count", Value::from(m.count)),
        (
            "first_at",
            m.first_at
                .as_ref()
                .map(timestamp)
                .unwrap_or(Value::from(())),
        ),
        ("events", Value::from(events)),
    ]))
}

/// Converts a JSON value into a template value (maps keep JSON's key order, which serde_json
/// sorts).
pub(crate) fn json_to_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => {
            Value::from(items.iter().map(json_to_value).collect::<Vec<_>>())
        }
        serde_json::Value::Object(map) => Value::from(
            map.iter()
                .map(|(k, v)| (k.as_str(), json_to_value(v)))
                .collect::<BTreeMap<&str, Value>>(),
        ),
    }
}

/// Why a template value could not become JSON.
#[derive(Debug)]
pub(crate) enum ToJsonError {
    /// Over the size budget.
    TooLarge,
    /// Not representable (undefined, NaN, an iteration error).
    Invalid(String),
}

/// Rough bytes charged per JSON node on top of string contents, so a huge list of small values
/// also exhausts the budget.
const NODE_COST: usize = 8;

fn charge(budget: &mut usize, cost: usize) -> Result<(), ToJsonError> {
    *budget = budget.checked_sub(cost).ok_or(ToJsonError::TooLarge)?;
    Ok(())
}

/// Converts a template value back into JSON, charging `budget` (bytes, roughly the size of the
/// serialized result) so the result stays bounded.
pub(crate) fn to_json(v: &Value, budget: &mut usize) -> Result<serde_json::Value, ToJsonError> {
    charge(budget, NODE_COST)?;
    let invalid = |e: minijinja::Error| ToJsonError::Invalid(e.to_string());
    Ok(match v.kind() {
        ValueKind::Undefined => {
            return Err(ToJsonError::Invalid("undefined value".to_owned()));
        }
        ValueKind::None => serde_json::Value::Null,
        ValueKind::Bool => serde_json::Value::Bool(v.is_true()),
        ValueKind::Number => {
            if let Ok(i) = i64::try_from(v.clone()) {
                serde_json::Value::from(i)
            } else if let Ok(u) = u64::try_from(v.clone()) {
                serde_json::Value::from(u)
            } else {
                let f = f64::try_from(v.clone()).map_err(invalid)?;
                serde_json::Number::from_f64(f)
                    .map(serde_json::Value::Number)
                    .ok_or_else(|| ToJsonError::Invalid(format!("{f} is not a JSON number")))?
            }
        }
        ValueKind::String => {
            let s = v.as_str().unwrap_or_default();
            charge(budget, s.len())?;
            serde_json::Value::String(s.to_owned())
        }
        ValueKind::Bytes => {
            let s = String::from_utf8_lossy(v.as_bytes().unwrap_or_default()).into_owned();
            charge(budget, s.len())?;
            serde_json::Value::String(s)
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let mut items = Vec::new();
            for item in v.try_iter().map_err(invalid)? {
                items.push(to_json(&item, budget)?);
            }
            serde_json::Value::Array(items)
        }
        ValueKind::Map => {
            let mut map = serde_json::Map::new();
            for key in v.try_iter().map_err(invalid)? {
                let item = v.get_item(&key).map_err(invalid)?;
                let key = match key.as_str() {
                    Some(s) => s.to_owned(),
                    None => key.to_string(),
                };
                charge(budget, key.len())?;
                map.insert(key, to_json(&item, budget)?);
            }
            serde_json::Value::Object(map)
        }
        ValueKind::Plain | ValueKind::Invalid | _ => {
            let s = v.to_string();
            charge(budget, s.len())?;
            serde_json::Value::String(s)
        }
    })
}
