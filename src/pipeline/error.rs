//! Why a record is not done: an infrastructure failure the caller retries after a backoff.

use chrono::{DateTime, Utc};

use crate::outcome::topic;
use crate::store;

/// An infrastructure failure (store or Kafka unavailable): the record is not done, its offset
/// must not be stored, and the caller retries it after a backoff. Retrying is safe: claimed
/// actions are not executed twice.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A store operation failed.
    #[error("audit store failed while {context}")]
    Store {
        /// What was being done, naming the rule/action/event.
        context: String,
        /// The store's error (names the operation and database); boxed to keep `Result`
        /// small on the per-record path.
        #[source]
        source: Box<store::Error>,
    },
    /// Publishing to Kafka failed.
    #[error("Kafka publication failed while {context}")]
    Publish {
        /// What was being done.
        context: String,
        /// The producer's error (names the topic); boxed like the store's.
        #[source]
        source: Box<topic::Error>,
    },
    /// Another instance claimed this action recently and has not finished it; retry later.
    #[error(
        "action `{idempotency_key}` (rule `{rule}`) is being executed by instance `{claimant}` \
         since {since}; retry after it finishes or after the claim lease ({lease_secs} s) expires"
    )]
    ClaimedElsewhere {
        /// The action's key.
        idempotency_key: String,
        /// Its rule.
        rule: String,
        /// The instance holding the claim.
        claimant: String,
        /// When its attempt started.
        since: DateTime<Utc>,
        /// `pipeline.claim_lease_secs`.
        lease_secs: u64,
    },
    /// An action's service could not be reached (no connection opened): nothing was executed,
    /// the claim was withdrawn, and the record is retried later.
    #[error(
        "action {action_index} (`{kind}`) of rule `{rule}` for event `{event_id}` was not \
         executed: {message}; the record is retried"
    )]
    Unreachable {
        /// The rule.
        rule: String,
        /// The action's kind.
        kind: &'static str,
        /// The action's position in the rule.
        action_index: usize,
        /// The event.
        event_id: String,
        /// Why (names the service and its address).
        message: String,
    },
    /// A rule's state could not be serialized (a bug in the rule engine).
    #[error("cannot serialize the state of rule `{rule}`")]
    State {
        /// The rule.
        rule: String,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    pub(super) fn store(context: impl Into<String>) -> impl FnOnce(store::Error) -> Error {
        move |source| Error::Store {
            context: context.into(),
            source: Box::new(source),
        }
    }

    pub(super) fn publish(context: impl Into<String>) -> impl FnOnce(topic::Error) -> Error {
        move |source| Error::Publish {
            context: context.into(),
            source: Box::new(source),
        }
    }
}
