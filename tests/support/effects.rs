//! Looking at what Reflex produced and standing in for what it calls, for the tests of the
//! `services` and `processes` tiers: a record's headers, a real HTTP receiver, the shared
//! PostgreSQL.

use super::required_env;

/// `DATABASE_URL` (PostgreSQL).
pub fn database_url() -> String {
    required_env("DATABASE_URL")
}

/// A record's headers as text (lossy UTF-8; a header without value is empty; last one wins).
pub fn header_map(
    message: &rdkafka::message::OwnedMessage,
) -> std::collections::BTreeMap<String, String> {
    use rdkafka::message::{Headers, Message};
    let mut map = std::collections::BTreeMap::new();
    if let Some(headers) = message.headers() {
        for header in headers.iter() {
            let value = header
                .value
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            map.insert(header.key.to_owned(), value);
        }
    }
    map
}

/// Serves `app` on an ephemeral port of 127.0.0.1 (a real HTTP server standing in for a webhook
/// receiver) until the test's runtime ends; returns its address.
pub async fn serve(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an HTTP server to 127.0.0.1:0");
    let addr = listener.local_addr().expect("server address");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("test HTTP server");
    });
    addr
}
