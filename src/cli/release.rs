//! `reflex release TARGET [--rule RULE]`: lifts the loop guard's quarantines of a target, so its
//! rules act on it again at their next firing; `reflex quarantines [--all]`: lists them. Both
//! work on the audit store every replica shares (what `POST /v1/quarantines/release` and
//! `GET /v1/quarantines` do over HTTP).

use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::OutputFormat;
use super::audit::StoreArgs;
use crate::server::quarantines::{QuarantineView, target_name};
use crate::store::remediations::QuarantineRow;

/// Arguments of `reflex release`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReleaseArgs {
    /// The quarantined object as outcomes name it: `deployment/shop/checkout`,
    /// `node/worker-3` (`reflex quarantines` lists them; the kind may be capitalised).
    pub target: String,
    /// Only this rule's quarantine of the target (default: every rule's).
    #[arg(long)]
    pub rule: Option<String>,
    /// Where the audit store is.
    #[command(flatten)]
    pub audit: StoreArgs,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// Arguments of `reflex quarantines`.
#[derive(Debug, Clone, clap::Args)]
pub struct QuarantinesArgs {
    /// Every quarantine ever opened, released and expired ones too (default: the active ones).
    #[arg(long)]
    pub all: bool,
    /// Where the audit store is.
    #[command(flatten)]
    pub audit: StoreArgs,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// What a command prints, and whether it found what it was asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// For stdout.
    pub text: String,
    /// For stderr: why nothing was done (release only).
    pub problem: Option<String>,
}

impl Report {
    fn print(self) -> ExitCode {
        print!("{}", self.text);
        match self.problem {
            Some(problem) => {
                eprintln!("{problem}");
                ExitCode::FAILURE
            }
            None => ExitCode::SUCCESS,
        }
    }
}

/// `released_by` of a release from the command line: `cli:<login>` (or `cli`), so the audit
/// trail says who lifted a quarantine.
pub fn released_by() -> String {
    match std::env::var("USER").or_else(|_| std::env::var("LOGNAME")) {
        Ok(user) if !user.trim().is_empty() => format!("cli:{}", user.trim()),
        _ => "cli".to_owned(),
    }
}

/// Runs `reflex release`: exit 0 when something was released, 1 (saying so on stderr) when
/// nothing was quarantined there, so a script notices a mistyped target.
pub fn run_release(args: &ReleaseArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    Ok(runtime.block_on(release(args))?.print())
}

/// Runs `reflex quarantines`.
pub fn run_list(args: &QuarantinesArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    Ok(runtime.block_on(list(args))?.print())
}

/// Releases the active quarantines of the target (of `--rule` only, when given).
pub async fn release(args: &ReleaseArgs) -> anyhow::Result<Report> {
    let target = target_name(&args.target);
    if target.is_empty() {
        return Err(super::Error::Usage(
            "TARGET is empty; name the object as outcomes do, e.g. deployment/shop/checkout"
                .to_owned(),
        )
        .into());
    }
    let rule = args.rule.as_deref().filter(|r| !r.is_empty());
    let store = args.audit.open().await?;
    let now_ms = Utc::now().timestamp_millis();
    let released = store
        .release_quarantines(&target, rule, &released_by(), now_ms)
        .await;
    store.close().await;
    let released = released.context("releasing quarantines in the audit store")?;
    let problem = released.is_empty().then(|| {
        let what = match rule {
            Some(rule) => format!("rule `{rule}` has no active quarantine on `{target}`"),
            None => format!("nothing is quarantined on `{target}`"),
        };
        format!("{what}; `reflex quarantines` lists the active quarantines and their targets")
    });
    let text = match args.format {
        OutputFormat::Json => json(&released, now_ms),
        OutputFormat::Text => released
            .iter()
            .map(|row| {
                format!(
                    "released: rule {} on {} (quarantined since {}: {})\n",
                    row.rule,
                    row.target,
                    time(row.since_ms),
                    row.reason
                )
            })
            .collect(),
    };
    Ok(Report { text, problem })
}

/// Lists the active quarantines (every one with `--all`).
pub async fn list(args: &QuarantinesArgs) -> anyhow::Result<Report> {
    let store = args.audit.open().await?;
    let now_ms = Utc::now().timestamp_millis();
    let rows = store.quarantines((!args.all).then_some(now_ms)).await;
    store.close().await;
    let rows = rows.context("listing quarantines in the audit store")?;
    let text = match args.format {
        OutputFormat::Json => json(&rows, now_ms),
        OutputFormat::Text if rows.is_empty() => if args.all {
            "no quarantine was ever opened\n"
        } else {
            "no target is quarantined\n"
        }
        .to_owned(),
        OutputFormat::Text => rows.iter().map(|row| text_line(row, now_ms)).collect(),
    };
    Ok(Report {
        text,
        problem: None,
    })
}

/// One quarantine as a line: who, where, since and until when (or how it ended), why, and the
/// command that lifts it.
fn text_line(row: &QuarantineRow, now_ms: i64) -> String {
    let state = match (&row.released_ms, &row.released_by) {
        (Some(at), by) => format!("released {} by {}", time(*at), by.as_deref().unwrap_or("?")),
        (None, _) if row.active(now_ms) => format!("until {}", time(row.until_ms)),
        (None, _) => format!("expired {}", time(row.until_ms)),
    };
    let mut line = format!(
        "{}  {}  since {}  {state}  {}",
        row.rule,
        row.target,
        time(row.since_ms),
        row.reason
    );
    if row.active(now_ms) {
        line.push_str(&format!(
            "  (reflex release {} --rule {})",
            row.target, row.rule
        ));
    }
    line.push('\n');
    line
}

fn json(rows: &[QuarantineRow], now_ms: i64) -> String {
    let views: Vec<QuarantineView> = rows
        .iter()
        .map(|r| QuarantineView::new(r, now_ms))
        .collect();
    serde_json::to_string_pretty(&views).unwrap_or_default() + "\n"
}

/// A stored instant as RFC 3339 (seconds, UTC).
fn time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(until_ms: i64, released: Option<(i64, &str)>) -> QuarantineRow {
        QuarantineRow {
            rule: "restart".into(),
            target: "deployment/shop/checkout".into(),
            since_ms: 1_767_225_600_000,
            until_ms,
            reason: "3 remediations within 1h".into(),
            remediation_id: Some("abc".into()),
            released_ms: released.map(|(at, _)| at),
            released_by: released.map(|(_, by)| by.to_owned()),
            announced: true,
        }
    }

    #[test]
    fn a_quarantine_line_says_until_when_and_how_to_release_it_or_how_it_ended() {
        let now = 1_767_229_200_000; // 2026-01-01T01:00:00Z
        let active = text_line(&row(now + 1000, None), now);
        assert_eq!(
            active,
            "restart  deployment/shop/checkout  since 2026-01-01T00:00:00Z  until \
             2026-01-01T01:00:01Z  3 remediations within 1h  (reflex release \
             deployment/shop/checkout --rule restart)\n"
        );
        let released = text_line(&row(now + 1000, Some((now - 1000, "cli:ops"))), now);
        assert!(
            released.contains("released 2026-01-01T00:59:59Z by cli:ops"),
            "{released}"
        );
        assert!(!released.contains("reflex release"), "{released}");
        let expired = text_line(&row(now, None), now);
        assert!(
            expired.contains("expired 2026-01-01T01:00:00Z"),
            "{expired}"
        );
    }

    #[test]
    fn the_release_is_recorded_as_the_cli_user() {
        let by = released_by();
        assert!(by == "cli" || by.starts_with("cli:"), "{by}");
    }
}
