//! Per-record cost of a stateful rule as the number of keys it holds grows: 10, 1,000 and
//! 10,000 held keys, each holding a ~1 KB event (`throttle.once_after`, the state that keeps
//! whole events). Run: `cargo bench --bench state`. Figures: docs/performance.md.
//!
//! Each record goes through [`Pipeline::handle`] (decode, rules, state save) with a SQLite store
//! on a RAM disk when one exists (`/dev/shm`), so the figure is the pipeline's own work plus one
//! small write, not the disk's flush. Nothing fires, so no Kafka broker is needed. Two cases:
//! - `touch`: the record joins an existing key's burst; that one key changes and is saved.
//! - `condition_false`: the record passes the rule's selector but not its condition; no state
//!   changes.
//!
//! The held keys are written to the store beforehand, so setting up 10,000 keys does not go
//! through 10,000 records; each measured record locks and reads only its own key.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rdkafka::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::producer::FutureProducer;
use reflex::config::{PipelineConfig, TopicsConfig};
use reflex::event::decode::{Decoding, RawRecord, decode_json};
use reflex::pipeline::{Handled, Pipeline};
use reflex::rules::{Engine, RuleSet, StateKey, load_sources};
use reflex::store::{Applied, KeyWrite, Store};
use serde_json::{Value, json};

const TOPIC: &str = "bench";
const RULE: &str = "burst-per-pod";
/// Distinct keys the measured records cycle through (all among the held keys).
const CYCLE: usize = 10;

const RULES: &str = r#"rules:
  - name: burst-per-pod
    select: {topics: [bench]}
    when: 'restarts > 0'
    throttle:
      key: "{{ event.pod }}"
      once_after: 1h
    actions:
      - log: {message: "{{ event.pod }} restarted {{ match.count }} times"}
"#;

/// A ~1 KB event for pod `i`; `restarts: 0` fails the rule's condition.
fn payload(i: usize, restarts: u32) -> Value {
    json!({
        "pod": format!("checkout-7d9f8b6c5-{i:05}"),
        "namespace": "shop",
        "restarts": restarts,
        "labels": {"app": "checkout", "team": "payments", "tier": "backend",
                   "version": "v1.42.7", "instance": "10.1.2.3:8080", "job": "kube-state-metrics"},
        "annotations": {
            "summary": "Pod shop/checkout is crash looping",
            "description": "Pod shop/checkout (container checkout) is restarting 2.1 times / 10 minutes.",
            "runbook_url": "https://runbooks.example.org/KubePodCrashLooping",
        },
        "generatorURL": "http://prometheus.monitoring:9090/graph?g0.expr=rate%28kube_pod_container_status_restarts_total%5B10m%5D%29&g0.tab=1",
        "message": "Back-off restarting failed container checkout in pod checkout-7d9f8b6c5 (shop): \
                    liveness probe failed: HTTP probe failed with statuscode: 503; the last \
                    termination reason was Error with exit code 137 after 41s of running time",
    })
}

/// The key documents of `held` keys, as a pipeline would have saved them.
fn held_keys(rules: &Arc<RuleSet>, held: usize, now: DateTime<Utc>) -> Vec<(String, Value)> {
    let mut engine = Engine::new(Arc::clone(rules));
    for i in 0..held {
        let mut events = decode_json(
            payload(i, 1),
            TOPIC,
            0,
            i as i64,
            None,
            &Default::default(),
            Some(now),
            Decoding::Json,
        )
        .expect("bench event decodes");
        engine.process(&events.remove(0), now);
    }
    engine.state().rules[RULE]
        .export_keys()
        .expect("state serializes")
}

struct Setup {
    runtime: tokio::runtime::Runtime,
    pipeline: Pipeline,
    _dir: tempfile::TempDir,
}

fn setup(held: usize) -> Setup {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let rules: Arc<RuleSet> = Arc::new(
        load_sources(&[("bench.yaml".into(), RULES.to_owned())]).expect("bench rules are valid"),
    );
    let pipeline = runtime.block_on(async {
        let store = Store::connect(&url).await.expect("store");
        let docs = held_keys(&rules, held, Utc::now());
        let keys: BTreeSet<StateKey> = docs
            .iter()
            .map(|(key, _)| StateKey {
                rule: RULE.to_owned(),
                key: key.clone(),
            })
            .collect();
        let (mut lease, _) = store.lock_keys(&keys, Utc::now()).await.expect("lock");
        let due = Some(Utc::now() + chrono::Duration::hours(1));
        let writes = docs
            .into_iter()
            .map(|(key, state)| KeyWrite::Put {
                key: StateKey {
                    rule: RULE.to_owned(),
                    key,
                },
                state: Some(state),
                applied: Applied::new(),
                due,
            })
            .collect();
        lease.write(writes).await.expect("held keys written");
        lease.commit(&store).await.expect("held keys saved");
        // Nothing fires, so nothing is published: the producer never needs a broker.
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:9")
            .set_log_level(RDKafkaLogLevel::Emerg)
            .create()
            .expect("producer");
        Pipeline::new(
            rules,
            store,
            producer,
            &TopicsConfig::default(),
            &PipelineConfig::default(),
        )
        .await
        .expect("pipeline")
    });
    Setup {
        runtime,
        pipeline,
        _dir: dir,
    }
}

fn per_record(c: &mut Criterion) {
    for (case, restarts) in [("touch", 1), ("condition_false", 0)] {
        let mut group = c.benchmark_group(format!("state/{case}"));
        // Before per-key change tracking a record cost ~0.1 s at 10,000 keys.
        group.sample_size(10);
        for held in [10usize, 1_000, 10_000] {
            let setup = setup(held);
            let payloads: Vec<Vec<u8>> = (0..CYCLE)
                .map(|i| serde_json::to_vec(&payload(i * held / CYCLE, restarts)).expect("json"))
                .collect();
            let mut offset = 0i64;
            group.bench_with_input(
                BenchmarkId::from_parameter(held),
                &payloads,
                |b, payloads| {
                    b.iter(|| {
                        offset += 1;
                        let record = RawRecord {
                            topic: TOPIC,
                            partition: 0,
                            offset,
                            key: None,
                            headers: Vec::new(),
                            payload: Some(&payloads[offset as usize % payloads.len()]),
                            timestamp: None,
                        };
                        let handled = setup
                            .runtime
                            .block_on(setup.pipeline.handle(&record))
                            .expect("handled");
                        assert_eq!(handled, Handled::Outcomes(0), "nothing fires");
                    })
                },
            );
            drop(setup);
        }
        group.finish();
    }
}

criterion_group!(benches, per_record);
criterion_main!(benches);
