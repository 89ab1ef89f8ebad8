//! The engine's own unit tests: dirty keys, the keys a record reaches, redeliveries.

use serde_json::Value;

use super::*;

fn event(payload: Value) -> Event {
    let record = crate::event::decode::RawRecord {
        topic: "t",
        partition: 0,
        offset: 0,
        key: None,
        headers: Vec::new(),
        payload: Some(&serde_json::to_vec(&payload).expect("json")),
        timestamp: None,
    };
    crate::event::decode::decode(
        &record,
        crate::event::decode::Decoding::Json,
        &Default::default(),
    )
    .expect("decodes")
    .remove(0)
}

#[test]
fn only_the_keys_an_event_changed_are_reported_dirty_and_only_once() {
    let yaml = r#"rules:
  - name: throttled
    when: 'kind == "a"'
    throttle: {key: "{{ event.id }}", once_within: 1m}
    actions: [{log: {message: hi}}]
  - name: other
    when: 'kind == "b"'
    throttle: {key: "{{ event.id }}", once_within: 1m}
    actions: [{log: {message: hi}}]
"#;
    let rules =
        crate::rules::load_sources(&[("r.yaml".into(), yaml.to_owned())]).expect("valid rules");
    let mut engine = Engine::new(Arc::new(rules));
    let now = Utc::now();
    assert!(engine.take_dirty().is_empty());
    let planned = engine.process(&event(serde_json::json!({"kind": "a", "id": "1"})), now);
    assert_eq!(planned.planned.len(), 1);
    engine.process(&event(serde_json::json!({"kind": "a", "id": "2"})), now);
    let dirty = engine.take_dirty();
    assert_eq!(
        dirty,
        BTreeMap::from([("throttled".to_owned(), vec!["1".to_owned(), "2".to_owned()])])
    );
    assert!(engine.take_dirty().is_empty(), "taking clears the set");
    engine.process(&event(serde_json::json!({"kind": "a", "id": "2"})), now);
    assert_eq!(
        engine.take_dirty(),
        BTreeMap::from([("throttled".to_owned(), vec!["2".to_owned()])]),
        "a suppressed event changes its own key only"
    );
}

fn load(yaml: &str) -> Engine {
    let rules =
        crate::rules::load_sources(&[("r.yaml".into(), yaml.to_owned())]).expect("valid rules");
    Engine::new(Arc::new(rules))
}

fn key(rule: &str, key: &str) -> StateKey {
    StateKey {
        rule: rule.to_owned(),
        key: key.to_owned(),
    }
}

#[test]
fn state_keys_lists_the_key_of_every_stateful_rule_an_event_reaches() {
    let engine = load(
        r#"rules:
  - name: stateless
    actions: [{log: {message: hi}}]
  - name: throttled
    when: 'kind == "a"'
    throttle: {key: "{{ event.app }}", once_within: 1m}
    actions: [{log: {message: hi}}]
  - name: absent
    when: 'kind == "start"'
    absence: {key: "{{ event.app }}/x", within: 1m, expect: {name: done, when: 'kind == "done"'}}
    actions: [{log: {message: hi}}]
  - name: unkeyed
    threshold: {count: 2, within: 1m}
    actions: [{log: {message: hi}}]
  - name: disabled
    enabled: false
    throttle: {key: "{{ event.app }}", once_within: 1m}
    actions: [{log: {message: hi}}]
"#,
    );
    let events = [
        event(serde_json::json!({"kind": "done", "app": "web"})),
        event(serde_json::json!({"kind": "a", "app": "db"})),
    ];
    let keys = engine.state_keys(&events);
    assert_eq!(
        keys,
        BTreeSet::from([
            // `done` is what the absence expects; `a` is neither its trigger nor expected.
            key("absent", "web/x"),
            // Only the event whose condition holds.
            key("throttled", "db"),
            key("unkeyed", ""),
            key("unkeyed", ""),
        ]),
        "disabled and stateless rules hold no key"
    );
}

#[test]
fn a_key_the_record_was_already_applied_to_holds_the_event_back_and_changes_nothing() {
    let engine_yaml = r#"rules:
  - name: counted
    threshold: {key: "{{ event.app }}", count: 2, within: 1m}
    actions: [{log: {message: hi}}]
"#;
    let now = Utc::now();
    let mut engine = load(engine_yaml);
    let first = event(serde_json::json!({"app": "web", "n": 1}));
    assert!(engine.process(&first, now).planned.is_empty(), "one of two");
    engine.take_dirty();
    engine.skip_applied(BTreeSet::from([key("counted", "web")]));
    let again = engine.process_traced(&first, now);
    assert!(
        again.planned.is_empty(),
        "the redelivery is not counted a second time"
    );
    assert!(
        matches!(&again.trace[0].verdict, Verdict::Held(why) if why.contains("redelivery")),
        "{:?}",
        again.trace
    );
    assert!(
        engine.take_dirty().is_empty(),
        "the key's state is untouched"
    );
    // Another key of the same rule is not held back.
    let other = event(serde_json::json!({"app": "db"}));
    engine.process(&other, now);
    assert_eq!(
        engine.take_dirty(),
        BTreeMap::from([("counted".to_owned(), vec!["db".to_owned()])])
    );
    // Without the skip, the same event would have been the second of two.
    engine.skip_applied(BTreeSet::new());
    assert_eq!(engine.process(&first, now).planned.len(), 1);
}

#[test]
fn a_disabled_rule_holding_state_reports_no_deadline_and_enabling_it_again_does() {
    let rules = |enabled: bool| {
        let yaml = format!(
            r#"rules:
  - name: held
    enabled: {enabled}
    when: 'kind == "a"'
    throttle: {{key: "{{{{ event.id }}}}", once_within: 1m}}
    actions: [{{log: {{message: hi}}}}]
  - name: stateless
    when: 'kind == "b"'
    actions: [{{log: {{message: hi}}}}]
"#
        );
        Arc::new(crate::rules::load_sources(&[("r.yaml".into(), yaml)]).expect("valid rules"))
    };
    let mut engine = Engine::new(rules(true));
    let now = Utc::now();
    assert_eq!(engine.next_deadline(), None, "no rule holds state yet");
    engine.process(&event(serde_json::json!({"kind": "a", "id": "1"})), now);
    let due = engine.next_deadline().expect("the throttled key expires");
    assert!(due > now);
    // Disabled, the rule keeps its state by name but `tick` never visits it: reporting its
    // deadline would make the timer loop wake for nothing.
    engine.replace_rules(rules(false));
    assert_eq!(engine.next_deadline(), None);
    assert!(engine.tick(due).planned.is_empty());
    engine.replace_rules(rules(true));
    assert_eq!(engine.next_deadline(), Some(due));
}
