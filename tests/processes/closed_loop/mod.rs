//! Issue #13 across replicas: real `reflex run` processes, two in one consumer group over a
//! 6-partition alerts topic, sharing one PostgreSQL database and acting on a real Deployment.
//!
//! 1. A verification is pending (alert fired, restart done); the replica that owns the
//!    remediation (its lease owner; a saved remediation holds no lease between looks, so else
//!    the replica that started it) is SIGKILLed; the alert's resolution is produced to one of its partitions;
//!    the survivor takes the partition and the remediation over and records exactly one
//!    `verified`.
//! 2. The same, but the replica is SIGKILLed in the middle of step 0 (its webhook call held
//!    by a slow receiver), while it holds the remediation's lease: the survivor redelivers the
//!    firing, runs the unfinished action once its claim lease passed, takes the remediation
//!    over once its lease passed, and verifies it once; the restart ran once.
//! 3. Distinct alerts on one Deployment, one per partition, reach both replicas at once:
//!    exactly one remediation opens (one restart), every other firing is recorded
//!    `suppressed_by_guard` with guard `remediation_in_progress`. The first firing's step holds
//!    at a slow webhook receiver until every other firing was handled, so the others meet an
//!    open remediation by construction, not by timing.
//!
//! Waits are bounded polls of the store, the group's committed offsets and the replicas' logs;
//! nothing asserts on time.
//!
//! Run: `eval "$(scripts/services env)"; cargo test --features services --test processes
//! closed_loop:: -- --include-ignored --nocapture`

mod group;

use std::collections::BTreeSet;

use chrono::Utc;
use group::{Group, LIMIT, PARTITIONS, REPLICAS, replica_of};
use reflex::store::{OutcomeStatus, Phase};

use crate::support;

/// The Deployment the alert names, as rule templates write it.
const TARGET: &str = "{target: {namespace: \"{{ event.labels.namespace }}\", name: \"{{ event.labels.deployment }}\"}}";

/// Restart, verified when the alert resolves and the rollout completes within 45 s: long
/// enough for a SIGKILLed member's partitions to be handed over (6 s session timeout) on a
/// loaded machine.
const RESTART_VERIFIED: &str = r#"rules:
  - name: "@RULE"
    select: {formats: [alertmanager]}
    actions:
      - restart: @TARGET
    verify:
      within: 45s
      every: 1s
      alert_resolved: true
      kubernetes: {condition: rollout_complete}
"#;

/// A short claim lease, so a lease the killed replica held passes well within the window.
const SHORT_LEASE: &str =
    "pipeline:\n  claim_lease_secs: 5\nactions:\n  timeout: 4s\n  kafka: false\n";

/// The replica that is not `victim`.
fn survivor_of(victim: &str) -> &'static str {
    REPLICAS
        .into_iter()
        .find(|r| *r != victim)
        .expect("two replicas")
}

fn rule_file(template: &str) -> impl FnOnce(&str, &str, std::net::SocketAddr) -> String {
    move |rule, _namespace, gate| {
        template
            .replace("@RULE", rule)
            .replace("@TARGET", TARGET)
            .replace("@GATE", &gate.to_string())
    }
}

/// SIGKILLs `victim` while its remediation is open; returns one of the partitions it held.
fn kill(group: &mut Group, victim: &'static str) -> i32 {
    let partition = *group.assignment()[victim]
        .first()
        .expect("the victim holds partitions");
    group.kill9(victim);
    eprintln!("SIGKILLed {victim}, which held partition {partition}");
    partition
}

/// Produces the resolution of occurrence (`fingerprint`, `starts`) to `partition` (the killed
/// replica's) and waits until the remediation is done; asserts that it was verified exactly
/// once, by `survivor`, and that the Deployment was restarted once (its stamp is `stamp`).
async fn resolve_and_verify_once(
    group: &Group,
    survivor: &str,
    partition: i32,
    (fingerprint, starts): (&str, chrono::DateTime<Utc>),
    stamp: Option<String>,
) {
    assert!(stamp.is_some(), "the Deployment was restarted");
    let pending = group.remediations().await;
    assert!(
        pending[0].phase.is_open(),
        "still pending after the kill: {pending:#?}"
    );
    assert!(
        group
            .outcomes(Some(OutcomeStatus::Verified))
            .await
            .is_empty()
    );
    group
        .alert(
            partition,
            "resolved",
            "KubePodCrashLooping",
            fingerprint,
            starts,
        )
        .await;
    support::eventually("the survivor closed the remediation", LIMIT, || async {
        let rows = group.remediations().await;
        (rows[0].phase == Phase::Done).then_some(())
    })
    .await;
    group.wait_assigned().await;
    group.wait_handled().await;

    let verified = group.outcomes(Some(OutcomeStatus::Verified)).await;
    assert_eq!(
        verified.len(),
        1,
        "exactly one verdict: {verified:#?}\noutcomes: {:#?}\nremediations: {:#?}\n{}",
        group
            .outcomes(None)
            .await
            .iter()
            .map(|o| (o.status, &o.action_kind, &o.error, &o.details["claimant"]))
            .collect::<Vec<_>>(),
        group.remediations().await,
        group.logs()
    );
    assert_eq!(
        replica_of(verified[0].details["claimant"].as_str().expect("claimant")),
        survivor
    );
    let rows = group.remediations().await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(
        verified[0].idempotency_key,
        format!("{}.0.verify", rows[0].id)
    );
    assert!(verified[0].details["took_ms"].is_i64());
    assert_eq!(rows[0].doc["ending"], "verified");
    assert!(
        group
            .outcomes(Some(OutcomeStatus::Ineffective))
            .await
            .is_empty()
    );
    let restarts: Vec<_> = group
        .outcomes(Some(OutcomeStatus::Succeeded))
        .await
        .into_iter()
        .filter(|o| o.action_kind == "restart")
        .collect();
    assert_eq!(restarts.len(), 1, "restarted once: {restarts:#?}");
    assert_eq!(group.restarted_at().await, stamp, "and never again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_survivor_finishes_the_verification_of_a_sigkilled_replica_exactly_once() {
    let mut group = Group::start(rule_file(RESTART_VERIFIED), SHORT_LEASE).await;
    let starts = Utc::now();
    group
        .alert(0, "firing", "KubePodCrashLooping", "k1", starts)
        .await;
    let row = support::eventually(
        "the restart done and its verification pending",
        LIMIT,
        || async {
            let rows = group.remediations().await;
            rows.first()
                .filter(|r| r.phase == Phase::Verifying)
                .cloned()
        },
    )
    .await;
    let restarts = group.outcomes(Some(OutcomeStatus::Succeeded)).await;
    assert_eq!(restarts.len(), 1, "{restarts:#?}");

    // The replica that owns the remediation: the one holding its lease at this moment, else
    // the one that started it (a saved remediation holds no lease between looks).
    let actor = replica_of(restarts[0].details["claimant"].as_str().expect("claimant"));
    let owner = row.lease_owner.as_deref().map(replica_of);
    eprintln!(
        "remediation {} verifying, started by {actor}, lease owner {owner:?}",
        row.id
    );
    let victim = owner.unwrap_or(actor);
    let stamp = group.restarted_at().await;
    let partition = kill(&mut group, victim);
    let survivor = survivor_of(victim);
    resolve_and_verify_once(&group, survivor, partition, ("k1", starts), stamp).await;
    group.cleanup().await;
}

/// Step 0 restarts, then tells a webhook (the gate, which holds the call, and would drop a
/// repeated call by its key); verified when the alert resolves within a minute. The claim lease is short (and the action timeout below it,
/// as the config requires) so a dead replica's lease passes within the window.
const RESTART_AND_TELL: &str = r#"rules:
  - name: "@RULE"
    select: {formats: [alertmanager]}
    actions:
      - restart: @TARGET
      - webhook:
          url: "http://@GATE/restarted"
          body: {alert: "{{ event.labels.alertname }}"}
          timeout: 8s
          retries: 0
          # The receiver drops repeated Idempotency-Keys: an interrupted call may be resent.
          idempotent_receiver: true
    verify: {within: 1m, alert_resolved: true}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_sigkilled_mid_step_holding_the_lease_is_taken_over_once_it_passes() {
    let config = "pipeline:\n  claim_lease_secs: 10\nactions:\n  timeout: 9s\n  kafka: false\n";
    let mut group = Group::start(rule_file(RESTART_AND_TELL), config).await;
    let starts = Utc::now();
    group
        .alert(0, "firing", "KubePodCrashLooping", "m1", starts)
        .await;
    // The restart ran; the webhook call is held: step 0 is acting, leased to its replica.
    support::eventually("step 0 held at the webhook", LIMIT, || async {
        (!group.gate.calls().is_empty()).then_some(())
    })
    .await;
    let row = group.remediations().await.remove(0);
    assert_eq!(row.phase, Phase::Acting, "{row:#?}");
    let owner = row.lease_owner.as_deref().expect("leased while acting");
    let victim = replica_of(owner);
    assert!(
        row.lease_until_ms
            .is_some_and(|until| until > Utc::now().timestamp_millis())
    );
    eprintln!("remediation {} acting, leased to {owner}", row.id);
    // The survivor redelivers the firing once the partition is its own: the restart is a
    // duplicate, the webhook (whose claim died with the victim) is called again once that
    // claim's lease passed, and the remediation row is taken over once its own lease passed.
    let stamp = group.restarted_at().await;
    let partition = kill(&mut group, victim);
    group.gate.open();
    resolve_and_verify_once(
        &group,
        survivor_of(victim),
        partition,
        ("m1", starts),
        stamp,
    )
    .await;
    let calls = group.gate.calls();
    let keys: BTreeSet<&str> = calls.iter().map(|(_, key)| key.as_str()).collect();
    assert_eq!(keys.len(), 1, "one action, one idempotency key: {calls:?}");
    let webhooks: Vec<_> = group
        .outcomes(Some(OutcomeStatus::Succeeded))
        .await
        .into_iter()
        .filter(|o| o.action_kind == "webhook")
        .collect();
    assert_eq!(webhooks.len(), 1, "{webhooks:#?}");
    assert_eq!(
        replica_of(webhooks[0].details["claimant"].as_str().expect("claimant")),
        survivor_of(victim),
        "the survivor finished the step"
    );
    group.cleanup().await;
}

/// Step 0 announces the restart to a webhook (the gate), then restarts; verified when the
/// alert resolves within 10 minutes (the test never resolves it: the remediation stays open).
const ANNOUNCE_AND_RESTART: &str = r#"rules:
  - name: "@RULE"
    select: {formats: [alertmanager]}
    actions:
      - webhook:
          url: "http://@GATE/restarting"
          body: {alert: "{{ event.labels.alertname }}"}
          timeout: 40s
          retries: 0
      - restart: @TARGET
    verify: {within: 10m, alert_resolved: true}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_alerts_on_one_target_across_partitions_and_replicas_open_one_remediation() {
    let group = Group::start(
        rule_file(ANNOUNCE_AND_RESTART),
        "actions:\n  kafka: false\n",
    )
    .await;
    let starts = Utc::now();
    for partition in 0..PARTITIONS {
        group
            .alert(
                partition,
                "firing",
                &format!("CrashLoop{partition}"),
                &format!("fp{partition}"),
                starts,
            )
            .await;
    }
    // One firing won the target and is held at the gate; the others are handled meanwhile.
    let others = PARTITIONS as usize - 1;
    support::eventually("every other firing suppressed", LIMIT, || async {
        let suppressed = group.outcomes(Some(OutcomeStatus::SuppressedByGuard)).await;
        let events: BTreeSet<String> = suppressed.into_iter().map(|o| o.event_id).collect();
        (events.len() == others).then_some(())
    })
    .await;
    let calls = group.gate.calls();
    assert_eq!(calls.len(), 1, "one step 0 running: {calls:?}");
    assert_eq!(calls[0].0, "/restarting");
    assert_eq!(group.restarted_at().await, None, "held before its restart");
    group.gate.open();
    let open = support::eventually("the remediation verifying", LIMIT, || async {
        let rows = group.remediations().await;
        rows.first()
            .filter(|r| r.phase == Phase::Verifying)
            .cloned()
    })
    .await;
    group.wait_handled().await;

    let rows = group.remediations().await;
    assert_eq!(rows.len(), 1, "exactly one remediation: {rows:#?}");
    assert_eq!(rows[0].phase, Phase::Verifying, "still open: {rows:#?}");
    let succeeded = group.outcomes(Some(OutcomeStatus::Succeeded)).await;
    let kinds: Vec<&str> = succeeded.iter().map(|o| o.action_kind.as_str()).collect();
    assert_eq!(kinds, ["webhook", "restart"], "one step 0: {succeeded:#?}");
    assert!(group.restarted_at().await.is_some());
    assert_eq!(group.gate.calls().len(), 1);

    let suppressed = group.outcomes(Some(OutcomeStatus::SuppressedByGuard)).await;
    assert_eq!(
        suppressed.len(),
        others * 2,
        "both actions of each other firing"
    );
    for row in &suppressed {
        assert_eq!(row.details["guard"], "remediation_in_progress", "{row:#?}");
        assert_eq!(
            row.details["open_remediation"],
            open.id.as_str(),
            "{row:#?}"
        );
        assert_ne!(row.event_id, succeeded[1].event_id);
    }
    let deciders: BTreeSet<&str> = suppressed
        .iter()
        .chain(&succeeded)
        .map(|o| replica_of(o.details["claimant"].as_str().expect("claimant")))
        .collect();
    assert_eq!(
        deciders,
        BTreeSet::from(REPLICAS),
        "the firings were decided on both replicas"
    );
    assert!(
        group
            .outcomes(Some(OutcomeStatus::Verified))
            .await
            .is_empty()
    );
    assert!(
        group
            .outcomes(Some(OutcomeStatus::Ineffective))
            .await
            .is_empty()
    );
    group.cleanup().await;
}
