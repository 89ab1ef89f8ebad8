//! The ingest endpoints of a real `reflex run` against the real Kafka: Alertmanager's webhook
//! payload posted with the token ends as a remediation outcome on the outcomes topic;
//! CloudEvents posted in binary, structured and batch mode are written so the consumer's
//! decoder reads them back as the same events; every kind of bad request gets its status and
//! a message saying what is wrong.
//!
//! Run: `scripts/services up && eval "$(scripts/services env)" && cargo test --features services --test processes ingest::`

use crate::support;
use crate::support::running;

use std::collections::BTreeSet;

use rdkafka::Message as _;
use reqwest::StatusCode;
use running::{Reflex, Setup};
use serde_json::{Value, json};

const ALERTMANAGER: &str = include_str!("../data/events/alertmanager-webhook.json");
const CLOUDEVENT: &str = include_str!("../data/events/cloudevent-structured.json");
const TOKEN: &str = "ingest-test-token";

/// A `log` rule for every event of the setup's topic, plus ingest with a token file.
async fn start(prefix: &str) -> (Setup, Reflex) {
    support::install_crypto_provider();
    let setup = Setup::new(prefix).await;
    std::fs::write(
        setup.rules.join("log.yaml"),
        "rules:\n  - name: remediate\n    actions:\n      - log:\n          \
         message: \"{{ meta.format }} {{ meta.id }}\"\n",
    )
    .expect("write rule");
    let token_file = setup.dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("write token");
    let config = setup.write_config(
        &setup.rules,
        &format!(
            "server:\n  ingest:\n    token_file: {}\n    max_body_bytes: 65536\n",
            token_file.display()
        ),
    );
    let reflex = Reflex::start(&setup, &config, &[]);
    reflex.wait_ready().await;
    (setup, reflex)
}

async fn post(
    reflex: &Reflex,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = reflex.http.post(reflex.url(path)).body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("POST");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

const BEARER: (&str, &str) = ("authorization", "Bearer ingest-test-token");

/// POSTs and expects the refusal `status` with an error message containing `says`; returns the
/// answer's headers and JSON body.
async fn refused(
    reflex: &Reflex,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
    status: StatusCode,
    says: &str,
) -> (reqwest::header::HeaderMap, Value) {
    let (got, headers, body) = post(reflex, path, headers, body).await;
    assert_eq!(got, status, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(says),
        "the error should say `{says}`: {body}"
    );
    (headers, body)
}

#[tokio::test]
async fn an_alertmanager_notification_posted_with_the_token_ends_as_an_outcome_and_bad_posts_get_4xx()
 {
    let (setup, reflex) = start("ingest-am").await;

    // Without the token: 401 with the challenge, nothing written.
    let am = "/v1/alertmanager";
    let unauthorized = StatusCode::UNAUTHORIZED;
    let (headers, _) = refused(
        &reflex,
        am,
        &[],
        ALERTMANAGER,
        unauthorized,
        "no Authorization",
    )
    .await;
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"reflex\"");
    let wrong = ("authorization", "Bearer not-the-token");
    refused(
        &reflex,
        am,
        &[wrong],
        ALERTMANAGER,
        unauthorized,
        "not the configured",
    )
    .await;

    // Over the 64 KiB limit of this config: 413 naming the limit.
    let too_large = StatusCode::PAYLOAD_TOO_LARGE;
    refused(
        &reflex,
        am,
        &[BEARER],
        vec![b' '; 70_000],
        too_large,
        "65536",
    )
    .await;

    // Not JSON, and JSON that is not an Alertmanager notification: 400 saying why, with a hint.
    let bad = StatusCode::BAD_REQUEST;
    let (_, body) = refused(&reflex, am, &[BEARER], "{not json", bad, "not JSON").await;
    assert!(
        body["hint"].as_str().unwrap_or_default().contains("alerts"),
        "{body}"
    );
    let not_am = r#"{"version":"4","status":"firing"}"#;
    refused(&reflex, am, &[BEARER], not_am, bad, "alerts").await;

    // The real payload: 200 once Kafka acknowledged, with where it landed.
    let (status, _, body) = post(
        &reflex,
        "/v1/alertmanager",
        &[BEARER, ("content-type", "application/json")],
        ALERTMANAGER.to_owned(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", reflex.log());
    assert_eq!(body["topic"], setup.events.as_str());
    assert_eq!(body["events"], 2, "one event per alert: {body}");
    assert_eq!(body["records"].as_array().map(Vec::len), Some(1), "{body}");

    // The record is the payload unchanged, keyed by the groupKey.
    let events = running::reader(&setup.bootstrap, &setup.events);
    running::read_until(
        &events,
        "the ingested notification",
        || reflex.log(),
        |message| {
            let sent: Value = serde_json::from_str(ALERTMANAGER).expect("sample is JSON");
            assert_eq!(message.payload(), Some(ALERTMANAGER.as_bytes()));
            assert_eq!(
                message.key().map(String::from_utf8_lossy).as_deref(),
                sent["groupKey"].as_str()
            );
            true
        },
    )
    .await;

    // ... and the firing alert's remediation is recorded on the outcomes topic.
    let outcomes = running::reader(&setup.bootstrap, &setup.outcomes);
    running::read_until(
        &outcomes,
        "the remediation outcome",
        || reflex.log(),
        |message| {
            let outcome = running::json_of(message);
            outcome["data"]["rule"] == "remediate"
                && outcome["data"]["status"] == "succeeded"
                && outcome["data"]["event_id"].as_str().is_some_and(|id| {
                    id.starts_with("a1b2c3d4e5f60718/") && id.ends_with("/firing")
                })
        },
    )
    .await;

    let metrics = reflex.get_text("/metrics").await;
    for (code, count) in [(401, 2), (413, 1), (400, 2), (200, 1)] {
        let line = format!(
            "reflex_ingest_requests_total{{endpoint=\"alertmanager\",code=\"{code}\"}} {count}"
        );
        assert!(metrics.contains(&line), "missing {line}:\n{metrics}");
    }
}

#[tokio::test]
async fn cloudevents_in_binary_structured_and_batch_mode_round_trip_through_kafka_into_decoded_events()
 {
    let (setup, reflex) = start("ingest-ce").await;
    let structured: Value = serde_json::from_str(CLOUDEVENT).expect("sample is JSON");

    let (status, _, body) = post(
        &reflex,
        "/v1/events",
        &[BEARER, ("content-type", "application/cloudevents+json")],
        CLOUDEVENT.to_owned(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, _, body) = post(
        &reflex,
        "/v1/events",
        &[
            BEARER,
            ("ce-specversion", "1.0"),
            ("ce-id", "binary-1"),
            ("ce-source", "/autoscaler/queue-depth"),
            ("ce-type", "dev.reflex.scale.requested"),
            ("ce-subject", "shop%2Fworker caf%C3%A9"),
            ("ce-partitionkey", "shop/worker"),
            ("content-type", "application/json"),
        ],
        r#"{"namespace":"shop","deployment":"worker","desiredReplicas":12}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let batch = json!([
        {"specversion": "1.0", "id": "batch-1", "source": "/s", "type": "t.one", "data": {"n": 1}},
        {"specversion": "1.0", "id": "batch-2", "source": "/s", "type": "t.two", "data": {"n": 2}}
    ]);
    let (status, _, body) = post(
        &reflex,
        "/v1/events",
        &[
            BEARER,
            ("content-type", "application/cloudevents-batch+json"),
        ],
        batch.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["records"].as_array().map(Vec::len), Some(2), "{body}");

    // Bad CloudEvents: 400 naming what is missing; nothing written.
    let bad = StatusCode::BAD_REQUEST;
    let partial = [BEARER, ("ce-id", "x"), ("ce-source", "/s")];
    refused(&reflex, "/v1/events", &partial, "{}", bad, "ce-specversion").await;
    let structured_ct = [BEARER, ("content-type", "application/cloudevents+json")];
    let no_type = r#"{"specversion":"1.0","id":"x","source":"/s"}"#;
    refused(
        &reflex,
        "/v1/events",
        &structured_ct,
        no_type,
        bad,
        "`type`",
    )
    .await;

    // Read the four records back and decode them exactly as the consumer does.
    let events = running::reader(&setup.bootstrap, &setup.events);
    let mut decoded = Vec::new();
    running::read_until(
        &events,
        "four ingested CloudEvents",
        || reflex.log(),
        |message| {
            decoded.append(&mut decode(&message.detach()));
            decoded.len() >= 4
        },
    )
    .await;
    let ids: BTreeSet<&str> = decoded.iter().map(|e| e.meta.id.as_str()).collect();
    let want = BTreeSet::from([
        structured["id"].as_str().expect("id"),
        "binary-1",
        "batch-1",
        "batch-2",
    ]);
    assert_eq!(ids, want);
    let binary = decoded
        .iter()
        .find(|e| e.meta.id == "binary-1")
        .expect("binary event");
    assert_eq!(binary.payload["desiredReplicas"], 12);
    assert_eq!(binary.meta.key.as_deref(), Some("shop/worker"));
    assert_eq!(binary.meta.attributes["subject"], "shop/worker café");
    let from_structured = decoded
        .iter()
        .find(|e| e.meta.id == structured["id"])
        .expect("structured event");
    assert_eq!(from_structured.payload, structured["data"]);
    assert_eq!(
        from_structured.meta.event_type.as_deref(),
        structured["type"].as_str()
    );

    // Each became an outcome of the `log` rule.
    let outcomes = running::reader(&setup.bootstrap, &setup.outcomes);
    let mut seen = BTreeSet::new();
    running::read_until(
        &outcomes,
        "four outcomes",
        || reflex.log(),
        |message| {
            if let Some(id) = running::json_of(message)["data"]["event_id"].as_str() {
                seen.insert(id.to_owned());
            }
            seen.len() >= 4
        },
    )
    .await;
}

/// Decodes a record exactly as the consumer does (auto-detection, default limits).
fn decode(message: &rdkafka::message::OwnedMessage) -> Vec<reflex::event::Event> {
    use reflex::event::decode::{self, DecodeLimits, Decoding, RawRecord};
    let headers = support::header_map(message);
    let record = RawRecord {
        topic: message.topic(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key(),
        headers: headers
            .iter()
            .map(|(name, value)| (name.as_str(), Some(value.as_bytes())))
            .collect(),
        payload: message.payload(),
        timestamp: None,
    };
    decode::decode(&record, Decoding::Auto, &DecodeLimits::default())
        .unwrap_or_else(|err| panic!("an ingested record does not decode: {err}"))
}
