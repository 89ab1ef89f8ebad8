//! The two kinds of bench run and the text report.

use std::fmt::Write as _;
use std::time::Duration;

use super::measure::{self, Memory};
use super::{Bench, Counts, LatencyRun, Report, ThroughputRun, ppm};

/// How often the fixed-rate producer wakes up to send what is due. Sending in 1 ms slices
/// keeps the rate even (1 record per slice at 1,000/s) without a timer per record.
const PACE: Duration = Duration::from_millis(1);

impl Bench {
    /// Topics and group of one run.
    async fn run_topics(&mut self, run: &str) -> anyhow::Result<(String, String, String)> {
        let topic = format!("{}.{run}", self.prefix);
        let outcomes = format!("{}.{run}.outcomes", self.prefix);
        let partitions = self.args.partitions;
        self.create_topic(&topic, partitions).await?;
        self.create_topic(&outcomes, 1).await?;
        Ok((topic, outcomes, format!("{}.{run}", self.prefix)))
    }

    /// The fixed-rate run; also returns the memory at rest (pipeline joined, no event yet).
    pub(super) async fn latency_run(&mut self) -> anyhow::Result<(LatencyRun, Memory)> {
        let (topic, outcomes, group) = self.run_topics("latency").await?;
        let fire_ppm = ppm(self.args.latency_fire);
        let running = self.start(&topic, &outcomes, &group).await?;
        let at_rest = measure::memory();
        measure::reset_peak();
        let rate = self.args.rate;
        let total = rate.saturating_mul(self.args.duration.as_millis() as u64) / 1000;
        let started = tokio::time::Instant::now();
        let mut deliveries = Vec::with_capacity(usize::try_from(total).unwrap_or_default());
        let mut ticks = tokio::time::interval(PACE);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut sent = 0;
        while sent < total {
            ticks.tick().await;
            let elapsed = started.elapsed().as_micros() as u64;
            let due = (elapsed.saturating_mul(rate) / 1_000_000).min(total);
            while sent < due {
                deliveries.push(self.send(&topic, sent, fire_ppm, true));
                sent += 1;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let produced = delivered(deliveries).await;
        running.wait(produced).await;
        let measured = std::sync::Arc::clone(&running.measured);
        running.stop().await?;
        let counts = self
            .counts(&measured, &topic, &outcomes, &group, produced, fire_ppm)
            .await?;
        let (all, firing) = measured.latency();
        Ok((
            LatencyRun {
                counts,
                rate,
                seconds,
                all,
                firing,
            },
            at_rest,
        ))
    }

    /// One backlog run: produce everything, then consume it; also returns the memory at rest.
    pub(super) async fn throughput_run(
        &mut self,
        n: usize,
        fraction: f64,
    ) -> anyhow::Result<(ThroughputRun, Memory)> {
        let (topic, outcomes, group) = self.run_topics(&format!("backlog-{n}")).await?;
        let fire_ppm = ppm(fraction);
        let deliveries: Vec<_> = (0..self.args.events)
            .map(|i| self.send(&topic, i, fire_ppm, false))
            .collect();
        let produced = delivered(deliveries).await;
        let running = self.start(&topic, &outcomes, &group).await?;
        let at_rest = measure::memory();
        measure::reset_peak();
        running.wait(produced).await;
        let measured = std::sync::Arc::clone(&running.measured);
        let seconds = measured.busy_secs();
        let (committed, committed_at) = self.wait_committed(&group, &topic, produced).await?;
        running.stop().await?;
        let mut counts = self
            .counts(&measured, &topic, &outcomes, &group, produced, fire_ppm)
            .await?;
        counts.committed = committed.max(counts.committed);
        let seconds_to_commit = committed_at.map_or(f64::NAN, |at| {
            at.saturating_sub(measured.first_start_ns()) as f64 / 1e9
        });
        let handled = counts.handled as f64;
        Ok((
            ThroughputRun {
                counts,
                seconds,
                events_per_sec: handled / seconds,
                seconds_to_commit,
                events_per_sec_committed: handled / seconds_to_commit,
            },
            at_rest,
        ))
    }

    /// The counts of a finished run (after the consumer stopped and committed).
    async fn counts(
        &self,
        measured: &measure::Measured,
        topic: &str,
        outcomes: &str,
        group: &str,
        produced: u64,
        fire_ppm: u64,
    ) -> anyhow::Result<Counts> {
        let (committed, _) = self.wait_committed(group, topic, produced).await?;
        Ok(Counts {
            fire_fraction: fire_ppm as f64 / 1e6,
            produced,
            handled: measured.handled(),
            committed,
            outcomes: measured.outcomes(),
            outcomes_on_topic: self.records_on(outcomes, 1).await?,
            expected_outcomes: self.workload.expected_firings(produced, fire_ppm),
            dead_letters: measured.dead_letters(),
            peak: measure::memory(),
            firing_handle: measured.firing_handle(),
        })
    }
}

/// Awaits every delivery; returns how many the broker acknowledged.
pub(super) async fn delivered(deliveries: Vec<rdkafka::producer::DeliveryFuture>) -> u64 {
    let mut acknowledged = 0;
    for delivery in deliveries {
        if matches!(delivery.await, Ok(Ok(_))) {
            acknowledged += 1;
        }
    }
    acknowledged
}

/// The human-readable report.
pub(super) fn render(report: &Report) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = writeln!(
        out,
        "reflex bench: {} rules ({}{}), {} partitions per topic, {} store, {} CPUs",
        report.rules,
        match report.stateful_every {
            0 => "none stateful".to_owned(),
            n => format!("1 in {n} stateful"),
        },
        if report.closed_loop {
            ", every one closing the loop"
        } else {
            ""
        },
        report.partitions,
        report.store,
        report.cpus
    );
    let _ = writeln!(out, "memory at rest: RSS {:.1} MiB", report.at_rest.rss_mib);
    if let Some(run) = &report.latency {
        let _ = writeln!(
            out,
            "\nlatency at {} events/s for {:.1} s ({:.1}% firing): produce -> outcomes durable",
            run.rate,
            run.seconds,
            run.counts.fire_fraction * 100.0
        );
        for (name, p) in [("all records", &run.all), ("firing records", &run.firing)] {
            let _ = writeln!(
                out,
                "  {name:<15} n={:<7} p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
                p.count, p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms
            );
        }
        let _ = writeln!(out, "  {}", counts_line(&run.counts));
    }
    if !report.throughput.is_empty() {
        let _ = writeln!(out, "\nthroughput (backlog consumed from the start):");
    }
    for run in &report.throughput {
        let _ = writeln!(
            out,
            "  {:>5.1}% firing: {:>9.0} events/s to outcomes durable ({:.2} s), {:>9.0} events/s \
             to offsets committed ({:.2} s)",
            run.counts.fire_fraction * 100.0,
            run.events_per_sec,
            run.seconds,
            run.events_per_sec_committed,
            run.seconds_to_commit
        );
        let _ = writeln!(out, "    {}", counts_line(&run.counts));
    }
    if report.problems.is_empty() {
        let _ = writeln!(out, "\ncounts consistent in every run");
    }
    out
}

fn counts_line(counts: &Counts) -> String {
    let handle = &counts.firing_handle;
    format!(
        "produced {} handled {} committed {} outcomes {} (on topic {}, expected {}) dead letters {} \
         peak RSS {:.1} MiB\n    firing records in the pipeline: p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
        counts.produced,
        counts.handled,
        counts.committed,
        counts.outcomes,
        counts.outcomes_on_topic,
        counts.expected_outcomes,
        counts.dead_letters,
        counts.peak.peak_mib,
        handle.p50_ms,
        handle.p99_ms,
        handle.max_ms
    )
}
