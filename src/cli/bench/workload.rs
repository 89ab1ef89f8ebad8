//! What `reflex bench` feeds the pipeline: a generated rule set over the five event formats and
//! a deterministic stream of events built from the sample payloads, a known fraction of which
//! fires exactly one rule.

use std::fmt::Write as _;

use anyhow::Context;
use serde_json::{Value, json};

/// The sample payloads (the decoders' test data), one per format, in [`FORMATS`] order.
const SAMPLES: [&str; 5] = [
    include_str!("../../../tests/data/events/alertmanager-webhook.json"),
    include_str!("../../../tests/data/events/kubernetes-event.json"),
    include_str!("../../../tests/data/events/falco-event.json"),
    include_str!("../../../tests/data/events/cloudevent-structured.json"),
    include_str!("../../../tests/data/events/plain.json"),
];

/// The formats of the mix, as written in rule names and decoded by auto-detection.
const FORMATS: [&str; 5] = ["alertmanager", "kubernetes", "falco", "cloudevents", "json"];

/// Default of `--stateful-every`: one rule in ten is stateful, as in a real rule set where a
/// few remediations are rate-limited and most notifications are not.
pub const STATEFUL_EVERY: usize = 10;

/// The stateful block of a stateful rule: a `threshold` of one per rule, so every firing event
/// still fires exactly once (the expected counts stay exact), while all of a rule's events
/// share ONE group key whatever partition they come from — the case where replicas and
/// partitions contend for a key's lock, as a per-deployment throttle's events do.
const STATEFUL_BLOCK: &str = "    threshold: {key: \"{{ rule.name }}\", count: 1, within: 10m}";

/// A verification that outlasts any run: each firing opens a remediation that stays open.
const CLOSED_LOOP_BLOCK: &str = "    verify: {within: 1h, no_refire: true}";

/// Parts per million: fractions are handled as integers so the firing events are spread
/// exactly and evenly.
const PPM: u64 = 1_000_000;

/// The generated workload of one run.
#[derive(Debug)]
pub struct Workload {
    samples: Vec<Value>,
    rules: usize,
    stateful_every: usize,
    closed_loop: bool,
}

impl Workload {
    /// A workload of `rules` rules, one in `stateful_every` of them stateful (0: none), each
    /// with a closed loop when `closed_loop`.
    pub fn new(rules: usize, stateful_every: usize, closed_loop: bool) -> anyhow::Result<Self> {
        let samples = SAMPLES
            .iter()
            .map(|text| serde_json::from_str(text))
            .collect::<Result<Vec<Value>, _>>()
            .context("a built-in sample payload is not JSON")?;
        Ok(Self {
            samples,
            rules,
            stateful_every,
            closed_loop,
        })
    }

    /// The rule file (YAML) of the whole rule set.
    pub fn rules_yaml(&self) -> String {
        let mut yaml = String::from("rules:\n");
        for rule in 0..self.rules {
            let format = rule % FORMATS.len();
            let name = target_name(rule);
            // `write!` into a String cannot fail.
            let _ = writeln!(yaml, "  - name: bench-{:03}-{}", rule, FORMATS[format]);
            let type_path = type_path(format);
            let second = second_predicate(format);
            if (rule / FORMATS.len()).is_multiple_of(2) {
                // Half the rules select by event type and test one more field ...
                let _ = writeln!(yaml, "    select: {{types: [\"{name}\"]}}");
                let _ = writeln!(yaml, "    condition: {{all: [{second}]}}");
            } else {
                // ... the other half test a payload field for equality (both are indexed).
                let _ = writeln!(
                    yaml,
                    "    condition: {{all: [{{path: {type_path}, equals: \"{name}\"}}, {second}]}}"
                );
            }
            if self.stateful_every > 0 && rule % self.stateful_every == self.stateful_every - 1 {
                let _ = writeln!(yaml, "{STATEFUL_BLOCK}");
            }
            if self.closed_loop {
                let _ = writeln!(yaml, "{CLOSED_LOOP_BLOCK}");
            }
            let _ = writeln!(
                yaml,
                "    actions:\n      - log:\n          message: \"{{{{ rule.name }}}} fired for {{{{ meta.id }}}}\""
            );
        }
        yaml
    }

    /// Which rule event `index` fires when `fire_ppm` parts per million of the events fire, or
    /// `None`. Exactly `floor(n * fire_ppm / 1e6)` of the first `n` events fire, evenly spread;
    /// the k-th firing event fires rule `k mod rules`, so every rule (and format) takes its
    /// turn whatever the fraction.
    pub fn fires(&self, index: u64, fire_ppm: u64) -> Option<usize> {
        let before = index * fire_ppm / PPM;
        if (index + 1) * fire_ppm / PPM == before || self.rules == 0 {
            return None;
        }
        usize::try_from(before % self.rules as u64).ok()
    }

    /// How many of events `0..count` fire a rule (each planned exactly one `log` action).
    pub fn expected_firings(&self, count: u64, fire_ppm: u64) -> u64 {
        (0..count)
            .filter(|&i| self.fires(i, fire_ppm).is_some())
            .count() as u64
    }

    /// The payload and key of event `index` of run `run` (which makes event ids unique across
    /// runs sharing a store).
    pub fn event(&self, run: &str, index: u64, fire_ppm: u64) -> (Vec<u8>, String) {
        let (format, name) = match self.fires(index, fire_ppm) {
            // A firing event has the format of the rule it fires.
            Some(rule) => (rule % FORMATS.len(), target_name(rule)),
            // A name no rule knows: most events in a real cluster are not automated.
            None => {
                let format = format_of(index);
                (format, format!("Quiet{}{}", FORMATS[format], index % 97))
            }
        };
        let id = format!("{run}-{index}");
        let mut payload = self.samples[format].clone();
        match format {
            0 => {
                // One alert per notification: one record, one event.
                let alert = payload["alerts"][0].take();
                payload["alerts"] = json!([alert]);
                payload["alerts"][0]["labels"]["alertname"] = json!(name);
                payload["alerts"][0]["fingerprint"] = json!(id);
                payload["groupLabels"]["alertname"] = json!(name);
                payload["commonLabels"]["alertname"] = json!(name);
            }
            1 => {
                payload["reason"] = json!(name);
                payload["metadata"]["uid"] = json!(id);
            }
            2 => {
                payload["rule"] = json!(name);
                payload["uuid"] = json!(id);
            }
            3 => {
                payload["type"] = json!(name);
                payload["id"] = json!(id);
                payload["data"]["pipeline"]["name"] = json!(name);
            }
            _ => {
                payload["type"] = json!(name);
                payload["order"]["id"] = json!(id);
            }
        }
        // Serializing a Value built from JSON cannot fail.
        let bytes = serde_json::to_vec(&payload).unwrap_or_default();
        (bytes, format!("k{}", index % 64))
    }
}

/// The format of event `index`: the mix cycles through the five.
fn format_of(index: u64) -> usize {
    usize::try_from(index % FORMATS.len() as u64).unwrap_or_default()
}

/// The event type (alert name, reason, Falco rule, CloudEvents type, JSON `type`) rule `rule`
/// reacts to.
fn target_name(rule: usize) -> String {
    format!("Bench{}{rule}", FORMATS[rule % FORMATS.len()])
}

/// Where the type name sits in the decoded event of each format.
fn type_path(format: usize) -> &'static str {
    match format {
        0 => "labels.alertname",
        1 => "reason",
        2 => "rule",
        // CloudEvents rules see the `data`: the generator puts the name there too.
        3 => "pipeline.name",
        _ => "type",
    }
}

/// A second test each rule makes, true for the sample payload of its format.
fn second_predicate(format: usize) -> &'static str {
    match format {
        0 => "{path: labels.severity, in: [critical, warning]}",
        1 => "{path: type, equals: Warning}",
        2 => "{path: priority, in: [Notice, Warning, Error, Critical]}",
        3 => "{path: pipeline.status, equals: succeeded}",
        _ => "{path: attempt, gte: 1}",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_firing_fraction_is_exact_and_evenly_spread() {
        let workload = Workload::new(100, STATEFUL_EVERY, false).expect("samples parse");
        assert_eq!(workload.expected_firings(10_000, 10_000), 100);
        assert_eq!(workload.expected_firings(10_000, 0), 0);
        assert_eq!(workload.expected_firings(1_000, PPM), 1_000);
    }

    #[test]
    fn every_rule_takes_its_turn_to_fire_at_any_fraction() {
        let workload = Workload::new(100, STATEFUL_EVERY, false).expect("samples parse");
        for fire_ppm in [PPM / 100, PPM / 10, PPM] {
            let fired: std::collections::BTreeSet<usize> = (0..100 * PPM / fire_ppm)
                .filter_map(|i| workload.fires(i, fire_ppm))
                .collect();
            assert_eq!(fired.len(), 100, "at {fire_ppm} ppm");
        }
    }

    #[test]
    fn closed_loop_rules_each_carry_a_verification() {
        let workload = Workload::new(10, STATEFUL_EVERY, true).expect("samples parse");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("bench.yaml"), workload.rules_yaml()).expect("write");
        let rules = crate::rules::load_dir(dir.path()).expect("generated rules are valid");
        assert_eq!(rules.rules().len(), 10);
        assert!(rules.rules().iter().all(|r| {
            r.remediation
                .as_ref()
                .is_some_and(|plan| plan.verify.is_some() && plan.loop_guard.is_none())
        }));
    }

    #[test]
    fn the_generated_rules_compile_and_fire_as_the_generator_predicts() {
        use crate::event::decode::{self, DecodeLimits, Decoding, RawRecord};
        let workload = Workload::new(20, STATEFUL_EVERY, false).expect("samples parse");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("bench.yaml"), workload.rules_yaml()).expect("write");
        let rules = crate::rules::load_dir(dir.path()).expect("generated rules are valid");
        let mut engine = crate::rules::Engine::new(std::sync::Arc::new(rules));
        let now = chrono::Utc::now();
        let fire_ppm = PPM / 3;
        for index in 0..300 {
            let (payload, key) = workload.event("t", index, fire_ppm);
            let record = RawRecord {
                topic: "bench",
                partition: 0,
                offset: i64::try_from(index).unwrap_or_default(),
                key: Some(key.as_bytes()),
                headers: Vec::new(),
                payload: Some(&payload),
                timestamp: None,
            };
            let events = decode::decode(&record, Decoding::Auto, &DecodeLimits::default())
                .expect("generated events decode");
            assert_eq!(events.len(), 1);
            let planned = engine.process(&events[0], now).planned;
            let expected = workload.fires(index, fire_ppm);
            let fired: Vec<String> = planned.iter().map(|a| a.rule.clone()).collect();
            match expected {
                Some(rule) => assert_eq!(
                    fired,
                    vec![format!("bench-{rule:03}-{}", FORMATS[rule % 5])],
                    "event {index}"
                ),
                None => assert!(fired.is_empty(), "event {index} fired {fired:?}"),
            }
        }
    }
}
