//! The loop guard: a rule that keeps remediating one target (each time it "worked" and the
//! trigger came back) stops acting on it. The target is quarantined until an operator releases
//! it (`reflex release`, `POST /v1/quarantines/release`) or the quarantine expires.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::super::execute::{NO_KIND, Source, derived_key};
use super::super::{Error, Pipeline};
use super::ms;
use crate::rules::PlannedAction;
use crate::rules::Rule;
use crate::rules::engine::idempotency_key;
use crate::rules::remediation::StepRef;
use crate::rules::state::Firing;
use crate::rules::template::RenderContext;
use crate::store::{OutcomeRecord, OutcomeStatus};

impl Pipeline {
    /// Checks the loop guard of `rule` for a new remediation `id` of `target`: `Some(outcomes
    /// recorded)` when the target is (or now becomes) quarantined and nothing may run, `None`
    /// when the remediation may go ahead.
    pub(super) async fn loop_guard(
        &self,
        rule: &Rule,
        firing: &Firing,
        id: &str,
        target: &str,
        source: Option<&Source>,
        now: DateTime<Utc>,
    ) -> Result<Option<usize>, Error> {
        let Some(guard) = rule
            .remediation
            .as_ref()
            .and_then(|p| p.loop_guard.as_ref())
        else {
            return Ok(None);
        };
        let context = || {
            format!(
                "checking the loop guard of rule `{}` on {target}",
                rule.name
            )
        };
        let quarantine = self
            .store
            .quarantine(&rule.name, target)
            .await
            .map_err(Error::store(context()))?;
        let now_ms = ms(now);
        if let Some(q) = quarantine.as_ref().filter(|q| q.active(now_ms)) {
            let message = format!(
                "{target} is quarantined for rule `{}` since {} ({}); nothing was executed. \
                 Release it with `reflex release {target} --rule {}` once the cause is fixed",
                rule.name,
                rfc3339(q.since_ms),
                q.reason,
                rule.name
            );
            let mut recorded = self
                .record_quarantined(rule, firing, id, target, message, q.until_ms, source)
                .await?;
            if !q.announced {
                // The process that opened it stopped before announcing it.
                recorded += self
                    .announce(
                        rule,
                        firing,
                        q.remediation_id.as_deref().unwrap_or(id),
                        target,
                        source,
                    )
                    .await?;
            }
            return Ok(Some(recorded));
        }
        // Remediations counted since the window began, or since the last release: a released
        // target starts afresh instead of re-entering quarantine on the loop that put it there.
        let window_start = now_ms - guard.within.num_milliseconds();
        let since = quarantine
            .as_ref()
            .and_then(|q| q.released_ms)
            .map_or(window_start, |released| released.max(window_start));
        let recent = self
            .store
            .count_remediations(&rule.name, target, since)
            .await
            .map_err(Error::store(context()))?;
        if recent < i64::from(guard.max) {
            return Ok(None);
        }
        let until = now_ms + guard.quarantine.num_milliseconds();
        let reason = format!(
            "rule `{}` remediated {target} {recent} times within {} (loop_guard.max {})",
            rule.name,
            crate::rules::duration::format(guard.within),
            guard.max
        );
        let opened = self
            .store
            .open_quarantine(&rule.name, target, now_ms, until, &reason, Some(id))
            .await
            .map_err(Error::store(context()))?;
        crate::metrics::global()
            .remediation_results
            .get_or_create(&crate::metrics::RemediationLabels {
                rule: rule.name.clone(),
                result: "quarantined".to_owned(),
            })
            .inc();
        tracing::warn!(
            rule = %rule.name,
            target,
            recent,
            until = %rfc3339(until),
            "loop guard: target quarantined, the rule no longer acts on it"
        );
        let message = format!(
            "{reason}: the trigger keeps coming back, so {target} is quarantined until {} \
             and nothing was executed; release it with `reflex release {target} --rule {}`",
            rfc3339(until),
            rule.name
        );
        let mut recorded = self
            .record_quarantined(rule, firing, id, target, message, until, source)
            .await?;
        if opened {
            recorded += self.announce(rule, firing, id, target, source).await?;
        }
        Ok(Some(recorded))
    }

    /// Calls the loop guard's `notify` webhook (once: its key derives from the remediation that
    /// tripped the guard) and marks the quarantine announced. The `quarantined` outcome on the
    /// outcomes topic is the announcement for every other consumer.
    async fn announce(
        &self,
        rule: &Rule,
        firing: &Firing,
        id: &str,
        target: &str,
        source: Option<&Source>,
    ) -> Result<usize, Error> {
        let mut recorded = 0;
        if let Some(notify) = rule
            .remediation
            .as_ref()
            .and_then(|p| p.loop_guard.as_ref())
            .and_then(|g| g.notify.as_ref())
        {
            let ctx = RenderContext::new(&firing.event, &rule.name, Some(&firing.info));
            match notify.render(&ctx) {
                Ok(action) => {
                    let planned = PlannedAction {
                        rule: rule.name.clone(),
                        action_index: 0,
                        action,
                        idempotency_key: idempotency_key(id, "\0quarantine-notify", 0),
                        event_id: firing.event.meta.id.clone(),
                        dry_run: rule.dry_run,
                        group_key: firing.info.key.clone(),
                        remediation: Some(StepRef {
                            id: id.to_owned(),
                            step: 0,
                        }),
                    };
                    recorded += self.act(&planned, source).await?;
                }
                Err(err) => tracing::warn!(
                    rule = %rule.name,
                    error = %err,
                    "the loop guard's notify webhook could not be rendered"
                ),
            }
        }
        self.store
            .mark_quarantine_announced(&rule.name, target)
            .await
            .map_err(Error::store(format!(
                "marking the quarantine of {target} by rule `{}` announced",
                rule.name
            )))?;
        Ok(recorded)
    }

    /// One `quarantined` outcome for the firing (published: the announcement).
    #[expect(clippy::too_many_arguments, reason = "one outcome's fields")]
    async fn record_quarantined(
        &self,
        rule: &Rule,
        firing: &Firing,
        id: &str,
        target: &str,
        message: String,
        until_ms: i64,
        source: Option<&Source>,
    ) -> Result<usize, Error> {
        let now = Utc::now();
        let event_id = &firing.event.meta.id;
        let row = OutcomeRecord {
            id: 0,
            event_id: event_id.clone(),
            rule: rule.name.clone(),
            action_kind: NO_KIND.to_owned(),
            idempotency_key: derived_key(event_id, &format!("quarantined\0{}", rule.name)),
            status: OutcomeStatus::Quarantined,
            attempts: 0,
            started_at: now,
            finished_at: Some(now),
            target: Some(target.to_owned()),
            error: Some(message),
            details: json!({
                "remediation": {"id": id, "step": 0},
                "quarantined_until": rfc3339(until_ms),
                "release": format!("reflex release {target} --rule {}", rule.name),
                "source": source,
                "claimant": self.instance,
            }),
            published_at: None,
        };
        self.record_once(&row, source, false).await
    }
}

/// A Unix-milliseconds instant as RFC 3339.
pub(super) fn rfc3339(at_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(at_ms)
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| at_ms.to_string())
}
