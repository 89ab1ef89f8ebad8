//! CloudEvents HTTP binding → Kafka binding. Structured mode (`application/cloudevents+json`)
//! is written as it came, with the same content type; a batch
//! (`application/cloudevents-batch+json`) becomes one structured record per event (the Kafka
//! binding has no batch mode, and one record per event spreads them over partitions); binary
//! mode (`ce-*` headers, the body is the data) becomes `ce_*` record headers (values
//! percent-decoded, as the HTTP binding encodes them) with the data as the value. The record
//! key is the `partitionkey` extension when present (the Kafka binding's key mapping).

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::Value;

use super::ingest::OutRecord;
use super::problem::ApiError;
use crate::event::cloudevents::{
    BATCH_CONTENT_TYPE as BATCH, HTTP_HEADER_PREFIX, KAFKA_HEADER_PREFIX,
    REQUIRED_HTTP_HEADERS as REQUIRED_HEADERS, STRUCTURED_CONTENT_TYPE as STRUCTURED,
};
/// Most events in one batch request. Each becomes a record awaited in one request; a sender
/// with more splits them (the body size bound applies too).
const MAX_BATCH: usize = 1000;

/// The Kafka records for one HTTP request.
pub(super) fn records(headers: &HeaderMap, body: Bytes) -> Result<Vec<OutRecord>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let media = content_type
        .as_deref()
        .and_then(|ct| ct.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match media.as_str() {
        STRUCTURED => {
            let value = parse(&body)?;
            Ok(vec![structured(partition_key(&value), body)])
        }
        BATCH => batch(&body),
        other if other.starts_with("application/cloudevents") => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type `{other}` is a CloudEvents format Reflex does not read"),
            format!("send JSON: `{STRUCTURED}` or `{BATCH}`, or binary mode with ce-* headers"),
        )),
        _ => binary(headers, content_type, body),
    }
}

fn parse(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|err| {
        ApiError::bad_request(
            format!("the body is not JSON: {err}"),
            "a structured-mode CloudEvent is one JSON object (a batch: a JSON array of them)",
        )
    })
}

fn partition_key(event: &Value) -> Option<String> {
    event.get("partitionkey")?.as_str().map(str::to_owned)
}

fn structured(key: Option<String>, value: Bytes) -> OutRecord {
    OutRecord {
        key,
        headers: vec![("content-type".to_owned(), STRUCTURED.as_bytes().to_vec())],
        value,
    }
}

fn batch(body: &[u8]) -> Result<Vec<OutRecord>, ApiError> {
    let Value::Array(events) = parse(body)? else {
        return Err(ApiError::bad_request(
            format!("content type `{BATCH}` needs a JSON array of events"),
            format!("send one event as `{STRUCTURED}`, or wrap the events in [...]"),
        ));
    };
    if events.len() > MAX_BATCH {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the batch has {} events; at most {MAX_BATCH}", events.len()),
            "split the batch into several requests",
        ));
    }
    events
        .iter()
        .map(|event| {
            // Serializing a parsed Value cannot fail (string keys only).
            let bytes = serde_json::to_vec(event).map_err(|err| {
                ApiError::bad_request(format!("cannot re-encode a batch event: {err}"), "")
            })?;
            Ok(structured(partition_key(event), Bytes::from(bytes)))
        })
        .collect()
}

fn binary(
    headers: &HeaderMap,
    content_type: Option<String>,
    body: Bytes,
) -> Result<Vec<OutRecord>, ApiError> {
    let missing: Vec<&str> = REQUIRED_HEADERS
        .into_iter()
        .filter(|name| !headers.contains_key(*name))
        .collect();
    if missing.len() == REQUIRED_HEADERS.len() {
        return Err(ApiError::bad_request(
            "the request is not a CloudEvent: no CloudEvents content type and no ce-* headers",
            format!(
                "send `Content-Type: {STRUCTURED}` with the event as JSON, or the data with \
                 the headers {}",
                REQUIRED_HEADERS.join(", ")
            ),
        ));
    }
    if !missing.is_empty() {
        return Err(ApiError::bad_request(
            format!(
                "the binary-mode CloudEvent lacks the header(s) {}",
                missing.join(", ")
            ),
            format!("binary mode needs {}", REQUIRED_HEADERS.join(", ")),
        ));
    }
    let mut out = Vec::new();
    let mut key = None;
    for (name, value) in headers {
        let Some(attribute) = name.as_str().strip_prefix(HTTP_HEADER_PREFIX) else {
            continue;
        };
        let value = percent_decode(value.as_bytes()).map_err(|problem| {
            ApiError::bad_request(
                format!("header {name}: {problem}"),
                "CloudEvents HTTP header values are UTF-8, percent-encoded (%XX) where needed",
            )
        })?;
        if attribute == "partitionkey" {
            key = Some(value.clone());
        }
        out.push((
            format!("{KAFKA_HEADER_PREFIX}{attribute}"),
            value.into_bytes(),
        ));
    }
    if let Some(content_type) = content_type {
        out.push(("content-type".to_owned(), content_type.into_bytes()));
    }
    Ok(vec![OutRecord {
        key,
        headers: out,
        value: body,
    }])
}

/// Decodes `%XX` escapes (the HTTP binding's encoding of header values) into UTF-8 text.
/// `percent-encoding` passes a malformed escape through as it is; the binding says a `%`
/// starts an escape, so one without two hex digits after it is refused here instead.
fn percent_decode(raw: &[u8]) -> Result<String, String> {
    let malformed = raw.iter().enumerate().any(|(at, &byte)| {
        byte == b'%'
            && !raw
                .get(at + 1..at + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if malformed {
        return Err("a `%` is not followed by two hex digits".to_owned());
    }
    percent_encoding::percent_decode(raw)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| "the decoded value is not UTF-8".to_owned())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A header map of `pairs`, for the tests of every module that reads request headers.
    pub(crate) fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("header value"));
        }
        map
    }

    #[test]
    fn binary_mode_headers_become_kafka_ce_headers_percent_decoded() {
        let map = headers(&[
            ("ce-specversion", "1.0"),
            ("ce-id", "42"),
            ("ce-source", "/ci"),
            ("ce-type", "build.failed"),
            ("ce-subject", "caf%C3%A9%20bar"),
            ("ce-partitionkey", "repo-1"),
            ("content-type", "application/json"),
            ("x-other", "ignored"),
        ]);
        let out = records(&map, Bytes::from_static(b"{\"ok\":false}")).expect("valid");
        assert_eq!(out.len(), 1);
        let record = &out[0];
        assert_eq!(record.key.as_deref(), Some("repo-1"));
        let header = |name: &str| {
            record
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(header("ce_subject").as_deref(), Some("café bar"));
        assert_eq!(header("ce_id").as_deref(), Some("42"));
        assert_eq!(header("content-type").as_deref(), Some("application/json"));
        assert_eq!(header("x-other"), None);
        assert_eq!(&record.value[..], b"{\"ok\":false}");
    }

    #[test]
    fn a_request_that_is_no_cloudevent_or_lacks_headers_is_refused_saying_what_is_missing() {
        let err = records(
            &headers(&[("content-type", "application/json")]),
            Bytes::new(),
        )
        .expect_err("plain JSON");
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.error.contains("not a CloudEvent"), "{err:?}");
        let err = records(
            &headers(&[("ce-id", "1"), ("ce-source", "/s")]),
            Bytes::new(),
        )
        .expect_err("incomplete");
        assert!(err.error.contains("ce-specversion, ce-type"), "{err:?}");
        let err = records(
            &headers(&[
                ("ce-id", "%ZZ"),
                ("ce-source", "/s"),
                ("ce-type", "t"),
                ("ce-specversion", "1.0"),
            ]),
            Bytes::new(),
        )
        .expect_err("bad escape");
        assert!(err.error.contains("two hex digits"), "{err:?}");
        let err = records(
            &headers(&[("content-type", "application/cloudevents+xml")]),
            Bytes::new(),
        )
        .expect_err("xml");
        assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn a_batch_becomes_one_structured_record_per_event() {
        let body = r#"[{"specversion":"1.0","id":"1","source":"/s","type":"t","partitionkey":"k"},
                       {"specversion":"1.0","id":"2","source":"/s","type":"t"}]"#;
        let map = headers(&[(
            "content-type",
            "application/cloudevents-batch+json; charset=utf-8",
        )]);
        let out = records(&map, Bytes::from(body)).expect("valid");
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].key.as_deref(), Some("k"));
        assert_eq!(out[1].key, None);
        let second: Value = serde_json::from_slice(&out[1].value).expect("json");
        assert_eq!(second["id"], "2");
        assert_eq!(out[1].headers[0].1, STRUCTURED.as_bytes());
        let err = records(&map, Bytes::from_static(b"{}")).expect_err("not an array");
        assert!(err.error.contains("JSON array"), "{err:?}");
    }

    proptest::proptest! {
        /// Any text percent-encoded (every non-alphanumeric byte escaped) decodes back to itself.
        #[test]
        fn percent_decoding_inverts_encoding_for_any_unicode(text in "\\PC*") {
            let encoded = percent_encoding::utf8_percent_encode(
                &text,
                percent_encoding::NON_ALPHANUMERIC,
            )
            .to_string();
            proptest::prop_assert_eq!(percent_decode(encoded.as_bytes()), Ok(text));
        }

        /// Any bytes give text or an error, never a panic; a `%` without two hex digits after
        /// it is always the error that says so.
        #[test]
        fn percent_decoding_any_bytes_never_panics(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let bad_escape = raw.iter().enumerate().any(|(at, &byte)| {
                byte == b'%'
                    && !raw
                        .get(at + 1..at + 3)
                        .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            });
            match percent_decode(&raw) {
                Ok(_) => proptest::prop_assert!(!bad_escape),
                Err(message) => proptest::prop_assert!(
                    bad_escape == message.contains("two hex digits"),
                    "{message}"
                ),
            }
        }
    }
}
