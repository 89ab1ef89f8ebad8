//! `GET /v1/rules`: what is running, for operators. Each loaded rule with where it is written,
//! whether it is enabled or in dry run, the topics it selects, its action kinds, the state it
//! holds and when it last fired; plus the last reload (and, after a refused one, its problems).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::AppState;
use super::problem::ApiError;
use crate::pipeline::reload::StateSummary;

/// One rule in the listing.
#[derive(Debug, Clone, Serialize)]
pub struct RuleView {
    /// Its name.
    pub name: String,
    /// Its description (may be empty).
    pub description: String,
    /// `file:line` of its `name:`.
    pub location: String,
    /// Evaluated at all.
    pub enabled: bool,
    /// Actions are recorded, not carried out.
    pub dry_run: bool,
    /// `mode: shadow`: actions are recorded `shadow`, never executed.
    pub shadow: bool,
    /// Evaluation order (higher first).
    pub priority: i32,
    /// Topic patterns of its `select:` (empty: every topic).
    pub topics: Vec<String>,
    /// Its action kinds, in order.
    pub actions: Vec<&'static str>,
    /// `stateless`, `throttle`, `threshold`, `correlate` or `absence`.
    pub behaviour: &'static str,
    /// The state it holds (stateful rules that hold any).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<StateSummary>,
    /// When it last planned actions in this process (null: not since start or reload).
    pub last_match: Option<DateTime<Utc>>,
}

/// The whole answer.
#[derive(Debug, Clone, Serialize)]
pub struct RulesView {
    /// Number of rules loaded.
    pub count: usize,
    /// The rules, in evaluation order.
    pub rules: Vec<RuleView>,
    /// Reloads so far and the last refused one.
    pub reload: crate::reload::StatusInner,
    /// Why the rules' `state` is missing: the store could not be read within
    /// [`STATE_READ_TIMEOUT`] (the rules themselves are still listed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_error: Option<String>,
}

/// How long `GET /v1/rules` waits for the store's count of each rule's keys: the listing is an
/// operator's view and must answer while the store is down (readiness says why).
pub const STATE_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /v1/rules`.
pub(super) async fn list(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.rules_token
        && let Err(err) = token.verify(&headers)
    {
        return err.into_response();
    }
    let Some(pipeline) = &state.pipeline else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "no rules run in this process",
            "GET /v1/rules is served by `reflex run`",
        )
        .into_response();
    };
    let rules = pipeline.rules();
    let (states, state_error) =
        match tokio::time::timeout(STATE_READ_TIMEOUT, pipeline.state_summary()).await {
            Ok(Ok(states)) => (states, None),
            Ok(Err(err)) => (
                Default::default(),
                Some(format!(
                    "cannot read the rules' state from the store: {err}"
                )),
            ),
            Err(_) => (
                Default::default(),
                Some(format!(
                    "the store did not answer within {STATE_READ_TIMEOUT:?}; `/readyz` names \
                     the failing dependency"
                )),
            ),
        };
    let last = pipeline.last_matches();
    let views = rules
        .rules()
        .iter()
        .map(|rule| RuleView {
            name: rule.name.clone(),
            description: rule.description.clone(),
            location: format!("{}:{}", rule.file.display(), rule.line),
            enabled: rule.enabled,
            dry_run: rule.dry_run,
            shadow: rule.shadow,
            priority: rule.priority,
            topics: rule
                .selector
                .topics
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect(),
            actions: rule.actions.iter().map(|a| a.kind.as_str()).collect(),
            behaviour: rule.behaviour.kind(),
            state: states.get(&rule.name).copied(),
            last_match: last.get(&rule.name).copied(),
        })
        .collect::<Vec<_>>();
    Json(RulesView {
        count: views.len(),
        rules: views,
        reload: state.reload.snapshot(),
        state_error,
    })
    .into_response()
}
