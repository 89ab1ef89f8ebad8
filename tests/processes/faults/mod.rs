//! Fault injection: the real `reflex run` handles a steady stream of events whose rule fires
//! actions while a dependency fails under it: PostgreSQL stopped and restarted mid-claim, the
//! Kafka broker killed during outcome publishes, the Kubernetes API unreachable for 30 s, a
//! webhook that hangs past its timeout, the disk of the SQLite store full. After each: every
//! event has its final outcome in the store and on the outcomes topic, the receiving end
//! carried out no action twice, the process recovered without a restart, and `/readyz` said
//! "not ready" while a required dependency was down and "ready" again after.
//!
//! The services that are stopped are PRIVATE to the test (a PostgreSQL in a temp dir, a Kafka
//! broker from the cached jars, a TCP proxy in front of the shared API server, a tmpfs): the
//! shared services of `scripts/services` are never touched. The matrix of results is in
//! docs/operations.md, "Fault injection"; each test prints its figures (`--nocapture`).
//!
//! Run: `scripts/services up && eval "$(scripts/services env)" && cargo test --features services --test processes faults::`

mod apiserver_cut;
mod broker_kill;
mod disk_full;
mod harness;
mod postgres_restart;
mod webhook_hang;
