//! `reflex run` as a real process against the real services: it becomes ready, serves its
//! endpoints, and exits cleanly on SIGTERM; with a wrong broker address it fails fast and says
//! which address it tried.
//!
//! Run: `scripts/services up && eval "$(scripts/services env)" && cargo test --features services --test processes run_smoke::`

use crate::support;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long the binary may take to become ready: start-up connects to three services, each
/// bounded at 15 s by `reflex run` itself.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a clean shutdown may take after SIGTERM.
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

fn free_port() -> u16 {
    // Bind port 0, read the port the kernel picked, release it for the child.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// Writes the configuration; returns its path and the events topic it names.
fn write_config(dir: &Path, store_url: &str) -> (std::path::PathBuf, String) {
    let path = dir.join("config.yaml");
    // An empty rules directory: the process consumes and matches nothing. Its own topic and
    // group, so it never takes events meant for another test or a local run.
    std::fs::create_dir_all(dir.join("rules")).expect("create the rules directory");
    let name = support::unique_name("smoke");
    let text = format!(
        "# Written by tests/processes/run_smoke.rs; Kafka and the store come from the environment.\n\
         kafka:\n  topics:\n    events: [{name}]\n    group_id: {name}\n\
         store:\n  url: {store_url}\n\
         rules:\n  dir: {}\n",
        dir.join("rules").display()
    );
    std::fs::write(&path, text).expect("write config");
    (path, name)
}

fn spawn_reflex(config: &Path, listen: &str, log: &Path, envs: &[(&str, &str)]) -> Child {
    let log_file = std::fs::File::create(log).expect("create log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_reflex"));
    command
        .args(["run", "--config"])
        .arg(config)
        .args(["--listen", listen])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("clone log handle"))
        .stderr(log_file);
    for (name, value) in envs {
        command.env(name, value);
    }
    command.spawn().expect("start the reflex binary")
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("poll child") {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Sends SIGTERM through the `kill` utility (no libc dependency for one call).
fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM failed");
}

#[tokio::test]
async fn reflex_run_becomes_ready_against_the_services_and_stops_cleanly_on_sigterm() {
    support::install_crypto_provider();
    // Fail early, with the fix, when the services are not there.
    support::require_kafka().await;
    let kubeconfig = support::kubeconfig();
    let database_url = support::database_url();

    let dir = tempfile::tempdir().expect("tempdir");
    let (config, topic) = write_config(dir.path(), "sqlite://unused-overridden-by-DATABASE_URL.db");
    // The consumer joins its group only once a subscribed topic exists.
    support::create_topic(&support::kafka_bootstrap(), &topic, 1).await;
    let listen = format!("127.0.0.1:{}", free_port());
    let log = dir.path().join("reflex.log");
    let mut child = spawn_reflex(
        &config,
        &listen,
        &log,
        &[
            ("KUBECONFIG", &kubeconfig.display().to_string()),
            ("DATABASE_URL", &database_url),
        ],
    );

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client");
    let base = format!("http://{listen}");
    let deadline = Instant::now() + READY_TIMEOUT;
    let body: serde_json::Value = loop {
        if let Some(status) = child.try_wait().expect("poll child") {
            panic!(
                "reflex exited early with {status}; its log:\n{}",
                read_log(&log)
            );
        }
        if let Ok(response) = http.get(format!("{base}/readyz")).send().await
            && response.status() == reqwest::StatusCode::OK
        {
            break response.json().await.expect("readyz JSON");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "/readyz not 200 within {READY_TIMEOUT:?}; log:\n{}",
                read_log(&log)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(body["ready"], true);
    let checks = body["checks"].as_array().expect("checks array");
    let names: Vec<&str> = checks
        .iter()
        .filter_map(|c| c["dependency"].as_str())
        .collect();
    assert_eq!(names, ["kafka", "kubernetes", "store", "consumer", "rules"]);
    assert!(checks.iter().all(|c| c["ok"] == true), "{body}");

    let health = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    for dependency in ["kafka", "kubernetes", "store", "consumer"] {
        let line = format!("reflex_dependency_ready{{dependency=\"{dependency}\"}} 1");
        assert!(metrics.contains(&line), "missing `{line}` in:\n{metrics}");
    }
    // The process metrics every dashboard expects, and what runs.
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no `{name}` in:\n{metrics}"))
    };
    assert!(value("process_cpu_seconds_total") > 0.0);
    assert!(
        value("process_resident_memory_bytes") > 1e6,
        "at least a megabyte"
    );
    assert!(value("process_open_fds") >= 3.0, "stdio, sockets");
    assert!(value("process_max_fds") >= value("process_open_fds"));
    let started = value("process_start_time_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    assert!(
        started <= now && started > now - 3600.0,
        "{started} vs {now}"
    );
    let build = format!(
        "reflex_build_info{{version=\"{}\",commit=",
        env!("CARGO_PKG_VERSION")
    );
    assert!(metrics.contains(&build), "missing `{build}` in:\n{metrics}");

    sigterm(&child);
    let Some(status) = wait_exit(&mut child, EXIT_TIMEOUT) else {
        let _ = child.kill();
        panic!(
            "reflex did not exit within {EXIT_TIMEOUT:?} of SIGTERM; log:\n{}",
            read_log(&log)
        );
    };
    let log_text = read_log(&log);
    assert!(status.success(), "exit status {status}; log:\n{log_text}");
    assert!(log_text.contains("stopped cleanly"), "log:\n{log_text}");
}

#[tokio::test]
async fn reflex_run_with_an_unreachable_broker_fails_naming_the_address() {
    let kubeconfig = support::kubeconfig();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite://{}", dir.path().join("reflex.db").display());
    let (config, _) = write_config(dir.path(), &store);
    let listen = format!("127.0.0.1:{}", free_port());
    let log = dir.path().join("reflex.log");
    // Port 1 on loopback: nothing listens there, like a stopped broker.
    let broker = "127.0.0.1:1";
    let mut child = spawn_reflex(
        &config,
        &listen,
        &log,
        &[
            ("KAFKA_BOOTSTRAP_SERVERS", broker),
            ("KUBECONFIG", &kubeconfig.display().to_string()),
            ("DATABASE_URL", ""),
        ],
    );
    // reflex waits at most 15 s for the broker; allow process start and exit on top.
    let Some(status) = wait_exit(&mut child, Duration::from_secs(40)) else {
        let _ = child.kill();
        panic!(
            "reflex did not give up on {broker}; log:\n{}",
            read_log(&log)
        );
    };
    let log_text = read_log(&log);
    assert!(!status.success(), "must fail; log:\n{log_text}");
    assert!(
        log_text.contains("cannot reach Kafka at 127.0.0.1:1"),
        "log:\n{log_text}"
    );
}

/// Fails when `text` (a log or a response of `what`) contains any of `secrets`.
fn assert_no_secret(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{what} shows the secret `{secret}`:\n{text}"
        );
    }
}

#[tokio::test]
async fn a_store_password_given_as_a_query_parameter_appears_in_no_log_line_and_no_response() {
    use support::private_postgres::PrivatePostgres;
    use support::reflex_process::{Reflex, write_config};
    support::install_crypto_provider();
    let bootstrap = support::require_kafka().await;
    let password = format!("Pw{}", support::unique_name("x").replace('-', ""));
    let postgres = PrivatePostgres::start(&password);
    // `sslpassword` is libpq's client-key passphrase: the driver does not use it, and must not
    // print it either.
    let key_passphrase = format!("Kp{}", support::unique_name("y").replace('-', ""));
    let url = format!(
        "{}?password={password}&sslmode=disable&sslpassword={key_passphrase}",
        postgres.url_without_password()
    );
    let secrets = [password.as_str(), key_passphrase.as_str()];

    let dir = tempfile::tempdir().expect("tempdir");
    let name = support::unique_name("secret");
    for topic in ["events", "outcomes", "dead-letters"] {
        support::create_topic(&bootstrap, &format!("{name}.{topic}"), 1).await;
    }
    let rule = "rules:\n  - name: note\n    actions:\n      - log:\n          message: seen\n";
    let config = write_config(dir.path(), &name, rule, "");
    let env = [
        ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.as_str()),
        ("DATABASE_URL", url.as_str()),
    ];
    let reflex = Reflex::spawn(&config, dir.path().join("reflex.log"), &env);
    reflex.wait_readyz(200, READY_TIMEOUT).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client");
    let base = format!("http://127.0.0.1:{}", reflex.port());
    let get_all = |http: reqwest::Client, base: String| async move {
        let mut bodies = Vec::new();
        for path in ["/readyz", "/healthz", "/metrics", "/v1/rules", "/nowhere"] {
            let response = http.get(format!("{base}{path}")).send().await.expect("GET");
            bodies.push((path, response.text().await.expect("body")));
        }
        bodies
    };
    for (path, body) in get_all(http.clone(), base.clone()).await {
        assert_no_secret(path, &body, &secrets);
    }

    // The store goes away: /readyz reports the failing store, URL included.
    postgres.stop();
    let (body, _) = reflex.wait_readyz(503, READY_TIMEOUT).await;
    let text = body.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{}", postgres.port)),
        "{text}"
    );
    assert_no_secret("/readyz with the store down", &text, &secrets);
    for (path, body) in get_all(http, base).await {
        assert_no_secret(path, &body, &secrets);
    }
    // A record arriving now fails on the store, and the retries are logged with the error.
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("producer");
    let topic = format!("{name}.events");
    producer
        .send(
            rdkafka::producer::FutureRecord::to(&topic)
                .key("k")
                .payload(r#"{"a": 1}"#),
            Duration::from_secs(20),
        )
        .await
        .expect("produce an event");
    support::eventually(
        "a logged store failure while handling the record",
        READY_TIMEOUT,
        || {
            let log = reflex.log();
            async move { log.contains("handling a record failed").then_some(()) }
        },
    )
    .await;
    drop(reflex);
    let log = std::fs::read_to_string(dir.path().join("reflex.log")).expect("log");
    assert!(log.contains("connected to the audit store"), "{log}");
    assert!(
        log.contains("password=***"),
        "the URL is shown, redacted: {log}"
    );
    assert_no_secret("the log", &log, &secrets);

    // A wrong password: start-up fails with the store error, which names the URL, not the
    // password.
    postgres.resume();
    let wrong = format!("Wr{}", support::unique_name("z").replace('-', ""));
    let url = format!("{}?password={wrong}", postgres.url_without_password());
    let env = [
        ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.as_str()),
        ("DATABASE_URL", url.as_str()),
    ];
    let log_path = dir.path().join("wrong.log");
    let mut refused = Reflex::spawn(&config, log_path.clone(), &env);
    let exited = refused.wait_exit(Duration::from_secs(60));
    let log = std::fs::read_to_string(&log_path).expect("log");
    assert!(exited.is_some_and(|s| !s.success()), "must fail: {log}");
    assert!(log.contains("password authentication failed"), "{log}");
    assert!(
        log.contains(&format!("127.0.0.1:{}", postgres.port)),
        "{log}"
    );
    assert_no_secret("the log of the wrong password", &log, &[&wrong]);
}
