//! Services tier: Reflex's adapters and pipeline in process, against the real Kafka,
//! kube-apiserver and PostgreSQL of `scripts/services` and real HTTP servers. Built only with
//! `--features services`; each test makes its own topic, namespace or database, so they run in
//! parallel against one set of services.
//!
//! Run: `scripts/services up && eval "$(scripts/services env)" && cargo test --features services --test services -- --include-ignored`
//! (add a module path such as `pipeline::` to run one group).

/// Shared fixtures (tests/support/), `pub` because each tier uses a different part of them.
pub mod support;

mod services {
    mod actions_kafka;
    mod actions_kubernetes;
    mod backtest;
    mod cli_closed_loop;
    mod cli_rbac;
    mod guardrails;
    mod ingest_git;
    mod pipeline;
    mod services_smoke;
    mod source_kafka;
    mod store_remediations;
}
