//! The report as text: one paragraph per rule that did anything, a line for the idle ones.

use std::fmt::Write;

use super::{Report, RuleReport, plural, width};

/// Block characters for the timeline sparkline, lowest first.
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Renders `report` as text.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let span = match (report.from, report.to) {
        (Some(from), Some(to)) => format!(
            " from {} to {}",
            from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "backtest of {} ({}){span}, {} skipped",
        plural(report.events, "event", "events"),
        report.source,
        plural(report.skipped, "record", "records"),
    );
    let (active, idle): (Vec<&RuleReport>, Vec<&RuleReport>) = report
        .rules
        .iter()
        .partition(|r| r.events_matched > 0 || r.firings > 0 || r.failures > 0);
    for rule in active {
        out.push('\n');
        paragraph(&mut out, rule, report.bucket_seconds);
    }
    if !idle.is_empty() {
        let names: Vec<&str> = idle.iter().map(|r| r.rule.as_str()).collect();
        let _ = writeln!(out, "\nno event matched: {}", names.join(", "));
    }
    out
}

fn paragraph(out: &mut String, rule: &RuleReport, bucket: i64) {
    let kinds: Vec<String> = rule
        .actions
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let _ = writeln!(
        out,
        "rule {}: {} matched, {}, {} planned{}",
        rule.rule,
        plural(rule.events_matched, "event", "events"),
        plural(rule.firings, "firing", "firings"),
        plural(rule.actions_planned, "action", "actions"),
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", kinds.join(", "))
        }
    );
    let mut fates = vec![format!("{} would execute", rule.would_execute)];
    if rule.dry_run > 0 {
        fates.push(format!("{} dry run", rule.dry_run));
    }
    fates.extend(
        rule.refused
            .iter()
            .map(|(g, n)| format!("{n} refused by {g}")),
    );
    if rule.throttled > 0 {
        fates.push(format!(
            "{} throttled",
            plural(rule.throttled, "firing", "firings")
        ));
    }
    if rule.failures > 0 {
        fates.push(format!(
            "{} failed to render",
            plural(rule.failures, "action", "actions")
        ));
    }
    let _ = writeln!(out, "  {}", fates.join(", "));
    if rule.distinct_targets > 0 {
        let top: Vec<String> = rule
            .top_targets
            .iter()
            .map(|t| format!("{} ({})", t.target, t.actions))
            .collect();
        let _ = writeln!(
            out,
            "  {}; busiest: {}",
            plural(rule.distinct_targets as u64, "target", "targets"),
            top.join(", ")
        );
    }
    if rule.firings > 0 {
        let _ = writeln!(
            out,
            "  firings per {}: {}",
            width(bucket),
            sparkline(&rule.timeline)
        );
    }
}

/// One block character per bucket, scaled to the busiest bucket; a space for none.
fn sparkline(counts: &[u64]) -> String {
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    counts
        .iter()
        .map(|&n| {
            if n == 0 {
                ' '
            } else {
                let level = ((n * (BARS.len() as u64 - 1)).div_ceil(max)) as usize;
                BARS[level.min(BARS.len() - 1)]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sparkline_scales_to_the_busiest_bucket_and_leaves_empty_ones_blank() {
        assert_eq!(sparkline(&[0, 1, 7, 0]), " ▂█ ");
        assert_eq!(sparkline(&[]), "");
    }
}
