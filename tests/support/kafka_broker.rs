//! A PRIVATE single-node KRaft Kafka broker for tests that stop and restart Kafka, which the
//! shared broker of `scripts/services` must never be (other tests use it at the same time).
//!
//! It runs from the jars `scripts/services up` caches (`$REFLEX_CACHE` or `~/.cache/reflex`,
//! folder `kafka-<version>`, the version read from `scripts/services` so the two never drift),
//! with its configuration, data and log in a temporary directory, on two free ports of
//! 127.0.0.1. [`Broker::kill`] sends SIGKILL (an unclean stop, like a crashed node);
//! [`Broker::restart`] starts it again on the SAME port and log directory, so clients reconnect
//! to the address they know and find the topics, records and committed offsets they left.
//! Dropping the value kills the process and deletes the directory.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a (re)start may take before the test fails: a cold JVM on a loaded 2-core machine
/// takes 5–15 s, a restart after SIGKILL also recovers the log segments. Generous but finite so
/// a broken broker fails the test with its log instead of hanging it.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How long one metadata probe may take while waiting for readiness.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Ports are picked in this range: below the kernel's ephemeral range (32768+), so outgoing
/// connections of other processes never take the port between a kill and a restart.
const PORT_RANGE: std::ops::Range<u16> = 20_000..32_000;

/// A broker process and its files.
pub struct Broker {
    dir: tempfile::TempDir,
    home: PathBuf,
    port: u16,
    child: Option<Child>,
    /// Number of starts so far (the log file says which start wrote what).
    starts: usize,
}

impl Broker {
    /// Formats a fresh log directory and starts the broker; returns once it answers metadata
    /// requests. Fails the test (naming the log file) when it does not within
    /// [`READY_TIMEOUT`].
    pub async fn start() -> Broker {
        let home = kafka_home();
        let dir = tempfile::Builder::new()
            .prefix("reflex-broker-")
            .tempdir()
            .expect("create the broker's temporary directory");
        let port = pick_port(&[]);
        let controller_port = pick_port(&[port]);
        write_config(dir.path(), port, controller_port);
        let mut broker = Broker {
            dir,
            home,
            port,
            child: None,
            starts: 0,
        };
        broker.format();
        broker.launch().await;
        broker
    }

    /// `127.0.0.1:<port>`, stable across restarts.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's combined output (every start), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Kills the process with SIGKILL and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Err: it already exited, which is what we want.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port and log directory (after [`Broker::kill`]);
    /// returns once it answers metadata requests.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "restart called on a running broker");
        self.launch().await;
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("broker.log")
    }

    fn java(&self) -> Command {
        let mut command = Command::new("java");
        command
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                self.dir.path().join("log4j2.properties").display()
            ))
            .arg("-cp")
            .arg(format!("{}/lib/*", self.home.display()));
        command
    }

    /// `kafka-storage format --standalone`: a new cluster in this broker's log directory.
    fn format(&self) {
        let output = self
            .java()
            .args(["kafka.tools.StorageTool", "format", "--standalone"])
            // `=`: an id may start with `-`, which would otherwise read as an option.
            .arg(format!("--cluster-id={}", cluster_id()))
            .arg("-c")
            .arg(self.dir.path().join("server.properties"))
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|err| panic!("cannot run java (is a JRE installed?): {err}"));
        assert!(
            output.status.success(),
            "formatting the private broker's storage failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    async fn launch(&mut self) {
        self.starts += 1;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the broker log");
        std::io::Write::write_all(
            &mut log,
            format!("===== start {} =====\n", self.starts).as_bytes(),
        )
        .expect("write the broker log");
        // Small heap: a test broker holds a few thousand records.
        let child = self
            .java()
            .args([
                "-Xmx256m",
                "-Xms64m",
                "-Djava.awt.headless=true",
                "kafka.Kafka",
            ])
            .arg(self.dir.path().join("server.properties"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start the broker with java: {err}"));
        self.child = Some(child);
        self.wait_ready().await;
    }

    /// Polls with metadata requests until the broker answers; fails early if it exits.
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let bootstrap = self.bootstrap();
        loop {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "the private broker exited during start-up ({status}); its log {}:\n{}",
                    self.log_path().display(),
                    self.log()
                );
            }
            if super::kafka_precheck(&bootstrap, PROBE_TIMEOUT)
                .await
                .is_ok()
            {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "the private broker on {bootstrap} was not ready within {READY_TIMEOUT:?}; \
                     its log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Where `scripts/services` caches the Kafka jars; fails naming the command that fetches them.
fn kafka_home() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = std::fs::read_to_string(repo.join("scripts/services"))
        .expect("read scripts/services (it names the Kafka version)");
    let version = script
        .lines()
        .find_map(|line| line.strip_prefix("KAFKA_VERSION="))
        .map(str::trim)
        .expect("scripts/services sets KAFKA_VERSION");
    let cache = std::env::var_os("REFLEX_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            Path::new(&home).join(".cache/reflex")
        });
    let kafka = cache.join(format!("kafka-{version}"));
    assert!(
        kafka.join(".complete").exists(),
        "the Kafka {version} jars are not in {}; `scripts/services up` fetches them",
        kafka.display()
    );
    kafka
}

/// A free port of 127.0.0.1 in [`PORT_RANGE`], not in `taken`: one a server can take again
/// after a stop (other private servers of the tests use it too).
pub fn pick_port(taken: &[u16]) -> u16 {
    for _ in 0..200 {
        let port = fastrand::u16(PORT_RANGE);
        if !taken.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 in {PORT_RANGE:?}");
}

/// A KRaft cluster id: 16 random bytes in unpadded URL-safe base64 (what
/// `kafka-storage random-uuid` prints), without starting a second JVM for it.
fn cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut bits: u32 = 0;
    let mut held = 0;
    let mut id = String::new();
    for byte in bytes {
        bits = (bits << 8) | u32::from(byte);
        held += 8;
        while held >= 6 {
            held -= 6;
            id.push(char::from(ALPHABET[((bits >> held) & 63) as usize]));
        }
    }
    if held > 0 {
        id.push(char::from(ALPHABET[((bits << (6 - held)) & 63) as usize]));
    }
    id
}

/// The broker's `server.properties` (the same settings as `scripts/services`, on its own
/// ports and directory) and a log4j configuration writing to `broker.log`.
fn write_config(dir: &Path, port: u16, controller_port: u16) {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("create the broker's log directory");
    std::fs::write(
        dir.join("server.properties"),
        format!(
            "process.roles=broker,controller\n\
             node.id=1\n\
             controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}\n\
             listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n\
             controller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=PLAINTEXT\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
             log.dirs={}\n\
             num.partitions=1\n\
             offsets.topic.replication.factor=1\n\
             offsets.topic.num.partitions=1\n\
             share.coordinator.state.topic.replication.factor=1\n\
             share.coordinator.state.topic.min.isr=1\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n\
             group.initial.rebalance.delay.ms=0\n\
             auto.create.topics.enable=false\n",
            data.display()
        ),
    )
    .expect("write server.properties");
    std::fs::write(
        dir.join("log4j2.properties"),
        "status = warn\n\
         appender.out.type = Console\n\
         appender.out.name = out\n\
         appender.out.layout.type = PatternLayout\n\
         appender.out.layout.pattern = [%d] %p %m (%c)%n\n\
         rootLogger.level = warn\n\
         rootLogger.appenderRef.out.ref = out\n\
         logger.kafka.name = kafka.server.KafkaServer\n\
         logger.kafka.level = info\n",
    )
    .expect("write log4j2.properties");
}
