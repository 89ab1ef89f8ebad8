//! Prometheus metrics of the whole process: one registry, typed families, bounded labels.
//! Reflex's own carry the `reflex_` prefix; [`process`] adds the standard `process_*` metrics
//! (CPU, memory, file descriptors, start time) read from `/proc` at each scrape.
//!
//! Every stage records into the process-wide [`global()`] instance, so the consumer, the
//! pipeline, the executors and the reload watcher need no handle threaded through them; the
//! HTTP server renders it on `/metrics`. Unit tests that need exact values build their own
//! [`Metrics::default()`] (the global one is shared by every test in a binary).
//!
//! Label values stay bounded: topics and partitions come from the configuration, rules from
//! the loaded rule set, kinds and statuses are closed sets. Targets (object names) and event ids
//! are never labels — they are unbounded; they belong in outcomes, not in metrics.

mod process;

use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::Serialize;

/// The dependencies `/readyz` checks. A closed set, so the metric label values are bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dependency {
    /// The Kafka cluster.
    Kafka,
    /// The Kubernetes API server.
    Kubernetes,
    /// The SQL audit store.
    Store,
    /// Reflex's own Kafka consumer: running, in its group, no partition stuck retrying.
    Consumer,
    /// The rule set: loaded (a failed reload keeps the previous set, which stays ready).
    Rules,
}

impl Dependency {
    /// The name used in JSON and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kafka => "kafka",
            Self::Kubernetes => "kubernetes",
            Self::Store => "store",
            Self::Consumer => "consumer",
            Self::Rules => "rules",
        }
    }
}

// Written by hand so the label value matches the JSON name (the derive uses the variant name).
impl EncodeLabelValue for Dependency {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        use std::fmt::Write as _;
        encoder.write_str(self.as_str())
    }
}

/// `{dependency}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct DependencyLabels {
    /// Which dependency.
    pub dependency: Dependency,
}

/// `{topic}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TopicLabels {
    /// Source topic.
    pub topic: String,
}

/// `{topic, format}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct DecodedLabels {
    /// Source topic.
    pub topic: String,
    /// Decoded format (`json`, `cloudevents`, `alertmanager`, `kubernetes`, `falco`).
    pub format: String,
}

/// `{topic, reason}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct DeadLetterLabels {
    /// Source topic.
    pub topic: String,
    /// The `reflex-dlq-reason` code (a closed set).
    pub reason: String,
}

/// `{rule}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RuleLabels {
    /// Rule name.
    pub rule: String,
}

/// `{kind, status}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ActionLabels {
    /// Action kind (`restart`, `webhook`, ...).
    pub kind: String,
    /// Final status (`succeeded`, `failed`, `duplicate`, ...).
    pub status: String,
}

/// `{kind}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct KindLabels {
    /// Action kind.
    pub kind: String,
}

/// `{topic, partition}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PartitionLabels {
    /// Topic.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
}

/// `{result}` of a rule reload: `ok` or `failed`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `ok` or `failed`.
    pub result: String,
}

/// `{operation}` of a failed store call.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StoreLabels {
    /// What was attempted (`claim`, `finish`, ...; a closed set in the callers).
    pub operation: String,
}

/// `{endpoint, code}` of an ingest request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct IngestLabels {
    /// `alertmanager` or `events`.
    pub endpoint: String,
    /// HTTP status code answered.
    pub code: u16,
}

/// `{rule, result}` of a remediation step judged (`verified`, `ineffective`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RemediationLabels {
    /// The rule.
    pub rule: String,
    /// The result.
    pub result: String,
}

/// `{version, commit}` of `reflex_build_info`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct BuildLabels {
    /// The crate version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// The Git commit the binary was built from ([`crate::build_info`]), or `unknown`.
    pub commit: String,
}

impl BuildLabels {
    /// This binary's version and commit.
    pub fn current() -> Self {
        let build = crate::build_info::build_info();
        BuildLabels {
            version: build.version.to_owned(),
            commit: build.commit.to_owned(),
        }
    }
}

/// Buckets of the latency histograms, in seconds: 1 ms to ~16 s doubling. Covers a cheap
/// action (a few ms end to end) up to a slow webhook retried with backoff.
fn latency_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 15,
    ))
}

/// Every metric of the process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `reflex_dependency_ready{dependency}`: last readiness check result (1/0).
    pub ready: Family<DependencyLabels, Gauge>,
    /// `reflex_events_consumed_total{topic}`: records taken from Kafka.
    pub events_consumed: Family<TopicLabels, Counter>,
    /// `reflex_events_decoded_total{topic,format}`: events decoded (an Alertmanager payload
    /// gives one per alert).
    pub events_decoded: Family<DecodedLabels, Counter>,
    /// `reflex_events_dead_lettered_total{topic,reason}`: records sent to the dead-letter topic.
    pub events_dead_lettered: Family<DeadLetterLabels, Counter>,
    /// `reflex_rule_evaluations_total{rule}`: events a rule was evaluated against (selected).
    pub rule_evaluations: Family<RuleLabels, Counter>,
    /// `reflex_rule_matches_total{rule}`: evaluations that planned actions.
    pub rule_matches: Family<RuleLabels, Counter>,
    /// `reflex_actions_total{kind,status}`: outcomes recorded, by final status.
    pub actions: Family<ActionLabels, Counter>,
    /// `reflex_action_duration_seconds{kind}`: how long executing an action took.
    pub action_duration: Family<KindLabels, Histogram>,
    /// `reflex_event_latency_seconds`: from the record's Kafka timestamp to its outcomes being
    /// durable (end to end).
    pub event_latency: Histogram,
    /// `reflex_consumer_lag{topic,partition}`: high watermark minus the next offset to consume.
    pub consumer_lag: Family<PartitionLabels, Gauge>,
    /// `reflex_circuit_open{rule}`: 1 while a circuit breaker of the rule is open.
    pub circuit_open: Family<RuleLabels, Gauge>,
    /// `reflex_circuit_trips_total{rule}`: times a circuit breaker of the rule opened.
    pub circuit_trips: Family<RuleLabels, Counter>,
    /// `reflex_rule_reloads_total{result}`: rule reloads, `ok` or `failed`.
    pub rule_reloads: Family<ReloadLabels, Counter>,
    /// `reflex_rules_loaded`: rules in the running set.
    pub rules_loaded: Gauge,
    /// `reflex_rules_last_reload_successful`: 1 when the last (re)load of the rules directory
    /// was taken, 0 when it was refused (the previous rules keep running).
    pub rules_last_reload_successful: Gauge,
    /// `reflex_rules_last_reload_timestamp_seconds`: when that last (re)load was tried (Unix
    /// time), whatever its result.
    pub rules_last_reload_timestamp: Gauge<f64, AtomicU64>,
    /// `reflex_build_info{version,commit}`: always 1; the labels say what runs.
    pub build_info: Family<BuildLabels, Gauge>,
    /// `reflex_kubernetes_events_failed_total`: Kubernetes Events about actions that could not
    /// be published (the actions themselves stand).
    pub kubernetes_events_failed: Counter,
    /// `reflex_store_errors_total{operation}`: failed audit-store calls.
    pub store_errors: Family<StoreLabels, Counter>,
    /// `reflex_ingest_requests_total{endpoint,code}`: HTTP ingest requests answered.
    pub ingest_requests: Family<IngestLabels, Counter>,
    /// `reflex_state_lock_wait_seconds`: how long a record waited for the stateful keys it
    /// reaches (this process's lock, then the store's), i.e. behind other decisions on them.
    pub state_lock_wait: Histogram,
    /// `reflex_state_keys_evicted_total{rule}`: keys evicted because the rule held more than
    /// its `max_keys`.
    pub state_keys_evicted: Family<RuleLabels, Counter>,
    /// `reflex_remediation_results_total{rule,result}`: remediation steps judged, and
    /// remediations quarantined or undone.
    pub remediation_results: Family<RemediationLabels, Counter>,
    /// `reflex_verification_seconds{rule,result}`: from a step's actions to its verdict.
    pub verification: Family<RemediationLabels, Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("reflex");
        let ready = Family::<DependencyLabels, Gauge>::default();
        registry.register(
            "dependency_ready",
            "Whether the last readiness check of a dependency succeeded (1) or failed (0)",
            ready.clone(),
        );
        let events_consumed = Family::<TopicLabels, Counter>::default();
        registry.register(
            "events_consumed",
            "Records taken from Kafka",
            events_consumed.clone(),
        );
        let events_decoded = Family::<DecodedLabels, Counter>::default();
        registry.register(
            "events_decoded",
            "Events decoded from consumed records",
            events_decoded.clone(),
        );
        let events_dead_lettered = Family::<DeadLetterLabels, Counter>::default();
        registry.register(
            "events_dead_lettered",
            "Records written to the dead-letter topic, by reason",
            events_dead_lettered.clone(),
        );
        let rule_evaluations = Family::<RuleLabels, Counter>::default();
        registry.register(
            "rule_evaluations",
            "Events a rule was evaluated against",
            rule_evaluations.clone(),
        );
        let rule_matches = Family::<RuleLabels, Counter>::default();
        registry.register(
            "rule_matches",
            "Evaluations of a rule that planned actions",
            rule_matches.clone(),
        );
        let actions = Family::<ActionLabels, Counter>::default();
        registry.register(
            "actions",
            "Action outcomes recorded, by kind and final status",
            actions.clone(),
        );
        let action_duration =
            Family::<KindLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        registry.register_with_unit(
            "action_duration",
            "Time spent executing an action",
            prometheus_client::registry::Unit::Seconds,
            action_duration.clone(),
        );
        let event_latency = latency_histogram();
        registry.register_with_unit(
            "event_latency",
            "From a record's Kafka timestamp to its outcomes being durable",
            prometheus_client::registry::Unit::Seconds,
            event_latency.clone(),
        );
        let consumer_lag = Family::<PartitionLabels, Gauge>::default();
        registry.register(
            "consumer_lag",
            "High watermark minus the next offset to consume, per assigned partition",
            consumer_lag.clone(),
        );
        let circuit_open = Family::<RuleLabels, Gauge>::default();
        registry.register(
            "circuit_open",
            "1 while a circuit breaker of the rule is open",
            circuit_open.clone(),
        );
        let circuit_trips = Family::<RuleLabels, Counter>::default();
        registry.register(
            "circuit_trips",
            "Times a circuit breaker of the rule opened",
            circuit_trips.clone(),
        );
        let rule_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "rule_reloads",
            "Rule set reloads, ok or failed",
            rule_reloads.clone(),
        );
        let rules_loaded = Gauge::default();
        registry.register(
            "rules_loaded",
            "Rules in the running rule set",
            rules_loaded.clone(),
        );
        let rules_last_reload_successful = Gauge::default();
        registry.register(
            "rules_last_reload_successful",
            "Whether the last load of the rules directory was taken (1) or refused (0)",
            rules_last_reload_successful.clone(),
        );
        let rules_last_reload_timestamp = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "rules_last_reload_timestamp",
            "When the rules directory was last loaded or tried, as Unix time",
            prometheus_client::registry::Unit::Seconds,
            rules_last_reload_timestamp.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info.get_or_create(&BuildLabels::current()).set(1);
        registry.register(
            "build_info",
            "Always 1; the labels say which version and commit run",
            build_info.clone(),
        );
        let kubernetes_events_failed = Counter::default();
        registry.register(
            "kubernetes_events_failed",
            "Kubernetes Events about actions that could not be published",
            kubernetes_events_failed.clone(),
        );
        let store_errors = Family::<StoreLabels, Counter>::default();
        registry.register(
            "store_errors",
            "Failed audit-store calls",
            store_errors.clone(),
        );
        let ingest_requests = Family::<IngestLabels, Counter>::default();
        registry.register(
            "ingest_requests",
            "HTTP ingest requests answered, by endpoint and status code",
            ingest_requests.clone(),
        );
        let state_lock_wait = latency_histogram();
        registry.register_with_unit(
            "state_lock_wait",
            "Time a record waited for the stateful keys it reaches",
            prometheus_client::registry::Unit::Seconds,
            state_lock_wait.clone(),
        );
        let state_keys_evicted = Family::<RuleLabels, Counter>::default();
        registry.register(
            "state_keys_evicted",
            "Keys evicted because the rule held more than its max_keys",
            state_keys_evicted.clone(),
        );
        let remediation_results = Family::<RemediationLabels, Counter>::default();
        registry.register(
            "remediation_results",
            "Remediation steps judged (verified, ineffective), targets quarantined, changes undone",
            remediation_results.clone(),
        );
        // Verification takes seconds to hours: 1 s doubling to ~4.5 h.
        let verification = Family::<RemediationLabels, Histogram>::new_with_constructor(
            (|| {
                Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                    1.0, 2.0, 15,
                ))
            }) as fn() -> _,
        );
        registry.register_with_unit(
            "verification",
            "From the end of a remediation step's actions to its verdict",
            prometheus_client::registry::Unit::Seconds,
            verification.clone(),
        );
        // Unprefixed: the standard names every dashboard knows.
        root.register_collector(Box::new(process::ProcessCollector));
        Self {
            registry: root,
            ready,
            events_consumed,
            events_decoded,
            events_dead_lettered,
            rule_evaluations,
            rule_matches,
            actions,
            action_duration,
            event_latency,
            consumer_lag,
            circuit_open,
            circuit_trips,
            rule_reloads,
            rules_loaded,
            rules_last_reload_successful,
            rules_last_reload_timestamp,
            build_info,
            kubernetes_events_failed,
            store_errors,
            ingest_requests,
            state_lock_wait,
            state_keys_evicted,
            remediation_results,
            verification,
        }
    }
}

impl Metrics {
    /// Records the result of a readiness check.
    pub fn set_ready(&self, dependency: Dependency, ready: bool) {
        self.ready
            .get_or_create(&DependencyLabels { dependency })
            .set(i64::from(ready));
    }

    /// Counts one action outcome and, when it executed, its duration.
    pub fn action(&self, kind: &str, status: &str, took: Option<Duration>) {
        self.actions
            .get_or_create(&ActionLabels {
                kind: kind.to_owned(),
                status: status.to_owned(),
            })
            .inc();
        if let Some(took) = took {
            self.action_duration
                .get_or_create(&KindLabels {
                    kind: kind.to_owned(),
                })
                .observe(took.as_secs_f64());
        }
    }

    /// Counts a failed store call.
    pub fn store_error(&self, operation: &str) {
        self.store_errors
            .get_or_create(&StoreLabels {
                operation: operation.to_owned(),
            })
            .inc();
    }

    /// Records the result of a (re)load of the rules directory tried at `at`.
    pub fn rules_reloaded(&self, successful: bool, at: chrono::DateTime<chrono::Utc>) {
        self.rules_last_reload_successful.set(i64::from(successful));
        // Milliseconds are all the precision a reload time needs; f64 holds them exactly.
        let seconds = at.timestamp_millis() as f64 / 1000.0;
        self.rules_last_reload_timestamp.set(seconds);
    }

    /// Renders every metric as OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail; an error here would be a bug in the encoder.
        if let Err(err) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %err, "encoding metrics failed");
        }
        text
    }
}

static GLOBAL: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// The process-wide metrics, rendered by the HTTP server.
pub fn global() -> &'static Metrics {
    &GLOBAL
}

#[cfg(test)]
mod tests;
