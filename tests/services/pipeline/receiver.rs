//! A real HTTP server (axum on `127.0.0.1:0`) standing in for a webhook receiver: it records
//! every call (path, `Idempotency-Key`) and answers 200.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};

/// One call as the receiver saw it.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) path: String,
    pub(crate) idempotency_key: Option<String>,
}

type Calls = Arc<Mutex<Vec<Call>>>;

async fn record(State(calls): State<Calls>, uri: Uri, headers: HeaderMap) -> StatusCode {
    calls.lock().expect("calls lock").push(Call {
        path: uri.path().to_owned(),
        idempotency_key: headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });
    StatusCode::OK
}

/// The running receiver; it stops with the test's runtime.
pub(crate) struct Receiver {
    pub(crate) addr: SocketAddr,
    calls: Calls,
}

impl Receiver {
    pub(crate) async fn start() -> Receiver {
        let calls = Calls::default();
        let app = axum::Router::new()
            .fallback(record)
            .with_state(Arc::clone(&calls));
        let addr = crate::support::serve(app).await;
        Receiver { addr, calls }
    }

    /// Every call so far, in arrival order.
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls lock").clone()
    }

    /// How many calls carried `Idempotency-Key: key`.
    pub(crate) fn calls_with_key(&self, key: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.idempotency_key.as_deref() == Some(key))
            .count()
    }
}
