//! Issue #15, "Prove it": a REAL Prometheus Alertmanager (built by `scripts/services up`,
//! started here per test), configured from the shipped `deploy/alertmanager.yaml`, delivers
//! an alert it received through its own API to a real `reflex run`, which restarts a real
//! Deployment on the test kube-apiserver; resolving the alert in Alertmanager reaches Reflex as
//! `resolved` (the example's `send_resolved: true`): the restart's verification records
//! `verified`, and a rule that selects resolved alerts fires on it.
//!
//! Only the parts of the example that depend on where things run are replaced: the receiver's
//! URL (this test's Reflex), the token file (this test's token) and the route's timings (1 s
//! instead of 30 s, so the test does not wait for minutes). Every other line, the route to
//! Reflex with `continue: true`, the webhook settings and the bearer authorization through
//! `credentials_file`, is the example as a user copies it.
//!
//! Run: `eval "$(scripts/services env)" && cargo test --features services --test processes alertmanager::`

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::DeleteParams;
use reflex::store::history::HistoryFilter;
use reflex::store::{OutcomeRecord, OutcomeStatus, Store};
use serde_json::{Value, json};

use crate::support;
use crate::support::reflex_process::free_port;
use crate::support::running::{Reflex, Setup};

/// Bound on Alertmanager's start, its deliveries and Reflex's work on them.
const LIMIT: Duration = Duration::from_secs(90);

/// The alert, by its name and the Deployment its labels name.
const ALERTNAME: &str = "CheckoutErrorBudgetBurn";
const DEPLOYMENT: &str = "checkout";

/// What a shipped binary is missing: `scripts/services up` builds both (cached by version).
const BUILD_HINT: &str = "build them with `scripts/services up` and load their paths with \
     eval \"$(scripts/services env)\"";

/// `ALERTMANAGER_BIN` or `AMTOOL_BIN`, which must name an existing file.
fn binary(variable: &str) -> PathBuf {
    let path = PathBuf::from(support::required_env(variable));
    assert!(
        path.is_file(),
        "{variable}={} does not exist; {BUILD_HINT}",
        path.display()
    );
    path
}

/// Restart the Deployment an alert names, verified when that alert resolves; and a rule that
/// only resolved alerts reach, which logs them.
fn rules() -> String {
    format!(
        r#"rules:
  - name: restart-on-burn
    select: {{formats: [alertmanager]}}
    when: 'labels.alertname == "{ALERTNAME}"'
    actions:
      - restart: {{target: {{namespace: "{{{{ event.labels.namespace }}}}", name: "{{{{ event.labels.deployment }}}}"}}}}
    verify:
      within: 60s
      every: 1s
      alert_resolved: true
  - name: note-resolved
    select: {{formats: [alertmanager], alert_status: resolved}}
    actions:
      - log:
          message: "{{{{ event.labels.alertname }}}} resolved"
"#
    )
}

/// `deploy/alertmanager.yaml` with this test's Reflex URL, token file and short timings; the
/// fields replaced must exist, so a reshaped example fails here instead of being half-tested.
fn render_config(reflex_url: &str, token_file: &Path) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/alertmanager.yaml");
    let text = std::fs::read_to_string(&path).expect("read deploy/alertmanager.yaml");
    let mut config: Value = serde_saphyr::from_str(&text).expect("the example is YAML");
    let route = &mut config["route"];
    for (field, value) in [
        ("group_wait", "1s"),
        ("group_interval", "2s"),
        ("repeat_interval", "1h"),
    ] {
        assert!(
            route.get(field).is_some(),
            "the example's route sets {field}"
        );
        route[field] = json!(value);
    }
    let receivers = config["receivers"]
        .as_array_mut()
        .expect("the example has receivers");
    let reflex = receivers
        .iter_mut()
        .find(|r| r["name"] == "reflex")
        .expect("the example has a receiver named reflex");
    let webhook = &mut reflex["webhook_configs"][0];
    assert_eq!(
        webhook["send_resolved"], true,
        "the example sends resolved alerts"
    );
    assert!(
        webhook["url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/v1/alertmanager")),
        "the example posts to Reflex's /v1/alertmanager: {webhook}"
    );
    webhook["url"] = json!(format!("{reflex_url}/v1/alertmanager"));
    let authorization = &mut webhook["http_config"]["authorization"];
    assert_eq!(authorization["type"], "Bearer", "{authorization}");
    assert!(
        authorization.get("credentials_file").is_some(),
        "{authorization}"
    );
    authorization["credentials_file"] = json!(token_file.display().to_string());
    config
}

/// A running Alertmanager, stopped (by PID) when dropped.
struct Alertmanager {
    child: Child,
    url: String,
    log: PathBuf,
    http: reqwest::Client,
}

impl Alertmanager {
    /// Starts `$ALERTMANAGER_BIN` with `config` (YAML's JSON form), storage under `dir`,
    /// gossip off, on a free port; waits until `/-/ready` answers 200.
    async fn start(dir: &Path, config: &Value) -> Alertmanager {
        let config_file = dir.join("alertmanager.yml");
        std::fs::write(&config_file, config.to_string()).expect("write the Alertmanager config");
        let port = free_port();
        let log = dir.join("alertmanager.log");
        let file = std::fs::File::create(&log).expect("create the Alertmanager log");
        let child = Command::new(binary("ALERTMANAGER_BIN"))
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Empty: no cluster gossip (one instance, no port to collide on).
            .arg("--cluster.listen-address=")
            .arg("--log.level=debug")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone the log handle"))
            .stderr(file)
            .spawn()
            .expect("start alertmanager");
        let am = Alertmanager {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client"),
        };
        support::eventually("Alertmanager's /-/ready answers 200", LIMIT, || async {
            let ready = am.http.get(format!("{}/-/ready", am.url)).send().await;
            ready.is_ok_and(|r| r.status().is_success()).then_some(())
        })
        .await;
        am
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fires the alert with amtool, as an operator would by hand.
    fn fire_with_amtool(&self, labels: &[(&str, &str)], starts_at: DateTime<Utc>) {
        let mut command = Command::new(binary("AMTOOL_BIN"));
        command.args([
            "alert",
            "add",
            &format!("--alertmanager.url={}", self.url),
            &format!(
                "--start={}",
                starts_at.to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
            "--annotation=summary=checkout burns its error budget",
        ]);
        command.args(labels.iter().map(|(k, v)| format!("{k}={v}")));
        let out = command.output().expect("run amtool");
        assert!(
            out.status.success(),
            "amtool alert add failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// Resolves the alert through Alertmanager's API: the same labels and `startsAt`, with
    /// `endsAt` in the past.
    async fn resolve(&self, labels: &[(&str, &str)], starts_at: DateTime<Utc>) {
        let labels: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        let ends_at = Utc::now() - chrono::Duration::seconds(1);
        let body = json!([{
            "labels": labels,
            "annotations": {"summary": "checkout burns its error budget"},
            "startsAt": starts_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "endsAt": ends_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        }]);
        let response = self
            .http
            .post(format!("{}/api/v2/alerts", self.url))
            .json(&body)
            .send()
            .await
            .expect("POST /api/v2/alerts");
        let status = response.status();
        assert!(
            status.is_success(),
            "POST /api/v2/alerts: {status} {}",
            response.text().await.unwrap_or_default()
        );
    }

    /// The alert as Alertmanager holds it (`GET /api/v2/alerts`), once it is there.
    async fn alerts(&self) -> Vec<Value> {
        let response = self
            .http
            .get(format!("{}/api/v2/alerts", self.url))
            .send()
            .await
            .expect("GET /api/v2/alerts");
        response.json().await.expect("alerts as JSON")
    }

    /// SIGTERM by PID, then waits for the exit (SIGKILL after a bound).
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid}");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().expect("poll alertmanager").is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "alertmanager (pid {pid}) did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        // A failed test must not leave an Alertmanager running on the shared machine.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The outcomes of `rule` with `status`, from the store Reflex writes.
async fn outcomes(store: &Store, rule: &str, status: OutcomeStatus) -> Vec<OutcomeRecord> {
    store
        .history(&HistoryFilter {
            rule: Some(rule.to_owned()),
            status: Some(status),
            limit: 100,
            ..HistoryFilter::default()
        })
        .await
        .expect("history")
}

#[tokio::test]
async fn an_alert_posted_to_a_real_alertmanager_restarts_the_deployment_and_its_resolution_verifies_it()
 {
    support::install_crypto_provider();
    let setup = Setup::new("am-e2e").await;
    let client = support::kube_client(&support::kubeconfig()).await;
    let namespace = support::unique_name("am-e2e");
    let deployments = support::namespace_with_deployment(&client, &namespace, DEPLOYMENT, 0).await;

    std::fs::write(setup.rules.join("alertmanager.yaml"), rules()).expect("write rules");
    let token = uuid::Uuid::new_v4().simple().to_string();
    let token_file = setup.dir.path().join("ingest-token");
    std::fs::write(&token_file, format!("{token}\n")).expect("write token");
    let config = setup.write_config(
        &setup.rules,
        &format!(
            "server:\n  ingest:\n    token_file: {}\n",
            token_file.display()
        ),
    );
    let reflex = Reflex::start(&setup, &config, &[]);
    reflex.wait_ready().await;
    let store_url = format!("sqlite://{}", setup.dir.path().join("audit.db").display());
    let store = Store::connect(&store_url)
        .await
        .expect("open Reflex's store");

    // Alertmanager reads the same token from its own file, as with a mounted Secret.
    let am_token = setup.dir.path().join("alertmanager-token");
    std::fs::write(&am_token, &token).expect("write Alertmanager's token file");
    let am = Alertmanager::start(setup.dir.path(), &render_config(&reflex.base, &am_token)).await;

    let starts_at = Utc::now() - chrono::Duration::seconds(30);
    let labels = [
        ("alertname", ALERTNAME),
        ("namespace", namespace.as_str()),
        ("deployment", DEPLOYMENT),
        ("severity", "critical"),
    ];
    assert_eq!(support::restarted_at(&deployments, DEPLOYMENT).await, None);
    am.fire_with_amtool(&labels, starts_at);

    // Alertmanager -> Reflex -> the apiserver: the Deployment gets its restart stamp.
    let context = || {
        format!(
            "reflex log:\n{}\nalertmanager log:\n{}",
            reflex.log(),
            am.log()
        )
    };
    let stamp = support::eventually("the Deployment restarted", LIMIT, || async {
        support::restarted_at(&deployments, DEPLOYMENT).await
    })
    .await;
    eprintln!("restarted at {stamp}");
    let restarts = outcomes(&store, "restart-on-burn", OutcomeStatus::Succeeded).await;
    assert_eq!(restarts.len(), 1, "{restarts:#?}\n{}", context());
    assert_eq!(restarts[0].action_kind, "restart");
    assert!(
        restarts[0].event_id.ends_with("/firing"),
        "the firing occurrence triggered it: {}",
        restarts[0].event_id
    );
    // The alert is still firing in Alertmanager, so nothing is verified yet.
    let held = am.alerts().await;
    assert_eq!(held.len(), 1, "{held:#?}");
    assert_eq!(held[0]["status"]["state"], "active", "{held:#?}");
    assert!(
        outcomes(&store, "restart-on-burn", OutcomeStatus::Verified)
            .await
            .is_empty()
    );

    // Resolve it in Alertmanager: send_resolved delivers the resolution to Reflex.
    am.resolve(&labels, starts_at).await;
    let verified = support::eventually("the restart verified by the resolution", LIMIT, || async {
        let rows = outcomes(&store, "restart-on-burn", OutcomeStatus::Verified).await;
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    assert_eq!(verified.len(), 1, "{verified:#?}\n{}", context());
    let details = verified[0].details.to_string();
    assert!(details.contains("the alert resolved"), "{details}");

    // ... and as an event of its own: the rule that selects resolved alerts fired on it, on the
    // same occurrence (fingerprint and startsAt) as the restart.
    let noted = support::eventually("the resolved alert logged", LIMIT, || async {
        let rows = outcomes(&store, "note-resolved", OutcomeStatus::Succeeded).await;
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    assert_eq!(noted.len(), 1, "{noted:#?}\n{}", context());
    let resolved_id = &noted[0].event_id;
    assert!(resolved_id.ends_with("/resolved"), "{resolved_id}");
    let occurrence = |id: &str| id.rsplit_once('/').map(|(o, _)| o.to_owned());
    assert_eq!(
        occurrence(resolved_id),
        occurrence(&restarts[0].event_id),
        "the resolution is the same occurrence as the firing"
    );
    // One restart, from the firing alone.
    assert_eq!(
        support::restarted_at(&deployments, DEPLOYMENT)
            .await
            .as_deref(),
        Some(stamp.as_str())
    );

    am.stop();
    store.close().await;
    drop(reflex);
    Api::<Namespace>::all(client)
        .delete(&namespace, &DeleteParams::default())
        .await
        .expect("delete namespace");
}
