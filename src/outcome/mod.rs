//! The outcome record and its publication: [`record`] is the CloudEvents-shaped outcome record
//! and [`topic`] publishes it (and dead letters) to Kafka. The rows behind it live in
//! [`crate::store`].

pub mod record;
pub mod topic;
