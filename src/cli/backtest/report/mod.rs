//! The backtest report: per rule, events matched, actions planned by kind, distinct and
//! busiest targets, what the guards would have refused, and a firing timeline; rendered as
//! [`text`], JSON (this module's types, serialized) or a self-contained [`html`] page.

pub mod html;
pub mod text;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::simulate::{RuleTally, Simulation};

/// Busiest targets listed per rule.
const TOP_TARGETS: usize = 5;
/// Most timeline buckets: enough to see a burst, few enough for a line of text.
const MAX_BUCKETS: i64 = 48;
/// Bucket sizes to choose from, in seconds: the smallest that keeps the timeline within
/// [`MAX_BUCKETS`].
const BUCKET_SIZES: [i64; 9] = [
    60,
    300,
    900,
    3600,
    3 * 3600,
    6 * 3600,
    86_400,
    7 * 86_400,
    30 * 86_400,
];

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where the events came from (the topics, or the file).
    pub source: String,
    /// Time of the first event.
    pub from: Option<DateTime<Utc>>,
    /// Time of the last event (or `--until`).
    pub to: Option<DateTime<Utc>>,
    /// Events run through the rules.
    pub events: u64,
    /// Records or lines that could not be decoded (skipped, as `reflex run` dead-letters them).
    pub skipped: u64,
    /// Width of a timeline bucket, in seconds.
    pub bucket_seconds: i64,
    /// Start of each timeline bucket; every rule's `timeline` counts firings per bucket.
    pub buckets: Vec<DateTime<Utc>>,
    /// One entry per rule, in rule-set order.
    pub rules: Vec<RuleReport>,
}

/// What one rule would have done.
#[derive(Debug, Clone, Serialize)]
pub struct RuleReport {
    /// The rule.
    pub rule: String,
    /// Events whose selector and condition held.
    pub events_matched: u64,
    /// Times the rule fired.
    pub firings: u64,
    /// Actions planned.
    pub actions_planned: u64,
    /// Actions planned, by kind.
    pub actions: BTreeMap<&'static str, u64>,
    /// Actions that would have executed.
    pub would_execute: u64,
    /// Actions skipped as dry run.
    pub dry_run: u64,
    /// Actions the guards would have refused, by guard.
    pub refused: BTreeMap<&'static str, u64>,
    /// Firings suppressed by `throttle.once_within`.
    pub throttled: u64,
    /// Actions that could not be planned (template errors).
    pub failures: u64,
    /// Distinct targets of the planned actions.
    pub distinct_targets: usize,
    /// The busiest targets, most actions first.
    pub top_targets: Vec<TargetCount>,
    /// Firings per bucket of [`Report::buckets`].
    pub timeline: Vec<u64>,
}

/// Actions planned on one target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCount {
    /// The target (`deployment/shop/web`, `node/n1`, `webhook/host/path`, `kafka/topic`).
    pub target: String,
    /// Actions planned on it.
    pub actions: u64,
}

/// What was read.
#[derive(Debug, Clone)]
pub struct Read {
    /// Where the events came from.
    pub source: String,
    /// Events run.
    pub events: u64,
    /// Undecodable records or lines.
    pub skipped: u64,
    /// First event time.
    pub from: Option<DateTime<Utc>>,
    /// Last event time, or the end of the slice.
    pub to: Option<DateTime<Utc>>,
}

impl Report {
    /// The report of a finished simulation.
    pub fn new(read: &Read, simulation: &Simulation) -> Self {
        let minutes = || {
            simulation
                .tallies()
                .iter()
                .flat_map(|t| t.minutes.keys().copied())
        };
        let first = read
            .from
            .map(|t| t.timestamp())
            .or(minutes().min().map(|m| m * 60));
        let last = read
            .to
            .map(|t| t.timestamp())
            .or(minutes().max().map(|m| m * 60));
        let (start, span) = match (first, last) {
            (Some(a), Some(b)) if b >= a => (a, b - a + 1),
            (Some(a), _) => (a, 1),
            _ => (0, 1),
        };
        let bucket = BUCKET_SIZES
            .into_iter()
            .find(|size| (span + size - 1) / size <= MAX_BUCKETS)
            .unwrap_or_else(|| {
                // Longer than 48 × 30 days (an event without a time is dated 1970, a stray one
                // can be dated 9999): whole days, still at most MAX_BUCKETS, so one bad
                // timestamp cannot make a timeline of millions of buckets per rule.
                let per_bucket = (span + MAX_BUCKETS - 1) / MAX_BUCKETS;
                (per_bucket + 86_399) / 86_400 * 86_400
            });
        // Buckets align on whole multiples of their size, so two reports read alike.
        let end = start + span - 1;
        let start = start.div_euclid(bucket) * bucket;
        let count = usize::try_from((end - start) / bucket + 1).unwrap_or(1);
        let buckets = (0..count as i64)
            .filter_map(|i| DateTime::from_timestamp(start + i * bucket, 0))
            .collect();
        let rules = simulation
            .rules()
            .rules()
            .iter()
            .zip(simulation.tallies())
            .map(|(rule, tally)| rule_report(&rule.name, tally, start, bucket, count))
            .collect();
        Self {
            source: read.source.clone(),
            from: read.from,
            to: read.to,
            events: read.events,
            skipped: read.skipped,
            bucket_seconds: bucket,
            buckets,
            rules,
        }
    }
}

fn rule_report(name: &str, tally: &RuleTally, start: i64, bucket: i64, count: usize) -> RuleReport {
    let mut timeline = vec![0; count];
    for (&minute, &n) in &tally.minutes {
        let i = (minute * 60 - start).div_euclid(bucket);
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| timeline.get_mut(i)) {
            *slot += n;
        } else if let Some(edge) = if i < 0 {
            timeline.first_mut()
        } else {
            timeline.last_mut()
        } {
            // A timer that fired past the last event (an absence's deadline) or a record
            // older than the slice's first: counted in the nearest bucket.
            *edge += n;
        }
    }
    let mut top: Vec<TargetCount> = tally
        .targets
        .iter()
        .map(|(target, &actions)| TargetCount {
            target: target.clone(),
            actions,
        })
        .collect();
    top.sort_by(|a, b| {
        b.actions
            .cmp(&a.actions)
            .then_with(|| a.target.cmp(&b.target))
    });
    top.truncate(TOP_TARGETS);
    RuleReport {
        rule: name.to_owned(),
        events_matched: tally.matched,
        firings: tally.firings,
        actions_planned: tally.actions.values().sum(),
        actions: tally.actions.clone(),
        would_execute: tally.executed,
        dry_run: tally.dry_run,
        refused: tally
            .refused
            .iter()
            .map(|(g, &n)| (g.as_str(), n))
            .collect(),
        throttled: tally.throttled,
        failures: tally.failures,
        distinct_targets: tally.targets.len(),
        top_targets: top,
        timeline,
    }
}

/// `n` with the unit's plural when `n != 1`.
fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A bucket width in words (`1m`, `15m`, `1h`, `1d`).
fn width(seconds: i64) -> String {
    crate::rules::duration::format(chrono::Duration::seconds(seconds))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn report(from: &str, to: &str) -> Report {
        let yaml =
            "rules:\n  - name: r\n    when: 'kind == \"a\"'\n    actions: [{log: {message: hi}}]\n";
        let rules =
            crate::rules::load_sources(&[("r.yaml".into(), yaml.to_owned())]).expect("valid rules");
        let simulation = Simulation::new(Arc::new(rules), &Default::default(), false);
        let at = |t: &str| Some(DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc));
        let read = Read {
            source: "test".into(),
            events: 2,
            skipped: 0,
            from: at(from),
            to: at(to),
        };
        Report::new(&read, &simulation)
    }

    #[test]
    fn the_timeline_keeps_its_bound_whatever_the_span() {
        for (from, to) in [
            ("2026-03-01T00:00:00Z", "2026-03-01T00:30:00Z"),
            ("2026-03-01T00:00:00Z", "2026-03-08T00:00:00Z"),
            ("2020-01-01T00:00:00Z", "2026-03-01T00:00:00Z"),
            ("1970-01-01T00:00:00Z", "2026-03-01T00:00:00Z"),
            ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"),
        ] {
            let report = report(from, to);
            let n = report.buckets.len();
            assert!(
                (1..=MAX_BUCKETS as usize + 1).contains(&n),
                "{from}..{to}: {n} buckets"
            );
            assert_eq!(report.rules[0].timeline.len(), n);
            let end = report.buckets[n - 1] + chrono::Duration::seconds(report.bucket_seconds);
            assert!(
                report.buckets[0] <= report.from.unwrap() && end > report.to.unwrap(),
                "{from}..{to}: the buckets cover the slice"
            );
        }
    }
}
