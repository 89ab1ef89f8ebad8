//! The pure parts: phase names and the quarantine's activity. The statements run against both
//! real databases in `tests/services/store_remediations.rs`.

use proptest::prelude::*;

use super::lease::claim_sql;
use super::*;
use crate::store::Backend;

#[test]
fn every_phase_reads_back_from_its_stored_name_and_only_acting_and_verifying_are_open() {
    for phase in Phase::ALL {
        assert_eq!(phase.as_str().parse::<Phase>(), Ok(phase));
        assert_eq!(phase.to_string(), phase.as_str());
        let json = serde_json::to_value(phase).expect("serialize");
        assert_eq!(
            json,
            Value::from(phase.as_str()),
            "serde spells it as the store does"
        );
    }
    let open: Vec<Phase> = Phase::ALL.into_iter().filter(|p| p.is_open()).collect();
    assert_eq!(open, [Phase::Acting, Phase::Verifying]);
}

#[test]
fn an_unknown_phase_is_refused_with_the_valid_names() {
    let err = "Done".parse::<Phase>().expect_err("names are lower case");
    assert_eq!(
        err,
        "unknown remediation phase `Done`; valid: acting, verifying, undoing, done"
    );
}

#[test]
fn the_claim_differs_between_the_backends_only_in_the_row_lock() {
    let postgres = claim_sql(Backend::Postgres);
    assert!(
        postgres.contains("LIMIT $4 FOR UPDATE SKIP LOCKED)"),
        "{postgres}"
    );
    assert_eq!(
        postgres.replace(" FOR UPDATE SKIP LOCKED", ""),
        claim_sql(Backend::Sqlite)
    );
}

fn quarantine(until_ms: i64, released_ms: Option<i64>) -> QuarantineRow {
    QuarantineRow {
        rule: "r".into(),
        target: "ns/Deployment/api".into(),
        since_ms: 0,
        until_ms,
        reason: "recurring".into(),
        remediation_id: None,
        released_ms,
        released_by: released_ms.map(|_| "ops".into()),
        announced: false,
    }
}

#[test]
fn a_quarantine_is_active_until_it_expires_or_is_released() {
    assert!(quarantine(100, None).active(99));
    assert!(!quarantine(100, None).active(100), "until_ms is exclusive");
    assert!(!quarantine(100, Some(50)).active(60));
}

proptest! {
    /// Any text either names a phase exactly or is refused, naming the text; never a panic.
    #[test]
    fn any_text_parses_to_the_phase_it_names_or_to_an_error(text in any::<String>()) {
        match text.parse::<Phase>() {
            Ok(phase) => prop_assert_eq!(phase.as_str(), text.as_str()),
            Err(message) => prop_assert!(message.contains(&format!("`{text}`")), "{}", message),
        }
    }
}
