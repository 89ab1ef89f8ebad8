//! The one error type of the Kubernetes executor and its retry classification.

use std::time::Duration;

/// Convenience alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a Kubernetes action failed. [`Error::retryable`] says whether the caller should back off
/// and try again (conflicts are already retried inside the executor, a bounded number of times).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The planned parameters do not fit the action (a bug in the rule or the planner).
    #[error("invalid parameters for `{action}`: {reason}")]
    InvalidParams {
        /// The action kind.
        action: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The identity Reflex runs as lacks a permission. Permanent until RBAC changes.
    #[error("{}", forbidden_message(.verb, .resource, .group, .namespace.as_deref(), .message))]
    Forbidden {
        /// The RBAC verb, e.g. `patch`.
        verb: &'static str,
        /// The RBAC resource, with its subresource, e.g. `deployments/scale`.
        resource: String,
        /// The API group (empty for the core group).
        group: String,
        /// The namespace; `None` for cluster-scoped objects.
        namespace: Option<String>,
        /// The API server's message.
        message: String,
    },
    /// The object (or its kind) does not exist. Permanent: retrying will not create it.
    #[error("{what} not found: {message}")]
    NotFound {
        /// What was looked for, e.g. `apps/v1 Deployment shop/web`.
        what: String,
        /// The API server's (or discovery's) message.
        message: String,
    },
    /// The kind exists but cannot do what the action needs (e.g. no `scale` subresource).
    #[error("{what}: {reason}")]
    Unsupported {
        /// The object or kind.
        what: String,
        /// Why the action cannot work on it.
        reason: String,
    },
    /// A safety check refused the action (e.g. deleting a bare Pod).
    #[error("refused to {action} {what}: {reason}")]
    Refused {
        /// The action kind.
        action: &'static str,
        /// The object.
        what: String,
        /// Why, and how to allow it when that is possible.
        reason: String,
    },
    /// The object already exists (create).
    #[error("{what} already exists: {message}")]
    AlreadyExists {
        /// The object.
        what: String,
        /// The API server's message.
        message: String,
    },
    /// The API server rejected the request itself (400, 422, ...): a bad patch or manifest.
    #[error("the API server rejected `{verb}` on {what} ({code}): {message}")]
    Rejected {
        /// The verb.
        verb: &'static str,
        /// The object.
        what: String,
        /// HTTP status code.
        code: u16,
        /// The API server's message.
        message: String,
    },
    /// The object kept changing under us: every re-read and retry hit a conflict.
    #[error("{what} changed concurrently {attempts} times in a row; giving up for now")]
    Conflict {
        /// The object.
        what: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The API server is unavailable, overloaded or failed (5xx, 429, connection errors).
    #[error("`{verb}` on {what} failed, the API server may be unavailable: {source}")]
    Unavailable {
        /// The verb.
        verb: &'static str,
        /// The object.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// A single request got no answer in time.
    #[error("`{verb}` on {what} got no answer within {limit:?}")]
    Timeout {
        /// The verb.
        verb: &'static str,
        /// The object.
        what: String,
        /// The per-request bound.
        limit: Duration,
    },
    /// The change was made but the controller did not observe it within the wait bound.
    #[error(
        "{what}: the change was applied (generation {generation}) but the controller had only \
         observed generation {observed} after {limit:?}"
    )]
    RolloutTimeout {
        /// The workload.
        what: String,
        /// The generation the change produced.
        generation: i64,
        /// The last observed generation.
        observed: i64,
        /// The wait bound.
        limit: Duration,
    },
    /// Any other client error (an unexpected response shape, a request that could not be built).
    #[error("`{verb}` on {what} failed: {source}")]
    Client {
        /// The verb.
        verb: &'static str,
        /// The object.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// Whether trying again later may succeed: API unavailability (5xx, 429, connection
    /// errors), request timeouts and conflicts that outlasted the internal retries. Everything
    /// else (403, 404, invalid parameters, refusals, rejected patches) fails the same way again.
    /// A rollout that was not observed in time is not retryable: the change is already applied
    /// and re-running the action would only wait again.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. } | Error::Timeout { .. } | Error::Conflict { .. }
        )
    }

    /// Whether the request never left: no connection to the API server could be opened
    /// (refused, no route, DNS, TLS handshake). Nothing can have taken effect, so the action
    /// may wait and run later whatever its kind; any other failure may have reached the server.
    pub fn not_sent(&self) -> bool {
        let Error::Unavailable { source, .. } = self else {
            return false;
        };
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source);
        while let Some(err) = cause {
            if err
                .downcast_ref::<hyper_util::client::legacy::Error>()
                .is_some_and(hyper_util::client::legacy::Error::is_connect)
            {
                return true;
            }
            cause = err.source();
        }
        false
    }
}

/// "reflex is not allowed to `patch` `deployments/scale` (API group `apps`) in namespace `shop`:
/// add this to its Role ...".
fn forbidden_message(
    verb: &str,
    resource: &str,
    group: &str,
    namespace: Option<&str>,
    message: &str,
) -> String {
    let group = if group.is_empty() {
        " (core API group)".to_owned()
    } else {
        format!(" (API group `{group}`)")
    };
    let (scope, role) = match namespace {
        Some(ns) => (format!("in namespace `{ns}`"), "Role"),
        None => ("cluster-wide".to_owned(), "ClusterRole"),
    };
    format!(
        "reflex is not allowed to `{verb}` `{resource}`{group} {scope}: add this to its {role} \
         (`reflex rbac DIR` prints every rule the rules need); the API server said: {message}"
    )
}
