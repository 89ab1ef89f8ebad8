//! Writing accepted records to Kafka: every record enqueued at once, then each
//! acknowledgement awaited within `server.ingest.ack_timeout`; what Kafka refuses becomes the
//! answer the sender should act on (413 too large, 503 retry later).

use std::time::Duration;

use axum::http::StatusCode;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use super::{Ingest, OutRecord, Position};
use crate::server::problem::ApiError;

impl Ingest {
    /// Writes the records and waits for every acknowledgement.
    pub(super) async fn produce(
        &self,
        topic: &str,
        records: &[OutRecord],
    ) -> Result<Vec<Position>, ApiError> {
        let mut pending = Vec::with_capacity(records.len());
        // Enqueue everything first so a batch is acknowledged in one round trip, not one each.
        for record in records {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for (key, value) in &record.headers {
                headers = headers.insert(Header {
                    key,
                    value: Some(value.as_slice()),
                });
            }
            let mut out = FutureRecord::<str, [u8]>::to(topic)
                .payload(&record.value[..])
                .headers(headers);
            if let Some(key) = &record.key {
                out = out.key(key.as_str());
            }
            let delivery = self
                .producer
                .send_result(out)
                .map_err(|(err, _)| kafka_refused(&err, topic))?;
            pending.push(delivery);
        }
        // message.timeout.ms bounds each delivery; the extra second only covers a librdkafka
        // that never calls back at all.
        let limit = self.ack_timeout + Duration::from_secs(1);
        let mut positions = Vec::with_capacity(pending.len());
        for delivery in pending {
            match tokio::time::timeout(limit, delivery).await {
                Ok(Ok(Ok(done))) => positions.push(Position {
                    partition: done.partition,
                    offset: done.offset,
                }),
                Ok(Ok(Err((err, _)))) => return Err(kafka_refused(&err, topic)),
                Ok(Err(_)) | Err(_) => {
                    return Err(unavailable(
                        topic,
                        &format!("no acknowledgement within {:?}", self.ack_timeout),
                    ));
                }
            }
        }
        Ok(positions)
    }
}

/// Kafka refused or lost the record: 413 when it is too large for the broker, else 503.
fn kafka_refused(err: &KafkaError, topic: &str) -> ApiError {
    match err.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Kafka refused the record for topic `{topic}` as too large: {err}"),
            "send a smaller payload, or raise the topic's max.message.bytes",
        ),
        _ => unavailable(topic, &err.to_string()),
    }
}

fn unavailable(topic: &str, why: &str) -> ApiError {
    tracing::warn!(
        topic,
        error = why,
        "ingest: Kafka did not take a record; the sender is told to retry"
    );
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("Kafka did not acknowledge the record for topic `{topic}`: {why}"),
        "retry later (Alertmanager does so by itself); check /readyz for Kafka's state",
    )
}
