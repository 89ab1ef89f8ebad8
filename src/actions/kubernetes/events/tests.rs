//! Unit tests of what an Event says: reasons, notes and their 1 KiB bound.
use super::*;

const CAUSE: Cause<'static> = Cause {
    rule: "crashloop-restart",
    trigger: Trigger::Event("fp1/2026-01-02T03:04:05Z/firing"),
    outcome: "0123abcd",
};

#[test]
fn every_kubernetes_action_kind_has_a_done_and_a_failed_reason() {
    for kind in ActionKind::ALL {
        let reasons = (
            Acted::Action(kind).reason(true),
            Acted::Action(kind).reason(false),
        );
        if !kind.is_kubernetes() {
            assert_eq!(reasons, (None, None), "{kind:?} acts on no object");
            continue;
        }
        let (Some(done), Some(failed)) = reasons else {
            panic!("{kind:?} has no reason");
        };
        assert!(done.starts_with("Reflex") && failed.ends_with("Failed"));
        assert!(done.len() <= 128 && failed.len() <= 128);
        assert_ne!(done, failed);
    }
    assert_eq!(
        Acted::Action(ActionKind::Restart).reason(true),
        Some("ReflexRestarted")
    );
    assert_eq!(
        Acted::Action(ActionKind::Scale).reason(true),
        Some("ReflexScaled")
    );
    assert_eq!(
        Acted::Action(ActionKind::Cordon).reason(true),
        Some("ReflexCordoned")
    );
    assert_eq!(Acted::Undo.reason(true), Some("ReflexUndone"));
}

#[test]
fn the_note_names_the_rule_the_trigger_and_the_outcome_with_the_command_to_find_it() {
    let text = note(&CAUSE, ": replicas 1 → 4");
    assert_eq!(
        text,
        "rule \"crashloop-restart\" (event fp1/2026-01-02T03:04:05Z/firing): replicas 1 → 4; \
         outcome 0123abcd: reflex history --rule crashloop-restart"
    );
    let undo = Cause {
        trigger: Trigger::Remediation("rem-7"),
        ..CAUSE
    };
    assert!(
        note(&undo, ": scale back").ends_with("reflex history --remediation rem-7"),
        "{}",
        note(&undo, "")
    );
}

#[test]
fn a_long_error_is_cut_in_the_middle_so_the_note_fits_1_kib_and_keeps_the_outcome() {
    // Multi-byte characters at every position: the cut must land on a character boundary.
    let error = format!(" failed: {}", "é".repeat(2000));
    let text = note(&CAUSE, &error);
    assert!(text.len() <= MAX_NOTE_BYTES, "{} bytes", text.len());
    assert!(text.starts_with("rule \"crashloop-restart\""), "{text}");
    assert!(text.contains("…; outcome 0123abcd"), "{text}");
    // Even a rule name past the bound gives a valid note.
    let huge = "r".repeat(3000);
    let cause = Cause {
        rule: &huge,
        ..CAUSE
    };
    assert!(note(&cause, ": x").len() <= MAX_NOTE_BYTES);
}

#[test]
fn a_failed_actions_object_is_looked_up_only_when_it_may_answer() {
    let not_found = Error::NotFound {
        what: "w".into(),
        message: "m".into(),
    };
    let refused = Error::Refused {
        action: "delete",
        what: "w".into(),
        reason: "r".into(),
    };
    assert!(!worth_looking_up(&not_found));
    assert!(worth_looking_up(&refused));
}
