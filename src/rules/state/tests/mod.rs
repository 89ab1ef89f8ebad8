//! Tests of the stateful behaviours: a fixed base time and explicit `now` values, no wall clock.

mod absence;
mod bounds;
mod common;
mod correlate;
mod persist;
mod threshold;
mod throttle;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};

use super::{Behaviour, Decision, Firing, Limits, RuleState};
use crate::event::{Event, Format, Metadata};
use crate::rules::diagnostic::Diagnostics;
use crate::rules::model;

/// The fixed instant every test counts from.
fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0)
        .single()
        .expect("valid base time")
}

/// `base()` plus `secs` seconds.
fn at(secs: i64) -> DateTime<Utc> {
    base() + Duration::seconds(secs)
}

/// A plain JSON event with this id and payload.
fn event(id: &str, payload: Value) -> Event {
    Event {
        payload,
        meta: Metadata {
            id: id.to_owned(),
            topic: "events".to_owned(),
            partition: 0,
            offset: 0,
            key: None,
            headers: BTreeMap::new(),
            timestamp: base(),
            format: Format::Json,
            event_type: None,
            source: None,
            attributes: BTreeMap::new(),
        },
    }
}

/// A firing Alertmanager alert with this fingerprint and payload.
fn alert(id: &str, fingerprint: &str, payload: Value) -> Event {
    let mut e = event(id, payload);
    e.meta.format = Format::Alertmanager;
    e.meta
        .attributes
        .insert("fingerprint".to_owned(), json!(fingerprint));
    e.meta
        .attributes
        .insert("status".to_owned(), json!("firing"));
    e
}

/// Parses one rule from YAML.
fn parse_rule(yaml: &str) -> model::Rule {
    serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("test rule does not parse: {e}\n{yaml}"))
}

/// Compiles a rule's behaviour, failing the test with the diagnostics if it does not compile.
fn compile(yaml: &str) -> Behaviour {
    let rule = parse_rule(yaml);
    let mut diags = Diagnostics::new();
    let behaviour = Behaviour::compile(&rule, &mut diags);
    let messages: Vec<String> = diags.into_vec().iter().map(|d| d.to_string()).collect();
    assert!(messages.is_empty(), "unexpected diagnostics: {messages:#?}");
    behaviour.expect("no diagnostics means a behaviour")
}

/// Compiles a rule expected to fail; returns the diagnostic messages.
fn compile_errors(yaml: &str) -> Vec<String> {
    let rule = parse_rule(yaml);
    let mut diags = Diagnostics::new();
    let behaviour = Behaviour::compile(&rule, &mut diags);
    assert!(behaviour.is_none(), "expected the rule not to compile");
    let messages: Vec<String> = diags.into_vec().into_iter().map(|d| d.message).collect();
    assert!(!messages.is_empty(), "None without a diagnostic");
    messages
}

/// A behaviour plus its state, driven with the default limits.
struct Harness {
    behaviour: Behaviour,
    state: RuleState,
    limits: Limits,
}

impl Harness {
    fn new(yaml: &str) -> Self {
        Self {
            behaviour: compile(yaml),
            state: RuleState::new(),
            limits: Limits::default(),
        }
    }

    /// An event whose rule condition held, at `now`.
    fn hit(&mut self, e: &Event, now: DateTime<Utc>) -> Decision {
        self.send(e, true, now)
    }

    fn send(&mut self, e: &Event, main_matched: bool, now: DateTime<Utc>) -> Decision {
        self.behaviour
            .on_event(&mut self.state, e, main_matched, now, &self.limits)
            .expect("the key renders")
    }

    fn tick(&mut self, now: DateTime<Utc>) -> Vec<Firing> {
        self.behaviour.on_tick(&mut self.state, now)
    }

    fn resolve(&mut self, fingerprint: &str) -> usize {
        self.behaviour.on_resolved(&mut self.state, fingerprint)
    }

    fn deadline(&self) -> Option<DateTime<Utc>> {
        self.state.next_deadline()
    }
}

/// The firing inside a decision, failing the test otherwise.
fn fired(decision: Decision) -> Firing {
    match decision {
        Decision::Fire(firing) => firing,
        other => panic!("expected a firing, got {other:?}"),
    }
}
