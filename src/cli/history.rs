//! `reflex history`: lists recorded outcomes from the audit store, newest first, filtered by
//! rule, status, target and time range; `--remediation ID` tells one closed-loop remediation
//! as a story (its steps' actions, verdicts, quarantine and undo, oldest first), and
//! `--remediations` lists the remediations themselves.

use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::OutputFormat;
use super::audit::StoreArgs;
use crate::store::history::{HistoryFilter, MAX_HISTORY_LIMIT};
use crate::store::remediations::RemediationRow;
use crate::store::{OutcomeRecord, OutcomeStatus, Store};

/// Arguments of `reflex history`.
#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    /// Where the audit store is.
    #[command(flatten)]
    pub audit: StoreArgs,
    /// Only outcomes of this rule.
    #[arg(long)]
    pub rule: Option<String>,
    /// Only outcomes with this status.
    #[arg(long, value_enum)]
    pub status: Option<OutcomeStatus>,
    /// Only outcomes whose target contains this text, e.g. `shop/checkout` (with
    /// --remediations: exactly this target, e.g. `deployment/shop/checkout`).
    #[arg(long)]
    pub target: Option<String>,
    /// Only outcomes started at or after this time: RFC 3339 (`2026-01-02T03:04:05Z`) or a
    /// duration ago (`1h`, `30m`, `2d`).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// Only outcomes started before this time (same forms as --since).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<DateTime<Utc>>,
    /// Only the outcomes of this remediation (the `remediation` column, or the id
    /// --remediations lists), oldest first: the step's actions, its verdict, the next step...
    #[arg(long, value_name = "ID")]
    pub remediation: Option<String>,
    /// List remediations (one per firing of a rule with a closed loop: its phase, step and how
    /// it ended) instead of outcomes; narrowed by --rule and --target.
    #[arg(long, conflicts_with_all = ["status", "since", "until", "remediation"])]
    pub remediations: bool,
    /// At most this many outcomes (newest first).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_HISTORY_LIMIT)))]
    pub limit: u32,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
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
    if let (Some(since), Some(until)) = (args.since, args.until)
        && since >= until
    {
        return Err(super::Error::Usage(format!(
            "--since ({since}) must be before --until ({until})"
        ))
        .into());
    }
    let store = args.audit.open().await?;
    let output = query_store(&store, args).await;
    store.close().await;
    output
}

async fn query_store(store: &Store, args: &HistoryArgs) -> anyhow::Result<String> {
    if args.remediations {
        let rows = store
            .remediations(
                args.rule.as_deref(),
                args.target.as_deref(),
                i64::from(args.limit),
            )
            .await
            .context("listing remediations in the audit store")?;
        return Ok(render_remediations(&rows, args.format));
    }
    let filter = HistoryFilter {
        rule: args.rule.clone(),
        status: args.status,
        target_contains: args.target.clone(),
        since: args.since,
        until: args.until,
        remediation: args.remediation.clone(),
        limit: args.limit,
    };
    let mut records = store
        .history(&filter)
        .await
        .context("querying the audit store")?;
    let Some(id) = &args.remediation else {
        return Ok(render(&records, args.format));
    };
    // A story reads forwards.
    records.reverse();
    if args.format == OutputFormat::Json {
        return Ok(render(&records, args.format));
    }
    let row = store
        .remediation(id)
        .await
        .context("reading the remediation from the audit store")?;
    Ok(render_story(id, row.as_ref(), &records))
}

/// Renders outcomes as text lines or a JSON array.
pub fn render(records: &[OutcomeRecord], format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => json_lines(records.iter().map(record_json)),
        OutputFormat::Text => {
            if records.is_empty() {
                return "no outcomes match\n".to_owned();
            }
            let rows: Vec<Vec<String>> = records.iter().map(row).collect();
            super::table::render(&OUTCOME_COLUMNS, &rows)
        }
    }
}

/// The header of `reflex history`'s text table; [`row`] fills one line of it.
const OUTCOME_COLUMNS: [&str; 10] = [
    "STARTED",
    "STATUS",
    "RULE",
    "ACTION",
    "TARGET",
    "ATTEMPTS",
    "DURATION",
    "EVENT",
    "REMEDIATION/STEP",
    "ERROR",
];

/// The cells of one outcome under [`OUTCOME_COLUMNS`].
fn row(r: &OutcomeRecord) -> Vec<String> {
    vec![
        r.started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        r.status.as_str().to_owned(),
        r.rule.clone(),
        r.action_kind.clone(),
        r.target.clone().unwrap_or_default(),
        r.attempts.to_string(),
        duration(r),
        r.event_id.clone(),
        remediation_of(r).map_or_else(String::new, |(id, step)| format!("{id}/{step}")),
        r.error.clone().unwrap_or_default(),
    ]
}

/// How long an outcome's action took, `-` while it has not finished.
fn duration(r: &OutcomeRecord) -> String {
    r.finished_at
        .map(|end| format!("{}ms", (end - r.started_at).num_milliseconds()))
        .unwrap_or_else(|| "-".to_owned())
}

/// One remediation's outcomes, oldest first, under a line saying what it is.
fn render_story(id: &str, row: Option<&RemediationRow>, records: &[OutcomeRecord]) -> String {
    let mut text = match row {
        Some(row) => {
            let (step, ending) = doc_step_and_ending(&row.doc);
            format!(
                "remediation {id}: rule {} on {}, {} at step {}{}\n",
                row.rule,
                row.target.as_deref().unwrap_or("-"),
                row.phase,
                step.map_or_else(|| "?".to_owned(), |s| s.to_string()),
                ending.map(|e| format!(", ended {e}")).unwrap_or_default(),
            )
        }
        // Retention forgets finished remediations before their outcomes' age may pass.
        None => format!("remediation {id} (its row is no longer in the store)\n"),
    };
    if records.is_empty() {
        text.push_str("no outcomes match\n");
    }
    for r in records {
        let step = remediation_of(r).map_or_else(|| "-".to_owned(), |(_, s)| s.to_string());
        text.push_str(&format!("  step {step:<2} {}\n", line(r)));
    }
    text
}

/// The text line of one outcome, without its remediation.
fn line(r: &OutcomeRecord) -> String {
    let mut text = format!(
        "{}  {:<15}  {}  {}  {}  attempts={} {}  event={}",
        r.started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        r.status.as_str(),
        if r.rule.is_empty() { "-" } else { &r.rule },
        r.action_kind,
        r.target.as_deref().unwrap_or("-"),
        r.attempts,
        duration(r),
        r.event_id,
    );
    if let Some(error) = &r.error {
        text.push_str(&format!("  error: {error}"));
    }
    text
}

/// `details.remediation` of an outcome: (id, step).
fn remediation_of(r: &OutcomeRecord) -> Option<(&str, u64)> {
    let remediation = r.details.get("remediation")?;
    let id = remediation.get("id")?.as_str()?;
    Some((
        id,
        remediation.get("step").and_then(Value::as_u64).unwrap_or(0),
    ))
}

/// The current step and the ending of a remediation's document, read leniently: the listing
/// must show a row whose document an older or newer version wrote.
fn doc_step_and_ending(doc: &Value) -> (Option<u64>, Option<&str>) {
    (
        doc.get("step").and_then(Value::as_u64),
        doc.get("ending").and_then(Value::as_str),
    )
}

/// Renders remediations as text lines or a JSON array.
pub fn render_remediations(rows: &[RemediationRow], format: OutputFormat) -> String {
    let created = |row: &RemediationRow| DateTime::<Utc>::from_timestamp_millis(row.created_ms);
    match format {
        OutputFormat::Json => json_lines(rows.iter().map(|row| {
            let (step, ending) = doc_step_and_ending(&row.doc);
            json!({
                "id": row.id,
                "rule": row.rule,
                "target": row.target,
                "phase": row.phase.as_str(),
                "step": step,
                "ending": ending,
                "occurrence": row.occurrence,
                "created_at": created(row),
                "updated_at": DateTime::<Utc>::from_timestamp_millis(row.updated_ms),
            })
        })),
        OutputFormat::Text => {
            if rows.is_empty() {
                return "no remediations match\n".to_owned();
            }
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|row| {
                    let (step, ending) = doc_step_and_ending(&row.doc);
                    vec![
                        created(row).map_or_else(
                            || row.created_ms.to_string(),
                            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        ),
                        row.phase.as_str().to_owned(),
                        step.map_or_else(|| "?".to_owned(), |s| s.to_string()),
                        ending.unwrap_or_default().to_owned(),
                        row.rule.clone(),
                        row.target.clone().unwrap_or_default(),
                        row.id.clone(),
                    ]
                })
                .collect();
            super::table::render(
                &["CREATED", "PHASE", "STEP", "ENDING", "RULE", "TARGET", "ID"],
                &cells,
            )
        }
    }
}

/// A pretty JSON array of `rows`, with a final newline.
fn json_lines(rows: impl Iterator<Item = Value>) -> String {
    let rows: Vec<Value> = rows.collect();
    let mut text = serde_json::to_string_pretty(&rows).unwrap_or_default();
    text.push('\n');
    text
}

fn record_json(r: &OutcomeRecord) -> Value {
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

    fn outcome(minute: u32, status: OutcomeStatus, kind: &str, step: Option<u64>) -> OutcomeRecord {
        OutcomeRecord {
            id: i64::from(minute),
            event_id: "e1".into(),
            rule: "restart-crashlooping".into(),
            action_kind: kind.into(),
            idempotency_key: format!("k{minute}"),
            status,
            attempts: 1,
            started_at: at(12, minute),
            finished_at: Some(at(12, minute)),
            target: Some("deployment/shop/checkout".into()),
            error: None,
            details: match step {
                Some(step) => json!({"remediation": {"id": "rem-1", "step": step}}),
                None => json!({}),
            },
            published_at: None,
        }
    }

    #[test]
    fn an_outcome_of_a_remediation_shows_its_id_and_step() {
        let text = render(
            &[
                outcome(1, OutcomeStatus::Ineffective, "verify", Some(0)),
                outcome(0, OutcomeStatus::Succeeded, "log", None),
            ],
            OutputFormat::Text,
        );
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(lines[0], OUTCOME_COLUMNS, "a header row first: {text}");
        let remediation = |line: &[&str]| line[OUTCOME_COLUMNS.len() - 2].to_owned();
        assert_eq!(remediation(&lines[1]), "rem-1/0", "{text}");
        assert_eq!(remediation(&lines[2]), "-", "{text}");
        assert_eq!(lines[2][1], "succeeded", "{text}");
        assert_eq!(lines[2][OUTCOME_COLUMNS.len() - 1], "-", "no error: {text}");
    }

    #[test]
    fn a_remediation_reads_as_one_story_step_by_step() {
        let records = [
            outcome(0, OutcomeStatus::Succeeded, "restart", Some(0)),
            outcome(10, OutcomeStatus::Ineffective, "verify", Some(0)),
            outcome(10, OutcomeStatus::Succeeded, "rollback", Some(1)),
            outcome(20, OutcomeStatus::Ineffective, "verify", Some(1)),
            outcome(20, OutcomeStatus::Succeeded, "webhook", Some(2)),
        ];
        let row = RemediationRow {
            id: "rem-1".into(),
            rule: "restart-crashlooping".into(),
            target: Some("deployment/shop/checkout".into()),
            occurrence: None,
            group_key: None,
            phase: crate::store::remediations::Phase::Done,
            doc: json!({"step": 2, "ending": "completed"}),
            due_ms: None,
            refired_ms: None,
            resolved_ms: None,
            created_ms: 0,
            updated_ms: 0,
            lease_owner: None,
            lease_until_ms: None,
        };
        let text = render_story("rem-1", Some(&row), &records);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "remediation rem-1: rule restart-crashlooping on deployment/shop/checkout, done at \
             step 2, ended completed"
        );
        let steps: Vec<(&str, &str)> = lines[1..]
            .iter()
            .map(|l| {
                let step = l.split_whitespace().nth(1).unwrap_or("?");
                let kind = l.split("restart-crashlooping  ").nth(1).unwrap_or("?");
                (step, kind.split_whitespace().next().unwrap_or("?"))
            })
            .collect();
        assert_eq!(
            steps,
            [
                ("0", "restart"),
                ("0", "verify"),
                ("1", "rollback"),
                ("1", "verify"),
                ("2", "webhook")
            ]
        );
        let forgotten = render_story("rem-2", None, &[]);
        assert!(forgotten.contains("no longer in the store"), "{forgotten}");
        assert!(forgotten.contains("no outcomes match"), "{forgotten}");
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
