//! Swapping the rule set of a running pipeline, and what `/readyz` and `/v1/rules` read about
//! it (the running set, each rule's state size and last match) without waiting on records.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use chrono::{DateTime, Utc};

use super::Pipeline;
use crate::rules::{Evaluation, RuleSet};

/// What the HTTP endpoints read without taking the engine lock (which a record holds while its
/// outcomes are recorded): the running rule set and when each rule last planned an action.
#[derive(Debug)]
pub(super) struct View {
    rules: RwLock<Arc<RuleSet>>,
    /// Rule name → last time it fired. Bounded by the rule names loaded (pruned on reload).
    last_match: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl View {
    pub(super) fn new(rules: Arc<RuleSet>) -> Self {
        Self {
            rules: RwLock::new(rules),
            last_match: Mutex::new(HashMap::new()),
        }
    }

    /// Notes the rules that planned actions in `evaluation` as matched at `now`. Costs nothing
    /// for the (usual) evaluation that planned nothing.
    pub(super) fn record(&self, evaluation: &Evaluation, now: DateTime<Utc>) {
        if evaluation.planned.is_empty() {
            return;
        }
        // A panic elsewhere while holding the lock leaves a map that is still valid.
        let mut last = self
            .last_match
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for action in &evaluation.planned {
            if let Some(at) = last.get_mut(&action.rule) {
                *at = now;
            } else {
                last.insert(action.rule.clone(), now);
            }
        }
    }
}

/// The state one stateful rule holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StateSummary {
    /// Group keys holding state: open throttle windows, counting thresholds, pending
    /// correlations or armed absences.
    pub keys: usize,
}

impl Pipeline {
    /// Swaps in a new rule set (already validated as a whole). Rules that keep their name keep
    /// their state (windows, pending correlations); state of removed rules is dropped, and
    /// state of a kind the rule no longer has is dropped key by key when next touched.
    ///
    /// A record takes the running set once, when it starts, so it sees the old set or the new
    /// one, never a mix, and a record already past evaluation finishes with the actions the old
    /// set planned for it. State lives in the store per (rule, key): a removed rule's rows are
    /// no longer read.
    pub async fn replace_rules(&self, rules: Arc<RuleSet>) {
        self.view
            .last_match
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|name, _| rules.get(name).is_some());
        *self
            .view
            .rules
            .write()
            .unwrap_or_else(PoisonError::into_inner) = rules;
    }

    /// The running rule set.
    pub fn rules(&self) -> Arc<RuleSet> {
        Arc::clone(
            &self
                .view
                .rules
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// When each rule last planned an action (rules that never did are absent).
    pub fn last_matches(&self) -> HashMap<String, DateTime<Utc>> {
        self.view
            .last_match
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The state each stateful rule of the running set holds, as the store counts it (every
    /// replica's keys). A rule absent from the answer holds no key.
    pub async fn state_summary(&self) -> Result<BTreeMap<String, StateSummary>, super::Error> {
        let rules = self.rules();
        let counts = self
            .store
            .state_key_counts()
            .await
            .map_err(super::Error::store("counting the keys of stateful rules"))?;
        Ok(counts
            .into_iter()
            .filter(|(rule, _)| rules.get(rule).is_some())
            .map(|(rule, keys)| {
                let summary = StateSummary {
                    keys: usize::try_from(keys).unwrap_or(usize::MAX),
                };
                (rule, summary)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use rdkafka::ClientConfig;

    use super::*;
    use crate::config::{PipelineConfig, TopicsConfig};
    use crate::event::decode::RawRecord;
    use crate::store::Store;

    /// A threshold rule that needs three events, so two events build a window and publish
    /// nothing (no broker is needed).
    const COUNTING: &str = "rules:\n  - name: counting\n    threshold:\n      count: 3\n      \
                            within: 10m\n    actions:\n      - log:\n          message: x\n";
    const OTHER: &str = "rules:\n  - name: other\n    threshold:\n      count: 3\n      \
                         within: 10m\n    actions:\n      - log:\n          message: y\n";

    fn load(files: &[(&str, &str)]) -> Arc<RuleSet> {
        let sources: Vec<(PathBuf, String)> = files
            .iter()
            .map(|(name, text)| (PathBuf::from(name), (*text).to_owned()))
            .collect();
        Arc::new(crate::rules::load_sources(&sources).expect("valid rules"))
    }

    async fn pipeline(dir: &std::path::Path, rules: Arc<RuleSet>) -> Pipeline {
        let url = format!("sqlite://{}", dir.join("audit.db").display());
        let store = Store::connect(&url).await.expect("sqlite store");
        // Never reached: nothing fires, so nothing is published.
        let producer = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .create()
            .expect("producer");
        Pipeline::new(
            rules,
            store,
            producer,
            &TopicsConfig::default(),
            &PipelineConfig::default(),
        )
        .await
        .expect("pipeline")
    }

    async fn feed(pipeline: &Pipeline, offset: i64) {
        let payload = format!("{{\"n\": {offset}}}");
        let record = RawRecord {
            topic: "events",
            partition: 0,
            offset,
            key: None,
            headers: Vec::new(),
            payload: Some(payload.as_bytes()),
            timestamp: None,
        };
        pipeline.handle(&record).await.expect("handled");
    }

    #[tokio::test]
    async fn a_reload_keeps_the_window_of_a_rule_that_stays_and_drops_a_removed_rules_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pipeline = pipeline(dir.path(), load(&[("a.yaml", COUNTING), ("b.yaml", OTHER)])).await;
        feed(&pipeline, 0).await;
        feed(&pipeline, 1).await;
        let before = pipeline.state_summary().await.expect("state summary");
        assert_eq!(
            before.get("counting").map(|s| s.keys),
            Some(1),
            "{before:?}"
        );
        assert_eq!(before.get("other").map(|s| s.keys), Some(1), "{before:?}");

        // `counting` is kept (its file edited around it), `other` removed, `new` added.
        let edited =
            format!("{COUNTING}  - name: new\n    actions:\n      - log:\n          message: z\n");
        pipeline.replace_rules(load(&[("a.yaml", &edited)])).await;

        let after = pipeline.state_summary().await.expect("state summary");
        assert_eq!(after.get("counting"), before.get("counting"), "{after:?}");
        assert!(!after.contains_key("other"), "{after:?}");
        let running = pipeline.rules();
        let names: Vec<&str> = running.rules().iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["counting", "new"]);
    }
}
