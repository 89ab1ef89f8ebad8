//! Decoders from a Kafka record (bytes + headers) to [`super::Event`]s.
// CONTRACT (owned by the events helper), see the helper brief.
