//! `reflex run` as a real child process: start it with a config file, read its log, ask its
//! `/readyz`, stop it with SIGTERM or SIGKILL. Used by the tests that kill processes and
//! brokers (`run_replicas`, `broker_restart`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a clean shutdown may take after SIGTERM: the drain timeout the test configs set
/// (2 s) plus the final commit and leaving the group, with room for a loaded machine.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Bound on one `/readyz` request: the server bounds each of its checks to 3 s.
const READYZ_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `reflex run`.
pub struct Reflex {
    child: Child,
    log: PathBuf,
    port: u16,
}

/// A free ephemeral port of 127.0.0.1 (bound, then released for the child to take).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

impl Reflex {
    /// Starts `reflex run --config <config>` with its output in `log` and the given extra
    /// environment (e.g. `KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`, `HOSTNAME`).
    pub fn spawn(config: &Path, log: PathBuf, env: &[(&str, &str)]) -> Reflex {
        let port = free_port();
        let file = std::fs::File::create(&log).expect("create the reflex log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_reflex"));
        command
            .args(["run", "--config"])
            .arg(config)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "info")
            .env("KUBECONFIG", super::kubeconfig())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone the log handle"))
            .stderr(file);
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().expect("start the reflex binary");
        Reflex { child, log, port }
    }

    /// Everything the process wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET /readyz`: the HTTP status and the JSON body; `None` while the server does not
    /// answer (still starting).
    pub async fn readyz(&self) -> Option<(u16, Value)> {
        super::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(READYZ_TIMEOUT)
            .build()
            .expect("HTTP client");
        let response = client
            .get(format!("http://127.0.0.1:{}/readyz", self.port))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        let body = response.json().await.ok()?;
        Some((status, body))
    }

    /// Polls `/readyz` until it answers `want`; returns the body and how long it took. Fails
    /// with the process log after `limit`.
    pub async fn wait_readyz(&self, want: u16, limit: Duration) -> (Value, Duration) {
        let started = Instant::now();
        loop {
            if let Some((status, body)) = self.readyz().await
                && status == want
            {
                return (body, started.elapsed());
            }
            assert!(
                started.elapsed() < limit,
                "/readyz did not answer {want} within {limit:?}; last: {:?}\nlog:\n{}",
                self.readyz().await,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// SIGKILL: the process dies at once, in whatever it was doing.
    pub fn kill9(&mut self) {
        self.signal("-KILL");
        self.wait_exit(EXIT_TIMEOUT)
            .expect("a process killed with SIGKILL exits");
    }

    /// SIGTERM, then expects a clean exit after the final commit.
    pub fn terminate(&mut self) {
        self.signal("-TERM");
        let Some(status) = self.wait_exit(EXIT_TIMEOUT) else {
            let _ = self.child.kill();
            panic!(
                "reflex did not exit within {EXIT_TIMEOUT:?} of SIGTERM; log:\n{}",
                self.log()
            );
        };
        let log = self.log();
        assert!(status.success(), "exit status {status}; log:\n{log}");
        assert!(
            log.contains("consumer drained and committed"),
            "no final commit in the log:\n{log}"
        );
    }

    /// The port its HTTP server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sends `signal` (`-HUP`, `-TERM`...) through the `kill` utility.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Waits at most `limit` for the process to exit; its status, `None` if it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Reflex {
    fn drop(&mut self) {
        // A failed test must not leave a consumer running in the shared group/services.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Writes `rules/test.yaml` (checked to be valid, so a rule-language change fails here with a
/// clear message) and `config.yaml` under `dir`; returns the config's path. The config consumes
/// `<name>.events` in group `<name>`, publishes to `<name>.outcomes` and
/// `<name>.dead-letters`, notices a dead group member within 6 s, commits every 200 ms,
/// retries a failed record at most 1 s apart, drains for 2 s; `extra` adds top-level sections
/// (`store`, `pipeline`, `actions`).
pub fn write_config(dir: &Path, name: &str, rule: &str, extra: &str) -> PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).expect("create the rules directory");
    std::fs::write(rules.join("test.yaml"), rule).expect("write the rule file");
    if let Err(err) = reflex::rules::load_dir(&rules) {
        panic!("the test rule is invalid: {err:?}\n{rule}");
    }
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "kafka:\n  client:\n    session.timeout.ms: '6000'\n    heartbeat.interval.ms: '1000'\n  \
             topics:\n    events: [{name}.events]\n    outcomes: {name}.outcomes\n    \
             dead_letters: {name}.dead-letters\n    group_id: {name}\n\
             rules:\n  dir: {}\n\
             consumer:\n  drain_timeout: 2s\n  commit_interval: 200ms\n  retry_max_delay: 1s\n\
             {extra}",
            rules.display()
        ),
    )
    .expect("write the config file");
    config
}

/// The committed offset of `group` and the high watermark of each partition of `topic`;
/// fails the test when a partition has no committed offset.
pub fn committed_and_ends(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Vec<(i64, i64)> {
    committed_offsets(bootstrap, group, topic, partitions)
        .into_iter()
        .enumerate()
        .map(|(partition, (committed, end))| match committed {
            Some(offset) => (offset, end),
            None => panic!("{topic}/{partition}: no committed offset"),
        })
        .collect()
}

/// The committed offset of `group` (`None` where it committed none) and the high watermark of
/// each partition of `topic`.
pub fn committed_offsets(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Vec<(Option<i64>, i64)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("offset reader");
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let committed = consumer
        .committed_offsets(list, super::PRECHECK_TIMEOUT)
        .expect("committed offsets");
    (0..partitions)
        .map(|partition| {
            let offset = match committed
                .find_partition(topic, partition)
                .map(|e| e.offset())
            {
                Some(Offset::Offset(offset)) => Some(offset),
                _ => None,
            };
            let (_, high) = consumer
                .fetch_watermarks(topic, partition, super::PRECHECK_TIMEOUT)
                .expect("watermarks");
            (offset, high)
        })
        .collect()
}
