//! The `log` executor: emits the rendered message and fields as a tracing event (target
//! `reflex::actions::log`) and succeeds. It changes nothing outside the process, which makes
//! it the action the pipeline's tests count executions with.

use serde_json::json;

use super::Execution;
use crate::rules::PlannedAction;
use crate::rules::action::{LogAction, LogLevel};

/// Executes a `log` action of `action` (whose parameters are `params`).
pub fn execute(action: &PlannedAction, params: &LogAction) -> Execution {
    let fields = params
        .fields
        .as_ref()
        .map(|f| f.to_string())
        .unwrap_or_default();
    match params.level {
        LogLevel::Info => tracing::info!(
            target: "reflex::actions::log",
            rule = %action.rule,
            event_id = %action.event_id,
            idempotency_key = %action.idempotency_key,
            fields = %fields,
            "{}",
            params.message
        ),
        LogLevel::Warn => tracing::warn!(
            target: "reflex::actions::log",
            rule = %action.rule,
            event_id = %action.event_id,
            idempotency_key = %action.idempotency_key,
            fields = %fields,
            "{}",
            params.message
        ),
    }
    Execution::Succeeded(json!({ "logged": params.message }))
}
