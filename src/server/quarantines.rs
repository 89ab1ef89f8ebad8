//! `GET /v1/quarantines` and `POST /v1/quarantines/release`: the loop guard's quarantines for
//! operators. A quarantine is a (rule, target) the rule stopped acting on because its
//! remediations kept "working" and the trigger kept coming back; it holds until it expires or
//! is released here (or with `reflex release`). Both read and write the audit store every
//! replica shares, so any replica answers for all of them.
//!
//! Answers: `GET` 200 `{"quarantines": [...]}` (active ones; `?all=true` every row, released
//! and expired too); `POST` with `{"target": "deployment/shop/checkout", "rule"?: "..."}` 200
//! `{"released": [...]}`, 404 when nothing was quarantined there, 400 for a bad body, 401
//! without the token, 403 when no token is configured (releasing is off), 503 when the store
//! does not answer. The listing is protected like `GET /v1/rules` (`server.rules_api_auth`);
//! releasing always needs the ingest token, like the ingest endpoints.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::{self, Token};
use super::problem::ApiError;
use crate::config::IngestConfig;
use crate::store::remediations::QuarantineRow;

/// How long a request waits for the store: an operator's call must answer while the store is
/// down (`/readyz` then names it), not hang.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// Who `released_by` names for a release over HTTP.
pub const RELEASED_BY_HTTP: &str = "http";

/// One quarantine as operators see it (the HTTP answers and `reflex quarantines --format json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuarantineView {
    /// The rule that stopped acting.
    pub rule: String,
    /// The object it stopped acting on, as outcomes name it (`deployment/shop/checkout`).
    pub target: String,
    /// Whether the rule leaves the target alone now (not released, not expired).
    pub active: bool,
    /// When the quarantine was (last) opened.
    pub since: Option<DateTime<Utc>>,
    /// When it expires on its own.
    pub until: Option<DateTime<Utc>>,
    /// Why.
    pub reason: String,
    /// The remediation whose recurrence tripped the guard (`reflex history --remediation ID`).
    pub remediation_id: Option<String>,
    /// When an operator released it.
    pub released_at: Option<DateTime<Utc>>,
    /// Who released it (`cli:<user>`, `http`).
    pub released_by: Option<String>,
}

impl QuarantineView {
    /// The view of `row` as of `now_ms`.
    pub fn new(row: &QuarantineRow, now_ms: i64) -> Self {
        Self {
            rule: row.rule.clone(),
            target: row.target.clone(),
            active: row.active(now_ms),
            since: DateTime::from_timestamp_millis(row.since_ms),
            until: DateTime::from_timestamp_millis(row.until_ms),
            reason: row.reason.clone(),
            remediation_id: row.remediation_id.clone(),
            released_at: row.released_ms.and_then(DateTime::from_timestamp_millis),
            released_by: row.released_by.clone(),
        }
    }
}

/// A target as the store names it: outcomes write the kind in lower case
/// (`deployment/shop/checkout`), so `Deployment/shop/checkout` names the same object. Only the
/// kind is folded; namespaces and names are case-sensitive in Kubernetes.
pub fn target_name(text: &str) -> String {
    let text = text.trim();
    match text.split_once('/') {
        Some((kind, rest)) => format!("{}/{rest}", kind.to_lowercase()),
        None => text.to_owned(),
    }
}

/// Whether `POST /v1/quarantines/release` is served, and with which token.
#[derive(Debug, Clone)]
pub enum ReleaseAuth {
    /// Callers must send this bearer token (the ingest token).
    Token(Token),
    /// No token (`server.ingest.allow_unauthenticated: true`, a listener only trusted clients
    /// reach).
    Open,
    /// Refused with 403: no token is configured.
    Off,
}

impl ReleaseAuth {
    /// From `server.ingest`: its token (`token_file`, else `token_env`); open only with
    /// `allow_unauthenticated`. Independent of `server.ingest.enabled`: turning ingest off
    /// must not take away the way out of a quarantine.
    pub fn configure(
        config: &IngestConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, auth::Error> {
        Ok(match Token::from_config(config, env)? {
            Some(token) => Self::Token(token),
            None if config.allow_unauthenticated => Self::Open,
            None => Self::Off,
        })
    }

    fn verify(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match self {
            Self::Token(token) => token.verify(headers),
            Self::Open => Ok(()),
            Self::Off => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "releasing quarantines over HTTP is off: no bearer token is configured",
                "set server.ingest.token_file or server.ingest.token_env (or \
                 allow_unauthenticated: true on a listener only trusted clients reach), or run \
                 `reflex release TARGET` against the store",
            )),
        }
    }
}

/// The query of `GET /v1/quarantines`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// Every row, released and expired too.
    #[serde(default)]
    all: bool,
}

/// The body of `POST /v1/quarantines/release`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseRequest {
    /// The quarantined object, e.g. `deployment/shop/checkout`.
    target: String,
    /// Only this rule's quarantine (default: every rule's on the target).
    #[serde(default)]
    rule: Option<String>,
}

/// 503 for a store that failed or did not answer in time.
fn store_unavailable(what: &str, why: String) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("cannot {what}: {why}"),
        "`/readyz` names the failing dependency; retry when the store answers",
    )
}

/// Runs a store call within [`STORE_TIMEOUT`], mapping failure to a 503.
async fn within<T>(
    what: &str,
    call: impl Future<Output = crate::store::Result<T>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(STORE_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(store_unavailable(what, err.to_string())),
        Err(_) => Err(store_unavailable(
            what,
            format!("the store did not answer within {STORE_TIMEOUT:?}"),
        )),
    }
}

/// `GET /v1/quarantines`.
pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    if let Some(token) = &state.rules_token
        && let Err(err) = token.verify(&headers)
    {
        return err.into_response();
    }
    let Query(query) = match query {
        Ok(query) => query,
        Err(err) => {
            return ApiError::bad_request(
                err.body_text(),
                "the only parameter is `all=true` (every quarantine, not only active ones)",
            )
            .into_response();
        }
    };
    let now_ms = Utc::now().timestamp_millis();
    let active_at = (!query.all).then_some(now_ms);
    let store = &state.dependencies.store;
    match within("list quarantines", store.quarantines(active_at)).await {
        Ok(rows) => {
            let views: Vec<_> = rows
                .iter()
                .map(|r| QuarantineView::new(r, now_ms))
                .collect();
            Json(serde_json::json!({ "quarantines": views })).into_response()
        }
        Err(err) => err.into_response(),
    }
}

/// `POST /v1/quarantines/release`.
pub(super) async fn release(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(err) = state.release.verify(&headers) {
        return err.into_response();
    }
    let hint =
        r#"send {"target": "deployment/shop/checkout"} and optionally "rule": "<rule name>""#;
    let request: ReleaseRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            return ApiError::bad_request(
                format!("the body is not a release request: {err}"),
                hint,
            )
            .into_response();
        }
    };
    let target = target_name(&request.target);
    if target.is_empty() {
        return ApiError::bad_request("`target` is empty", hint).into_response();
    }
    let rule = request.rule.as_deref().filter(|r| !r.is_empty());
    let now_ms = Utc::now().timestamp_millis();
    let store = &state.dependencies.store;
    let released = within(
        "release quarantines",
        store.release_quarantines(&target, rule, RELEASED_BY_HTTP, now_ms),
    )
    .await;
    match released {
        Ok(rows) if rows.is_empty() => ApiError::new(
            StatusCode::NOT_FOUND,
            match rule {
                Some(rule) => format!("rule `{rule}` has no active quarantine on `{target}`"),
                None => format!("nothing is quarantined on `{target}`"),
            },
            "GET /v1/quarantines lists the active quarantines and their targets",
        )
        .into_response(),
        Ok(rows) => {
            for row in &rows {
                tracing::info!(rule = %row.rule, target = %row.target, by = RELEASED_BY_HTTP, "quarantine released");
            }
            let views: Vec<_> = rows
                .iter()
                .map(|r| QuarantineView::new(r, now_ms))
                .collect();
            Json(serde_json::json!({ "released": views })).into_response()
        }
        Err(err) => err.into_response(),
    }
}

#[cfg(test)]
mod tests;
