//! A consumer group of `reflex run` replicas (the real binary) that can grow, shrink, restart
//! and lose a member to SIGKILL, sharing one PostgreSQL database; a webhook receiver that
//! records every firing by (rule, group key); a producer that writes to explicit partitions
//! with random Kafka keys; and the waits the tests synchronise on (a partition assignment in
//! which every live replica owns partitions, every produced record handled, a barrier that
//! proves every replica's timers ran past a moment).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

use crate::support;
use crate::support::reflex_process::Reflex;

/// Partitions of the events topic: with two or three replicas each owns several.
pub const PARTITIONS: i32 = 6;

/// Bound on start-up, group joins and rebalances (a killed member is noticed within the 6 s
/// session timeout of the test config).
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(90);

/// Bound on every produced record being handled (committed by the group).
const HANDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// `pipeline.claim_lease_secs` (default 60): a claim left by a killed replica is stale within
/// the group's session timeout, so its partitions do not wait a minute.
const CLAIM_LEASE_SECS: u64 = 5;

/// One webhook call: which rule fired for which group key, and when it arrived.
#[derive(Debug, Clone)]
pub struct Firing {
    pub rule: String,
    pub key: String,
    pub at: DateTime<Utc>,
}

type Firings = Arc<Mutex<Vec<Firing>>>;

async fn record_firing(State(firings): State<Firings>, Json(body): Json<Value>) -> StatusCode {
    let text = |field: &str| body[field].as_str().unwrap_or("<missing>").to_owned();
    firings.lock().expect("firings lock").push(Firing {
        rule: text("rule"),
        key: text("key"),
        at: Utc::now(),
    });
    StatusCode::OK
}

/// The webhook action every test rule ends with: the body names the rule and the group key.
pub fn webhook(receiver: SocketAddr) -> String {
    format!(
        "    actions:\n      - webhook:\n          url: \"http://{receiver}/hook\"\n          \
         body:\n            rule: \"{{{{ rule.name }}}}\"\n            \
         key: \"{{{{ match.key }}}}\"\n"
    )
}

/// Replicas of one group over a fresh 6-partition topic and a fresh PostgreSQL database.
pub struct Cluster {
    bootstrap: String,
    name: String,
    pub events: String,
    database: support::TempDatabase,
    firings: Firings,
    pub pool: sqlx::PgPool,
    producer: FutureProducer,
    config: PathBuf,
    replicas: BTreeMap<String, Reflex>,
    spawned: usize,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `replicas` one after the other (each joins and gets partitions); `rules(receiver)`
    /// gives the rule file's text.
    pub async fn start(rules: impl FnOnce(SocketAddr) -> String, replicas: &[&str]) -> Cluster {
        let bootstrap = support::require_kafka().await;
        let database = support::TempDatabase::create("stateful").await;
        let name = support::unique_name("stateful");
        let events = format!("{name}.events");
        support::create_topic(&bootstrap, &events, PARTITIONS).await;
        support::create_topic(&bootstrap, &format!("{name}.outcomes"), 1).await;
        support::create_topic(&bootstrap, &format!("{name}.dead-letters"), 1).await;
        let firings = Firings::default();
        let app = axum::Router::new()
            .fallback(record_firing)
            .with_state(Arc::clone(&firings));
        let receiver = support::serve(app).await;
        let dir = tempfile::tempdir().expect("tempdir");
        // No circuit breaker: counting firings is the point, not limiting them.
        let config = support::reflex_process::write_config(
            dir.path(),
            &name,
            &rules(receiver),
            &format!(
                "pipeline:\n  claim_lease_secs: {CLAIM_LEASE_SECS}\n\
                 actions:\n  kubernetes: false\n  kafka: false\n  timeout: 4s\n  \
                 circuit:\n    max_per_rule: null\n    max_per_target: null\n"
            ),
        );
        let pool = sqlx::PgPool::connect(&database.url)
            .await
            .expect("connect to the test database");
        let producer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("message.timeout.ms", "30000")
            .create()
            .expect("producer");
        let mut cluster = Cluster {
            bootstrap,
            name,
            events,
            database,
            firings,
            pool,
            producer,
            config,
            replicas: BTreeMap::new(),
            spawned: 0,
            dir,
        };
        for replica in replicas {
            cluster.spawn(replica).await;
        }
        cluster
    }

    /// Starts replica `name` (its claims read `<name>-<pid>-...`) and waits until the group
    /// is balanced with it.
    pub async fn spawn(&mut self, name: &str) {
        self.spawned += 1;
        let log = self.dir.path().join(format!("{name}.{}.log", self.spawned));
        let reflex = Reflex::spawn(
            &self.config,
            log,
            &[
                ("KAFKA_BOOTSTRAP_SERVERS", self.bootstrap.as_str()),
                ("DATABASE_URL", self.database.url.as_str()),
                ("HOSTNAME", name),
            ],
        );
        reflex.wait_readyz(200, JOIN_TIMEOUT).await;
        let old = self.replicas.insert(name.to_owned(), reflex);
        assert!(old.is_none(), "replica {name} is already running");
        self.wait_balanced().await;
    }

    /// SIGTERM to `name` (clean exit after its final commit); waits until the others own
    /// every partition.
    pub async fn terminate(&mut self, name: &str) {
        self.take(name).terminate();
        self.wait_balanced().await;
    }

    /// SIGKILL to `name`; does NOT wait for the others to take its partitions over.
    pub fn kill9(&mut self, name: &str) {
        self.take(name).kill9();
    }

    /// Stops `name` cleanly and starts it again (same name, a new process).
    pub async fn restart(&mut self, name: &str) {
        self.take(name).terminate();
        self.spawn(name).await;
    }

    fn take(&mut self, name: &str) -> Reflex {
        self.replicas
            .remove(name)
            .unwrap_or_else(|| panic!("no running replica {name}"))
    }

    /// Which live replica owns each partition, from the `partition assigned` / `revoked` /
    /// `released` lines of their logs (a partition in hand-over has no owner).
    pub fn owners(&self) -> BTreeMap<i32, Vec<String>> {
        let mut owners: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        for (name, replica) in &self.replicas {
            let mut owned = std::collections::BTreeSet::new();
            for line in replica.log().lines() {
                let Some(partition) = line
                    .split_once(" partition=")
                    .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|digits| digits.parse::<i32>().ok())
                else {
                    continue;
                };
                if line.contains("partition assigned") {
                    owned.insert(partition);
                } else if line.contains("partition revoked") || line.contains("partition released")
                {
                    owned.remove(&partition);
                }
            }
            for partition in owned {
                owners.entry(partition).or_default().push(name.clone());
            }
        }
        owners
    }

    /// The partitions `replica` owns now.
    pub fn partitions_of(&self, replica: &str) -> Vec<i32> {
        self.owners()
            .into_iter()
            .filter(|(_, names)| names.iter().any(|n| n == replica))
            .map(|(partition, _)| partition)
            .collect()
    }

    /// Waits until every partition has exactly one live owner and every live replica owns
    /// at least one partition.
    pub async fn wait_balanced(&self) {
        let live = self.replicas.len();
        support::eventually(
            &format!("the group's {live} replicas share the {PARTITIONS} partitions"),
            JOIN_TIMEOUT,
            || async {
                let owners = self.owners();
                let complete = owners.len() == PARTITIONS as usize
                    && owners.values().all(|names| names.len() == 1);
                let everyone = self
                    .replicas
                    .keys()
                    .all(|name| owners.values().any(|names| names[0] == *name));
                (complete && everyone).then_some(())
            },
        )
        .await;
        eprintln!("assignment: {:?}", self.owners());
    }

    /// Produces `payload` to `partition` under a random Kafka key; returns when acknowledged.
    pub async fn produce(&self, partition: i32, payload: &Value) -> DateTime<Utc> {
        let key = uuid::Uuid::new_v4().to_string();
        let payload = payload.to_string();
        self.producer
            .send(
                FutureRecord::to(&self.events)
                    .partition(partition)
                    .key(&key)
                    .payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(err, _)| panic!("produce to {}/{partition}: {err}", self.events));
        Utc::now()
    }

    /// Waits until the group committed every record produced so far: each has been handled,
    /// its actions recorded.
    pub async fn wait_handled(&self) {
        support::eventually("every produced record handled", HANDLE_TIMEOUT, || {
            let (bootstrap, group, topic) = (
                self.bootstrap.clone(),
                self.name.clone(),
                self.events.clone(),
            );
            async move {
                tokio::task::spawn_blocking(move || lagging(&bootstrap, &group, &topic))
                    .await
                    .expect("offset reader task")
                    .is_empty()
                    .then_some(())
            }
        })
        .await;
    }

    /// Every webhook call so far.
    pub fn firings(&self) -> Vec<Firing> {
        self.firings.lock().expect("firings lock").clone()
    }

    /// Webhook calls per group key of `rule`, as the receiver counted them.
    pub fn received(&self, rule: &str) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for firing in self.firings().into_iter().filter(|f| f.rule == rule) {
            *counts.entry(firing.key).or_default() += 1;
        }
        counts
    }

    /// Webhook executions per group key of `rule`, as the outcomes table records them
    /// (`throttled` and `duplicate` rows are not executions).
    pub async fn recorded(&self, rule: &str) -> BTreeMap<String, usize> {
        let rows: Vec<(Option<String>, i64)> = sqlx::query_as(
            "SELECT details->>'group_key', count(*) FROM outcomes \
             WHERE rule = $1 AND action_kind = 'webhook' \
             AND status IN ('started', 'succeeded', 'failed') GROUP BY 1",
        )
        .bind(rule)
        .fetch_all(&self.pool)
        .await
        .expect("read the outcomes");
        rows.into_iter()
            .map(|(key, n)| (key.unwrap_or_default(), usize::try_from(n).expect("count")))
            .collect()
    }

    /// Proves every replica's timers ran past now: arms one `barrier` absence (2 s, never
    /// disarmed) on every partition and waits until each fired. A deadline that passed before
    /// this call has had its chance to fire (twice, if it would) by then.
    pub async fn barrier(&self) {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let keys: Vec<String> = (0..PARTITIONS)
            .map(|p| format!("barrier-{id}-{p}"))
            .collect();
        for (partition, key) in (0..PARTITIONS).zip(&keys) {
            self.produce(
                partition,
                &serde_json::json!({"type": "barrier", "key": key}),
            )
            .await;
        }
        support::eventually("every barrier absence fired", JOIN_TIMEOUT, || async {
            let fired = self.received("barrier");
            keys.iter().all(|k| fired.contains_key(k)).then_some(())
        })
        .await;
    }

    /// Asserts that `rule` fired exactly `expected` times per key (keys not listed: never),
    /// both at the webhook receiver and in the outcomes table.
    pub async fn assert_fired(&self, rule: &str, expected: &[(&str, usize)]) {
        let expected: BTreeMap<String, usize> = expected
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| ((*k).to_owned(), *n))
            .collect();
        let received = self.received(rule);
        let recorded = self.recorded(rule).await;
        assert_eq!(
            (&received, &recorded),
            (&expected, &expected),
            "rule `{rule}`: firings per key (webhook receiver, outcomes table) differ from \
             the expected {expected:?}"
        );
    }

    pub async fn cleanup(self) {
        self.pool.close().await;
        drop(self.replicas);
        self.database.drop_now().await;
    }
}

/// Partitions of `topic` whose committed offset in `group` is behind the high watermark, as
/// (partition, committed, end); a partition without a committed offset counts as at 0.
fn lagging(bootstrap: &str, group: &str, topic: &str) -> Vec<(i32, i64, i64)> {
    let offsets = support::reflex_process::committed_offsets(bootstrap, group, topic, PARTITIONS);
    (0..PARTITIONS)
        .zip(offsets)
        .map(|(partition, (committed, end))| (partition, committed.unwrap_or(0), end))
        .filter(|(_, committed, end)| committed < end)
        .collect()
}
