use serde_json::json;

use super::*;

const ONCE_WITHIN: &str = r#"
name: per-service
throttle:
  key: "{{ event.service }}"
  once_within: 10m
"#;

#[test]
fn exported_keys_rebuild_a_state_that_still_suppresses_each_key() {
    let mut h = Harness::new(ONCE_WITHIN);
    fired(h.hit(&event("1", json!({"service": "payments"})), at(0)));
    fired(h.hit(&event("2", json!({"service": "checkout"})), at(5)));
    h.state.evictions = 3;

    let docs = h.state.export_keys().expect("export");
    let names: Vec<&str> = docs.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(
        names,
        ["payments", "checkout"],
        "least recently updated first"
    );

    let (rebuilt, unreadable) = RuleState::from_keys(docs, 3);
    assert!(unreadable.is_empty(), "{unreadable:?}");
    assert_eq!(rebuilt.evictions, 3);
    assert_eq!(
        rebuilt.keys().collect::<Vec<_>>(),
        ["payments", "checkout"],
        "the eviction order survives"
    );
    let mut after = Harness::new(ONCE_WITHIN);
    after.state = rebuilt;
    assert_eq!(after.deadline(), Some(at(600)), "deadlines survive");
    assert_eq!(
        after.hit(&event("3", json!({"service": "checkout"})), at(60)),
        Decision::Suppressed {
            key: "checkout".into(),
            until: at(605)
        }
    );
}

#[test]
fn the_union_of_two_replicas_keys_holds_both() {
    let mut a = Harness::new(ONCE_WITHIN);
    let mut b = Harness::new(ONCE_WITHIN);
    fired(a.hit(&event("1", json!({"service": "payments"})), at(0)));
    fired(b.hit(&event("2", json!({"service": "orders"})), at(1)));
    let mut docs = a.state.export_keys().expect("export a");
    docs.extend(b.state.export_keys().expect("export b"));

    let (union, unreadable) = RuleState::from_keys(docs, 0);
    assert!(unreadable.is_empty());
    assert_eq!(union.keys().collect::<Vec<_>>(), ["payments", "orders"]);
}

#[test]
fn an_unreadable_key_document_is_skipped_and_reported_while_the_others_restore() {
    let mut h = Harness::new(ONCE_WITHIN);
    fired(h.hit(&event("1", json!({"service": "payments"})), at(0)));
    let mut docs = h.state.export_keys().expect("export");
    docs.insert(
        0,
        (
            "broken".to_owned(),
            json!({"value": {"kind": "no_such_kind"}}),
        ),
    );

    let (rebuilt, unreadable) = RuleState::from_keys(docs, 0);
    assert_eq!(rebuilt.keys().collect::<Vec<_>>(), ["payments"]);
    assert_eq!(unreadable.len(), 1);
    assert_eq!(unreadable[0].key, "broken");
    assert!(
        unreadable[0].to_string().contains("`broken`"),
        "{}",
        unreadable[0]
    );
}

#[test]
fn an_emptied_state_exports_no_keys() {
    let mut h = Harness::new(ONCE_WITHIN);
    fired(h.hit(&event("1", json!({"service": "payments"})), at(0)));
    assert!(
        h.tick(at(600)).is_empty(),
        "an ended suppression fires nothing"
    );
    assert!(h.state.export_keys().expect("export").is_empty());
}
