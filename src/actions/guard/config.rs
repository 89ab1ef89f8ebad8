//! The guardrail settings, re-exported from the `actions:` configuration section
//! ([`crate::config::ActionsConfig`]) where they are defined: configuration does not depend on
//! the guardrails, the guardrails read configuration.

pub use crate::config::{CircuitConfig, ClusterScopedLists, NamespaceLists};
