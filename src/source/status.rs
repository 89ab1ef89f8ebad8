//! The consumer's state as readiness and operators see it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde::Serialize;

/// Live counters shared by the polling thread, the workers and the HTTP server.
#[derive(Debug, Default)]
pub struct Status {
    running: AtomicBool,
    joined: AtomicBool,
    assigned: AtomicUsize,
    paused: AtomicUsize,
    retrying: AtomicUsize,
}

/// A copy of [`Status`] at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StatusSnapshot {
    /// The polling thread runs.
    pub running: bool,
    /// The consumer joined its group and received an assignment (possibly empty: a replica
    /// with no partition is a healthy standby).
    pub joined: bool,
    /// Partitions assigned to this process.
    pub assigned: usize,
    /// Partitions paused because their worker's queue is full.
    pub paused: usize,
    /// Partitions whose current record failed and is being retried.
    pub retrying: usize,
}

impl Status {
    /// The current values.
    pub fn snapshot(&self) -> StatusSnapshot {
        StatusSnapshot {
            running: self.running.load(Ordering::Relaxed),
            joined: self.joined.load(Ordering::Relaxed),
            assigned: self.assigned.load(Ordering::Relaxed),
            paused: self.paused.load(Ordering::Relaxed),
            retrying: self.retrying.load(Ordering::Relaxed),
        }
    }

    /// `Ok` when the consumer runs, has joined its group and no partition is stuck retrying;
    /// otherwise why not.
    pub fn readiness(&self) -> Result<(), String> {
        let now = self.snapshot();
        if !now.running {
            Err("the Kafka consumer is not running".to_owned())
        } else if !now.joined {
            Err(
                "the Kafka consumer has not joined its group yet (a join takes a few seconds; \
                 it waits until at least one subscribed topic exists)"
                    .to_owned(),
            )
        } else if now.retrying > 0 {
            Err(format!(
                "{} partition(s) retrying a record after a store or Kafka failure (see WARN logs)",
                now.retrying
            ))
        } else {
            Ok(())
        }
    }

    pub(super) fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::Relaxed);
    }

    pub(super) fn set_joined(&self) {
        self.joined.store(true, Ordering::Relaxed);
    }

    /// The group membership was lost (session timed out, e.g. during a broker outage): until
    /// the next assignment nothing is consumed, so readiness must not keep saying "joined".
    pub(super) fn clear_joined(&self) {
        self.joined.store(false, Ordering::Relaxed);
    }

    pub(super) fn add_assigned(&self, n: usize) {
        self.assigned.fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn sub_assigned(&self, n: usize) {
        self.assigned.fetch_sub(n, Ordering::Relaxed);
    }

    pub(super) fn paused_changed(&self, paused: bool) {
        if paused {
            self.paused.fetch_add(1, Ordering::Relaxed);
        } else {
            self.paused.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub(super) fn retrying_changed(&self, retrying: bool) {
        if retrying {
            self.retrying.fetch_add(1, Ordering::Relaxed);
        } else {
            self.retrying.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_requires_a_running_joined_consumer_without_retrying_partitions() {
        let status = Status::default();
        assert!(status.readiness().is_err());
        status.set_running(true);
        assert!(status.readiness().unwrap_err().contains("not joined"));
        status.set_joined();
        assert_eq!(status.readiness(), Ok(()));
        status.retrying_changed(true);
        assert!(status.readiness().unwrap_err().contains("1 partition(s)"));
        status.retrying_changed(false);
        assert_eq!(status.readiness(), Ok(()));
        status.clear_joined();
        assert!(status.readiness().unwrap_err().contains("not joined"));
    }
}
