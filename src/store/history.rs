//! Reading the audit trail back: the query behind `reflex history`.

use chrono::{DateTime, Utc};
use sqlx::{Database, QueryBuilder};

use super::dispatch::dispatch;
use super::outcomes::{OUTCOME_COLUMNS, OutcomeRow};
use super::{Backend, OutcomeRecord, OutcomeStatus, Result, Store};

/// Largest number of rows one history query returns. The CLI prints every row it gets, and a
/// busy controller records millions; a page of 10,000 is already more than anyone reads, and
/// narrower filters (time range, rule) find the rest.
pub const MAX_HISTORY_LIMIT: u32 = 10_000;

/// Which outcomes to list. Every criterion is optional; together they narrow (AND).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistoryFilter {
    /// Exactly this rule.
    pub rule: Option<String>,
    /// Exactly this status.
    pub status: Option<OutcomeStatus>,
    /// Targets containing this text (plain substring, case-sensitive; no wildcards).
    pub target_contains: Option<String>,
    /// Started at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Started before this time.
    pub until: Option<DateTime<Utc>>,
    /// Outcomes of this remediation only: `details.remediation.id`, which every outcome of a
    /// closed-loop firing carries (its steps' actions, verdicts, quarantine, undo).
    pub remediation: Option<String>,
    /// At most this many rows (capped at [`MAX_HISTORY_LIMIT`]).
    pub limit: u32,
}

fn build<DB>(filter: &HistoryFilter, backend: Backend) -> QueryBuilder<DB>
where
    DB: Database,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> DateTime<Utc>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut query = QueryBuilder::new(format!("SELECT {OUTCOME_COLUMNS} FROM outcomes WHERE 1=1"));
    if let Some(rule) = &filter.rule {
        query.push(" AND rule = ").push_bind(rule.clone());
    }
    if let Some(status) = filter.status {
        query
            .push(" AND status = ")
            .push_bind(status.as_str().to_owned());
    }
    if let Some(target) = &filter.target_contains {
        // A substring test that takes the text literally, where `LIKE` would read `%` and `_`
        // in the user's text as wildcards: `instr` on SQLite, `strpos` on PostgreSQL (neither
        // has the other's).
        let contains = match backend {
            Backend::Sqlite => "instr",
            Backend::Postgres => "strpos",
        };
        query
            .push(format!(" AND {contains}(target, "))
            .push_bind(target.clone())
            .push(") > 0");
    }
    if let Some(id) = &filter.remediation {
        let field = match backend {
            Backend::Sqlite => "json_extract(details, '$.remediation.id')",
            Backend::Postgres => "details -> 'remediation' ->> 'id'",
        };
        query.push(format!(" AND {field} = ")).push_bind(id.clone());
    }
    // The bound time goes inside the backend's time expression: `julianday(?)` on SQLite.
    let (open, close) = match backend {
        Backend::Sqlite => ("julianday(", ")"),
        Backend::Postgres => ("", ""),
    };
    let started_at = backend.time("started_at");
    if let Some(since) = filter.since {
        query
            .push(format!(" AND {started_at} >= {open}"))
            .push_bind(since)
            .push(close);
    }
    if let Some(until) = filter.until {
        query
            .push(format!(" AND {started_at} < {open}"))
            .push_bind(until)
            .push(close);
    }
    query
        .push(" ORDER BY started_at DESC, id DESC LIMIT ")
        .push_bind(i64::from(filter.limit.min(MAX_HISTORY_LIMIT)));
    query
}

impl Store {
    /// Outcomes matching `filter`, newest first.
    pub async fn history(&self, filter: &HistoryFilter) -> Result<Vec<OutcomeRecord>> {
        let backend = self.backend();
        let rows: Vec<OutcomeRow> = dispatch!(self, "history", |db| {
            build(filter, backend).build_query_as().fetch_all(db).await
        })?;
        rows.into_iter()
            .map(|row| row.into_record(self.url()))
            .collect()
    }
}
