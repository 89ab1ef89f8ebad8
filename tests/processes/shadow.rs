//! `mode: shadow` in a real `reflex run`: a live and a shadow rule on the same events, both
//! calling a real local HTTP receiver. The live rule's webhook arrives once per event; the
//! shadow rule's never does, and each of its planned calls is on the outcomes topic as
//! `dev.reflex.outcome.shadow` with its rendered parameters.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use rdkafka::producer::FutureRecord;

use crate::support;
use crate::support::running::{self, Reflex, Setup};

/// Calls received, per path.
type Calls = Arc<Mutex<BTreeMap<String, usize>>>;

async fn count(State(calls): State<Calls>, Path(path): Path<String>) -> StatusCode {
    *calls.lock().expect("lock").entry(path).or_default() += 1;
    StatusCode::OK
}

async fn start_receiver() -> (SocketAddr, Calls) {
    let calls = Calls::default();
    let app = axum::Router::new()
        .route("/{path}", axum::routing::post(count))
        .with_state(Arc::clone(&calls));
    (support::serve(app).await, calls)
}

#[tokio::test]
async fn a_shadow_rule_runs_live_beside_a_live_rule_and_never_reaches_the_executor() {
    support::install_crypto_provider();
    let setup = Setup::new("shadow").await;
    let (receiver, calls) = start_receiver().await;
    std::fs::write(
        setup.rules.join("rules.yaml"),
        format!(
            "rules:\n\
             \x20 - name: page-live\n    when: 'kind == \"deploy-failed\"'\n    actions:\n\
             \x20     - webhook:\n          url: \"http://{receiver}/live\"\n          \
             body: {{service: \"{{{{ event.service }}}}\"}}\n\
             \x20 - name: page-shadow\n    mode: shadow\n    when: 'kind == \"deploy-failed\"'\n    actions:\n\
             \x20     - webhook:\n          url: \"http://{receiver}/shadow\"\n          \
             body: {{service: \"{{{{ event.service }}}}\"}}\n"
        ),
    )
    .expect("write rules");
    let config = setup.write_config(&setup.rules, "");
    let reflex = Reflex::start(&setup, &config, &[]);
    reflex.wait_ready().await;

    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &setup.bootstrap)
        .create()
        .expect("producer");
    for service in ["cart", "checkout", "search"] {
        let payload = format!(r#"{{"kind": "deploy-failed", "service": "{service}"}}"#);
        producer
            .send(
                FutureRecord::to(&setup.events)
                    .key(service)
                    .payload(&payload),
                std::time::Duration::from_secs(10),
            )
            .await
            .expect("produce");
    }

    let outcomes = running::reader(&setup.bootstrap, &setup.outcomes);
    let mut seen: BTreeMap<(String, String), Vec<serde_json::Value>> = BTreeMap::new();
    running::read_until(
        &outcomes,
        "3 live and 3 shadow outcomes",
        || reflex.log(),
        |m| {
            let record = running::json_of(m);
            let key = (
                record["data"]["rule"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                record["type"].as_str().unwrap_or_default().to_owned(),
            );
            seen.entry(key).or_default().push(record);
            seen.values().map(Vec::len).sum::<usize>() >= 6
        },
    )
    .await;
    let live = &seen[&(
        "page-live".to_owned(),
        "dev.reflex.outcome.succeeded".to_owned(),
    )];
    let shadow = &seen[&(
        "page-shadow".to_owned(),
        "dev.reflex.outcome.shadow".to_owned(),
    )];
    assert_eq!((live.len(), shadow.len()), (3, 3), "{seen:?}");
    let mut services: Vec<_> = shadow
        .iter()
        .map(|r| r["data"]["details"]["params"]["body"]["service"].clone())
        .collect();
    services.sort_by_key(|s| s.to_string());
    assert_eq!(services, ["cart", "checkout", "search"]);
    for record in shadow {
        assert_eq!(record["data"]["attempts"], 0, "nothing attempted: {record}");
    }

    let calls = calls.lock().expect("lock").clone();
    assert_eq!(calls.get("live"), Some(&3), "{calls:?}");
    assert_eq!(
        calls.get("shadow"),
        None,
        "the shadow webhook was called: {calls:?}"
    );
    // The metrics count what the shadow rule would have done.
    let metrics = reflex.get_text("/metrics").await;
    assert!(
        metrics.contains(r#"reflex_actions_total{kind="webhook",status="shadow"} 3"#),
        "{metrics}"
    );
}
