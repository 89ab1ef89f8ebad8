//! The configuration with its secrets masked, for `reflex config print` and support requests.

use super::Config;

/// What a secret is replaced with (the store URL's redaction uses the same mask).
const MASK: &str = "***";

/// Whether a librdkafka client property holds a secret: passwords, the private key in PEM,
/// OAUTHBEARER client secrets and configurations (which may embed one).
fn is_secret_property(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "ssl.key.pem",
        "sasl.oauthbearer.config",
    ]
    .iter()
    .any(|word| name.contains(word))
}

impl Config {
    /// A copy safe to print: secret Kafka client properties and the store URL's password and
    /// secret parameters are `***`. (The ingest token is never part of the configuration: only
    /// the file or variable holding it is named.)
    pub fn redacted(&self) -> Config {
        let mut config = self.clone();
        for (name, value) in &mut config.kafka.client {
            if is_secret_property(name) {
                MASK.clone_into(value);
            }
        }
        config.store.url = crate::store::redact_url(&config.store.url);
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_everything_else_is_kept() {
        let mut config = Config::default();
        for (name, value) in [
            ("sasl.password", "s3cret"),
            ("ssl.key.password", "k3y"),
            ("ssl.key.pem", "-----BEGIN PRIVATE KEY-----"),
            ("sasl.oauthbearer.client.secret", "oauth"),
            ("security.protocol", "SASL_SSL"),
        ] {
            config
                .kafka
                .client
                .insert(name.to_owned(), value.to_owned());
        }
        config.store.url = "postgres://reflex:hunter2@db:5432/reflex".to_owned();
        let shown = config.redacted();
        let printed = serde_json::to_string(&shown).expect("serializes");
        for secret in ["s3cret", "k3y", "PRIVATE KEY", "oauth\"", "hunter2"] {
            assert!(!printed.contains(secret), "{secret} leaked: {printed}");
        }
        assert_eq!(shown.kafka.client["security.protocol"], "SASL_SSL");
        assert_eq!(shown.store.url, "postgres://reflex:***@db:5432/reflex");
        assert_eq!(
            shown.kafka.bootstrap_servers,
            config.kafka.bootstrap_servers
        );
    }
}
