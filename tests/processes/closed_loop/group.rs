//! Two `reflex run` replicas (the real binary) in one consumer group over a 6-partition alerts
//! topic, sharing a fresh PostgreSQL database and acting on a Deployment in a namespace of
//! their own; a webhook receiver that can hold its answers (a slow receiver keeps a step
//! acting for as long as the test needs); Alertmanager notifications produced to explicit
//! partitions.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::DeleteParams;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use reflex::store::history::HistoryFilter;
use reflex::store::remediations::RemediationRow;
use reflex::store::{OutcomeRecord, OutcomeStatus, Store};
use serde_json::json;
use tokio::sync::watch;

use crate::support;
use crate::support::reflex_process::{Reflex, write_config};

/// Partitions of the alerts topic: each of two replicas owns three.
pub const PARTITIONS: i32 = 6;

/// Bound on start-up, joins, hand-overs and on every wait of these tests (a SIGKILLed member
/// is noticed within the 6 s session timeout of the test config).
pub const LIMIT: Duration = Duration::from_secs(90);

/// The replicas, by `HOSTNAME` (which starts the instance name in claims and leases).
pub const REPLICAS: [&str; 2] = ["replica-a", "replica-b"];

/// The replica an instance name (`<HOSTNAME>-<pid>-<start>`) belongs to.
pub fn replica_of(instance: &str) -> &'static str {
    REPLICAS
        .into_iter()
        .find(|r| instance.starts_with(&format!("{r}-")))
        .unwrap_or_else(|| panic!("no replica named in instance `{instance}`"))
}

/// The Deployment every alert names.
pub const DEPLOYMENT: &str = "checkout";

/// A webhook receiver that records each call (path, `Idempotency-Key`) and answers only once
/// opened.
#[derive(Clone, Default)]
pub struct Gate {
    calls: Arc<Mutex<Vec<(String, String)>>>,
    open: Arc<Mutex<Option<watch::Sender<bool>>>>,
}

async fn held(
    State(gate): State<(Gate, watch::Receiver<bool>)>,
    uri: Uri,
    headers: HeaderMap,
) -> StatusCode {
    let (gate, mut open) = gate;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    gate.calls
        .lock()
        .expect("calls")
        .push((uri.path().to_owned(), key));
    // Err: the test ended (sender dropped): answer anyway.
    let _ = open.wait_for(|open| *open).await;
    StatusCode::OK
}

impl Gate {
    /// Serves the gate, closed; returns it and its address.
    async fn start() -> (Gate, SocketAddr) {
        let (sender, receiver) = watch::channel(false);
        let gate = Gate::default();
        *gate.open.lock().expect("open") = Some(sender);
        let app = axum::Router::new()
            .fallback(held)
            .with_state((gate.clone(), receiver));
        (gate, support::serve(app).await)
    }

    /// Lets every held call (and every later one) answer 200.
    pub fn open(&self) {
        if let Some(sender) = self.open.lock().expect("open").as_ref() {
            sender.send_replace(true);
        }
    }

    /// The calls so far: (path, idempotency key).
    pub fn calls(&self) -> Vec<(String, String)> {
        self.calls.lock().expect("calls").clone()
    }
}

/// The replicas, their shared store, the namespace and the gate.
pub struct Group {
    bootstrap: String,
    name: String,
    pub alerts: String,
    database: support::TempDatabase,
    pub store: Store,
    producer: FutureProducer,
    config: PathBuf,
    dir: tempfile::TempDir,
    replicas: BTreeMap<String, Reflex>,
    pub gate: Gate,
    client: kube::Client,
    pub namespace: String,
    pub rule: String,
}

impl Group {
    /// Creates the topics, database, namespace and Deployment (`replicas` 0: the
    /// controller-manager completes its rollouts without pods), writes the rule file
    /// (`rules(rule name, namespace, gate address)`) and the config (`extra` sections), and
    /// starts the [`REPLICAS`].
    pub async fn start(rules: impl FnOnce(&str, &str, SocketAddr) -> String, extra: &str) -> Group {
        let bootstrap = support::require_kafka().await;
        let name = support::unique_name("closed-loop");
        let alerts = format!("{name}.events");
        support::create_topic(&bootstrap, &alerts, PARTITIONS).await;
        for topic in ["outcomes", "dead-letters"] {
            support::create_topic(&bootstrap, &format!("{name}.{topic}"), 1).await;
        }
        let database = support::TempDatabase::create("closed_loop").await;
        let client = support::kube_client(&support::kubeconfig()).await;
        let namespace = name.clone();
        support::namespace_with_deployment(&client, &namespace, DEPLOYMENT, 0).await;
        let (gate, gate_addr) = Gate::start().await;
        let rule = format!("rule-{name}");
        let dir = tempfile::tempdir().expect("tempdir");
        let config = write_config(
            dir.path(),
            &name,
            &rules(&rule, &namespace, gate_addr),
            extra,
        );
        let producer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("message.timeout.ms", "30000")
            .create()
            .expect("producer");
        // Migrates the fresh database before the replicas race to.
        let store = Store::connect(&database.url).await.expect("store");
        let mut group = Group {
            bootstrap,
            name,
            alerts,
            database,
            store,
            producer,
            config,
            dir,
            replicas: BTreeMap::new(),
            gate,
            client,
            namespace,
            rule,
        };
        for replica in REPLICAS {
            let log = group.dir.path().join(format!("{replica}.log"));
            let env = [
                ("KAFKA_BOOTSTRAP_SERVERS", group.bootstrap.as_str()),
                ("DATABASE_URL", group.database.url.as_str()),
                ("HOSTNAME", replica),
            ];
            let process = Reflex::spawn(&group.config, log, &env);
            process.wait_readyz(200, LIMIT).await;
            group.replicas.insert(replica.to_owned(), process);
        }
        group.wait_assigned().await;
        group
    }

    /// The partitions each live replica holds now, from its log's `partition assigned`,
    /// `partition revoked` and `partition released` lines.
    pub fn assignment(&self) -> BTreeMap<String, BTreeSet<i32>> {
        let mut assignment = BTreeMap::new();
        for (replica, process) in &self.replicas {
            let mut held = BTreeSet::new();
            for line in process.log().lines() {
                let partition = line
                    .split(" partition=")
                    .nth(1)
                    .map(|rest| {
                        rest.chars()
                            .take_while(char::is_ascii_digit)
                            .collect::<String>()
                    })
                    .and_then(|digits| digits.parse::<i32>().ok());
                match partition {
                    Some(p) if line.contains("partition assigned") => held.insert(p),
                    Some(p) if line.contains("partition revoked") => held.remove(&p),
                    Some(p) if line.contains("partition released") => held.remove(&p),
                    _ => false,
                };
            }
            assignment.insert(replica.clone(), held);
        }
        assignment
    }

    /// Waits until the live replicas hold every partition between them, each some.
    pub async fn wait_assigned(&self) {
        support::eventually(
            "every partition assigned to a live replica",
            LIMIT,
            || async {
                let assignment = self.assignment();
                let held: usize = assignment.values().map(BTreeSet::len).sum();
                let covered: BTreeSet<i32> = assignment.values().flatten().copied().collect();
                let everyone = assignment.values().all(|p| !p.is_empty());
                (held == PARTITIONS as usize && covered.len() == held && everyone).then_some(())
            },
        )
        .await;
        eprintln!("assignment: {:?}", self.assignment());
    }

    /// SIGKILL to `replica`.
    pub fn kill9(&mut self, replica: &str) {
        self.replicas
            .remove(replica)
            .unwrap_or_else(|| panic!("no running replica {replica}"))
            .kill9();
    }

    /// Produces the Alertmanager notification of alert `alertname` (`fingerprint`, since
    /// `starts_at`) on the Deployment, `status` `firing` or `resolved`, to `partition`.
    pub async fn alert(
        &self,
        partition: i32,
        status: &str,
        alertname: &str,
        fingerprint: &str,
        starts_at: DateTime<Utc>,
    ) {
        let ends_at = if status == "resolved" {
            Utc::now().to_rfc3339()
        } else {
            "0001-01-01T00:00:00Z".to_owned()
        };
        let labels = json!({
            "alertname": alertname, "namespace": self.namespace, "deployment": DEPLOYMENT,
        });
        let payload = json!({
            "version": "4", "status": status, "receiver": "reflex",
            "groupLabels": {}, "commonLabels": labels, "commonAnnotations": {},
            "alerts": [{
                "status": status, "labels": labels, "annotations": {},
                "startsAt": starts_at.to_rfc3339(), "endsAt": ends_at,
                "fingerprint": fingerprint,
            }],
        })
        .to_string();
        let key = uuid::Uuid::new_v4().to_string();
        self.producer
            .send(
                FutureRecord::to(&self.alerts)
                    .partition(partition)
                    .key(&key)
                    .payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(err, _)| panic!("produce to {}/{partition}: {err}", self.alerts));
    }

    /// Waits until the group committed every record produced so far.
    pub async fn wait_handled(&self) {
        support::eventually("every produced record handled", LIMIT, || {
            let (bootstrap, group, topic) = (
                self.bootstrap.clone(),
                self.name.clone(),
                self.alerts.clone(),
            );
            async move {
                let offsets = tokio::task::spawn_blocking(move || {
                    support::reflex_process::committed_offsets(
                        &bootstrap, &group, &topic, PARTITIONS,
                    )
                })
                .await
                .expect("offset reader");
                offsets
                    .iter()
                    .all(|(committed, end)| committed.unwrap_or(0) >= *end)
                    .then_some(())
            }
        })
        .await;
    }

    /// The rule's outcomes of `status` (every status: `None`), oldest first.
    pub async fn outcomes(&self, status: Option<OutcomeStatus>) -> Vec<OutcomeRecord> {
        let mut rows = self
            .store
            .history(&HistoryFilter {
                rule: Some(self.rule.clone()),
                status,
                limit: 1000,
                ..HistoryFilter::default()
            })
            .await
            .expect("history");
        rows.sort_by_key(|r| r.id);
        rows
    }

    /// The rule's remediations, oldest first.
    pub async fn remediations(&self) -> Vec<RemediationRow> {
        let mut rows = self
            .store
            .remediations(Some(&self.rule), None, 1000)
            .await
            .expect("remediations");
        rows.reverse();
        rows
    }

    /// The Deployment's restart stamp.
    pub async fn restarted_at(&self) -> Option<String> {
        let deployments = Api::<Deployment>::namespaced(self.client.clone(), &self.namespace);
        support::restarted_at(&deployments, DEPLOYMENT).await
    }

    /// Every replica's log, for failure messages.
    pub fn logs(&self) -> String {
        self.replicas
            .iter()
            .map(|(name, p)| format!("==== {name}\n{}", p.log()))
            .collect()
    }

    pub async fn cleanup(self) {
        self.gate.open();
        drop(self.replicas);
        self.store.close().await;
        self.database.drop_now().await;
        Api::<Namespace>::all(self.client.clone())
            .delete(&self.namespace, &DeleteParams::default())
            .await
            .expect("delete namespace");
    }
}
