//! Issue #13, closed-loop remediation, proven in process: `Pipeline::handle` and
//! `Pipeline::tick` (the sweep a running process calls every second) against the real
//! kube-apiserver with its controller-manager (Deployments get ReplicaSets and revisions), real
//! Kafka (the outcomes topic), a fresh PostgreSQL database and a real HTTP receiver.
//!
//! There is no kubelet: [`Kubelet`] plays its part for the test's namespace, marking every pod
//! `Running` and `Ready` through the pod status subresource as a kubelet would, so rollouts
//! really progress and complete (and stall while it is paused).
//!
//! Nothing waits on time to assert: every wait polls the store, the topic or the objects up
//! to a deadline, ticking the pipeline in between.

mod escalate;
mod loop_guard;
mod undo;
mod verify;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use rdkafka::consumer::Consumer;
use reflex::actions::Executors;
use reflex::actions::kubernetes::KubeExecutor;
use reflex::actions::webhook::{WebhookConfig, WebhookExecutor};
use reflex::config::PipelineConfig;
use reflex::pipeline::{Handled, Pipeline};
use reflex::store::remediations::RemediationRow;
use reflex::store::{OutcomeRecord, OutcomeStatus, Store};
use serde_json::{Value, json};

use super::harness::{Db, Kafka, Record, handle, pipeline, rows, rules};
use super::receiver::Receiver;
use crate::support;

/// Bound on anything the tests wait for: a rollout, a verdict, an escalation chain. A few
/// seconds on an idle machine; generous for several test binaries compiling beside it.
const SETTLE: Duration = Duration::from_secs(90);

/// How often a wait ticks the pipeline and looks again.
const POLL: Duration = Duration::from_millis(250);

/// The restart annotation `kubectl rollout restart` (and Reflex's `restart`) sets.
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// The object of every test rule: the Deployment the alert names (`@OBJECT`; `@TARGET` is
/// `{target: @OBJECT}`).
const OBJECT: &str =
    "{namespace: \"{{ event.labels.namespace }}\", name: \"{{ event.labels.deployment }}\"}";

/// One test's world: a namespace, topics, a database, a webhook receiver and a pipeline whose
/// rule file is the test's (`@RULE`, `@ALERT`, `@HOOK`, `@TARGET` and `@OBJECT` replaced).
pub(super) struct Bench {
    pub(super) client: kube::Client,
    pub(super) namespace: String,
    pub(super) kafka: Kafka,
    db: Db,
    pub(super) store: Store,
    pub(super) pipeline: Pipeline,
    pub(super) receiver: Receiver,
    /// The rule's name (unique per test).
    pub(super) rule: String,
    /// The alert name the rule selects.
    alert: String,
    next_offset: AtomicI64,
    pub(super) kubelet: Kubelet,
}

impl Bench {
    pub(super) async fn new(prefix: &str, rule_file: &str) -> Bench {
        support::install_crypto_provider();
        let client = support::kube_client(&support::kubeconfig()).await;
        let namespace = support::unique_name(prefix);
        Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": namespace}}))
                    .expect("namespace"),
            )
            .await
            .expect("create namespace");
        let kafka = Kafka::new().await;
        let db = Db::postgres().await;
        let store = db.store().await;
        let receiver = Receiver::start().await;
        let rule = support::unique_name(prefix);
        let alert = format!("Alert{}", rule.replace('-', ""));
        let text = rule_file
            .replace("@RULE", &rule)
            .replace("@ALERT", &alert)
            .replace("@HOOK", &receiver.addr.to_string())
            .replace("@TARGET", &format!("{{target: {OBJECT}}}"))
            .replace("@OBJECT", OBJECT);
        let rules = rules(&text);
        let pipeline = pipeline(&rules, &store, &kafka, &PipelineConfig::default())
            .await
            .with_executors(Executors {
                kubernetes: Some(KubeExecutor::new(client.clone())),
                webhook: Some(
                    WebhookExecutor::new(WebhookConfig {
                        allowed_hosts: vec!["127.0.0.1".to_owned()],
                        ..WebhookConfig::default()
                    })
                    .expect("webhook executor"),
                ),
                ..Executors::default()
            });
        let kubelet = Kubelet::start(client.clone(), &namespace);
        Bench {
            client,
            namespace,
            kafka,
            db,
            store,
            pipeline,
            receiver,
            rule,
            alert,
            next_offset: AtomicI64::new(0),
            kubelet,
        }
    }

    /// The URL of the test's database (for the `reflex` CLI).
    pub(super) fn db_url(&self) -> &str {
        self.db.url()
    }

    pub(super) fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// `deployment/<namespace>/<name>`, as outcomes and remediations name the target.
    pub(super) fn target(&self, name: &str) -> String {
        format!("deployment/{}/{name}", self.namespace)
    }

    /// Creates Deployment `name` (one container, `image`) and waits until it rolled out.
    pub(super) async fn deployment(&self, name: &str, replicas: i32, image: &str) -> Deployment {
        let manifest = support::deployment_manifest(name, replicas, image);
        self.deployments()
            .create(
                &PostParams::default(),
                &serde_json::from_value(manifest).expect("deployment"),
            )
            .await
            .expect("create deployment");
        self.rolled_out(name).await
    }

    /// Waits until Deployment `name` finished its rollout (as `kubectl rollout status` judges
    /// it: the controller saw the latest spec, every replica is updated and available).
    pub(super) async fn rolled_out(&self, name: &str) -> Deployment {
        let api = self.deployments();
        support::eventually(&format!("Deployment {name} rolled out"), SETTLE, || {
            let api = api.clone();
            async move {
                let d = api.get(name).await.ok()?;
                rollout_complete(&d).then_some(d)
            }
        })
        .await
    }

    /// The Alertmanager notification of one alert of this test's alert name on Deployment
    /// `deployment` (`status` `firing` or `resolved`), as the next record of the source topic.
    pub(super) fn alert(
        &self,
        status: &str,
        fingerprint: &str,
        starts_at: DateTime<Utc>,
        deployment: &str,
    ) -> Record {
        let ends_at = match status {
            "resolved" => Utc::now().to_rfc3339(),
            _ => "0001-01-01T00:00:00Z".to_owned(),
        };
        let notification = json!({
            "version": "4",
            "status": status,
            "receiver": "reflex",
            "groupLabels": {"alertname": self.alert},
            "commonLabels": {"alertname": self.alert},
            "commonAnnotations": {},
            "alerts": [{
                "status": status,
                "labels": {
                    "alertname": self.alert,
                    "severity": "critical",
                    "namespace": self.namespace,
                    "deployment": deployment,
                },
                "annotations": {"summary": format!("{deployment} is crash looping")},
                "startsAt": starts_at.to_rfc3339(),
                "endsAt": ends_at,
                "fingerprint": fingerprint,
            }],
        });
        let offset = self.next_offset.fetch_add(1, Ordering::Relaxed);
        Record::json(&self.kafka.source, offset, &notification.to_string())
    }

    /// Alertmanager posts `fingerprint` firing (since `starts_at`); returns how it was handled.
    pub(super) async fn fire(
        &self,
        fingerprint: &str,
        starts_at: DateTime<Utc>,
        deployment: &str,
    ) -> Handled {
        let record = self.alert("firing", fingerprint, starts_at, deployment);
        handle(&self.pipeline, &record)
            .await
            .expect("firing handled")
    }

    /// Alertmanager posts that occurrence (`fingerprint`, `starts_at`) resolved.
    pub(super) async fn resolve(
        &self,
        fingerprint: &str,
        starts_at: DateTime<Utc>,
        deployment: &str,
    ) {
        let record = self.alert("resolved", fingerprint, starts_at, deployment);
        let handled = handle(&self.pipeline, &record)
            .await
            .expect("resolution handled");
        assert_eq!(handled, Handled::Outcomes(0), "a resolution runs no action");
    }

    /// Ticks the pipeline (as the process's timer does) until `probe` finds what it looks
    /// for; fails naming `what` after [`SETTLE`].
    pub(super) async fn until<T, F, Fut>(&self, what: &str, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + SETTLE;
        loop {
            self.pipeline.tick(Utc::now()).await.expect("tick");
            if let Some(found) = probe().await {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not within {SETTLE:?}; outcomes so far:\n{:#?}\nremediations:\n{:#?}",
                summary(&rows(&self.store, &self.rule, None).await),
                self.remediations().await
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Every outcome of the rule, oldest first.
    pub(super) async fn outcomes(&self) -> Vec<OutcomeRecord> {
        let mut all = rows(&self.store, &self.rule, None).await;
        all.sort_by_key(|r| r.id);
        all
    }

    /// The rule's outcomes of `status`, oldest first.
    pub(super) async fn outcomes_of(&self, status: OutcomeStatus) -> Vec<OutcomeRecord> {
        let mut all = rows(&self.store, &self.rule, Some(status)).await;
        all.sort_by_key(|r| r.id);
        all
    }

    /// Every remediation of the rule, oldest first.
    pub(super) async fn remediations(&self) -> Vec<RemediationRow> {
        let mut all = self
            .store
            .remediations(Some(&self.rule), None, 1000)
            .await
            .expect("remediations");
        all.reverse();
        all
    }

    /// Every record on the outcomes topic so far, read from its start, once `enough` holds
    /// for them (bounded by [`SETTLE`]).
    pub(super) async fn published(&self, enough: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let consumer = support::topic_reader(&self.kafka.bootstrap, &self.kafka.topics.outcomes);
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + SETTLE;
        while !enough(&seen) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, consumer.recv()).await {
                Ok(Ok(message)) => {
                    seen.push(super::harness::json_of(&message.detach()));
                }
                Ok(Err(err)) => panic!("reading the outcomes topic: {err}"),
                Err(_) => panic!(
                    "the outcomes topic did not show what was expected within {SETTLE:?}; \
                     it holds:\n{seen:#?}"
                ),
            }
        }
        consumer.unsubscribe();
        seen
    }

    pub(super) async fn cleanup(self) {
        drop(self.kubelet);
        self.store.close().await;
        self.db.cleanup().await;
        Api::<Namespace>::all(self.client.clone())
            .delete(&self.namespace, &DeleteParams::default())
            .await
            .expect("delete namespace");
    }
}

/// One line per outcome, for failure messages.
pub(super) fn summary(outcomes: &[OutcomeRecord]) -> Vec<String> {
    outcomes
        .iter()
        .map(|o| {
            format!(
                "{} {} {} step={} {}",
                o.status.as_str(),
                o.action_kind,
                o.target.as_deref().unwrap_or("-"),
                o.details["remediation"]["step"],
                o.error.as_deref().unwrap_or("")
            )
        })
        .collect()
}

/// `kubectl rollout status`'s "successfully rolled out", read off the Deployment.
pub(super) fn rollout_complete(d: &Deployment) -> bool {
    let Some(status) = &d.status else {
        return false;
    };
    let wanted = d.spec.replicas.unwrap_or(1);
    status.observed_generation >= d.metadata.generation
        && status.updated_replicas.unwrap_or(0) == wanted
        && status.replicas.unwrap_or(0) == wanted
        && status.available_replicas.unwrap_or(0) == wanted
}

/// The Deployment's `restartedAt` pod-template annotation.
pub(super) fn restarted_at(d: &Deployment) -> Option<String> {
    d.spec
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(RESTARTED_AT)
        .cloned()
}

/// Stands in for the kubelet of the test's namespace: while running, marks every pod that is
/// not yet ready `Running` with condition `Ready`, through the status subresource, as a
/// kubelet reports a started container. The ReplicaSet and Deployment controllers then see
/// ready, available replicas and rollouts complete; paused, a rollout stalls.
pub(super) struct Kubelet {
    running: Arc<AtomicBool>,
    /// Held by a pass over the pods, so [`Kubelet::pause`] can wait for the one under way.
    pass: Arc<tokio::sync::Mutex<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Kubelet {
    fn start(client: kube::Client, namespace: &str) -> Kubelet {
        let running = Arc::new(AtomicBool::new(true));
        let pass = Arc::new(tokio::sync::Mutex::new(()));
        let pods: Api<Pod> = Api::namespaced(client, namespace);
        let (flag, held) = (Arc::clone(&running), Arc::clone(&pass));
        let task = tokio::spawn(async move {
            loop {
                {
                    let _pass = held.lock().await;
                    if flag.load(Ordering::SeqCst) {
                        report_ready(&pods).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Kubelet {
            running,
            pass,
            task,
        }
    }

    /// Stops marking pods ready (pods created from now on stay pending): returns once no pass
    /// is under way.
    pub(super) async fn pause(&self) {
        self.running.store(false, Ordering::SeqCst);
        drop(self.pass.lock().await);
    }

    pub(super) fn resume(&self) {
        self.running.store(true, Ordering::SeqCst);
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One pass of [`Kubelet`]: every live pod that is not ready becomes ready. Errors (a pod
/// deleted in between, a conflict) are left to the next pass.
async fn report_ready(pods: &Api<Pod>) {
    let Ok(list) = pods.list(&ListParams::default()).await else {
        return;
    };
    for pod in list {
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let Some(name) = pod.metadata.name.as_deref() else {
            continue;
        };
        if ready || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let status = json!({"status": {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
            ],
        }});
        let _ = pods
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await;
    }
}
