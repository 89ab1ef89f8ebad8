//! Where results go: the outcomes topic and the SQL audit store (SQLite or PostgreSQL).
//!
//! [`store`] is the audit store, [`claim`] moves a claimed row to its final state, [`circuit`]
//! keeps the circuit breakers' counts and open circuits, [`history`] reads it back for
//! `reflex history`, [`rule_keys`] persists rule state per group key, [`store_url`] redacts the
//! store's URL for display, [`record`] is the CloudEvents-shaped outcome record and [`topic`]
//! publishes it (and dead letters) to Kafka.

pub mod circuit;
pub mod claim;
pub mod history;
pub mod record;
pub mod rule_keys;
pub mod store;
pub mod store_url;
pub mod topic;
