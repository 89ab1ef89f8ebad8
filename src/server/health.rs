//! `/healthz`, `/readyz` and `/metrics`: the dependency checks behind readiness.
//!
//! Readiness prefers false positives (reporting a problem that does not matter) to false
//! negatives (reporting ready while an action would fail): the Kubernetes API is checked
//! whenever a loaded rule, enabled or in dry run, has a Kubernetes action, even if that rule
//! may never fire; it is skipped only when no rule could call it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use serde::Serialize;

use super::AppState;
use crate::metrics::Dependency;
use crate::rules::RuleSet;
use crate::store::Store;

/// How long one readiness check may take. Kubelet probes time out after 1 s by default and are
/// usually raised to a few seconds; a check that has not answered in 3 s counts as failed so a
/// hung dependency cannot hang the probe.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// The result of one readiness check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// Which dependency.
    pub dependency: Dependency,
    /// Whether it answered.
    pub ok: bool,
    /// How long the check took, in milliseconds.
    pub millis: u64,
    /// Why it failed, naming the address tried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What was found, when there is more to say than ok (rule counts, a skipped check, the
    /// last failed reload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The `/readyz` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadinessReport {
    /// True when every check passed.
    pub ready: bool,
    /// One entry per dependency.
    pub checks: Vec<CheckResult>,
}

/// Clients for the dependencies, used only to check that each one answers.
pub struct Dependencies {
    /// A Kafka admin client (metadata requests).
    pub kafka: Arc<AdminClient<DefaultClientContext>>,
    /// The brokers, for error messages.
    pub kafka_bootstrap: String,
    /// The Kubernetes client.
    pub kube: kube::Client,
    /// The API server URL, for error messages.
    pub kube_url: String,
    /// The audit store.
    pub store: Store,
    /// Bound on each check.
    pub check_timeout: Duration,
}

impl std::fmt::Debug for Dependencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dependencies")
            .field("kafka_bootstrap", &self.kafka_bootstrap)
            .field("kube_url", &self.kube_url)
            .field("store", &self.store.url())
            .finish_non_exhaustive()
    }
}

async fn timed<F>(dependency: Dependency, limit: Duration, what: &str, check: F) -> CheckResult
where
    F: Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    let result = match tokio::time::timeout(limit, check).await {
        Ok(result) => result,
        Err(_) => Err(format!("{what}: no answer within {limit:?}")),
    };
    let millis = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    CheckResult {
        dependency,
        ok: result.is_ok(),
        millis,
        error: result.err(),
        detail: None,
    }
}

impl Dependencies {
    /// Asks Kafka for cluster metadata (no topics, so it is cheap).
    pub async fn check_kafka(&self) -> CheckResult {
        let admin = Arc::clone(&self.kafka);
        let bootstrap = self.kafka_bootstrap.clone();
        let limit = self.check_timeout;
        timed(
            Dependency::Kafka,
            limit,
            &format!("Kafka at {bootstrap}"),
            async move {
                // fetch_metadata blocks the calling thread until librdkafka answers.
                let fetched = tokio::task::spawn_blocking(move || {
                    admin
                        .inner()
                        .fetch_metadata(None, limit)
                        .map(|m| m.brokers().len())
                })
                .await
                .map_err(|err| format!("Kafka check task failed: {err}"))?;
                match fetched {
                    Ok(0) => Err(format!(
                        "Kafka at {bootstrap} returned metadata with no brokers"
                    )),
                    Ok(_) => Ok(()),
                    Err(err) => Err(format!(
                        "Kafka at {bootstrap}: metadata request failed: {err}"
                    )),
                }
            },
        )
        .await
    }

    /// Asks the Kubernetes API server for `/version`.
    pub async fn check_kubernetes(&self) -> CheckResult {
        let url = &self.kube_url;
        timed(
            Dependency::Kubernetes,
            self.check_timeout,
            &format!("Kubernetes API at {url}"),
            async {
                self.kube
                    .apiserver_version()
                    .await
                    .map(drop)
                    .map_err(|err| format!("Kubernetes API at {url}: GET /version failed: {err}"))
            },
        )
        .await
    }

    /// Runs a trivial query on the audit store.
    pub async fn check_store(&self) -> CheckResult {
        let url = self.store.url();
        timed(
            Dependency::Store,
            self.check_timeout,
            &format!("store at {url}"),
            async {
                self.store
                    .ping()
                    .await
                    .map_err(|err| format!("{:#}", anyhow::Error::new(err)))
            },
        )
        .await
    }

    /// Runs the checks concurrently; Kubernetes only when `kubernetes` (a rule needs it),
    /// otherwise it is reported ok and skipped.
    pub async fn check_all(&self, kubernetes: bool) -> ReadinessReport {
        let kube = async {
            if kubernetes {
                self.check_kubernetes().await
            } else {
                CheckResult {
                    dependency: Dependency::Kubernetes,
                    ok: true,
                    millis: 0,
                    error: None,
                    detail: Some(
                        "not checked: no loaded rule has a Kubernetes action (or \
                         actions.kubernetes is off)"
                            .to_owned(),
                    ),
                }
            }
        };
        let (kafka, kube, store) = tokio::join!(self.check_kafka(), kube, self.check_store());
        let checks = vec![kafka, kube, store];
        ReadinessReport {
            ready: checks.iter().all(|c| c.ok),
            checks,
        }
    }
}

/// Whether a rule set can call the Kubernetes API: an enabled rule (dry run included, see the
/// module docs) with a Kubernetes action.
pub fn needs_kubernetes(rules: &RuleSet) -> bool {
    rules
        .rules()
        .iter()
        .any(|r| r.enabled && r.actions.iter().any(|a| a.kind.is_kubernetes()))
}

/// The `rules` check: a rule set is loaded (it always is once the pipeline runs: a failed
/// reload keeps the previous set, so it stays ready, and the detail says what failed).
fn rules_check(state: &AppState, rules: Option<&RuleSet>) -> CheckResult {
    let mut detail = match rules {
        Some(rules) => {
            let enabled = rules.rules().iter().filter(|r| r.enabled).count();
            format!("{} rule(s) loaded, {enabled} enabled", rules.len())
        }
        None => "no pipeline runs in this process".to_owned(),
    };
    if let Some(failure) = state.reload.last_failure() {
        detail.push_str(&format!(
            "; the last reload failed ({} problem(s), see GET /v1/rules), the previous rules \
             keep running",
            failure.problems.len()
        ));
    }
    CheckResult {
        dependency: Dependency::Rules,
        ok: rules.is_some(),
        millis: 0,
        error: rules.is_none().then(|| "no rule set is loaded".to_owned()),
        detail: Some(detail),
    }
}

impl AppState {
    /// Checks every dependency and records the results in the metrics.
    pub async fn readiness(&self) -> ReadinessReport {
        let rules = self.pipeline.as_ref().map(|p| p.rules());
        let kubernetes = self.kubernetes_actions && rules.as_deref().is_none_or(needs_kubernetes);
        let mut report = self.dependencies.check_all(kubernetes).await;
        if let Some(consumer) = &self.consumer {
            let error = consumer.readiness().err();
            report.checks.push(CheckResult {
                dependency: Dependency::Consumer,
                ok: error.is_none(),
                millis: 0,
                error,
                detail: None,
            });
        }
        if self.pipeline.is_some() {
            report.checks.push(rules_check(self, rules.as_deref()));
        }
        report.ready = report.checks.iter().all(|c| c.ok);
        for check in &report.checks {
            self.metrics.set_ready(check.dependency, check.ok);
        }
        report
    }
}

/// `GET /healthz`.
pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`.
pub(super) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let report = state.readiness().await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}

/// `GET /metrics`.
pub(super) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readiness_report_serialises_each_check_with_its_error() {
        let report = ReadinessReport {
            ready: false,
            checks: vec![
                CheckResult {
                    dependency: Dependency::Kafka,
                    ok: false,
                    millis: 3000,
                    error: Some("Kafka at 127.0.0.1:1: no answer".to_owned()),
                    detail: None,
                },
                CheckResult {
                    dependency: Dependency::Store,
                    ok: true,
                    millis: 1,
                    error: None,
                    detail: Some("1 rule(s) loaded, 1 enabled".to_owned()),
                },
            ],
        };
        let json = serde_json::to_value(&report).expect("serialisable");
        assert_eq!(json["ready"], false);
        assert_eq!(json["checks"][0]["dependency"], "kafka");
        assert_eq!(
            json["checks"][0]["error"],
            "Kafka at 127.0.0.1:1: no answer"
        );
        assert!(json["checks"][1].get("error").is_none());
    }

    #[test]
    fn only_a_rule_that_can_call_the_kubernetes_api_makes_readiness_check_it() {
        let load = |text: &str| {
            crate::rules::load_sources(&[("r.yaml".into(), text.to_owned())]).expect("valid")
        };
        let log = "rules:\n  - name: a\n    actions:\n      - log:\n          message: x\n";
        assert!(!needs_kubernetes(&load(log)));
        let restart = "rules:\n  - name: r\n    dry_run: true\n    actions:\n      - restart:\n          \
                       target:\n            namespace: default\n            name: web\n";
        assert!(needs_kubernetes(&load(restart)), "dry run counts");
        let disabled = restart.replace("dry_run: true", "enabled: false");
        assert!(
            !needs_kubernetes(&load(&disabled)),
            "a disabled rule never runs"
        );
    }
}
