//! The report as one self-contained HTML page: a summary table and, per rule, an inline SVG
//! plot of its firings over time. No script, stylesheet or font is fetched: the page can be
//! attached to a CI run or a pull request as it is.

use std::fmt::Write;

use super::{Report, RuleReport, width};

/// Plot size in CSS pixels.
const PLOT_WIDTH: f64 = 720.0;
const PLOT_HEIGHT: f64 = 90.0;

/// Renders `report` as an HTML page.
pub fn render(report: &Report) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or("-".to_owned(), |t| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Reflex backtest</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:right}}\
         td:first-child,th:first-child{{text-align:left}}.idle{{color:#888}}\
         svg{{display:block;margin:.5em 0 1.5em}}</style></head><body>\n\
         <h1>Reflex backtest</h1>\n<p>{} events from <code>{}</code>, {} to {}; {} skipped.</p>\n",
        report.events,
        escape(&report.source),
        time(report.from),
        time(report.to),
        report.skipped
    );
    out.push_str(
        "<table id=\"summary\"><tr><th>rule</th><th>matched</th><th>firings</th><th>planned</th>\
         <th>would execute</th><th>dry run</th><th>refused</th><th>targets</th><th>busiest</th></tr>\n",
    );
    for rule in &report.rules {
        let refused: Vec<String> = rule
            .refused
            .iter()
            .map(|(g, n)| format!("{g} {n}"))
            .collect();
        let busiest = rule
            .top_targets
            .first()
            .map_or(String::new(), |t| format!("{} ({})", t.target, t.actions));
        let idle = if rule.firings == 0 {
            " class=\"idle\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<tr{idle}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&rule.rule),
            rule.events_matched,
            rule.firings,
            rule.actions_planned,
            rule.would_execute,
            rule.dry_run,
            escape(&refused.join(", ")),
            rule.distinct_targets,
            escape(&busiest)
        );
    }
    out.push_str("</table>\n");
    let _ = writeln!(out, "<h2>Firings per {}</h2>", width(report.bucket_seconds));
    for rule in report.rules.iter().filter(|r| r.firings > 0) {
        let _ = writeln!(out, "<h3>{}</h3>", escape(&rule.rule));
        plot(&mut out, report, rule);
    }
    out.push_str("</body></html>\n");
    out
}

/// One bar per bucket, scaled to the rule's busiest bucket, with the first and last bucket's
/// times under the axis and a tooltip per bar.
fn plot(out: &mut String, report: &Report, rule: &RuleReport) {
    let max = rule.timeline.iter().copied().max().unwrap_or(0).max(1) as f64;
    let n = rule.timeline.len().max(1) as f64;
    let bar = PLOT_WIDTH / n;
    let _ = write!(
        out,
        "<svg class=\"timeline\" data-rule=\"{}\" xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{PLOT_WIDTH}\" height=\"{}\" role=\"img\" aria-label=\"firings of {} over time\">",
        escape(&rule.rule),
        PLOT_HEIGHT + 16.0,
        escape(&rule.rule)
    );
    let _ = write!(
        out,
        "<line x1=\"0\" y1=\"{PLOT_HEIGHT}\" x2=\"{PLOT_WIDTH}\" y2=\"{PLOT_HEIGHT}\" stroke=\"#999\"/>"
    );
    for (i, (&count, start)) in rule.timeline.iter().zip(&report.buckets).enumerate() {
        if count == 0 {
            continue;
        }
        let h = (count as f64 / max * (PLOT_HEIGHT - 4.0)).max(1.0);
        let _ = write!(
            out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#3b6fb6\">\
             <title>{}: {count}</title></rect>",
            i as f64 * bar,
            PLOT_HEIGHT - h,
            (bar - 1.0).max(1.0),
            start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
    }
    let label = |t: Option<&chrono::DateTime<chrono::Utc>>| {
        t.map_or(String::new(), |t| t.format("%Y-%m-%d %H:%M").to_string())
    };
    let _ = writeln!(
        out,
        "<text x=\"0\" y=\"{}\" font-size=\"11\">{}</text>\
         <text x=\"{PLOT_WIDTH}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text></svg>",
        PLOT_HEIGHT + 13.0,
        label(report.buckets.first()),
        PLOT_HEIGHT + 13.0,
        label(report.buckets.last())
    );
}

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_names_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
