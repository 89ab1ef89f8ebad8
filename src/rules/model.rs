//! The rule file format exactly as written in YAML. Nothing here is compiled or checked beyond
//! its shape; [`super::load`] turns these into a [`super::RuleSet`].
//!
//! Fields whose content can be wrong in ways serde cannot see (paths, regexes, templates,
//! expressions, names) are [`Spanned`] so diagnostics can point at `file:line:column`.

use schemars::JsonSchema;
use serde::Deserialize;
pub use serde_saphyr::Spanned;

use crate::event::Format;

/// A located string: the value plus where it was written.
pub type SpannedString = Spanned<String>;

/// One rules file: a list of rules under `rules:`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// The rules defined in this file. Names must be unique across the whole rules directory.
    #[schemars(with = "Vec<Rule>")]
    pub rules: Vec<Rule>,
}

/// One rule: which events it looks at, when it matches, what state it keeps and what it does.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique name (letters, digits, `-`, `_`, `.`); appears in outcomes, metrics and idempotency keys.
    #[schemars(with = "String")]
    pub name: SpannedString,
    /// What the rule is for, for the humans reading outcomes and `reflex replay --explain`.
    #[serde(default)]
    pub description: String,
    /// A disabled rule is loaded and validated but never evaluated.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Plan actions but mark them dry-run: executors record what they would do and change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// `live` (default) or `shadow`: a shadow rule is evaluated on the live stream like any
    /// other, and its planned actions are recorded `shadow` (store, outcomes topic, metrics),
    /// never claimed, guarded or executed. Promoting it is deleting this line.
    #[serde(default)]
    pub mode: RuleMode,
    /// Evaluation order: higher first; equal priorities run in name order.
    #[serde(default)]
    pub priority: i32,
    /// When this rule fires, rules after it (lower priority) are not evaluated for this event.
    #[serde(default)]
    pub stop: bool,
    /// Which events the rule applies to (topics, formats, types). Empty means every event.
    #[serde(default, rename = "select")]
    pub selector: Selector,
    /// One-line condition expression, e.g. `labels.severity == "critical" and value > 0.9`.
    /// Combined with `condition` by AND when both are given.
    #[schemars(with = "Option<String>")]
    pub when: Option<SpannedString>,
    /// Structured condition tree (`all` / `any` / `not` / leaf predicates).
    pub condition: Option<Condition>,
    /// Fire at most once per window per key (`once_within`), or once after a burst (`once_after`).
    pub throttle: Option<Throttle>,
    /// Fire when `count` matching events arrive within `within` for the same key.
    pub threshold: Option<Threshold>,
    /// Fire when each of several named conditions is met by events sharing a key within a window.
    pub correlate: Option<Correlate>,
    /// Fire when an event matching the rule is NOT followed by one matching `expect` within a window.
    pub absence: Option<Absence>,
    /// Bound on the number of distinct state keys this rule keeps (oldest evicted first, counted).
    #[serde(default)]
    pub max_keys: Option<usize>,
    /// What to do when the rule fires, in order. Each entry is a one-key map naming the kind,
    /// e.g. `- restart: {target: ...}` or `- webhook: {url: ...}`.
    #[serde(default)]
    pub actions: Vec<super::action::ActionSpec>,
    /// Guardrails of this rule's actions, layered over the global `actions` configuration:
    /// namespace lists that narrow it, and circuit-breaker limits that replace it.
    pub guard: Option<RuleGuard>,
    /// What "the actions worked" means (the alert resolves, a Kubernetes condition holds, the
    /// rule does not fire again) and how long to wait: the outcome becomes `verified` or
    /// `ineffective`.
    pub verify: Option<super::remediation::spec::VerifySpec>,
    /// Steps run in turn while the step before is `ineffective` or failed, e.g. a rollback and
    /// then a page.
    #[serde(default)]
    pub escalate: Vec<super::remediation::spec::StepSpec>,
    /// Stop acting on a target this rule keeps remediating (on by default for rules with a
    /// Kubernetes action).
    pub loop_guard: Option<super::remediation::spec::LoopGuardSpec>,
    /// Undo the reversible changes of `actions` when the alert resolves or after a while.
    pub undo: Option<super::remediation::spec::UndoSpec>,
}

/// Whether a rule's actions run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleMode {
    /// Its actions are carried out (subject to `dry_run` and the guardrails).
    #[default]
    Live,
    /// Its actions are only recorded, as `shadow` outcomes.
    Shadow,
}

/// Per-rule guardrails (`guard:`).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleGuard {
    /// Namespaces this rule's Kubernetes actions may (`allow`) and may not (`deny`) touch, as
    /// globs. Both the global lists and these must let an action through; naming
    /// `kube-system` (or Reflex's own namespace) literally in `allow` lets a rule act there.
    #[serde(default)]
    pub namespaces: GuardNamespaces,
    /// Executions of this rule allowed per window (replaces `actions.circuit.max_per_rule`).
    #[schemars(with = "Option<u32>")]
    pub max_per_rule: Option<Spanned<u32>>,
    /// Executions of this rule on one object allowed per window (replaces
    /// `actions.circuit.max_per_target`).
    #[schemars(with = "Option<u32>")]
    pub max_per_target: Option<Spanned<u32>>,
    /// Window the executions are counted in, e.g. `10m` (replaces `actions.circuit.window`).
    #[schemars(with = "Option<String>")]
    pub window: Option<SpannedString>,
    /// How long the circuit stays open once a limit is exceeded, e.g. `30m` (replaces
    /// `actions.circuit.cool_down`).
    #[schemars(with = "Option<String>")]
    pub cool_down: Option<SpannedString>,
}

/// Namespace allow and deny globs of one rule.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardNamespaces {
    /// Only namespaces matching one of these (`*` wildcard); empty means no narrowing.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub allow: Vec<SpannedString>,
    /// Namespaces never acted on by this rule (`*` wildcard).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub deny: Vec<SpannedString>,
}

fn default_true() -> bool {
    true
}

/// Which events a rule applies to. Every listed dimension must match; an empty list matches all.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// Kafka topic names; `*` is a wildcard (e.g. `alerts.*`).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub topics: Vec<SpannedString>,
    /// Event formats (`json`, `cloudevents`, `alertmanager`, `kubernetes_event`, `falco`).
    #[serde(default)]
    pub formats: Vec<Format>,
    /// Event types (`@type`: CloudEvents type, alert name, Kubernetes reason, Falco rule); `*` wildcard.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub types: Vec<SpannedString>,
    /// For Alertmanager events: which alert statuses fire this rule. Default `firing` only, so a
    /// `resolved` notification never triggers a remediation.
    #[serde(default)]
    pub alert_status: AlertStatusFilter,
}

/// Which Alertmanager statuses a rule reacts to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatusFilter {
    /// Only `firing` alerts (default).
    #[default]
    Firing,
    /// Only `resolved` alerts.
    Resolved,
    /// Both.
    Any,
}

/// A condition tree node: a combinator, an embedded expression, or one predicate on one path.
///
/// A leaf names a `path` and exactly one operator, e.g. `{path: labels.severity, in: [critical]}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// True when every child is true.
    pub all: Option<Vec<Condition>>,
    /// True when at least one child is true.
    pub any: Option<Vec<Condition>>,
    /// True when the child is false.
    pub not: Option<Box<Condition>>,
    /// A one-line expression, same language as the rule's `when`.
    #[schemars(with = "Option<String>")]
    pub expr: Option<SpannedString>,
    /// The operand: a dotted path (`labels.severity`), a JSONPath (`$.alerts[0].status`) into the
    /// event, or a metadata path (`@topic`, `@headers.name`, `@type`, `@timestamp`).
    #[schemars(with = "Option<String>")]
    pub path: Option<SpannedString>,
    /// Equal to this value (strings, numbers, booleans, null).
    pub equals: Option<serde_json::Value>,
    /// Not equal to this value (a missing path counts as not equal).
    pub not_equals: Option<serde_json::Value>,
    /// Equal to one of these values.
    #[serde(rename = "in")]
    pub is_in: Option<Vec<serde_json::Value>>,
    /// Equal to none of these values.
    pub not_in: Option<Vec<serde_json::Value>>,
    /// `true`: the path resolves to something; `false`: it does not.
    pub exists: Option<bool>,
    /// Regular expression (Rust `regex` syntax, linear time) the string value must match.
    #[schemars(with = "Option<String>")]
    pub matches: Option<SpannedString>,
    /// String contains this substring, or array contains this element.
    pub contains: Option<serde_json::Value>,
    /// String starts with this prefix.
    pub starts_with: Option<String>,
    /// String ends with this suffix.
    pub ends_with: Option<String>,
    /// Greater than (numbers, or RFC 3339 timestamps).
    pub gt: Option<serde_json::Value>,
    /// Greater than or equal (numbers, or RFC 3339 timestamps).
    pub gte: Option<serde_json::Value>,
    /// Less than (numbers, or RFC 3339 timestamps).
    pub lt: Option<serde_json::Value>,
    /// Less than or equal (numbers, or RFC 3339 timestamps).
    pub lte: Option<serde_json::Value>,
    /// The timestamp at `path` is more than this duration before the event time (`@timestamp`).
    #[schemars(with = "Option<String>")]
    pub older_than: Option<SpannedString>,
    /// The timestamp at `path` is at most this duration before the event time (`@timestamp`).
    #[schemars(with = "Option<String>")]
    pub newer_than: Option<SpannedString>,
    /// Compare strings case-insensitively (equals, in, contains, starts_with, ends_with).
    #[serde(default)]
    pub ignore_case: bool,
}

/// Throttling: at most one firing per window per key.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    /// Group key template, e.g. `{{ event.labels.namespace }}/{{ event.labels.deployment }}`.
    /// Default: one key for the whole rule.
    #[schemars(with = "Option<String>")]
    pub key: Option<SpannedString>,
    /// Fire on the first event, then suppress the key for this long (e.g. `10m`).
    #[schemars(with = "Option<String>")]
    pub once_within: Option<SpannedString>,
    /// Wait this long after the first event of a burst, then fire once for the whole burst.
    #[schemars(with = "Option<String>")]
    pub once_after: Option<SpannedString>,
}

/// Threshold: N matching events within a window.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// Group key template. Default: one key for the whole rule.
    #[schemars(with = "Option<String>")]
    pub key: Option<SpannedString>,
    /// How many matching events are needed (at least 1).
    pub count: u32,
    /// Sliding window the events must fall in, e.g. `5m`.
    #[schemars(with = "String")]
    pub within: SpannedString,
}

/// Correlation: several distinct conditions met by events with the same join key within a window.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Correlate {
    /// Join key template, e.g. `{{ event.involvedObject.name }}`.
    #[schemars(with = "String")]
    pub key: SpannedString,
    /// All of these must be seen (in any order) within the window.
    pub all: Vec<CorrelateStep>,
    /// Window measured from the first contributing event, e.g. `5m`.
    #[schemars(with = "String")]
    pub within: SpannedString,
}

/// One named part of a correlation or absence rule.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrelateStep {
    /// Name of this part; templates see the matching event as `match.events.<name>`.
    #[schemars(with = "String")]
    pub name: SpannedString,
    /// One-line expression the event must satisfy.
    #[schemars(with = "Option<String>")]
    pub when: Option<SpannedString>,
    /// Structured condition the event must satisfy.
    pub condition: Option<Condition>,
}

/// Absence: an event matching the rule is not followed by an `expect` event within `within`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Absence {
    /// Join key template shared by the triggering and the expected event.
    #[schemars(with = "String")]
    pub key: SpannedString,
    /// The event that must follow.
    pub expect: CorrelateStep,
    /// How long to wait for it, e.g. `10m`.
    #[schemars(with = "String")]
    pub within: SpannedString,
}
