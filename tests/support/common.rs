//! What every tier of tests uses, the offline one included: names no other test takes, and the
//! one TLS provider kube and reqwest need.

/// Installs rustls' ring provider once; kube and reqwest need exactly one.
pub fn install_crypto_provider() {
    // Err means another test already installed it, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A name no other test (or earlier run) uses: `<prefix>-<12 hex digits>`, valid as a Kafka
/// topic, a Kubernetes namespace and a PostgreSQL identifier.
pub fn unique_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..12])
}
