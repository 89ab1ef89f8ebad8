//! A private PostgreSQL server for one test: its own data directory in a temp dir, a free port
//! on 127.0.0.1, password authentication (SCRAM) for the `postgres` user, started and stopped by
//! the test. For tests that need what the shared server cannot give: a password to check, or a
//! server to stop (cleanly, or at once like a crashed server) and start again on the same port.
//! Debian's PostgreSQL binaries (`/usr/lib/postgresql/<major>/bin`) are used;
//! as root the server runs as the `postgres` user, as PostgreSQL refuses to run as root.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Bound on `pg_ctl start` / `stop` (`-t`, seconds): initdb and start take about a second here,
/// a loaded CI machine gets room.
const PG_CTL_TIMEOUT_SECS: &str = "60";

/// A running private server; stopped when dropped.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The `postgres` user's password.
    pub password: String,
}

/// The directory holding `initdb`, `pg_ctl`: the newest installed major version.
fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.filter_map(|d| d.ok())
                .map(|d| d.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    found.retain(|bin| bin.join("pg_ctl").exists());
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("no PostgreSQL binaries under /usr/lib/postgresql; apt-get install postgresql")
    })
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// `program`, run as the `postgres` user when this process is root.
fn as_postgres(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Runs `program args` as the `postgres` user; fails the test with its output when it fails.
fn run_as_postgres(program: &Path, args: &[&str]) {
    let out = as_postgres(program)
        .args(args)
        .output()
        .expect("run a PostgreSQL tool");
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PrivatePostgres {
    /// Initialises a cluster whose `postgres` user has `password` (SCRAM, also over TCP from
    /// 127.0.0.1) and starts it on a free port.
    pub fn start(password: &str) -> PrivatePostgres {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = bin_dir();
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n")).expect("write the password file");
        if running_as_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown the data directory to postgres");
        }
        let data = dir.path().join("data");
        run_as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                "postgres",
                "-A",
                "scram-sha-256",
                "--pwfile",
                &pwfile.display().to_string(),
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let server = PrivatePostgres {
            // Below the ephemeral range, so nothing takes the port while the server is stopped.
            port: super::kafka_broker::pick_port(&[]),
            dir,
            bin,
            password: password.to_owned(),
        };
        server.resume();
        server
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`, without the password.
    pub fn url_without_password(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `postgres://postgres:<password>@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/postgres",
            self.password, self.port
        )
    }

    /// Stops the server (fast shutdown: connections are closed at once, a checkpoint is written).
    pub fn stop(&self) {
        self.stop_with("fast");
    }

    /// Stops the server at once (`-m immediate`): connections are cut and nothing is
    /// checkpointed, as when the server crashes.
    pub fn stop_immediately(&self) {
        self.stop_with("immediate");
    }

    fn stop_with(&self, mode: &str) {
        let data = self.dir.path().join("data").display().to_string();
        run_as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                &data,
                "-m",
                mode,
                "-w",
                "-t",
                PG_CTL_TIMEOUT_SECS,
                "stop",
            ],
        );
    }

    /// Starts the server (again) on its port and waits until it accepts connections.
    pub fn resume(&self) {
        let data = self.dir.path().join("data").display().to_string();
        let options = format!(
            "-h 127.0.0.1 -p {} -k {} -F",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log").display().to_string();
        run_as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                &data,
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "-t",
                PG_CTL_TIMEOUT_SECS,
                "start",
            ],
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // Best effort: the server may already be stopped.
        let data = self.dir.path().join("data").display().to_string();
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
    }
}
