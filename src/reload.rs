//! Hot reload of the rules directory (GitOps): a change to the files, or SIGHUP, loads the whole
//! directory again; a valid set replaces the running one atomically, an invalid one is refused
//! with every problem logged (`file:line:column`) and the running rules keep going.
//!
//! Changes are found by polling a cheap fingerprint of the directory (every rule file's path,
//! resolved path, size, modification time and inode) every `rules.reload_interval`, not by
//! inotify. The directory is usually a mounted ConfigMap, whose files are symlinks through a
//! `..data` symlink that the kubelet swaps atomically to a new timestamped folder, or a
//! git-sync checkout swapped the same way: an inotify watch placed on the old target sees
//! nothing when the link moves to a new target, while a poll resolves the links afresh each
//! time. Polling a few dozen files every few seconds costs a few `stat` calls.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, ReloadLabels};
use crate::pipeline::Pipeline;
use crate::rules::{LoadError, RuleSet};

/// Why the reloader could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SIGHUP handler could not be installed.
    #[error("cannot install a SIGHUP handler for rule reloads")]
    Signal(#[source] std::io::Error),
}

/// One rule file as the fingerprint sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    path: PathBuf,
    /// Symlinks resolved: changes when a ConfigMap's `..data` link moves.
    resolved: PathBuf,
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

/// What the rules directory looked like at one poll; two equal fingerprints mean no rule file
/// was added, removed, rewritten or re-pointed in between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(Vec<FileStamp>);

/// Takes the fingerprint of the rule files under `dir` (the files [`crate::rules::load_dir`]
/// reads). Blocking: a few `stat` calls per file.
pub fn fingerprint(dir: &Path) -> std::io::Result<Fingerprint> {
    use std::os::unix::fs::MetadataExt as _;
    let files = crate::rules::load::find_files(dir, crate::rules::load::is_rule_file)
        .map_err(|err| std::io::Error::other(err.to_string()))?;
    let mut stamps = Vec::with_capacity(files.len());
    for path in files {
        let meta = std::fs::metadata(&path)?;
        stamps.push(FileStamp {
            resolved: std::fs::canonicalize(&path)?,
            len: meta.len(),
            modified: meta.modified().ok(),
            inode: meta.ino(),
            path,
        });
    }
    Ok(Fingerprint(stamps))
}

/// What started a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The fingerprint changed.
    Change,
    /// SIGHUP.
    Signal,
}

/// A refused reload.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// When it was tried.
    pub at: DateTime<Utc>,
    /// Every problem, `file:line:column: message` (and hint).
    pub problems: Vec<String>,
}

/// The outcome of the reloads so far, for `/readyz` and `/v1/rules`.
#[derive(Debug, Default)]
pub struct Status {
    inner: Mutex<StatusInner>,
}

/// A snapshot of [`Status`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusInner {
    /// When the running set was loaded (start-up or the last successful reload).
    pub loaded_at: Option<DateTime<Utc>>,
    /// Successful reloads since start.
    pub reloads_ok: u64,
    /// Refused reloads since start.
    pub reloads_failed: u64,
    /// The last refused reload, if it came after the last successful load (cleared by the
    /// next successful one).
    pub last_failure: Option<Failure>,
}

impl Status {
    /// A status for a set loaded at `at`.
    pub fn loaded(at: DateTime<Utc>) -> Self {
        let status = Self::default();
        status.lock().loaded_at = Some(at);
        status
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatusInner> {
        // A panic elsewhere while holding the lock leaves a status that is still valid.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of the current status.
    pub fn snapshot(&self) -> StatusInner {
        self.lock().clone()
    }

    /// The last refused reload, if the running set is older than it.
    pub fn last_failure(&self) -> Option<Failure> {
        self.lock().last_failure.clone()
    }
}

/// Watches the rules directory and swaps valid new sets into the pipeline.
#[derive(Debug)]
pub struct Reloader {
    dir: PathBuf,
    interval: Duration,
    pipeline: Arc<Pipeline>,
    status: Arc<Status>,
    metrics: &'static Metrics,
    hangup: Signal,
    last: Option<Fingerprint>,
}

impl Reloader {
    /// A reloader for `dir` polling every `interval` (zero: SIGHUP only). `initial` is the
    /// fingerprint taken before the running set was loaded, so a change made while it loaded
    /// is still seen. Installs the SIGHUP handler at once (SIGHUP would otherwise end the
    /// process) and records the running set in the metrics.
    pub fn new(
        dir: PathBuf,
        interval: Duration,
        pipeline: Arc<Pipeline>,
        initial: Option<Fingerprint>,
    ) -> Result<Self, Error> {
        let hangup = signal(SignalKind::hangup()).map_err(Error::Signal)?;
        let metrics = crate::metrics::global();
        let loaded_at = Utc::now();
        metrics.rules_loaded.set(gauge(&pipeline.rules()));
        // The start-up load counts as the first successful one.
        metrics.rules_reloaded(true, loaded_at);
        // Both series exist from the start, so `failed 0` is visible before the first failure.
        for result in ["ok", "failed"] {
            drop(metrics.rule_reloads.get_or_create(&labels(result)));
        }
        Ok(Self {
            dir,
            interval,
            pipeline,
            status: Arc::new(Status::loaded(loaded_at)),
            metrics,
            hangup,
            last: initial,
        })
    }

    /// The status the HTTP server shows.
    pub fn status(&self) -> Arc<Status> {
        Arc::clone(&self.status)
    }

    /// Polls and listens for SIGHUP until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut polls = (!self.interval.is_zero()).then(|| {
            let mut polls = tokio::time::interval(self.interval);
            polls.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            polls
        });
        tracing::info!(
            dir = %self.dir.display(),
            interval = ?self.interval,
            "watching the rules directory (and SIGHUP) for changes"
        );
        loop {
            let poll = async {
                match polls.as_mut() {
                    Some(polls) => drop(polls.tick().await),
                    None => std::future::pending().await,
                }
            };
            let trigger = tokio::select! {
                () = shutdown.cancelled() => return,
                Some(()) = self.hangup.recv() => Trigger::Signal,
                () = poll => Trigger::Change,
            };
            let dir = self.dir.clone();
            let now = tokio::task::spawn_blocking(move || fingerprint(&dir))
                .await
                .unwrap_or_else(|join| Err(std::io::Error::other(join.to_string())));
            let now = match now {
                Ok(now) => Some(now),
                // A directory mid-swap or briefly missing: say so, try again next poll.
                Err(err) => {
                    tracing::debug!(dir = %self.dir.display(), error = %err, "cannot fingerprint the rules directory");
                    None
                }
            };
            if trigger == Trigger::Change && (now.is_none() || now == self.last) {
                continue;
            }
            // Remember the fingerprint taken BEFORE loading: a change made during the load
            // differs from it and is picked up at the next poll.
            self.last = now;
            self.reload(trigger).await;
        }
    }

    /// Loads the whole directory; swaps it in when valid, else keeps the running set, logs
    /// every problem and counts the failure. Returns whether the new set runs.
    pub async fn reload(&self, trigger: Trigger) -> bool {
        let dir = self.dir.clone();
        let loaded = tokio::task::spawn_blocking(move || crate::rules::load_dir(&dir))
            .await
            .unwrap_or_else(|join| {
                Err(LoadError::Io {
                    path: self.dir.clone(),
                    source: std::io::Error::other(format!("the loading task failed: {join}")),
                })
            });
        let now = Utc::now();
        match loaded {
            Ok(rules) => {
                let rules = Arc::new(rules);
                let count = gauge(&rules);
                self.pipeline.replace_rules(Arc::clone(&rules)).await;
                self.metrics.rules_loaded.set(count);
                self.metrics.rule_reloads.get_or_create(&labels("ok")).inc();
                self.metrics.rules_reloaded(true, now);
                let mut status = self.status.lock();
                status.loaded_at = Some(now);
                status.reloads_ok += 1;
                status.last_failure = None;
                tracing::info!(dir = %self.dir.display(), ?trigger, rules = count, "rules reloaded");
                true
            }
            Err(err) => {
                let problems = describe(&err, &self.dir);
                self.metrics
                    .rule_reloads
                    .get_or_create(&labels("failed"))
                    .inc();
                self.metrics.rules_reloaded(false, now);
                // ERROR: the new rules the operator pushed are not running until fixed.
                tracing::error!(
                    dir = %self.dir.display(),
                    ?trigger,
                    problems = problems.len(),
                    "rule reload refused; the previous rules keep running"
                );
                for problem in &problems {
                    tracing::error!(dir = %self.dir.display(), "rule reload problem: {problem}");
                }
                let mut status = self.status.lock();
                status.reloads_failed += 1;
                status.last_failure = Some(Failure { at: now, problems });
                false
            }
        }
    }
}

/// One line per problem: `file:line:column: rule `x`: message (hint: ...)`.
fn describe(err: &LoadError, dir: &Path) -> Vec<String> {
    match err {
        LoadError::Invalid(problems) => problems
            .iter()
            .map(|p| {
                p.to_string().replace("\n  hint:", " (hint:")
                    + if p.hint.is_some() { ")" } else { "" }
            })
            .collect(),
        LoadError::Io { .. } => vec![format!(
            "{}: {err} (is rules.dir right, and readable by the process?)",
            dir.display()
        )],
    }
}

fn labels(result: &str) -> ReloadLabels {
    ReloadLabels {
        result: result.to_owned(),
    }
}

/// The `rules_loaded` gauge value of a set.
fn gauge(rules: &RuleSet) -> i64 {
    i64::try_from(rules.len()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = "rules:\n  - name: a\n    actions:\n      - log:\n          message: hi\n";

    #[test]
    fn the_fingerprint_changes_when_a_rule_file_is_edited_added_or_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.yaml"), RULE).expect("write");
        let first = fingerprint(dir.path()).expect("fingerprint");
        assert_eq!(first, fingerprint(dir.path()).expect("again"), "stable");
        std::fs::write(dir.path().join("a.yaml"), format!("{RULE}# edited\n")).expect("edit");
        let edited = fingerprint(dir.path()).expect("fingerprint");
        assert_ne!(first, edited);
        std::fs::write(dir.path().join("notes.txt"), "not a rule file").expect("write");
        assert_eq!(edited, fingerprint(dir.path()).expect("fingerprint"));
        std::fs::write(dir.path().join("b.yaml"), RULE).expect("add");
        let added = fingerprint(dir.path()).expect("fingerprint");
        assert_ne!(edited, added);
        std::fs::remove_file(dir.path().join("b.yaml")).expect("remove");
        assert_ne!(added, fingerprint(dir.path()).expect("fingerprint"));
    }

    #[test]
    fn the_fingerprint_sees_a_configmap_style_data_symlink_swap() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        // The kubelet's layout: ..2026_1/ holds the files, ..data -> ..2026_1, and each key
        // is a symlink rules.yaml -> ..data/rules.yaml.
        for version in ["..v1", "..v2"] {
            std::fs::create_dir(root.join(version)).expect("mkdir");
            // Same size and content: only the symlink target tells them apart.
            std::fs::write(root.join(version).join("rules.yaml"), RULE).expect("write");
        }
        symlink("..v1", root.join("..data")).expect("link data");
        symlink("..data/rules.yaml", root.join("rules.yaml")).expect("link file");
        let before = fingerprint(root).expect("fingerprint");
        assert_eq!(
            before.0.len(),
            1,
            "hidden folders are not read twice: {before:?}"
        );
        // The atomic swap: a new link renamed over ..data.
        symlink("..v2", root.join("..data_tmp")).expect("link tmp");
        std::fs::rename(root.join("..data_tmp"), root.join("..data")).expect("swap");
        assert_ne!(before, fingerprint(root).expect("fingerprint"));
    }

    #[test]
    fn a_refused_reload_lists_each_problem_on_one_line_with_its_location() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("bad.yaml"),
            "rules:\n  - name: a\n    actoins: []\n",
        )
        .expect("write");
        let err = crate::rules::load_dir(dir.path()).expect_err("invalid");
        let lines = describe(&err, dir.path());
        assert!(!lines.is_empty());
        let location = format!("{}:3:", dir.path().join("bad.yaml").display());
        assert!(lines[0].starts_with(&location), "{lines:?}");
        assert!(lines.iter().all(|l| !l.contains('\n')), "{lines:?}");
    }
}
