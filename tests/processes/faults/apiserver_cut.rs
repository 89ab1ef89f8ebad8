//! The Kubernetes API server unreachable for 30 s. The shared API server keeps running: Reflex
//! reaches it through a TCP proxy of the test (raw bytes, so TLS passes through untouched; the
//! server certificate is valid for 127.0.0.1, whatever the port), and the proxy is cut — its
//! listener closed and every connection dropped — then opened again on the same port.
//!
//! The rule creates one ConfigMap per event with `generateName`, labelled with the event's
//! number: a second execution would be a second object, so the objects are the count at the
//! receiving end.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::harness::{self, Audit, Running};
use crate::support;

/// ~35 s of stream at 20 events/s: it flows before, during and after the cut.
const EVENTS: usize = 700;

/// The length of the cut.
const OUTAGE: Duration = Duration::from_secs(30);

/// A TCP proxy that can be cut and reopened on the same port.
struct Proxy {
    port: u16,
    upstream: String,
    open: CancellationToken,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let mut proxy = Proxy {
            port: support::kafka_broker::pick_port(&[]),
            upstream: upstream.to_owned(),
            open: CancellationToken::new(),
        };
        proxy.reopen().await;
        proxy
    }

    /// Listens again on the port and forwards every connection to the upstream.
    async fn reopen(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap_or_else(|err| panic!("bind the proxy on 127.0.0.1:{}: {err}", self.port));
        let open = CancellationToken::new();
        self.open = open.clone();
        let upstream = self.upstream.clone();
        tokio::spawn(async move {
            loop {
                let client = tokio::select! {
                    // Returning drops the listener: connections are refused from now on.
                    () = open.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((client, _)) => client,
                        Err(_) => continue,
                    },
                };
                let (open, upstream) = (open.clone(), upstream.clone());
                tokio::spawn(async move {
                    let mut client = client;
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        () = open.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
        });
    }

    /// Closes the listener and drops every connection.
    fn cut(&self) {
        self.open.cancel();
    }
}

/// The admin kubeconfig with its server pointed at the proxy.
fn proxied_kubeconfig(dir: &std::path::Path, server: &str, proxy: &Proxy) -> std::path::PathBuf {
    let text = std::fs::read_to_string(support::kubeconfig()).expect("read KUBECONFIG");
    assert!(text.contains(server), "{server} not in the kubeconfig");
    let path = dir.join("kubeconfig-proxied");
    std::fs::write(
        &path,
        text.replace(server, &format!("https://127.0.0.1:{}", proxy.port)),
    )
    .expect("write the proxied kubeconfig");
    path
}

fn create_rule(namespace: &str) -> String {
    format!(
        "rules:\n  - name: fault\n    actions:\n      - create:\n          \
         namespace: {namespace}\n          manifest:\n            apiVersion: v1\n            \
         kind: ConfigMap\n            metadata:\n              generateName: fault-\n              \
         labels:\n                {label}: \"n-{{{{ event.n }}}}\"\n            data:\n              \
         event: \"{{{{ meta.id }}}}\"\n",
        label = harness::LABEL
    )
}

/// Objects created per event number.
async fn created(client: &kube::Client, namespace: &str) -> BTreeMap<u64, usize> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let list = maps
        .list(&ListParams::default().labels(harness::LABEL))
        .await
        .expect("list the created ConfigMaps");
    let mut counts = BTreeMap::new();
    for map in list.items {
        let n = map
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(harness::LABEL))
            .and_then(|v| v.strip_prefix("n-"))
            .and_then(|v| v.parse().ok())
            .expect("labelled with the event number");
        *counts.entry(n).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_api_unreachable_for_30_seconds_loses_and_repeats_nothing() {
    let bootstrap = support::require_kafka().await;
    let admin = support::kube_client(&support::kubeconfig()).await;
    let server = kube::config::Kubeconfig::read_from(support::kubeconfig())
        .expect("read KUBECONFIG")
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref()?.server.clone())
        .expect("a cluster server in KUBECONFIG");
    let upstream = server
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned();
    let mut proxy = Proxy::start(&upstream).await;
    let namespace = support::unique_name("faults");
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}}))
                .expect("namespace"),
        )
        .await
        .expect("create the test namespace");

    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = proxied_kubeconfig(dir.path(), &server, &proxy);
    let store = dir.path().join("audit.db");
    let mut running = Running::start(
        &bootstrap,
        dir,
        &create_rule(&namespace),
        &format!("sqlite://{}", store.display()),
        &harness::actions_section(true),
        &[("KUBECONFIG", kubeconfig.to_str().expect("UTF-8 path"))],
    )
    .await;
    let stream = running.stream(EVENTS);
    support::eventually(
        "objects created before the fault",
        harness::SETTLE_TIMEOUT,
        || async { (created(&admin, &namespace).await.len() >= 40).then_some(()) },
    )
    .await;

    let cut = Instant::now();
    proxy.cut();
    let outage = running
        .outage(cut, Some("kubernetes"), Duration::ZERO, async {
            // The whole 30 s from the cut, however long readiness took to notice.
            tokio::time::sleep_until((cut + OUTAGE).into()).await;
            proxy.reopen().await;
        })
        .await;
    let audit = Audit::sqlite(&store).await;
    let rows = running.settle(stream, &audit, "create").await;
    let objects = created(&admin, &namespace).await;
    let summary = running.conclude(&rows, "create", &objects).await;
    namespaces
        .delete(&namespace, &DeleteParams::default())
        .await
        .expect("delete the test namespace");
    eprintln!("apiserver cut: {summary}; {outage}");
}
