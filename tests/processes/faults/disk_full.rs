//! The disk of the SQLite audit store full: the store lives on a small tmpfs of its own, which
//! the test fills with a file until writes fail with ENOSPC, then frees again. Mounting needs
//! root (CI runs the tests as root; the test fails, saying so, otherwise). A file-size limit
//! (RLIMIT_FSIZE) was not used: exceeding it sends SIGXFSZ, which kills the process instead of
//! failing a write, so it tests a crash, not a full disk.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::harness::{self, Audit, Receiver, Running};
use crate::support;

const EVENTS: usize = 240;

/// Size of the store's file system: room for the store of this test (a few hundred rows and
/// SQLite's write-ahead log), small enough to fill in a moment.
const TMPFS_SIZE: &str = "32m";

/// How long the disk stays full once readiness reported it.
const OUTAGE: Duration = Duration::from_secs(5);

/// A tmpfs mounted on a temp dir, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount() -> Tmpfs {
        let dir = tempfile::Builder::new()
            .prefix("reflex-tmpfs-")
            .tempdir()
            .expect("temp dir for the mount");
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_SIZE}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            output.status.success(),
            "cannot mount a tmpfs on {} (this test needs root): {}",
            dir.path().display(),
            String::from_utf8_lossy(&output.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the store's process may still hold files open while the test unwinds.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes `path` until the file system has no byte left; returns how much it wrote.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("create the filler");
    let mut written = 0;
    for chunk in [1 << 20, 4096, 1] {
        let block = vec![0u8; chunk];
        while file.write_all(&block).is_ok() {
            written += chunk as u64;
        }
    }
    // Err: already full, which is the point.
    let _ = file.sync_all();
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_the_sqlite_store_loses_and_repeats_nothing() {
    let bootstrap = support::require_kafka().await;
    let tmpfs = Tmpfs::mount();
    let store: PathBuf = tmpfs.path().join("audit.db");
    // 100 ms per call: some action is always between its claim and its recorded end.
    let receiver = Receiver::start(Duration::from_millis(100), None).await;
    let mut running = Running::start(
        &bootstrap,
        tempfile::tempdir().expect("tempdir"),
        &harness::webhook_rule(receiver.addr, ""),
        &format!("sqlite://{}", store.display()),
        &harness::actions_section(false),
        &[],
    )
    .await;
    let stream = running.stream(EVENTS);
    receiver.wait_effects(40).await;

    let filler = tmpfs.path().join("filler");
    let full = Instant::now();
    let filled = fill(&filler);
    // Any 503: the `store` check is a read, which a full disk does not stop (the `consumer`
    // check reports the partitions retrying their writes).
    let outage = running
        .outage(full, None, OUTAGE, async {
            std::fs::remove_file(&filler).expect("free the disk");
        })
        .await;
    let audit = Audit::sqlite(&store).await;
    let rows = running.settle(stream, &audit, "webhook").await;
    let summary = running
        .conclude(&rows, "webhook", &receiver.effects())
        .await;
    eprintln!("disk full: {summary}; filled {filled} bytes; {outage}");
}
