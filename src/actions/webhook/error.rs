//! Errors of the webhook executor, classified for the pipeline's retry decision.

use crate::actions::secrets::SecretError;

/// Why a webhook failed. Messages never contain secret values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The planned action's parameters are not a valid webhook (a bug or a version skew between
    /// planner and executor).
    #[error("invalid webhook parameters: {0}")]
    InvalidParams(String),
    /// The rendered URL points at a host outside the allow-list; nothing was sent.
    #[error(
        "webhook host `{host}` is not allowed (allowed: {allowed}); add it to the webhook \
         `allowed_hosts` in the Reflex configuration if it is a legitimate destination"
    )]
    HostNotAllowed {
        /// The refused host.
        host: String,
        /// The allow-list.
        allowed: String,
    },
    /// The configured allow-list has a malformed entry.
    #[error("webhook allowed_hosts entry `{0}` is malformed; write `host` or `*.domain`")]
    BadAllowList(String),
    /// A secret could not be resolved; nothing was sent.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot build the webhook HTTP client")]
    Client(#[source] reqwest::Error),
    /// Every attempt timed out.
    #[error("webhook {target}: no response within {timeout_ms} ms ({attempts} attempts)")]
    Timeout {
        /// `METHOD scheme://host/path` (query left out).
        target: String,
        /// Per-attempt timeout.
        timeout_ms: u64,
        /// Attempts made.
        attempts: u32,
    },
    /// The last attempt could not connect.
    #[error("webhook {target}: cannot connect ({attempts} attempts)")]
    Connect {
        /// `METHOD scheme://host/path`.
        target: String,
        /// Attempts made.
        attempts: u32,
        /// The connection error.
        #[source]
        source: reqwest::Error,
    },
    /// The last attempt failed while sending or receiving (connection reset, bad response).
    #[error("webhook {target}: request failed ({attempts} attempts)")]
    Transport {
        /// `METHOD scheme://host/path`.
        target: String,
        /// Attempts made.
        attempts: u32,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The receiver answered with a status outside `success_status`.
    #[error("webhook {target}: status {status} after {attempts} attempts: {excerpt}")]
    Status {
        /// `METHOD scheme://host/path`.
        target: String,
        /// The last status.
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// Start of the response body (redacted like [`super::WebhookResult::response_excerpt`]).
        excerpt: String,
    },
}

impl Error {
    /// True when trying the same action again later may succeed (timeouts, connection errors,
    /// `429` and `5xx`); false for failures that will repeat (bad parameters, refused host,
    /// missing secret, `4xx`).
    pub fn retryable(&self) -> bool {
        match self {
            Error::InvalidParams(_)
            | Error::HostNotAllowed { .. }
            | Error::BadAllowList(_)
            | Error::Secret(_)
            | Error::Client(_) => false,
            Error::Timeout { .. } | Error::Connect { .. } | Error::Transport { .. } => true,
            Error::Status { status, .. } => retryable_status(*status),
        }
    }

    /// Attempts made before failing (0 when nothing was sent).
    pub fn attempts(&self) -> u32 {
        match self {
            Error::Timeout { attempts, .. }
            | Error::Connect { attempts, .. }
            | Error::Transport { attempts, .. }
            | Error::Status { attempts, .. } => *attempts,
            _ => 0,
        }
    }
}

/// `429 Too Many Requests` and server errors are worth retrying; other statuses are answers.
pub(super) fn retryable_status(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status)
}
