//! The circuit breaker: at most N executions of a rule, and M of a rule on one object, per
//! window; past that the circuit opens for a cool-down and one announcement is published.
//!
//! The count comes from the audit store and includes the caller's own `started` claim, which
//! is inserted before the check. Of any set of racing executions, the one whose count runs
//! last sees every other's committed claim, so at most N pass even across replicas (a racer
//! may be refused conservatively, never admitted in excess). Refused claims end
//! `suppressed_by_guard` and stop counting.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::config::CircuitConfig;
use crate::metrics::{self, RuleLabels};
use crate::outcome::topic::{self, Publisher};
use crate::rules::ruleset::RuleGuard;
use crate::store::circuit::{Announcement, CircuitRow};
use crate::store::{self, Store};

/// Why a circuit check could not be made (the caller retries the record).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error("circuit breaker of rule `{rule}`: the audit store failed")]
    Store {
        /// The rule.
        rule: String,
        /// The store's error.
        #[source]
        source: store::Error,
    },
    /// The announcement could not be published.
    #[error("circuit breaker of rule `{rule}`: the announcement could not be published")]
    Publish {
        /// The rule.
        rule: String,
        /// The producer's error.
        #[source]
        source: topic::Error,
    },
}

/// The limits that apply to one rule: its own `guard:` values, else the global ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Executions of the rule per window.
    pub per_rule: Option<u32>,
    /// Executions of the rule on one object per window.
    pub per_target: Option<u32>,
    /// The window.
    pub window: Duration,
    /// How long an open circuit stays open.
    pub cool_down: Duration,
}

impl Limits {
    /// Layers a rule's overrides over the global settings.
    pub fn for_rule(global: &CircuitConfig, rule: &RuleGuard) -> Self {
        Self {
            per_rule: rule.max_per_rule.or(global.max_per_rule),
            per_target: rule.max_per_target.or(global.max_per_target),
            window: rule.window.unwrap_or(global.window),
            cool_down: rule.cool_down.unwrap_or(global.cool_down),
        }
    }
}

/// An open circuit refusing an action.
#[derive(Debug, Clone, PartialEq)]
pub struct Open {
    /// Names the rule, the target, the counts, the window, the cool-down end and the settings.
    pub message: String,
    /// The same, structured, for the outcome's details.
    pub details: Value,
}

/// Where announcements go and who sends them.
#[derive(Debug, Clone, Copy)]
pub struct Announcer<'a> {
    /// The publisher.
    pub publisher: &'a Publisher,
    /// The topic.
    pub topic: &'a str,
    /// The announcing instance (the CloudEvent's `source`).
    pub instance: &'a str,
}

/// Checks the rule-wide circuit, then the circuit of `target`; `Some` when one is open (or
/// this execution opened it).
pub async fn check(
    store: &Store,
    announcer: Announcer<'_>,
    rule: &str,
    target: Option<&str>,
    limits: &Limits,
    now: DateTime<Utc>,
) -> Result<Option<Open>, Error> {
    let scopes = [
        limits.per_rule.map(|limit| ("", limit)),
        limits
            .per_target
            .zip(target)
            .map(|(limit, target)| (target, limit)),
    ];
    for (scope, limit) in scopes.into_iter().flatten() {
        if let Some(open) = check_scope(store, announcer, rule, scope, limit, limits, now).await? {
            return Ok(Some(open));
        }
    }
    Ok(None)
}

async fn check_scope(
    store: &Store,
    announcer: Announcer<'_>,
    rule: &str,
    scope: &str,
    limit: u32,
    limits: &Limits,
    now: DateTime<Utc>,
) -> Result<Option<Open>, Error> {
    let store_err = |source| Error::Store {
        rule: rule.to_owned(),
        source,
    };
    let gauge = || {
        metrics::global().circuit_open.get_or_create(&RuleLabels {
            rule: rule.to_owned(),
        })
    };
    let row = store.circuit(rule, scope).await.map_err(store_err)?;
    if let Some(row) = &row {
        if row.open_until > now {
            announce_open(store, announcer, row, limit, limits).await?;
            gauge().set(1);
            return Ok(Some(refusal(row, limit, limits)));
        }
        // Lazily: the gauge and the announcement follow the rule's next action after the
        // cool-down (on every replica for the gauge, on one for the announcement).
        gauge().set(0);
        if !row.announced_closed
            && store
                .mark_announced(rule, scope, row.opened_at, Announcement::Closed)
                .await
                .map_err(store_err)?
        {
            tracing::info!(rule, target = scope, "circuit breaker closed");
            // Best effort: the closing is visible in the store and the metric either way.
            let event = announcement(Announcement::Closed, row, limit, limits, announcer.instance);
            if let Err(err) = publish(announcer, row, &event).await {
                tracing::warn!(rule, error = %err, "circuit-closed announcement not published");
            }
        }
    }
    let window_start = now - chrono::Duration::from_std(limits.window).unwrap_or_default();
    let since = row
        .as_ref()
        .map_or(window_start, |row| row.open_until.max(window_start));
    let target = (!scope.is_empty()).then_some(scope);
    let executions = store
        .count_executions(rule, target, since)
        .await
        .map_err(store_err)?;
    if executions <= i64::from(limit) {
        return Ok(None);
    }
    let until = now + chrono::Duration::from_std(limits.cool_down).unwrap_or_default();
    if store
        .open_circuit(rule, scope, now, until, executions)
        .await
        .map_err(store_err)?
    {
        metrics::global()
            .circuit_trips
            .get_or_create(&RuleLabels {
                rule: rule.to_owned(),
            })
            .inc();
        tracing::warn!(
            rule,
            target = scope,
            executions,
            limit,
            until = %until.to_rfc3339(),
            "circuit breaker opened: the rule's actions are suppressed until the cool-down ends"
        );
    }
    gauge().set(1);
    // Re-read: a racing replica may have opened it first, with its own times.
    let row = store
        .circuit(rule, scope)
        .await
        .map_err(store_err)?
        .unwrap_or(CircuitRow {
            rule: rule.to_owned(),
            target: scope.to_owned(),
            opened_at: now,
            open_until: until,
            executions,
            trips: 1,
            announced_open: true,
            announced_closed: false,
        });
    announce_open(store, announcer, &row, limit, limits).await?;
    Ok(Some(refusal(&row, limit, limits)))
}

/// Publishes the `opened` announcement unless it went out already, then marks it.
async fn announce_open(
    store: &Store,
    announcer: Announcer<'_>,
    row: &CircuitRow,
    limit: u32,
    limits: &Limits,
) -> Result<(), Error> {
    if row.announced_open {
        return Ok(());
    }
    let event = announcement(Announcement::Opened, row, limit, limits, announcer.instance);
    publish(announcer, row, &event)
        .await
        .map_err(|source| Error::Publish {
            rule: row.rule.clone(),
            source,
        })?;
    store
        .mark_announced(&row.rule, &row.target, row.opened_at, Announcement::Opened)
        .await
        .map(drop)
        .map_err(|source| Error::Store {
            rule: row.rule.clone(),
            source,
        })
}

async fn publish(announcer: Announcer<'_>, row: &CircuitRow, event: &Value) -> topic::Result<()> {
    let key = if row.target.is_empty() {
        row.rule.clone()
    } else {
        format!("{}/{}", row.rule, row.target)
    };
    announcer
        .publisher
        .publish_event(announcer.topic, &key, event)
        .await
}

/// The CloudEvent announcing that a circuit opened or closed. Its id derives from the rule,
/// the target and the opening time, so a repeated announcement can be recognised.
pub fn announcement(
    which: Announcement,
    row: &CircuitRow,
    limit: u32,
    limits: &Limits,
    instance: &str,
) -> Value {
    let kind = match which {
        Announcement::Opened => "opened",
        Announcement::Closed => "closed",
    };
    let mut hasher = Sha256::new();
    for part in [kind, &row.rule, &row.target, &row.opened_at.to_rfc3339()] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let id = hex::encode(&hasher.finalize()[..16]);
    let scope = if row.target.is_empty() {
        "rule"
    } else {
        "target"
    };
    json!({
        "specversion": "1.0",
        "id": id,
        "source": format!("reflex/{instance}"),
        "type": format!("dev.reflex.circuit.{kind}"),
        "subject": row.rule,
        "time": Utc::now().to_rfc3339(),
        "datacontenttype": "application/json",
        "data": {
            "rule": row.rule,
            "scope": scope,
            "target": (!row.target.is_empty()).then_some(&row.target),
            "executions": row.executions,
            "limit": limit,
            "window": crate::rules::duration::format(
                chrono::Duration::from_std(limits.window).unwrap_or_default()
            ),
            "opened_at": row.opened_at.to_rfc3339(),
            "cool_down_until": row.open_until.to_rfc3339(),
            "trips": row.trips,
        },
    })
}

fn refusal(row: &CircuitRow, limit: u32, limits: &Limits) -> Open {
    let window = crate::rules::duration::format(
        chrono::Duration::from_std(limits.window).unwrap_or_default(),
    );
    let (what, setting) = if row.target.is_empty() {
        (
            format!("rule `{}`", row.rule),
            "max_per_rule (the rule's guard.max_per_rule or actions.circuit.max_per_rule)",
        )
    } else {
        (
            format!("rule `{}` on `{}`", row.rule, row.target),
            "max_per_target (the rule's guard.max_per_target or actions.circuit.max_per_target)",
        )
    };
    let message = format!(
        "circuit breaker open for {what}: {} executions within {window} exceeded the limit of \
         {limit}; actions are suppressed until {} (cool-down). If this is not a remediation \
         loop, raise {setting}",
        row.executions,
        row.open_until.to_rfc3339()
    );
    let details = json!({
        "guard": "circuit_breaker",
        "scope": if row.target.is_empty() { "rule" } else { "target" },
        "executions": row.executions,
        "limit": limit,
        "window": window,
        "opened_at": row.opened_at.to_rfc3339(),
        "cool_down_until": row.open_until.to_rfc3339(),
    });
    Open { message, details }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(target: &str) -> CircuitRow {
        let opened = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        CircuitRow {
            rule: "restart-crashloop".into(),
            target: target.into(),
            opened_at: opened,
            open_until: opened + chrono::Duration::minutes(10),
            executions: 4,
            trips: 1,
            announced_open: false,
            announced_closed: false,
        }
    }

    fn limits() -> Limits {
        Limits::for_rule(&CircuitConfig::default(), &RuleGuard::default())
    }

    #[test]
    fn a_rule_override_replaces_only_what_it_sets() {
        let rule = RuleGuard {
            max_per_rule: Some(2),
            cool_down: Some(Duration::from_secs(5)),
            ..RuleGuard::default()
        };
        let limits = Limits::for_rule(&CircuitConfig::default(), &rule);
        assert_eq!(limits.per_rule, Some(2));
        assert_eq!(limits.per_target, CircuitConfig::default().max_per_target);
        assert_eq!(limits.cool_down, Duration::from_secs(5));
        assert_eq!(limits.window, CircuitConfig::default().window);
    }

    #[test]
    fn the_announcement_is_a_cloudevent_naming_rule_target_counts_and_cool_down() {
        let event = announcement(
            Announcement::Opened,
            &row("deployment/shop/web"),
            3,
            &limits(),
            "pod-1",
        );
        assert_eq!(event["type"], "dev.reflex.circuit.opened");
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["data"]["rule"], "restart-crashloop");
        assert_eq!(event["data"]["target"], "deployment/shop/web");
        assert_eq!(event["data"]["executions"], 4);
        assert_eq!(event["data"]["limit"], 3);
        assert_eq!(event["data"]["window"], "10m");
        assert_eq!(
            event["data"]["cool_down_until"],
            "2026-01-01T00:10:00+00:00"
        );
        let again = announcement(
            Announcement::Opened,
            &row("deployment/shop/web"),
            3,
            &limits(),
            "pod-2",
        );
        assert_eq!(event["id"], again["id"], "same circuit opening, same id");
        let closed = announcement(
            Announcement::Closed,
            &row("deployment/shop/web"),
            3,
            &limits(),
            "pod-1",
        );
        assert_ne!(event["id"], closed["id"]);
    }

    #[test]
    fn the_refusal_names_the_setting_to_raise() {
        let open = refusal(&row(""), 3, &limits());
        assert!(
            open.message.contains("rule `restart-crashloop`"),
            "{}",
            open.message
        );
        assert!(
            open.message.contains("guard.max_per_rule"),
            "{}",
            open.message
        );
        assert!(
            open.message.contains("2026-01-01T00:10:00+00:00"),
            "{}",
            open.message
        );
        let open = refusal(&row("deployment/shop/web"), 3, &limits());
        assert!(
            open.message.contains("on `deployment/shop/web`"),
            "{}",
            open.message
        );
        assert!(open.message.contains("max_per_target"), "{}", open.message);
    }
}
