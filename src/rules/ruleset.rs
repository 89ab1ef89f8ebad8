//! The compiled, immutable rule set the engine runs, with its index: rules are bucketed by an
//! equality their condition requires (or by exact topic), so the cost of an event grows with the
//! rules that could match it, not with the size of the rule set.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::Value;

use super::action::CompiledAction;
use super::condition::{Condition, Path, equality_key};
use super::model::AlertStatusFilter;
use super::state::Behaviour;
use crate::event::{Event, Format};

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// Human description.
    pub description: String,
    /// The file it came from.
    pub file: PathBuf,
    /// The line of its `name:`.
    pub line: u64,
    /// Disabled rules are kept (for listing) but never evaluated.
    pub enabled: bool,
    /// Planned actions are marked dry-run.
    pub dry_run: bool,
    /// Shadow rules' planned actions are recorded `shadow` and never run.
    pub shadow: bool,
    /// Higher runs first.
    pub priority: i32,
    /// Firing stops lower rules for this event.
    pub stop: bool,
    /// Which events it looks at.
    pub selector: Selector,
    /// `when` AND `condition`; `None` matches every selected event.
    pub condition: Option<Condition>,
    /// Throttle / threshold / correlation / absence, or stateless.
    pub behaviour: Behaviour,
    /// What it does, in order.
    pub actions: Vec<CompiledAction>,
    /// Bound on its state keys.
    pub max_keys: usize,
    /// Its own guardrails (`guard:`), layered over the global ones by the pipeline.
    pub guard: RuleGuard,
    /// Its closed loop (verify, escalate, loop guard, undo); `None`: nothing to follow up.
    pub remediation: Option<super::remediation::Plan>,
}

/// Compiled per-rule guardrails; empty lists and `None` mean "as configured globally".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleGuard {
    /// Namespace globs the rule's actions are limited to (empty: no narrowing).
    pub allow_namespaces: Vec<Glob>,
    /// Namespace globs the rule's actions never touch.
    pub deny_namespaces: Vec<Glob>,
    /// Executions of the rule per window.
    pub max_per_rule: Option<u32>,
    /// Executions of the rule on one object per window.
    pub max_per_target: Option<u32>,
    /// The counting window.
    pub window: Option<std::time::Duration>,
    /// How long an open circuit stays open.
    pub cool_down: Option<std::time::Duration>,
}

/// Compiled `select:` block.
#[derive(Debug, Clone)]
pub struct Selector {
    /// Topic patterns; empty = all.
    pub topics: Vec<Glob>,
    /// Formats; empty = all.
    pub formats: Vec<Format>,
    /// Event type patterns; empty = all.
    pub types: Vec<Glob>,
    /// Alertmanager statuses that fire the rule.
    pub alert_status: AlertStatusFilter,
}

/// Which part of the selector turned an event away (for explanations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorMiss {
    /// The topic is not listed.
    Topic,
    /// The format is not listed.
    Format,
    /// The event type is not listed (or the event has none).
    Type,
    /// The alert's status is filtered out (e.g. `resolved` for a firing-only rule).
    AlertStatus,
}

impl Selector {
    /// Whether the event passes, and if not, why.
    pub fn check(&self, event: &Event) -> Result<(), SelectorMiss> {
        if !self.topics.is_empty() && !self.topics.iter().any(|g| g.matches(&event.meta.topic)) {
            return Err(SelectorMiss::Topic);
        }
        if !self.formats.is_empty() && !self.formats.contains(&event.meta.format) {
            return Err(SelectorMiss::Format);
        }
        if !self.types.is_empty() {
            let ty = event.meta.event_type.as_deref().unwrap_or_default();
            if !self.types.iter().any(|g| g.matches(ty)) {
                return Err(SelectorMiss::Type);
            }
        }
        if let Some(status) = event.alert_status() {
            let ok = match self.alert_status {
                AlertStatusFilter::Any => true,
                AlertStatusFilter::Firing => status == "firing",
                AlertStatusFilter::Resolved => status == "resolved",
            };
            if !ok {
                return Err(SelectorMiss::AlertStatus);
            }
        }
        Ok(())
    }
}

/// A name pattern where `*` matches any run of characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    parts: Option<Vec<String>>,
}

impl Glob {
    /// Compiles a pattern; without `*` it is an exact name.
    pub fn new(text: &str) -> Self {
        let parts = text
            .contains('*')
            .then(|| text.split('*').map(str::to_owned).collect());
        Self {
            text: text.to_owned(),
            parts,
        }
    }

    /// The exact name, when the pattern has no wildcard.
    pub fn exact(&self) -> Option<&str> {
        self.parts.is_none().then_some(self.text.as_str())
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        let Some(parts) = &self.parts else {
            return self.text == name;
        };
        let (first, rest) = parts.split_first().expect("split yields at least one part");
        let Some(mut remaining) = name.strip_prefix(first.as_str()) else {
            return false;
        };
        let (last, middle) = rest.split_last().expect("a pattern with `*` has two parts");
        for part in middle {
            match remaining.find(part.as_str()) {
                Some(pos) => remaining = &remaining[pos + part.len()..],
                None => return false,
            }
        }
        remaining.len() >= last.len() && remaining.ends_with(last.as_str())
    }
}

/// Where an index bucket's value is read from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum IndexKey {
    /// `meta.topic`, read without allocation.
    Topic,
    /// `meta.type`.
    Type,
    /// Any other single-valued path.
    Path(Path),
}

/// Rules that require `key` to have one of some values.
#[derive(Debug, Default, Clone)]
struct Bucket {
    /// String values → rule positions.
    strings: HashMap<String, Vec<u32>>,
    /// Other scalars (numbers, booleans, null), by canonical text.
    others: HashMap<String, Vec<u32>>,
}

/// The whole compiled rule set.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    by_name: HashMap<String, u32>,
    keys: Vec<(IndexKey, Bucket)>,
    unindexed: Vec<u32>,
    /// Some rule is disabled (the engine then checks each rule it visits by name).
    any_disabled: bool,
}

/// Index key of a non-string scalar; equal exactly when the condition's `equals` says so
/// (so `1` and `1.0` share a bucket).
fn canonical(value: &Value) -> Option<String> {
    match value {
        Value::Number(_) | Value::Bool(_) | Value::Null => Some(equality_key(value)),
        _ => None,
    }
}

impl RuleSet {
    /// Orders rules (priority high → low, then name) and builds the index.
    pub fn new(mut rules: Vec<Rule>) -> Self {
        rules.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then_with(|| a.name.cmp(&b.name))
        });
        let mut keys: Vec<(IndexKey, Bucket)> = Vec::new();
        let mut unindexed = Vec::new();
        for (pos, rule) in rules.iter().enumerate() {
            let pos = pos as u32;
            if !rule.enabled {
                continue;
            }
            match index_entry(rule) {
                Some((key, values)) => {
                    let slot = match keys.iter().position(|(k, _)| *k == key) {
                        Some(i) => i,
                        None => {
                            keys.push((key, Bucket::default()));
                            keys.len() - 1
                        }
                    };
                    let bucket = &mut keys[slot].1;
                    for value in values {
                        let list = match &value {
                            Value::String(s) => bucket.strings.entry(s.clone()).or_default(),
                            other => match canonical(other) {
                                Some(c) => bucket.others.entry(c).or_default(),
                                None => continue,
                            },
                        };
                        if list.last() != Some(&pos) {
                            list.push(pos);
                        }
                    }
                }
                None => unindexed.push(pos),
            }
        }
        let by_name = rules
            .iter()
            .enumerate()
            .map(|(pos, r)| (r.name.clone(), pos as u32))
            .collect();
        Self {
            any_disabled: rules.iter().any(|r| !r.enabled),
            rules,
            by_name,
            keys,
            unindexed,
        }
    }

    /// Whether the named rule exists and is enabled.
    pub fn is_enabled(&self, name: &str) -> bool {
        if self.any_disabled {
            self.get(name).is_some_and(|r| r.enabled)
        } else {
            self.by_name.contains_key(name)
        }
    }

    /// All rules, in evaluation order (including disabled ones).
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// A rule by name.
    pub fn get(&self, name: &str) -> Option<&Rule> {
        self.by_name.get(name).map(|&pos| &self.rules[pos as usize])
    }

    /// Positions of the enabled rules that could match `event`, in evaluation order. Rules not
    /// listed cannot match: an equality their condition requires does not hold.
    pub fn candidates(&self, event: &Event, out: &mut Vec<u32>) {
        out.clear();
        out.extend_from_slice(&self.unindexed);
        for (key, bucket) in &self.keys {
            let found = match key {
                IndexKey::Topic => bucket.strings.get(event.meta.topic.as_str()),
                IndexKey::Type => event
                    .meta
                    .event_type
                    .as_deref()
                    .and_then(|t| bucket.strings.get(t)),
                IndexKey::Path(path) => match path.resolve_one(event) {
                    Some(value) => match value.as_ref() {
                        Value::String(s) => bucket.strings.get(s.as_str()),
                        other => canonical(other).and_then(|c| bucket.others.get(&c)),
                    },
                    None => None,
                },
            };
            if let Some(list) = found {
                out.extend_from_slice(list);
            }
        }
        if self.keys.len() > 1 || (!self.keys.is_empty() && !self.unindexed.is_empty()) {
            out.sort_unstable();
            out.dedup();
        }
    }
}

/// Picks how to index a rule: an equality its condition requires (most selective), else its exact
/// event types, else its exact topics. A rule with wildcard patterns everywhere stays unindexed.
fn index_entry(rule: &Rule) -> Option<(IndexKey, Vec<Value>)> {
    // An absence rule must also see the events that disarm it, and those need not satisfy its
    // condition (which describes the arming event): only its selector may index it.
    let condition = match rule.behaviour {
        Behaviour::Absence(_) => None,
        _ => rule.condition.as_ref(),
    };
    if let Some(condition) = condition {
        let mut facts = condition.required_equalities();
        // Prefer payload facts: metadata like the topic is shared by many rules.
        facts.sort_by_key(|(path, _)| path.as_str().starts_with('@'));
        if let Some((path, values)) = facts.into_iter().next() {
            let key = match path.as_str() {
                "@topic" => IndexKey::Topic,
                "@type" => IndexKey::Type,
                _ => IndexKey::Path(path),
            };
            return Some((key, values));
        }
    }
    let exact = |globs: &[Glob]| -> Option<Vec<Value>> {
        if globs.is_empty() {
            return None;
        }
        globs
            .iter()
            .map(|g| g.exact().map(|s| Value::String(s.to_owned())))
            .collect()
    };
    if let Some(types) = exact(&rule.selector.types) {
        return Some((IndexKey::Type, types));
    }
    exact(&rule.selector.topics).map(|topics| (IndexKey::Topic, topics))
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn glob_without_star_is_exact() {
        let g = Glob::new("alerts");
        assert!(g.matches("alerts"));
        assert!(!g.matches("alerts2"));
        assert_eq!(g.exact(), Some("alerts"));
    }

    #[test]
    fn glob_star_matches_any_run() {
        let g = Glob::new("alerts.*.prod");
        assert!(g.matches("alerts.eu.prod"));
        assert!(g.matches("alerts..prod"));
        assert!(!g.matches("alerts.eu.dev"));
        assert!(Glob::new("*").matches(""));
        assert!(Glob::new("a*a").matches("aa"));
        assert!(!Glob::new("a*a").matches("a"));
        assert!(Glob::new("ci.*").matches("ci.build.succeeded"));
    }
}
