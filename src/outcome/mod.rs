//! Where results go: the outcomes topic and the SQL audit store (SQLite or PostgreSQL).

pub mod store;
