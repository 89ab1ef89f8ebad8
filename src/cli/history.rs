//! `reflex history`: lists recorded outcomes from the audit store, newest first, filtered by
//! rule, status, target and time range.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::OutputFormat;
use crate::config::Config;
use crate::store::history::{HistoryFilter, MAX_HISTORY_LIMIT};
use crate::store::{Backend, OutcomeRecord, OutcomeStatus, Store};

/// Arguments of `reflex history`.
#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    /// Configuration file (YAML) naming the store (`store.url`).
    #[arg(long, short = 'c', env = "REFLEX_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Store URL (`sqlite://<file>` or `postgres://...`); overrides the configuration and
    /// DATABASE_URL.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Only outcomes of this rule.
    #[arg(long)]
    pub rule: Option<String>,
    /// Only outcomes with this status.
    #[arg(long, value_enum)]
    pub status: Option<OutcomeStatus>,
    /// Only outcomes whose target contains this text, e.g. `shop/checkout`.
    #[arg(long)]
    pub target: Option<String>,
    /// Only outcomes started at or after this time: RFC 3339 (`2026-01-02T03:04:05Z`) or a
    /// duration ago (`1h`, `30m`, `2d`).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// Only outcomes started before this time (same forms as --since).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<DateTime<Utc>>,
    /// At most this many outcomes (newest first).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_HISTORY_LIMIT)))]
    pub limit: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

// The statuses and their names come from the store's one table, so `--help` lists every
// status (the hand-written list it replaces had fallen behind).
impl clap::ValueEnum for OutcomeStatus {
    fn value_variants<'a>() -> &'a [Self] {
        &OutcomeStatus::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

/// RFC 3339, or a rule-style duration meaning that long before now.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    parse_time_at(text, Utc::now())
}

fn parse_time_at(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    let ago = crate::rules::duration::parse(text).map_err(|err| {
        format!("`{text}` is neither an RFC 3339 time (2026-01-02T03:04:05Z) nor a duration: {err}")
    })?;
    now.checked_sub_signed(ago)
        .ok_or_else(|| format!("`{text}` is too long ago"))
}

/// Runs `reflex history`.
pub fn run(args: &HistoryArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    let output = runtime.block_on(query(args))?;
    print!("{output}");
    Ok(ExitCode::SUCCESS)
}

/// Resolves the store, runs the query and renders the result (what `run` prints).
pub async fn query(args: &HistoryArgs) -> anyhow::Result<String> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(url) = &args.store {
        config.store.url.clone_from(url);
    }
    let url = config.store.url;
    if Backend::from_url(&url) == Some(Backend::Sqlite) {
        // Connecting creates a missing SQLite file; a history query must not invent an empty
        // store where the user mistyped a path.
        let path = url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:");
        let path = path.split('?').next().unwrap_or_default();
        if path != ":memory:" && !std::path::Path::new(path).exists() {
            bail!(
                "no audit store at `{path}` (from {}); pass --store or set DATABASE_URL",
                crate::store::redact_url(&url)
            );
        }
    }
    if let (Some(since), Some(until)) = (args.since, args.until)
        && since >= until
    {
        bail!("--since ({since}) must be before --until ({until})");
    }
    let store = Store::connect(&url)
        .await
        .context("opening the audit store")?;
    let filter = HistoryFilter {
        rule: args.rule.clone(),
        status: args.status,
        target_contains: args.target.clone(),
        since: args.since,
        until: args.until,
        limit: args.limit,
    };
    let records = store.history(&filter).await;
    store.close().await;
    let records = records.context("querying the audit store")?;
    Ok(render(&records, args.format))
}

/// Renders outcomes as text lines or a JSON array.
pub fn render(records: &[OutcomeRecord], format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => {
            let rows: Vec<_> = records.iter().map(record_json).collect();
            let mut text = serde_json::to_string_pretty(&rows).unwrap_or_default();
            text.push('\n');
            text
        }
        OutputFormat::Text => {
            if records.is_empty() {
                return "no outcomes match\n".to_owned();
            }
            let mut text = String::new();
            for r in records {
                let duration = r
                    .finished_at
                    .map(|end| format!("{}ms", (end - r.started_at).num_milliseconds()))
                    .unwrap_or_else(|| "-".to_owned());
                text.push_str(&format!(
                    "{}  {:<15}  {}  {}  {}  attempts={} {}  event={}",
                    r.started_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    r.status.as_str(),
                    if r.rule.is_empty() { "-" } else { &r.rule },
                    r.action_kind,
                    r.target.as_deref().unwrap_or("-"),
                    r.attempts,
                    duration,
                    r.event_id,
                ));
                if let Some(error) = &r.error {
                    text.push_str(&format!("  error: {error}"));
                }
                text.push('\n');
            }
            text
        }
    }
}

fn record_json(r: &OutcomeRecord) -> serde_json::Value {
    json!({
        "id": r.id,
        "event_id": r.event_id,
        "rule": r.rule,
        "action_kind": r.action_kind,
        "idempotency_key": r.idempotency_key,
        "status": r.status.as_str(),
        "attempts": r.attempts,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "target": r.target,
        "error": r.error,
        "details": r.details,
        "published_at": r.published_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 6, h, m, 0)
            .single()
            .expect("valid time")
    }

    #[test]
    fn a_time_is_rfc3339_or_a_duration_ago() {
        let now = at(12, 0);
        assert_eq!(parse_time_at("1h", now), Ok(at(11, 0)));
        assert_eq!(parse_time_at("1h30m", now), Ok(at(10, 30)));
        assert_eq!(
            parse_time_at("2026-05-06T09:15:00+02:00", now),
            Ok(at(7, 15))
        );
        let err = parse_time_at("yesterday", now).expect_err("not a time");
        assert!(err.contains("RFC 3339"), "{err}");
    }

    #[test]
    fn an_unknown_status_lists_every_valid_one() {
        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: HistoryArgs,
        }
        let err = <Cli as clap::Parser>::try_parse_from(["history", "--status", "ok"])
            .expect_err("unknown status")
            .to_string();
        for status in OutcomeStatus::ALL {
            assert!(err.contains(status.as_str()), "{status}: {err}");
        }
        let parsed = <Cli as clap::Parser>::try_parse_from(["history", "--status", "throttled"])
            .expect("a known status");
        assert_eq!(parsed.args.status, Some(OutcomeStatus::Throttled));
    }
}
