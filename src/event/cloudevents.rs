//! CloudEvents 1.0 names in one place, shared by the decoder, the HTTP ingest, the `kafka`
//! action and the outcome records: the spec version, the required attributes, the binding
//! prefixes (Kafka binding `ce_`, HTTP binding `ce-`) and the structured-mode content types.

/// The spec version Reflex writes (`specversion` / `ce_specversion`).
pub const SPEC_VERSION: &str = "1.0";

/// The attributes every CloudEvent must have.
pub const REQUIRED_ATTRIBUTES: [&str; 4] = ["specversion", "id", "source", "type"];

/// Prefix of attribute headers in the Kafka protocol binding (binary mode).
pub const KAFKA_HEADER_PREFIX: &str = "ce_";

/// Prefix of attribute headers in the HTTP protocol binding (binary mode).
pub const HTTP_HEADER_PREFIX: &str = "ce-";

/// [`REQUIRED_ATTRIBUTES`] as Kafka binary-mode headers (static, so errors can list them
/// without allocating; a test keeps them equal to prefix + attribute).
pub const REQUIRED_KAFKA_HEADERS: [&str; 4] = ["ce_specversion", "ce_id", "ce_source", "ce_type"];

/// [`REQUIRED_ATTRIBUTES`] as HTTP binary-mode headers.
pub const REQUIRED_HTTP_HEADERS: [&str; 4] = ["ce-specversion", "ce-id", "ce-source", "ce-type"];

/// Content type of one structured-mode event.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";

/// Content type of a batch of structured-mode events (a JSON array).
pub const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_required_headers_are_the_required_attributes_with_each_binding_prefix() {
        for (i, attribute) in REQUIRED_ATTRIBUTES.iter().enumerate() {
            assert_eq!(
                REQUIRED_KAFKA_HEADERS[i],
                format!("{KAFKA_HEADER_PREFIX}{attribute}")
            );
            assert_eq!(
                REQUIRED_HTTP_HEADERS[i],
                format!("{HTTP_HEADER_PREFIX}{attribute}")
            );
        }
    }
}
