//! Reading the audit trail back: the query behind `reflex history`.

use chrono::{DateTime, Utc};
use sqlx::{Database, QueryBuilder};

use super::store::{Error, OUTCOME_COLUMNS, OutcomeRecord, OutcomeStatus, Result, Store};

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
    /// At most this many rows (capped at [`MAX_HISTORY_LIMIT`]).
    pub limit: u32,
}

/// How one dialect spells the parts of the query that differ.
struct Dialect {
    /// Column expression for time comparisons: SQLite keeps RFC 3339 text, which `julianday`
    /// compares as instants whatever the fractional digits; PostgreSQL has real timestamps.
    time_column: &'static str,
    /// Bound-time expression wrapper, opening part (closed with `)` when non-empty).
    time_open: &'static str,
    /// Substring test: `instr` (SQLite) / `strpos` (PostgreSQL) take the text literally, where
    /// `LIKE` would read `%` and `_` in the user's text as wildcards.
    contains: &'static str,
}

const SQLITE: Dialect = Dialect {
    time_column: "julianday(started_at)",
    time_open: "julianday(",
    contains: "instr",
};

const POSTGRES: Dialect = Dialect {
    time_column: "started_at",
    time_open: "",
    contains: "strpos",
};

fn build<DB>(filter: &HistoryFilter, dialect: &Dialect) -> QueryBuilder<DB>
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
        query
            .push(format!(" AND {}(target, ", dialect.contains))
            .push_bind(target.clone())
            .push(") > 0");
    }
    let close = if dialect.time_open.is_empty() {
        ""
    } else {
        ")"
    };
    if let Some(since) = filter.since {
        query
            .push(format!(
                " AND {} >= {}",
                dialect.time_column, dialect.time_open
            ))
            .push_bind(since)
            .push(close);
    }
    if let Some(until) = filter.until {
        query
            .push(format!(
                " AND {} < {}",
                dialect.time_column, dialect.time_open
            ))
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
        let query_err = |source| Error::Query {
            operation: "history",
            url: self.url().to_owned(),
            source,
        };
        match self {
            Store::Sqlite { pool, .. } => {
                let mut query = build::<sqlx::Sqlite>(filter, &SQLITE);
                let rows = query.build().fetch_all(pool).await.map_err(query_err)?;
                rows.iter().map(|row| self.outcome_from_row(row)).collect()
            }
            Store::Postgres { pool, .. } => {
                let mut query = build::<sqlx::Postgres>(filter, &POSTGRES);
                let rows = query.build().fetch_all(pool).await.map_err(query_err)?;
                rows.iter().map(|row| self.outcome_from_row(row)).collect()
            }
        }
    }
}
