//! The standard `process_*` metrics (the names Prometheus' own client libraries export, which
//! dashboards and alerts expect): CPU seconds, resident and virtual memory, open and maximum
//! file descriptors, start time and threads. prometheus-client has no such collector, so this
//! one reads `/proc/self` at each scrape, as the Go client's procfs does. Elsewhere than Linux
//! (no `/proc`) it exports nothing.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// Clock ticks per second of the times in `/proc/<pid>/stat`. The kernel reports them in
/// USER_HZ, fixed at 100 on every architecture's user ABI whatever the kernel's own HZ; the Go
/// client's procfs hard-codes the same value instead of calling `sysconf(_SC_CLK_TCK)`.
const USER_HZ: f64 = 100.0;

/// What `/proc/self/stat` says about the process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// User + system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Start time after boot, in seconds.
    pub start_after_boot_seconds: f64,
    /// Virtual memory size, in bytes.
    pub virtual_memory_bytes: u64,
    /// Threads.
    pub threads: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may hold spaces
/// and parentheses itself, so the fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    // After the name: field 3 (state) is index 0, so field N is index N - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let ticks = |n: usize| -> Option<f64> { field(n).map(|t| t as f64 / USER_HZ) };
    Some(Stat {
        cpu_seconds: ticks(14)? + ticks(15)?,
        threads: field(20)?,
        start_after_boot_seconds: ticks(22)?,
        virtual_memory_bytes: field(23)?,
    })
}

/// The `btime` line of `/proc/stat`: boot time, Unix seconds.
pub fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
}

/// `VmRSS` of `/proc/<pid>/status`, in bytes (the file says kB, meaning KiB). Read here rather
/// than `rss` of `stat`, which counts pages of a size the process would have to ask for.
pub fn parse_resident_bytes(text: &str) -> Option<u64> {
    let line = text.lines().find_map(|line| line.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}

/// The soft limit of `Max open files` in `/proc/<pid>/limits`; `None` when unlimited.
pub fn parse_max_fds(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?;
    line.split_whitespace().next()?.parse().ok()
}

/// Exports the `process_*` metrics at each scrape.
#[derive(Debug)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let Some(stat) = read("/proc/self/stat").as_deref().and_then(parse_stat) else {
            return Ok(());
        };
        let cpu = ConstCounter::new(stat.cpu_seconds);
        let metric = encoder.encode_descriptor(
            "process_cpu",
            "Total user and system CPU time spent in seconds",
            Some(&Unit::Seconds),
            cpu.metric_type(),
        )?;
        cpu.encode(metric)?;
        gauge(
            &mut encoder,
            "process_virtual_memory",
            "Virtual memory size in bytes",
            Some(&Unit::Bytes),
            stat.virtual_memory_bytes as f64,
        )?;
        gauge(
            &mut encoder,
            "process_threads",
            "Number of OS threads in the process",
            None,
            stat.threads as f64,
        )?;
        if let Some(boot) = read("/proc/stat").as_deref().and_then(parse_boot_time) {
            gauge(
                &mut encoder,
                "process_start_time",
                "Start time of the process since unix epoch in seconds",
                Some(&Unit::Seconds),
                boot as f64 + stat.start_after_boot_seconds,
            )?;
        }
        if let Some(rss) = read("/proc/self/status")
            .as_deref()
            .and_then(parse_resident_bytes)
        {
            gauge(
                &mut encoder,
                "process_resident_memory",
                "Resident memory size in bytes",
                Some(&Unit::Bytes),
                rss as f64,
            )?;
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            // The directory handle itself shows up as one entry while it is being read.
            let open = fds.count().saturating_sub(1);
            gauge(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors",
                None,
                open as f64,
            )?;
        }
        if let Some(max) = read("/proc/self/limits").as_deref().and_then(parse_max_fds) {
            gauge(
                &mut encoder,
                "process_max_fds",
                "Maximum number of open file descriptors",
                None,
                max as f64,
            )?;
        }
        Ok(())
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    let metric = encoder.encode_descriptor(name, help, unit, gauge.metric_type())?;
    gauge.encode(metric)
}
