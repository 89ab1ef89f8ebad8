//! PostgreSQL, the audit store, stopped (`pg_ctl stop -m immediate`: no shutdown checkpoint, like
//! a crashed server) while actions are being claimed and executed, and started again on the
//! same port a few seconds later. The server is PRIVATE to the test (initdb in a temp dir),
//! never the shared one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{self, Audit, Receiver, Running};
use crate::support;

const EVENTS: usize = 240;

/// How long the store stays down once readiness reported it.
const OUTAGE: Duration = Duration::from_secs(5);

/// Where Debian's PostgreSQL 15 lives (`scripts/services` uses the same).
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A throwaway PostgreSQL server: its data, socket and log in a temp dir, on a port it keeps
/// across restarts. Runs as the `postgres` user when the test runs as root (the server refuses
/// to run as root). Dropping it stops the server.
struct PrivatePostgres {
    dir: tempfile::TempDir,
    port: u16,
    up: bool,
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program` of [`PG_BIN`], as the `postgres` user when we are root.
fn pg_command(program: &str) -> Command {
    let path = format!("{PG_BIN}/{program}");
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: install Debian's postgresql-15 (scripts/services does)"
    );
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", &path]);
        command
    } else {
        Command::new(path)
    }
}

fn id_of(flag: &str) -> u32 {
    let output = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .expect("run id");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("the postgres user exists (Debian's postgresql package creates it)")
}

impl PrivatePostgres {
    fn start() -> PrivatePostgres {
        let dir = tempfile::Builder::new()
            .prefix("reflex-pg-")
            .tempdir()
            .expect("temp dir for PostgreSQL");
        if running_as_root() {
            std::os::unix::fs::chown(dir.path(), Some(id_of("-u")), Some(id_of("-g")))
                .expect("give the temp dir to the postgres user");
        }
        let mut server = PrivatePostgres {
            port: support::kafka_broker::pick_port(&[]),
            dir,
            up: false,
        };
        server.run(
            pg_command("initdb").arg("-D").arg(server.data()).args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ]),
            "initdb",
        );
        server.start_again();
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, command: &mut Command, what: &str) {
        let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            output.status.success(),
            "{what} failed: {}{}\nserver log:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
        );
    }

    /// Starts the server (again) on its port; returns once it accepts connections.
    fn start_again(&mut self) {
        let options = format!(
            "-h 127.0.0.1 -p {} -k {} -F",
            self.port,
            self.dir.path().display()
        );
        self.run(
            pg_command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-o", &options, "-l"])
                .arg(self.dir.path().join("postgres.log"))
                .args(["-w", "-t", "60", "start"]),
            "pg_ctl start",
        );
        self.up = true;
    }

    /// Stops the server at once: connections are cut, nothing is checkpointed.
    fn stop_immediately(&mut self) {
        self.run(
            pg_command("pg_ctl").arg("-D").arg(self.data()).args([
                "-m",
                "immediate",
                "-w",
                "-t",
                "60",
                "stop",
            ]),
            "pg_ctl stop",
        );
        self.up = false;
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.up {
            let _ = pg_command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_mid_claim_and_restarted_loses_and_repeats_nothing() {
    let bootstrap = support::require_kafka().await;
    let mut postgres = PrivatePostgres::start();
    // 100 ms per call: with four partitions, some action is always between its claim and its
    // recorded end when the server stops.
    let receiver = Receiver::start(Duration::from_millis(100), None).await;
    let mut running = Running::start(
        &bootstrap,
        tempfile::tempdir().expect("tempdir"),
        &harness::webhook_rule(receiver.addr, ""),
        &postgres.url(),
        &harness::actions_section(false),
        &[],
    )
    .await;
    let stream = running.stream(EVENTS);
    receiver.wait_effects(40).await;

    let stopped = Instant::now();
    postgres.stop_immediately();
    let outage = running
        .outage(stopped, Some("store"), OUTAGE, async {
            postgres.start_again();
        })
        .await;
    let audit = Audit::postgres(&postgres.url()).await;
    let rows = running.settle(stream, &audit, "webhook").await;
    let summary = running
        .conclude(&rows, "webhook", &receiver.effects())
        .await;
    eprintln!("postgres restart: {summary}; {outage}");
}
