//! One rule set over the history: the real engine on event time, and the guardrails
//! simulated in memory over the same clock — the namespace, cluster-scoped and Kafka topic
//! policies ([`Policies`], the checks `reflex run` makes), the circuit breaker per rule and per
//! target, and the closed loop's loop guard — counting what each rule did and what each guard
//! would have refused.
//!
//! Not simulated: what only the cluster can say (whether a remediation worked, so escalation
//! steps, undo and refires of an open remediation), webhook and Kubernetes failures, and
//! `max_concurrent`/locks, which delay rather than refuse. Every firing of a closed-loop rule
//! counts as a new remediation for the loop guard.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::super::replay::input::EventClock;
use crate::actions::guard::Policies;
use crate::actions::guard::circuit::Limits;
use crate::config::Config;
use crate::event::Event;
use crate::rules::action::ActionKind;
use crate::rules::engine::{Engine, Evaluation};
use crate::rules::remediation::object::describe_target;
use crate::rules::remediation::object_of;
use crate::rules::{PlannedAction, RuleSet};

/// The guard that refused an action in the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Refused {
    /// `actions.namespaces` / the rule's `guard.namespaces`.
    Namespace,
    /// `actions.cluster_scoped`.
    ClusterScoped,
    /// `actions.kafka_allowed_topics` and Reflex's own topics.
    KafkaTopic,
    /// The circuit breaker (per rule or per target).
    CircuitBreaker,
    /// The closed loop's loop guard: the target is (or becomes) quarantined.
    LoopGuard,
}

impl Refused {
    /// The name in reports, as `details.guard.guard` names it in outcomes.
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Namespace => "namespace",
            Refused::ClusterScoped => "cluster_scoped",
            Refused::KafkaTopic => "kafka_topic",
            Refused::CircuitBreaker => "circuit_breaker",
            Refused::LoopGuard => "loop_guard",
        }
    }

    fn of(policy: crate::actions::guard::Policy) -> Self {
        use crate::actions::guard::Policy;
        match policy {
            Policy::Namespace => Refused::Namespace,
            Policy::ClusterScoped => Refused::ClusterScoped,
            Policy::KafkaTopic => Refused::KafkaTopic,
        }
    }
}

/// What one rule did over the history.
#[derive(Debug, Clone, Default)]
pub struct RuleTally {
    /// Events whose selector and condition held.
    pub matched: u64,
    /// Times the rule fired (on an event or a timer).
    pub firings: u64,
    /// Actions planned, by kind.
    pub actions: BTreeMap<&'static str, u64>,
    /// Actions that would have executed (passed every guard, not dry run).
    pub executed: u64,
    /// Actions skipped as dry run (the rule's `dry_run` or `actions.dry_run`).
    pub dry_run: u64,
    /// Actions refused, by guard.
    pub refused: BTreeMap<Refused, u64>,
    /// Firings `throttle.once_within` suppressed.
    pub throttled: u64,
    /// Actions that could not be planned (a template failed to render).
    pub failures: u64,
    /// Actions planned per target.
    pub targets: HashMap<String, u64>,
    /// Firings per minute (Unix minute).
    pub minutes: BTreeMap<i64, u64>,
}

/// One planned action, kept for `--against`: matched across rule sets by rule, event id and
/// action index.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// The rule.
    pub rule: String,
    /// The event that triggered the firing.
    pub event_id: String,
    /// Position of the action in the rule's list.
    pub action_index: usize,
    /// Its kind.
    pub kind: &'static str,
    /// Its rendered parameters.
    pub params: Value,
    /// When it was planned (event time).
    pub at: DateTime<Utc>,
}

/// The circuit of one rule (target `""`) or one rule on one target.
#[derive(Debug, Default)]
struct Circuit {
    /// Start times of executions, oldest first, within the window.
    executions: VecDeque<DateTime<Utc>>,
    open_until: Option<DateTime<Utc>>,
}

impl Circuit {
    /// The breaker's verdict for one more execution (as `actions::guard::circuit` counts: the
    /// new one included, since the window began or the last opening ended); opens the circuit
    /// for the cool-down when it is one too many.
    fn admits(&mut self, limit: u32, limits: &Limits, now: DateTime<Utc>) -> bool {
        if self.open_until.is_some_and(|until| until > now) {
            return false;
        }
        let window_start = now - to_chrono(limits.window);
        let since = self
            .open_until
            .map_or(window_start, |until| until.max(window_start));
        let count = self.executions.iter().filter(|&&t| t >= since).count() + 1;
        if count <= limit as usize {
            return true;
        }
        self.open_until = Some(now + to_chrono(limits.cool_down));
        false
    }

    fn record(&mut self, now: DateTime<Utc>, window: std::time::Duration) {
        let window_start = now - to_chrono(window);
        while self.executions.front().is_some_and(|&t| t < window_start) {
            self.executions.pop_front();
        }
        self.executions.push_back(now);
    }
}

/// The loop guard's view of one rule on one target.
#[derive(Debug, Default)]
struct Loop {
    /// Start times of remediations, oldest first.
    starts: VecDeque<DateTime<Utc>>,
    quarantined_until: Option<DateTime<Utc>>,
}

/// One rule set run over the history.
pub struct Simulation {
    rules: Arc<RuleSet>,
    engine: Engine,
    clock: EventClock,
    policies: Policies,
    global_dry_run: bool,
    positions: HashMap<String, usize>,
    circuits: HashMap<(usize, String), Circuit>,
    loops: HashMap<(usize, String), Loop>,
    tallies: Vec<RuleTally>,
    /// Every planned action, when kept for `--against`.
    planned: Option<Vec<Planned>>,
}

impl Simulation {
    /// A simulation of `rules` under the guardrails of `config`; `keep_planned` keeps every
    /// planned action (for `--against`).
    pub fn new(rules: Arc<RuleSet>, config: &Config, keep_planned: bool) -> Self {
        let positions = rules
            .rules()
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.clone(), i))
            .collect();
        Self {
            engine: Engine::new(Arc::clone(&rules)),
            tallies: vec![RuleTally::default(); rules.len()],
            rules,
            clock: EventClock::default(),
            policies: Policies::new(config),
            global_dry_run: config.actions.dry_run,
            positions,
            circuits: HashMap::new(),
            loops: HashMap::new(),
            planned: keep_planned.then(Vec::new),
        }
    }

    /// Runs one event at its own time, after the timers due by then.
    pub fn event(&mut self, event: &Event) {
        let (now, timers) = self.clock.advance(&mut self.engine, event.meta.timestamp);
        self.account(&timers, now);
        let eval = self.engine.process(event, now);
        for &pos in &eval.matched {
            self.tallies[pos].matched += 1;
        }
        self.account(&eval, now);
    }

    /// Lets event time run to `until` (the end of the slice), firing the timers due by then:
    /// an absence whose deadline passed inside the slice is a firing of the slice.
    pub fn finish(&mut self, until: Option<DateTime<Utc>>) {
        if let Some(until) = until.or(self.clock.now()) {
            let (now, timers) = self.clock.advance(&mut self.engine, until);
            self.account(&timers, now);
        }
    }

    /// The rules.
    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// What each rule did, in rule-set order.
    pub fn tallies(&self) -> &[RuleTally] {
        &self.tallies
    }

    /// Every planned action, when kept.
    pub fn take_planned(&mut self) -> Vec<Planned> {
        self.planned.take().unwrap_or_default()
    }

    fn account(&mut self, eval: &Evaluation, now: DateTime<Utc>) {
        for t in &eval.throttled {
            if let Some(&pos) = self.positions.get(&t.rule) {
                self.tallies[pos].throttled += 1;
            }
        }
        for f in &eval.failures {
            if let Some(&pos) = self.positions.get(&f.rule) {
                self.tallies[pos].failures += 1;
            }
        }
        // Actions are planned firing by firing, in action order: a firing ends where the rule
        // or event changes or the action index starts again.
        let mut rest = eval.planned.as_slice();
        while let Some(first) = rest.first() {
            let len = 1 + rest
                .windows(2)
                .take_while(|w| {
                    w[1].rule == first.rule
                        && w[1].event_id == first.event_id
                        && w[1].action_index > w[0].action_index
                })
                .count();
            let (firing, tail) = rest.split_at(len);
            self.firing(firing, now);
            rest = tail;
        }
    }

    fn firing(&mut self, actions: &[PlannedAction], now: DateTime<Utc>) {
        let Some(&pos) = self.positions.get(&actions[0].rule) else {
            return;
        };
        let tally = &mut self.tallies[pos];
        tally.firings += 1;
        *tally
            .minutes
            .entry(now.timestamp().div_euclid(60))
            .or_default() += 1;
        let quarantined = self.loop_guard(pos, actions, now);
        for action in actions {
            self.action(pos, action, quarantined, now);
        }
    }

    /// The loop guard of a closed-loop rule before its firing runs (as the pipeline checks it
    /// before step 0): `true` when the target is quarantined, or becomes so now.
    fn loop_guard(&mut self, pos: usize, actions: &[PlannedAction], now: DateTime<Utc>) -> bool {
        let rule = &self.rules.rules()[pos];
        let Some(guard) = rule
            .remediation
            .as_ref()
            .and_then(|p| p.loop_guard.as_ref())
        else {
            return false;
        };
        // The remediation's target: the first object a Kubernetes action names, else the
        // first target of any kind (as the pipeline names it).
        let target = actions
            .iter()
            .find_map(|a| object_of(&a.action).map(|t| describe_target(&t)))
            .or_else(|| actions.iter().find_map(|a| a.action.target()));
        let Some(target) = target else {
            return false;
        };
        let state = self.loops.entry((pos, target)).or_default();
        if state.quarantined_until.is_some_and(|until| until > now) {
            return true;
        }
        let window_start = now - guard.within;
        let recent = state.starts.iter().filter(|&&t| t >= window_start).count();
        if recent >= guard.max as usize {
            state.quarantined_until = Some(now + guard.quarantine);
            return true;
        }
        while state.starts.front().is_some_and(|&t| t < window_start) {
            state.starts.pop_front();
        }
        state.starts.push_back(now);
        false
    }

    /// One planned action through the guards, in the order `reflex run` applies them: where it
    /// acts, dry run, the circuit breaker.
    fn action(
        &mut self,
        pos: usize,
        action: &PlannedAction,
        quarantined: bool,
        now: DateTime<Utc>,
    ) {
        let rule = &self.rules.rules()[pos];
        let kind = action.kind();
        let target = action.action.target();
        let tally = &mut self.tallies[pos];
        *tally.actions.entry(kind.as_str()).or_default() += 1;
        if let Some(target) = &target {
            match tally.targets.get_mut(target) {
                Some(n) => *n += 1,
                None => {
                    tally.targets.insert(target.clone(), 1);
                }
            }
        }
        if let Some(planned) = &mut self.planned {
            planned.push(Planned {
                rule: action.rule.clone(),
                event_id: action.event_id.clone(),
                action_index: action.action_index,
                kind: kind.as_str(),
                params: action.action.params_json(),
                at: now,
            });
        }
        let refused = if quarantined {
            Some(Refused::LoopGuard)
        } else if let Err(refusal) = self.policies.check(action, &rule.guard) {
            Some(Refused::of(refusal.policy))
        } else if action.dry_run || self.global_dry_run {
            tally.dry_run += 1;
            return;
        } else if kind != ActionKind::Log && !self.circuit(pos, kind, target, now) {
            Some(Refused::CircuitBreaker)
        } else {
            None
        };
        let tally = &mut self.tallies[pos];
        match refused {
            Some(guard) => *tally.refused.entry(guard).or_default() += 1,
            None => tally.executed += 1,
        }
    }

    /// The circuit breaker for one execution of a (non-`log`) action: the rule-wide circuit,
    /// then the target's; an admitted execution counts in both, a refused one in neither.
    fn circuit(
        &mut self,
        pos: usize,
        kind: ActionKind,
        target: Option<String>,
        now: DateTime<Utc>,
    ) -> bool {
        let limits = self.policies.limits(kind, &self.rules.rules()[pos].guard);
        let scopes = [
            (String::new(), limits.per_rule),
            (target.clone().unwrap_or_default(), limits.per_target),
        ];
        for (scope, limit) in &scopes {
            let applies = limit.is_some() && (scope.is_empty() || target.is_some());
            if let (true, Some(limit)) = (applies, limit) {
                let circuit = self.circuits.entry((pos, scope.clone())).or_default();
                if !circuit.admits(*limit, &limits, now) {
                    return false;
                }
            }
        }
        for (scope, _) in &scopes[..if target.is_some() { 2 } else { 1 }] {
            self.circuits
                .entry((pos, scope.clone()))
                .or_default()
                .record(now, limits.window);
        }
        true
    }
}

fn to_chrono(d: std::time::Duration) -> Duration {
    Duration::from_std(d).unwrap_or(Duration::MAX)
}
