//! What `reflex bench` measures with: a [`Handler`] wrapping the real pipeline that counts
//! handled records and, for records carrying the bench's send-time header, the latency from the
//! producer's send to the moment the pipeline returned (every outcome of the record durable:
//! written to the store and acknowledged by the outcomes topic); plus memory figures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use crate::event::decode::RawRecord;
use crate::pipeline::{Handled, Pipeline};
use crate::source::Handler;

/// Header the bench producer stamps every record with: nanoseconds since the bench's start
/// ([`Clock`]), decimal.
pub const SENT_HEADER: &str = "reflex-bench-sent-ns";

/// The bench's monotonic clock, shared by the producer and the handler (one process).
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    /// Starts the clock.
    pub fn start() -> Self {
        Self(Instant::now())
    }

    /// Nanoseconds since the start.
    pub fn now_ns(self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Counts and timings of the records the pipeline finished.
#[derive(Debug)]
pub struct Measured {
    pipeline: Arc<Pipeline>,
    clock: Clock,
    handled: AtomicU64,
    outcomes: AtomicU64,
    dead_letters: AtomicU64,
    /// Clock time of the first record's start and the last record's end; 0 = none yet.
    first_start_ns: AtomicU64,
    last_end_ns: AtomicU64,
    /// Latencies in ns of records with outcomes, and of those without (only stamped records).
    latencies: Mutex<Latencies>,
}

#[derive(Debug, Default)]
struct Latencies {
    firing: Vec<u64>,
    quiet: Vec<u64>,
    /// Time inside the pipeline of each record that recorded outcomes (stamped or not).
    firing_handle: Vec<u64>,
}

impl Measured {
    /// Wraps `pipeline`.
    pub fn new(pipeline: Arc<Pipeline>, clock: Clock) -> Self {
        Self {
            pipeline,
            clock,
            handled: AtomicU64::new(0),
            outcomes: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
            first_start_ns: AtomicU64::new(0),
            last_end_ns: AtomicU64::new(0),
            latencies: Mutex::new(Latencies::default()),
        }
    }

    /// Records handled so far.
    pub fn handled(&self) -> u64 {
        self.handled.load(Ordering::Acquire)
    }

    /// Outcomes recorded so far.
    pub fn outcomes(&self) -> u64 {
        self.outcomes.load(Ordering::Acquire)
    }

    /// Records dead-lettered so far.
    pub fn dead_letters(&self) -> u64 {
        self.dead_letters.load(Ordering::Acquire)
    }

    /// Seconds from the start of the first record to the end of the last one.
    pub fn busy_secs(&self) -> f64 {
        let first = self.first_start_ns.load(Ordering::Acquire);
        let last = self.last_end_ns.load(Ordering::Acquire);
        last.saturating_sub(first) as f64 / 1e9
    }

    /// Clock time (ns) of the start of the first record; 0 before any.
    pub fn first_start_ns(&self) -> u64 {
        self.first_start_ns.load(Ordering::Acquire)
    }

    /// Percentiles of the time the pipeline spent on each record that recorded outcomes
    /// (claim, execute, store, publish; from the start of `handle` to its return).
    pub fn firing_handle(&self) -> Percentiles {
        let mut latencies = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        Percentiles::of(&mut latencies.firing_handle)
    }

    /// Percentiles of the stamped records: (all, firing only).
    pub fn latency(&self) -> (Percentiles, Percentiles) {
        let mut latencies = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<u64> = latencies
            .firing
            .iter()
            .chain(&latencies.quiet)
            .copied()
            .collect();
        let all = Percentiles::of(&mut all);
        let firing = Percentiles::of(&mut latencies.firing);
        (all, firing)
    }
}

impl Handler for Measured {
    type Error = crate::pipeline::Error;

    async fn handle(&self, record: &RawRecord<'_>) -> Result<(), Self::Error> {
        let start = self.clock.now_ns().max(1);
        let _ = self
            .first_start_ns
            .compare_exchange(0, start, Ordering::AcqRel, Ordering::Acquire);
        let handled = self.pipeline.handle(record).await?;
        let end = self.clock.now_ns();
        self.last_end_ns.fetch_max(end, Ordering::AcqRel);
        let outcomes = match handled {
            Handled::Outcomes(n) => n as u64,
            Handled::DeadLettered => {
                self.dead_letters.fetch_add(1, Ordering::AcqRel);
                0
            }
        };
        self.outcomes.fetch_add(outcomes, Ordering::AcqRel);
        if outcomes > 0 {
            let mut latencies = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
            latencies.firing_handle.push(end.saturating_sub(start));
        }
        if let Some(sent) = sent_ns(record) {
            let took = end.saturating_sub(sent);
            let mut latencies = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
            if outcomes > 0 {
                latencies.firing.push(took);
            } else {
                latencies.quiet.push(took);
            }
        }
        // Counted last: whoever waits for the count sees the other figures complete.
        self.handled.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    async fn drained(&self) {
        Handler::drained(&*self.pipeline).await;
    }
}

/// The send time the bench producer stamped on `record`.
fn sent_ns(record: &RawRecord<'_>) -> Option<u64> {
    let (_, value) = record.headers.iter().find(|(k, _)| *k == SENT_HEADER)?;
    std::str::from_utf8((*value)?).ok()?.parse().ok()
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `samples` (ns); sorts them.
    pub fn of(samples: &mut [u64]) -> Self {
        samples.sort_unstable();
        let rank = |p: f64| -> f64 {
            if samples.is_empty() {
                return 0.0;
            }
            let index = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[index] as f64 / 1e6
        };
        Self {
            count: samples.len(),
            p50_ms: rank(0.50),
            p90_ms: rank(0.90),
            p99_ms: rank(0.99),
            max_ms: rank(1.0),
        }
    }
}

/// This process's resident memory, from `/proc/self/status`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Memory {
    /// VmRSS: resident now, MiB.
    pub rss_mib: f64,
    /// VmHWM: the peak since start or the last [`reset_peak`], MiB.
    pub peak_mib: f64,
}

/// Reads VmRSS and VmHWM; zeros where `/proc` is not available (not Linux).
pub fn memory() -> Memory {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    Memory {
        rss_mib: field("VmRSS:"),
        peak_mib: field("VmHWM:"),
    }
}

/// CPU time this process (every thread) has used, user and system, from `/proc/self/stat`;
/// 0 where `/proc` is not available. The kernel counts it in ticks of 1/100 s (`USER_HZ`).
pub fn cpu_seconds() -> f64 {
    /// `USER_HZ`: fixed at 100 for `/proc` on every Linux architecture Reflex runs on.
    const TICKS_PER_SECOND: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces, so split after its `)`): state is
    // the first, utime the 12th, stime the 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / TICKS_PER_SECOND
}

/// Resets VmHWM to the current RSS (Linux `clear_refs` code 5), so a phase's peak is its own;
/// false when the kernel refused.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut samples: Vec<u64> = (1..=100).rev().map(|ms| ms * 1_000_000).collect();
        let p = Percentiles::of(&mut samples);
        assert_eq!(p.count, 100);
        assert_eq!(p.p50_ms, 50.0);
        assert_eq!(p.p90_ms, 90.0);
        assert_eq!(p.p99_ms, 99.0);
        assert_eq!(p.max_ms, 100.0);
        let empty = Percentiles::of(&mut []);
        assert_eq!(empty.count, 0);
        assert_eq!(empty.max_ms, 0.0);
    }

    #[test]
    fn cpu_time_grows_with_work() {
        let before = cpu_seconds();
        // Tens of milliseconds of work at least, several of the kernel's 10 ms ticks.
        let sum = (0..50_000_000u64).fold(0u64, |a, b| a.wrapping_add(std::hint::black_box(b)));
        assert!(sum > 0);
        assert!(cpu_seconds() > before, "{before}");
    }

    #[test]
    fn memory_is_read_from_proc_on_linux() {
        let memory = memory();
        assert!(memory.rss_mib > 0.0, "{memory:?}");
        assert!(memory.peak_mib >= memory.rss_mib, "{memory:?}");
    }
}
