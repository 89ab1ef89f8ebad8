//! The JSON error answer of the `/v1` endpoints: what is wrong and how to fix it.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Seconds a client is asked to wait before retrying after a 503. Alertmanager retries on its
/// own schedule; other senders get a hint short enough that a Kafka blip costs little.
const RETRY_AFTER_SECS: &str = "5";

/// A 4xx/5xx answer: `{"error": "...", "hint": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    /// The status code (not serialized: it is the response's status).
    #[serde(skip)]
    pub status: StatusCode,
    /// What is wrong.
    pub error: String,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl ApiError {
    /// An error with a hint.
    pub fn new(status: StatusCode, error: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            status,
            error: error.into(),
            hint: Some(hint.into()),
        }
    }

    /// 400: the request is not what the endpoint accepts.
    pub fn bad_request(error: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, hint)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut response = (status, Json(self)).into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"reflex\""),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body was never read, so the connection cannot carry another
            // request; saying so keeps clients from reusing it (they would see it reset).
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_oversized_body_closes_the_connection_and_other_refusals_keep_it() {
        let too_large =
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "big", "smaller").into_response();
        assert_eq!(too_large.headers()[header::CONNECTION], "close");
        let bad = ApiError::new(StatusCode::BAD_REQUEST, "bad", "fix").into_response();
        assert!(bad.headers().get(header::CONNECTION).is_none());
    }
}
