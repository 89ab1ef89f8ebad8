//! Reflex: Kafka events in, YAML rules, safe actions, audited outcomes.
//!
//! Layout, by pipeline stage:
//! - [`event`]: the decoded event the rules see (payload + metadata) and the decoders that build it
//!   from Kafka records (JSON, CloudEvents, Alertmanager, Kubernetes Event, Falco).
//! - [`source`]: the Kafka consumer that feeds events in (at-least-once offset handling).
//! - [`rules`]: the pure rule engine: YAML model, loading with located diagnostics, compiled rule
//!   set, conditions, stateful windows, templates, planned actions, rule test runner.
//! - [`actions`]: executors that carry out planned actions (Kubernetes, webhook, Kafka), and
//!   the guardrails around them (namespace policy, circuit breaker, per-target locks).
//! - [`outcome`]: the outcome record and its publication to the outcomes topic.
//! - [`store`]: the SQL store (SQLite or PostgreSQL), every table in one module: outcomes and
//!   claims, circuits, rule state, history, per-target locks.
//! - [`pipeline`]: wires the stages for one record: decode, rules, execute, record outcomes.
//! - [`server`]: HTTP endpoints: health, readiness, metrics, the rules listing, and ingest
//!   (Alertmanager webhooks and CloudEvents posted over HTTP, written to Kafka).
//! - [`reload`]: hot reload of the rules directory (polling and SIGHUP), swapping valid sets in.
//! - [`metrics`]: the Prometheus metrics every stage records into.
//! - [`app`]: the running controller wired from the stages above (connect, build the pipeline
//!   and executors, timers, signals, critical tasks, HTTP server); `reflex run` and `bench` use it.
//! - [`config`]: the `reflex run` configuration file and its defaults.
//! - [`cli`]: the subcommands behind the `reflex` binary.
//! - [`build_info`]: the version, commit and build date the binary was built from.

pub mod actions;
pub mod app;
pub mod build_info;
pub mod cli;
pub mod config;
pub mod event;
pub mod metrics;
pub mod outcome;
pub mod pipeline;
pub mod reload;
pub mod rules;
pub mod server;
pub mod source;
pub mod store;
