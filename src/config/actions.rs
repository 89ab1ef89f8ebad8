//! The `actions:` section: which executors run, and the guardrail settings (namespace and
//! cluster-scoped policies, Kafka topics, circuit breaker, concurrency, timeout) that
//! `crate::actions::guard` enforces. The dependency runs one way: the guardrails read these
//! types; this module knows nothing of them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Problems, duration_text};

/// Which executors carry out planned actions. A kind whose executor is off is recorded
/// `not_implemented` and nothing is done (rules can be validated and tested before any of this
/// is switched on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ActionsConfig {
    /// Carry out Kubernetes actions through the client configured under `kubernetes`, with the
    /// permissions of its identity (`reflex rbac` prints what the rules need). Default `true`.
    pub kubernetes: bool,
    /// Call webhooks. Default `true`.
    pub webhook: bool,
    /// Hosts webhooks may reach: `hooks.example.com` or `*.example.com`, checked on every call
    /// (also for URLs read from a secret). Default empty: any host written literally in a rule
    /// or held by a URL secret (templates can never choose the host).
    pub webhook_allowed_hosts: Vec<String>,
    /// Publish Kafka actions to the cluster under `kafka`. Default `true`.
    pub kafka: bool,
    /// Topics `kafka` actions may publish to: names or `*` globs (`notify.*`). Default empty:
    /// any topic whose name (or a literal prefix of it) the rule writes. Reflex's own topics
    /// (consumed, outcomes, dead-letter, circuit announcements) are refused unless listed here
    /// by their literal name.
    pub kafka_allowed_topics: Vec<String>,
    /// Record every action as `skipped_dry_run` (with its rendered parameters) and execute
    /// none, whatever the rules say. Default `false`.
    pub dry_run: bool,
    /// Reflex's own namespace, refused to actions unless `namespaces.allow` names it
    /// literally. Default: the `POD_NAMESPACE` environment variable (set it from the downward
    /// API), else none.
    pub own_namespace: Option<String>,
    /// Namespaces Kubernetes actions may and may not touch (globs). Rules can narrow this with
    /// their own `guard.namespaces`, never widen it.
    pub namespaces: NamespaceLists,
    /// Cluster-scoped kinds (Node, Namespace, ClusterRole...) Kubernetes actions may act on;
    /// none by default.
    pub cluster_scoped: ClusterScopedLists,
    /// Circuit breaker: how many executions per rule and per target a window allows.
    pub circuit: CircuitConfig,
    /// Actions executing at the same time in this process; more wait (up to `timeout`) for a
    /// free slot. Default 16.
    pub max_concurrent: usize,
    /// Longest one action may take, waiting for its slot and its target's lock included; it is
    /// then recorded `failed`. Default `45s`. Keep it below `pipeline.claim_lease_secs`, so a
    /// claim is never presumed dead while its action still runs.
    #[serde(with = "duration_text")]
    #[schemars(with = "String")]
    pub timeout: Duration,
}

impl Default for ActionsConfig {
    fn default() -> Self {
        Self {
            kubernetes: true,
            webhook: true,
            webhook_allowed_hosts: Vec::new(),
            kafka: true,
            kafka_allowed_topics: Vec::new(),
            dry_run: false,
            own_namespace: None,
            namespaces: Default::default(),
            cluster_scoped: Default::default(),
            circuit: Default::default(),
            max_concurrent: 16,
            timeout: Duration::from_secs(45),
        }
    }
}

/// Most actions a process may run at once. Each holds an executor's connection (and, on
/// PostgreSQL, a lock connection); a few hundred already exceeds what an API server or a
/// database comfortably serves to one client.
const MAX_CONCURRENT: usize = 256;

/// Allow and deny lists of namespace globs (`*` matches any run of characters).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NamespaceLists {
    /// When not empty, only namespaces matching one of these may be acted on. Naming
    /// `kube-system` or Reflex's own namespace here literally (a glob does not count) is the
    /// only way to let actions reach them. Default: empty (every namespace).
    pub allow: Vec<String>,
    /// Namespaces never acted on, whatever `allow` says. Default: empty (`kube-system` and
    /// Reflex's own namespace are refused anyway unless allowed).
    pub deny: Vec<String>,
}

/// Cluster-scoped kinds Kubernetes actions may act on (`actions.cluster_scoped`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterScopedLists {
    /// Kinds of cluster-scoped objects actions may act on: `Node` (that kind in any API group)
    /// or `group/Kind` (`rbac.authorization.k8s.io/ClusterRole`, that group only). `cordon` and
    /// `uncordon` need `Node`. A `Namespace` listed here is still subject to
    /// `actions.namespaces` under its own name. Default: empty — an action on any
    /// cluster-scoped object (Node, Namespace, CustomResourceDefinition, ClusterRole,
    /// ClusterRoleBinding, PersistentVolume, StorageClass...) is refused.
    pub allow: Vec<String>,
}

/// The circuit breaker: at most `max_per_rule` executions of a rule, and `max_per_target`
/// executions of a rule on one object, within `window`. Past that, the circuit opens for
/// `cool_down`: the rule's actions (or its actions on that object) are recorded
/// `suppressed_by_guard`, and one `dev.reflex.circuit.opened` event is published.
/// Executions are counted in the audit store, so the limits hold across restarts and across
/// replicas sharing PostgreSQL. These limits apply to Kubernetes actions; webhook and Kafka
/// actions only when their rule sets `guard.max_per_rule` / `max_per_target`; `log` never.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CircuitConfig {
    /// Executions of one rule allowed per window; `null` for no limit. Default 30.
    pub max_per_rule: Option<u32>,
    /// Executions of one rule on one object allowed per window; `null` for no limit.
    /// Default 5: a remediation repeated more often than that is a loop, not a fix.
    pub max_per_target: Option<u32>,
    /// The sliding window executions are counted in. Default `10m`.
    #[serde(with = "duration_text")]
    #[schemars(with = "String")]
    pub window: Duration,
    /// How long an open circuit stays open; executions resume after it, counted afresh.
    /// Default `10m`.
    #[serde(with = "duration_text")]
    #[schemars(with = "String")]
    pub cool_down: Duration,
    /// Topic of the `dev.reflex.circuit.opened` / `.closed` announcements. Default: the
    /// outcomes topic.
    pub announce_topic: Option<String>,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        Self {
            max_per_rule: Some(30),
            max_per_target: Some(5),
            window: Duration::from_secs(600),
            cool_down: Duration::from_secs(600),
            announce_topic: None,
        }
    }
}

impl ActionsConfig {
    /// Checks the concurrency bound, the timeout, the circuit limits and the policy lists.
    pub(crate) fn validate(&self, problems: &mut Problems) {
        if !(1..=MAX_CONCURRENT).contains(&self.max_concurrent) {
            problems.add(
                "actions.max_concurrent",
                format!("must be between 1 and {MAX_CONCURRENT}"),
            );
        }
        if self.timeout.is_zero() {
            problems.add("actions.timeout", "must be above zero");
        }
        let circuit = &self.circuit;
        if circuit.max_per_rule == Some(0) || circuit.max_per_target == Some(0) {
            problems.add(
                "actions.circuit",
                "max_per_rule and max_per_target must be at least 1 (write `null` for no limit; \
                 to stop every action use actions.dry_run)",
            );
        }
        if circuit.window.is_zero() || circuit.cool_down.is_zero() {
            problems.add("actions.circuit", "window and cool_down must be above zero");
        }
        if circuit
            .announce_topic
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            problems.add(
                "actions.circuit.announce_topic",
                "is empty; leave it out to announce on the outcomes topic",
            );
        }
        let lists = &self.namespaces;
        if lists.allow.iter().chain(&lists.deny).any(|g| g.is_empty()) {
            problems.add(
                "actions.namespaces",
                "contains an empty pattern; write a namespace or a `*` glob",
            );
        }
        for entry in self
            .cluster_scoped
            .allow
            .iter()
            .filter(|e| !is_kind_entry(e))
        {
            problems.add(
                "actions.cluster_scoped.allow",
                format!(
                    "`{entry}` is not a kind; write one kind per entry, e.g. `Node` or \
                     `rbac.authorization.k8s.io/ClusterRole` (there is no wildcard: each \
                     cluster-scoped kind is allowed on purpose)"
                ),
            );
        }
        for entry in self
            .kafka_allowed_topics
            .iter()
            .filter(|t| !is_topic_glob(t))
        {
            problems.add(
                "actions.kafka_allowed_topics",
                format!(
                    "`{entry}` is not a topic name or glob (letters, digits, `.`, `_`, `-` and `*`)"
                ),
            );
        }
    }
}

/// `Kind` or `group/Kind`: an UpperCamelCase kind, optionally after a DNS-subdomain group.
fn is_kind_entry(entry: &str) -> bool {
    let (group_ok, kind) = match entry.split_once('/') {
        Some((group, kind)) => (is_dns_subdomain(group), kind),
        None => (true, entry),
    };
    let mut chars = kind.chars();
    let kind_ok = chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_alphanumeric());
    group_ok && kind_ok
}

fn is_dns_subdomain(group: &str) -> bool {
    group.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    })
}

/// A Kafka topic name, possibly with `*` wildcards.
fn is_topic_glob(entry: &str) -> bool {
    !entry.is_empty()
        && entry
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'*'))
}

#[cfg(test)]
mod tests {
    use crate::config::parse;

    #[test]
    fn guard_settings_have_protective_defaults() {
        let config = parse("").expect("defaults");
        let actions = &config.actions;
        assert!(!actions.dry_run);
        assert_eq!(actions.circuit.max_per_rule, Some(30));
        assert_eq!(actions.circuit.max_per_target, Some(5));
        assert_eq!(actions.circuit.window.as_secs(), 600);
        assert_eq!(actions.max_concurrent, 16);
        assert!(actions.timeout.as_secs() < config.pipeline.claim_lease_secs);
        assert!(config.pipeline.record_throttled);
    }

    #[test]
    fn guard_settings_parse_with_rule_style_durations() {
        let config = parse(
            "actions:\n  dry_run: true\n  own_namespace: reflex\n  namespaces:\n    \
             allow: ['team-*']\n    deny: ['team-prod']\n  circuit:\n    max_per_rule: 3\n    \
             max_per_target: null\n    window: 1m\n    cool_down: 30s\n  timeout: 10s\n",
        )
        .expect("valid");
        let actions = &config.actions;
        assert!(actions.dry_run);
        assert_eq!(actions.own_namespace.as_deref(), Some("reflex"));
        assert_eq!(actions.namespaces.allow, vec!["team-*".to_owned()]);
        assert_eq!(actions.circuit.max_per_rule, Some(3));
        assert_eq!(actions.circuit.max_per_target, None);
        assert_eq!(actions.circuit.cool_down.as_secs(), 30);
        assert_eq!(actions.timeout.as_secs(), 10);
    }

    #[test]
    fn cluster_scoped_kinds_and_kafka_topics_are_checked_at_load() {
        let config = parse(
            "actions:\n  cluster_scoped:\n    allow: [Node, rbac.authorization.k8s.io/ClusterRole]\n  \
             kafka_allowed_topics: ['notify.*', reflex.events]\n",
        )
        .expect("valid");
        assert_eq!(config.actions.cluster_scoped.allow.len(), 2);
        assert_eq!(config.actions.kafka_allowed_topics.len(), 2);
        for bad in ["'*'", "node", "/Node", "Bad_Group/Node"] {
            let err = parse(&format!(
                "actions:\n  cluster_scoped:\n    allow: [{bad}]\n"
            ))
            .expect_err(bad);
            assert!(
                err.to_string().contains("actions.cluster_scoped.allow"),
                "{err}"
            );
        }
        let err = parse("actions:\n  kafka_allowed_topics: ['a b']\n").expect_err("space");
        assert!(
            err.to_string().contains("actions.kafka_allowed_topics"),
            "{err}"
        );
    }

    #[test]
    fn a_zero_limit_is_rejected_pointing_at_null_and_dry_run() {
        let err = parse("actions:\n  circuit:\n    max_per_target: 0\n").expect_err("zero");
        assert!(err.to_string().contains("`null` for no limit"), "{err}");
        let err = parse("actions:\n  max_concurrent: 0\n").expect_err("zero slots");
        assert!(err.to_string().contains("actions.max_concurrent"), "{err}");
    }
}
