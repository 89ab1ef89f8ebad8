//! The pod as the chart defines it, without a kubelet: the real `reflex` binary started with the
//! Deployment's container arguments and environment, the rendered `reflex.yaml` and the rules
//! ConfigMap written where the volumes would mount them, against the real services. It must
//! become ready and stop cleanly on SIGTERM, so the chart can never ship a config, an argument
//! or a rule set the binary refuses.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{documents, find, support, template};

/// How long the binary may take to become ready: start-up connects to three services, each
/// bounded at 15 s by `reflex run` itself.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a clean shutdown may take after SIGTERM; the chart gives the pod 30 s.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes each key of a ConfigMap as a file in `dir`, as a ConfigMap volume does.
fn write_volume(configmap: &serde_json::Value, dir: &Path) {
    std::fs::create_dir_all(dir).expect("create volume dir");
    let data = configmap["data"].as_object().expect("ConfigMap data");
    for (name, body) in data {
        std::fs::write(dir.join(name), body.as_str().expect("text")).expect("write file");
    }
}

/// The container's arguments with the mount paths moved under `root` and the listen address
/// on a free loopback port; fails unless all three were found (else the rewrite tested nothing).
fn local_args(args: &[serde_json::Value], root: &Path, listen: &str) -> Vec<String> {
    let mut rewritten = 0;
    let out = args
        .iter()
        .map(|arg| {
            let arg = arg.as_str().expect("string argument");
            let local = if arg.starts_with("--listen=") {
                format!("--listen={listen}")
            } else {
                arg.replace("/etc/reflex/", &format!("{}/", root.display()))
            };
            rewritten += usize::from(local != arg);
            local
        })
        .collect();
    assert_eq!(
        rewritten, 3,
        "config, rules and listen arguments in {args:?}"
    );
    out
}

fn wait_exit(child: &mut Child) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + EXIT_TIMEOUT;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("poll child") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[tokio::test]
async fn the_binary_becomes_ready_with_the_charts_arguments_config_and_rules() {
    support::install_crypto_provider();
    let bootstrap = support::require_kafka().await;
    let kubeconfig = support::kubeconfig();
    // Its own topic and group, so the process never takes events meant for another test.
    let topic = support::unique_name("helm-pod");
    support::create_topic(&bootstrap, &topic, 1).await;
    let topics = format!(
        r#"config.kafka.topics={{"events":["{topic}"],"group_id":"{topic}","outcomes":"{topic}-out","dead_letters":"{topic}-dead"}}"#
    );
    let broker = format!("config.kafka.bootstrap_servers={bootstrap}");
    let docs = documents(&template(
        "reflex",
        "ops",
        &["--set-json", &topics, "--set", &broker],
    ));

    let root = tempfile::tempdir().expect("tempdir");
    write_volume(
        find(&docs, "ConfigMap", "reflex-config"),
        &root.path().join("config"),
    );
    let rules_configmap = find(&docs, "ConfigMap", "reflex-rules");
    write_volume(rules_configmap, &root.path().join("rules"));
    let container =
        &find(&docs, "Deployment", "reflex")["spec"]["template"]["spec"]["containers"][0];
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let listen = listener.local_addr().expect("address").to_string();
    drop(listener);
    let args = local_args(
        container["args"].as_array().expect("container args"),
        root.path(),
        &listen,
    );

    let log = root.path().join("reflex.log");
    let log_file = std::fs::File::create(&log).expect("log file");
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    // The downward-API variables as the kubelet would set them; the store moves from the pod's
    // emptyDir to the temp dir through DATABASE_URL, which overrides config.store.url.
    let database_url = format!("sqlite://{}", root.path().join("reflex.db").display());
    // The chart's logLevel, as the container's RUST_LOG.
    let rust_log = container["env"]
        .as_array()
        .and_then(|env| env.iter().find(|e| e["name"] == "RUST_LOG"))
        .and_then(|e| e["value"].as_str())
        .expect("RUST_LOG from logLevel");
    let mut child = Command::new(env!("CARGO_BIN_EXE_reflex"))
        .args(&args)
        .env("RUST_LOG", rust_log)
        .env("POD_NAMESPACE", "ops")
        .env("POD_NAME", "reflex-0")
        .env("KUBECONFIG", &kubeconfig)
        .env("DATABASE_URL", &database_url)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("clone log handle"))
        .stderr(log_file)
        .spawn()
        .expect("start reflex");

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client");
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("poll child") {
            panic!(
                "reflex {args:?} exited early with {status}; log:\n{}",
                read_log()
            );
        }
        if let Ok(response) = http.get(format!("http://{listen}/readyz")).send().await
            && response.status() == reqwest::StatusCode::OK
        {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "/readyz not 200 within {READY_TIMEOUT:?}; log:\n{}",
                read_log()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Every bundled rule file was found in the mounted directory and loaded.
    let listing: serde_json::Value = http
        .get(format!("http://{listen}/v1/rules"))
        .send()
        .await
        .expect("GET /v1/rules")
        .json()
        .await
        .expect("rules JSON");
    // Every shipped rule (a file may hold several), as the ConfigMap carries them.
    let shipped = reflex::rules::load_dir(&super::repo().join("rules"))
        .expect("the shipped rules load")
        .rules()
        .len();
    assert!(
        rules_configmap["data"]
            .as_object()
            .is_some_and(|d| !d.is_empty()),
        "the rules ConfigMap holds files"
    );
    assert_eq!(listing["count"], shipped, "{listing}");
    // `helm test` against this pod: the hook's URL (the Service, here the process itself)
    // answers 200 once ready.
    let hook = find(&docs, "Pod", "reflex-test");
    let url = hook["spec"]["containers"][0]["command"]
        .as_array()
        .and_then(|c| c.last())
        .and_then(|u| u.as_str())
        .expect("the hook's URL");
    let local = url.replace("reflex.ops.svc:8080", &listen);
    assert_ne!(
        local, url,
        "the hook targets the Service on the chart's port: {url}"
    );
    let answer = http.get(&local).send().await.expect("GET the hook's URL");
    assert_eq!(answer.status(), reqwest::StatusCode::OK, "{local}");
    let log_text = read_log();
    // The chart's logFormat: one JSON object per line.
    let first = log_text.lines().next().unwrap_or_default();
    assert!(
        serde_json::from_str::<serde_json::Value>(first).is_ok(),
        "not a JSON log line: {first}"
    );

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success(), "kill -TERM failed");
    let Some(status) = wait_exit(&mut child) else {
        let _ = child.kill();
        panic!(
            "no exit within {EXIT_TIMEOUT:?} of SIGTERM; log:\n{}",
            read_log()
        );
    };
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        read_log()
    );
}
