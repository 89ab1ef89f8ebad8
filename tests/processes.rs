//! Processes tier: the real `reflex` binary (`run`, `bench`, the Helm chart's pod) as child
//! processes against the real services, including a real Alertmanager delivering to `reflex
//! run`, several replicas on one store, a private Kafka broker that is killed and restarted,
//! and the fault-injection suite (`faults::`: private PostgreSQL, broker, API-server proxy and
//! tmpfs failing under load). Built only with `--features services`.
//!
//! Run: `scripts/services up && eval "$(scripts/services env)" && cargo test --features services --test processes -- --include-ignored`
//! (add a module path such as `run_replicas::` to run one group).

/// Shared fixtures (tests/support/), `pub` because each tier uses a different part of them.
pub mod support;

mod processes {
    mod alertmanager;
    mod bench_cli;
    mod broker_restart;
    mod closed_loop;
    mod faults;
    mod helm_chart;
    mod ingest;
    mod log_burst;
    mod reload;
    mod run_pipeline;
    mod run_replicas;
    mod run_smoke;
    mod shadow;
    mod stateful_replicas;
}
