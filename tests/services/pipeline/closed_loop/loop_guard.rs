//! The loop guard: an alert that flaps (fires, resolves, fires again with a new `startsAt`)
//! gets its Deployment restarted `max` times, then the target is quarantined — announced on the
//! outcomes topic and to the rule's `notify` webhook — and restarted no more, until an operator
//! releases it (`reflex release`, the real binary, on the same store).

use chrono::Utc;
use reflex::store::{OutcomeRecord, OutcomeStatus, Phase};

use super::{Bench, restarted_at, summary};

/// Restart, verified by the alert resolving; at most 3 remediations of a target per hour.
const FLAPPING: &str = r#"rules:
  - name: "@RULE"
    select: {formats: [alertmanager], types: ["@ALERT"]}
    actions:
      - restart: @TARGET
    verify: {within: 5m, alert_resolved: true}
    loop_guard:
      max: 3
      within: 1h
      quarantine: 1h
      notify:
        url: "http://@HOOK/quarantined"
        body: {deployment: "{{ event.labels.deployment }}"}
"#;

fn restarts(outcomes: &[OutcomeRecord]) -> usize {
    outcomes
        .iter()
        .filter(|o| o.action_kind == "restart" && o.status == OutcomeStatus::Succeeded)
        .count()
}

impl Bench {
    /// The Deployment's restart stamp now.
    async fn stamp(&self, name: &str) -> Option<String> {
        restarted_at(&self.deployments().get(name).await.expect("get"))
    }

    /// One flap: the alert fires (a new occurrence) and, once handled, resolves. Returns the
    /// restart stamp after the firing.
    async fn flap(&self, n: usize, deployment: &str) -> Option<String> {
        let before = self.stamp(deployment).await;
        past_second_of(before.as_deref()).await;
        let starts = Utc::now();
        let fingerprint = format!("f{n}");
        self.fire(&fingerprint, starts, deployment).await;
        let after = self.stamp(deployment).await;
        self.resolve(&fingerprint, starts, deployment).await;
        // The remediation this firing started (if any) is judged before the next firing, or
        // that firing would be a refire of it instead of a new occurrence.
        self.until("every remediation closed", || async {
            self.remediations()
                .await
                .iter()
                .all(|r| r.phase == Phase::Done)
                .then_some(())
        })
        .await;
        after
    }
}

/// Waits for the wall clock to leave the second of `stamp`: a restart stamps the template with
/// second precision, and a restart within the same second would look like none.
async fn past_second_of(stamp: Option<&str>) {
    let Some(stamp) = stamp else {
        return;
    };
    crate::support::eventually(
        "the clock moved past the last restart's second",
        std::time::Duration::from_secs(5),
        || async {
            let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            (now.as_str() != stamp).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_flapping_alert_quarantines_its_target_after_max_restarts_until_released() {
    let bench = Bench::new("flap", FLAPPING).await;
    bench
        .deployment("checkout", 1, "registry.example.org/shop/checkout:1.0.0")
        .await;
    let target = bench.target("checkout");

    let mut stamps = vec![bench.stamp("checkout").await];
    for n in 0..6 {
        stamps.push(bench.flap(n, "checkout").await);
    }
    let changes = stamps.windows(2).filter(|w| w[0] != w[1]).count();
    assert_eq!(
        changes, 3,
        "the Deployment was restarted by the first 3 firings only: {stamps:?}"
    );
    assert!(
        stamps[1..4].windows(2).all(|w| w[0] != w[1])
            && stamps[4..].iter().all(|s| *s == stamps[3]),
        "{stamps:?}"
    );

    let outcomes = bench.outcomes().await;
    assert_eq!(restarts(&outcomes), 3, "{:#?}", summary(&outcomes));
    assert_eq!(bench.outcomes_of(OutcomeStatus::Verified).await.len(), 3);
    assert_eq!(
        bench.remediations().await.len(),
        3,
        "no remediation after the 3rd"
    );
    let quarantined = bench.outcomes_of(OutcomeStatus::Quarantined).await;
    assert_eq!(
        quarantined.len(),
        3,
        "firings 4, 5 and 6 were each recorded quarantined: {:#?}",
        summary(&outcomes)
    );
    for q in &quarantined {
        assert_eq!(q.target.as_deref(), Some(target.as_str()));
        assert!(
            q.details["release"]
                .as_str()
                .is_some_and(|r| r.starts_with("reflex release")),
            "{:?}",
            q.details
        );
    }
    let row = bench
        .store
        .quarantine(&bench.rule, &target)
        .await
        .expect("read quarantine")
        .expect("the target is quarantined");
    assert!(row.active(Utc::now().timestamp_millis()), "{row:?}");
    assert!(row.announced, "{row:?}");
    let notified: Vec<_> = bench
        .receiver
        .calls()
        .into_iter()
        .filter(|c| c.path == "/quarantined")
        .collect();
    assert_eq!(
        notified.len(),
        1,
        "notify is called once, when the quarantine opens"
    );

    // The quarantine is announced on the outcomes topic.
    let published = bench
        .published(|seen| {
            seen.iter()
                .filter(|m| m["type"] == "dev.reflex.outcome.quarantined")
                .count()
                >= 3
        })
        .await;
    assert!(
        published
            .iter()
            .filter(|m| m["type"] == "dev.reflex.outcome.quarantined")
            .all(|m| m["subject"] == target.as_str())
    );

    // An operator releases the target with `reflex release`: the next firing restarts it.
    let release = std::process::Command::new(env!("CARGO_BIN_EXE_reflex"))
        .args([
            "release",
            &target,
            "--rule",
            &bench.rule,
            "--store",
            bench.db_url(),
        ])
        .env_remove("DATABASE_URL")
        .env_remove("REFLEX_CONFIG")
        .env("USER", "operator")
        .output()
        .expect("the reflex binary runs");
    assert!(
        release.status.success(),
        "reflex release: {}{}",
        String::from_utf8_lossy(&release.stdout),
        String::from_utf8_lossy(&release.stderr)
    );
    let row = bench
        .store
        .quarantine(&bench.rule, &target)
        .await
        .expect("read quarantine")
        .expect("the quarantine row stays, released");
    assert_eq!(row.released_by.as_deref(), Some("cli:operator"), "{row:?}");
    let last = stamps.last().cloned().flatten();
    let after = bench.flap(6, "checkout").await;
    assert_ne!(after, last, "released: the Deployment is restarted again");
    let outcomes = bench.outcomes().await;
    assert_eq!(restarts(&outcomes), 4, "{:#?}", summary(&outcomes));
    assert_eq!(bench.outcomes_of(OutcomeStatus::Quarantined).await.len(), 3);
    assert_eq!(bench.remediations().await.len(), 4);
    bench.cleanup().await;
}
