//! Wires the stages for one Kafka record: decode → rules → execute → durable outcomes (store and
//! outcomes topic) or a dead letter. The consumer in [`crate::source`] calls [`Pipeline::handle`]
//! and stores the record's offset only when it returns `Ok`.
//!
//! # Constructing it
//!
//! ```ignore
//! let rules: Arc<RuleSet> = /* rules::load_dir(..) */;
//! let store = Store::connect(&config.store.url).await?;
//! let producer: FutureProducer = /* ClientConfig with bootstrap.servers, enable.idempotence=true */;
//! let pipeline = Arc::new(
//!     Pipeline::new(rules, store, producer, &config.kafka.topics, &config.pipeline).await?,
//! );
//! // per record:     pipeline.handle(&raw).await   -> Ok: store the offset; Err: back off, retry
//! // every second:   pipeline.tick(Utc::now()).await
//! ```
//!
//! `handle` needs no external locking: partitions (and replicas) may call it concurrently.
//!
//! # Delivery and effectively-once actions
//!
//! Every planned action is CLAIMED before it runs: a `started` row is inserted under its
//! idempotency key (unique in the store). The insert that wins executes; then the row gets its
//! final status, the outcome record is published to the outcomes topic (awaiting the broker's
//! acknowledgement) and the row is marked published. When the insert finds the key taken:
//! - a final row already published: the record was redelivered; a `duplicate` outcome is
//!   recorded and published, nothing executes. Its row (key `<key>.duplicate`) is one per
//!   action: a later redelivery, or a retry while Kafka is down, refreshes it;
//! - a final row not yet published (a crash or a Kafka outage after the store update): the
//!   original outcome is published now and nothing executes. Another instance does so only
//!   once the recording instance's claim lease has passed (until then that instance is likely
//!   publishing it itself, and `handle` returns [`Error::ClaimedElsewhere`]);
//! - a `started` row: an attempt began and never ended. If this process made it (the claim
//!   names the instance), or the claim is older than `pipeline.claim_lease_secs` (its process
//!   is presumed dead), the row is taken over by a compare-and-set on its attempt count (so of
//!   several racers exactly one wins) and the action runs again — only when repeating it is
//!   harmless (dry run, kinds without an executor,
//!   [`crate::rules::action::Action::is_idempotent`]: `log`, absolute changes, Kafka
//!   publishes, webhooks whose rule declares `idempotent_receiver`);
//!   otherwise the outcome is `failed` with an error saying the first attempt may have taken
//!   effect. A younger claim of another instance is in flight elsewhere: `handle` returns
//!   [`Error::ClaimedElsewhere`] and the caller retries later, when the row is final
//!   (→ duplicate) or stale (→ taken over).
//!
//! A process that is still running knows more than its rows: when the store fails under an
//! attempt (an outage, a full disk), it remembers per key whether the action ran and how it
//! ended (`unrecorded.rs`), so the record's retry records that end, or executes an action that
//! never ran, instead of refusing its own claim as a crashed attempt's. An action whose
//! service could not be reached at all ([`crate::actions::Execution::Unreachable`]: no
//! connection to the API server, no target lock from the store) withdraws its claim and fails
//! the record with [`Error::Unreachable`], to be retried like a store or Kafka outage.
//!
//! On PostgreSQL the unique key and the compare-and-set make this hold across replicas sharing
//! the database; on SQLite it holds across restarts of one process.
//!
//! # Rule state
//!
//! The state of stateful rules (throttle, threshold, correlate, absence) lives in the store, one
//! row per (rule, group key), and nowhere else between records: a record that may touch keys
//! locks them (this process's lock, then the store's: on PostgreSQL a row lock in a
//! transaction), reads them into a fresh engine, evaluates, records its outcomes, writes the
//! keys' new state and only then commits and unlocks (`state.rs`). So a key is decided by one
//! process at a time, whichever replica or partition its events arrive on; keys on different
//! partitions decide in parallel; and a failure before the commit leaves the key as it was, so
//! the retry evaluates the record afresh. A record that touches no stateful key locks nothing.
//! Due timers (`once_after`, `absence`, window expiry) are claimed by the first replica whose
//! [`Pipeline::tick`] finds them (`FOR UPDATE SKIP LOCKED`), so a replica that dies leaves its
//! timers to the others. Each key remembers, per input partition, the offset of the last
//! record applied to it: a redelivered record is not counted into a window twice. The cost per
//! stateful record: a transaction with one locking read per key and one write per changed key
//! (docs/performance.md).

mod counters;
mod error;
mod execute;
pub mod reload;
mod remediate;
mod state;
mod unrecorded;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::producer::FutureProducer;

use crate::config::{PipelineConfig, TopicsConfig};
use crate::event::decode::{self, DecodeError, DecodeLimits, Decoding, RawRecord};
use crate::outcome::topic::{Publisher, producer_max_message_bytes};
use crate::rules::{Engine, RuleSet, StateKey};
use crate::store::{self, Store};

pub use error::Error;

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Decoded and evaluated; this many outcomes were recorded (duplicates included).
    Outcomes(usize),
    /// Could not be decoded; written to the dead-letter topic.
    DeadLettered,
}

/// The per-process pipeline, shared by every partition worker (`Arc<Pipeline>`).
#[derive(Debug)]
pub struct Pipeline {
    store: Store,
    /// This process's locks on rule state keys (see `state.rs`).
    key_locks: state::KeyLocks,
    /// Bounds the decisions holding store locks at once: each keeps a connection for its
    /// transaction while its actions need others from the same pool.
    deciding: tokio::sync::Semaphore,
    publisher: Publisher,
    decoding: BTreeMap<String, Decoding>,
    limits: DecodeLimits,
    record_no_match: bool,
    claim_lease: Duration,
    /// Names this process in claims: `<HOSTNAME or reflex>-<pid>-<start time in ns>`.
    instance: String,
    /// Idempotency keys being executed by this process right now.
    in_flight: execute::InFlight,
    /// What this process executed (or did not) under keys whose store write failed.
    unrecorded: unrecorded::Memory,
    /// What can carry out actions; `log` only until [`Pipeline::with_executors`].
    executors: crate::actions::Executors,
    /// Guardrails around executions; the `actions:` defaults until [`Pipeline::with_guard`].
    guard: crate::actions::guard::Guard,
    /// `pipeline.record_throttled`.
    record_throttled: bool,
    /// Cached metric handles.
    counters: counters::Counters,
    /// The running rule set and last matches, for the HTTP endpoints (see `reload.rs`).
    view: reload::View,
}

impl Pipeline {
    /// Builds the pipeline on `store`, moving rule state of the earliest format to key rows
    /// (nothing else is loaded: a record reads the keys it reaches).
    ///
    /// `producer` publishes outcome records and dead letters (configure it with
    /// `enable.idempotence=true`); `topics` gives `outcomes` and `dead_letters`; `config` the
    /// per-topic decoding, decode limits, `record_no_match` and `claim_lease_secs`.
    pub async fn new(
        rules: Arc<RuleSet>,
        store: Store,
        producer: FutureProducer,
        topics: &TopicsConfig,
        config: &PipelineConfig,
    ) -> Result<Pipeline, Error> {
        state::migrate_legacy(&rules, &store).await?;
        let started = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(|| "reflex".to_owned());
        // Default guardrails, which already refuse Kafka actions aimed at these topics.
        let defaults = crate::config::Config {
            kafka: crate::config::KafkaConfig {
                topics: topics.clone(),
                ..Default::default()
            },
            ..Default::default()
        };
        let guard = crate::actions::guard::Guard::new(&defaults, &store);
        Ok(Pipeline {
            deciding: tokio::sync::Semaphore::new(store.max_connections().div_ceil(2)),
            key_locks: state::KeyLocks::default(),
            store,
            // `build_pipeline` gives the producer this `message.max.bytes` unless configured.
            publisher: Publisher::new(producer, &topics.outcomes, &topics.dead_letters)
                .with_max_message_bytes(producer_max_message_bytes(config.max_payload_bytes)),
            decoding: config.decoding.clone(),
            limits: config.decode_limits(),
            record_no_match: config.record_no_match,
            claim_lease: Duration::from_secs(config.claim_lease_secs),
            instance: format!("{host}-{}-{started}", std::process::id()),
            in_flight: execute::InFlight::default(),
            unrecorded: unrecorded::Memory::default(),
            executors: crate::actions::Executors::log_only(),
            guard,
            record_throttled: config.record_throttled,
            counters: counters::Counters::default(),
            view: reload::View::new(rules),
        })
    }

    /// Uses these executors for Kubernetes, webhook and Kafka actions (default: `log` only, and
    /// every other kind is recorded `not_implemented`).
    pub fn with_executors(mut self, executors: crate::actions::Executors) -> Self {
        self.executors = executors;
        self
    }

    /// The name this process writes into its claims.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The audit store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Handles one record to completion (see the module docs).
    pub async fn handle(&self, record: &RawRecord<'_>) -> Result<Handled, Error> {
        let handled = self.handle_record(record).await?;
        // Only a record that is done counts: a retried one is observed once, when it succeeds.
        counters::Counters::latency(record);
        Ok(handled)
    }

    async fn handle_record(&self, record: &RawRecord<'_>) -> Result<Handled, Error> {
        let decoding = self.decoding.get(record.topic).copied().unwrap_or_default();
        let events = match decode::decode(record, decoding, &self.limits) {
            Ok(events) => events,
            Err(err) => {
                let message = err.to_string();
                self.publisher
                    .dead_letter(record, dead_letter_reason(&err), &message)
                    .await
                    .map_err(Error::publish(format!(
                        "dead-lettering record {}/{}/{}",
                        record.topic, record.partition, record.offset
                    )))?;
                counters::Counters::dead_lettered(record.topic, dead_letter_reason(&err));
                tracing::warn!(
                    topic = record.topic,
                    partition = record.partition,
                    offset = record.offset,
                    reason = dead_letter_reason(&err),
                    error = %message,
                    dead_letters = self.publisher.dead_letter_topic(),
                    "undecodable record dead-lettered"
                );
                return Ok(Handled::DeadLettered);
            }
        };
        self.counters.decoded(record.topic, &events);
        // A resolved alert may end the verification of a remediation it triggered, whatever
        // the rules make of the notification itself.
        for event in events
            .iter()
            .filter(|e| e.alert_status() == Some("resolved"))
        {
            if self.rules().rules().iter().any(|r| r.remediation.is_some()) {
                self.resolved(event).await?;
            }
        }
        let source = execute::Source {
            topic: record.topic.to_owned(),
            partition: record.partition,
            offset: record.offset,
        };
        let now = Utc::now();
        let rules = self.rules();
        let mut engine = Engine::new(Arc::clone(&rules));
        let keys = engine.state_keys(&events);
        if keys.is_empty() {
            // No stateful key involved: nothing to lock, partitions evaluate in parallel.
            let mut work = Vec::new();
            for event in &events {
                self.evaluate(&mut engine, event, now, &source, &mut work);
            }
            return self.run(work).await.map(Handled::Outcomes);
        }
        let waiting = std::time::Instant::now();
        let _slot = self.deciding.acquire().await.expect("never closed");
        let _held = self.key_locks.lock_all(&keys).await;
        let (mut lease, rows) = self
            .store
            .lock_keys(&keys, now)
            .await
            .map_err(Error::store(format!(
                "locking the rule state of record {}/{}/{}",
                record.topic, record.partition, record.offset
            )))?;
        crate::metrics::global()
            .state_lock_wait
            .observe(waiting.elapsed().as_secs_f64());
        let partition = format!("{}/{}", record.topic, record.partition);
        let mut engine = state::engine_for(&rules, &rows);
        engine.skip_applied(state::already_applied(&rows, &partition, record.offset));
        let mut work = Vec::new();
        // A due burst or timeout of these keys fires before a later event can join it.
        if engine.next_deadline().is_some_and(|due| due <= now) {
            let evaluation = engine.tick(now);
            self.view.record(&evaluation, now);
            execute::collect(&mut work, evaluation, None);
        }
        let mut decided = BTreeSet::new();
        for event in &events {
            decided.extend(self.evaluate(&mut engine, event, now, &source, &mut work));
        }
        let count = self.run(work).await?;
        let writes = state::writes(
            &mut engine,
            rows,
            &decided,
            Some((&partition, record.offset)),
            now,
        )?;
        let saving = || {
            Error::store(format!(
                "saving the rule state of record {}/{}/{}",
                record.topic, record.partition, record.offset
            ))
        };
        lease.write(writes).await.map_err(saving())?;
        lease.commit(&self.store).await.map_err(saving())?;
        Ok(Handled::Outcomes(count))
    }

    /// Evaluates one event, adds its work, and returns the keys of the throttle decisions it
    /// caused (decided without a state change, yet the event counts as applied to them).
    fn evaluate(
        &self,
        engine: &mut Engine,
        event: &crate::event::Event,
        now: DateTime<Utc>,
        source: &execute::Source,
        work: &mut Vec<execute::Work>,
    ) -> Vec<StateKey> {
        let evaluation = if self.record_no_match {
            engine.process_traced(event, now)
        } else {
            engine.process(event, now)
        };
        counters::Counters::matches(&evaluation);
        self.view.record(&evaluation, now);
        if self.record_no_match && execute::matched_nothing(&evaluation) {
            work.push(execute::Work::NoMatch {
                event_id: event.meta.id.clone(),
                source: source.clone(),
            });
        }
        let decided = evaluation
            .throttled
            .iter()
            .map(|t| StateKey {
                rule: t.rule.clone(),
                key: t.key.clone(),
            })
            .collect();
        execute::collect(work, evaluation, Some(source));
        decided
    }

    /// Lets time pass: follows up due remediations (`remediate/`), then fires due stateful
    /// timers (`once_after`, `absence`) and expires windows at `now`, for the keys no other
    /// process holds; returns the number of outcomes recorded. Any replica's sweep may take a
    /// remediation or a key: the first to lease or lock it does.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<usize, Error> {
        let followed = self.follow_up(now).await?;
        Ok(followed + self.tick_keys(now).await?)
    }

    async fn tick_keys(&self, now: DateTime<Utc>) -> Result<usize, Error> {
        let _slot = self.deciding.acquire().await.expect("never closed");
        let (mut lease, rows) = self
            .store
            .due_keys(now, DUE_PER_TICK)
            .await
            .map_err(Error::store("claiming due rule timers"))?;
        if rows.is_empty() {
            return Ok(0);
        }
        // Keys a record of this process is deciding on are left to it (it ticks them first).
        let mut held = Vec::new();
        let rows: Vec<_> = rows
            .into_iter()
            .filter(|row| match self.key_locks.try_lock(&row.key) {
                Some(guard) => {
                    held.push(guard);
                    true
                }
                None => false,
            })
            .collect();
        let rows = match lease {
            // SQLite: the candidates were read before this process's locks; read them again
            // under the locks, so a decision that ended in between is not written over.
            store::KeyLease::Deferred { .. } => {
                let keys = rows.into_iter().map(|row| row.key).collect();
                let (fresh, rows) = self
                    .store
                    .lock_keys(&keys, now)
                    .await
                    .map_err(Error::store("reading due rule timers"))?;
                lease = fresh;
                rows
            }
            store::KeyLease::Held(_) => rows,
        };
        let mut engine = state::engine_for(&self.rules(), &rows);
        let mut work = Vec::new();
        let evaluation = engine.tick(now);
        self.view.record(&evaluation, now);
        execute::collect(&mut work, evaluation, None);
        let count = self.run(work).await?;
        let writes = state::writes(&mut engine, rows, &BTreeSet::new(), None, now)?;
        let saving = || Error::store("saving the rule state after firing due timers");
        lease.write(writes).await.map_err(saving())?;
        lease.commit(&self.store).await.map_err(saving())?;
        Ok(count)
    }
}

impl Pipeline {
    /// Holds every stateful rule to its `max_keys` in the store: a rule over it loses the keys
    /// whose deadline comes first (logged at WARN, counted in the rule's `evictions`). Run
    /// periodically by the timer; a key template that renders something unique per event (an
    /// id, a timestamp) would otherwise grow the table without end.
    pub async fn bound_keys(&self) -> Result<u64, Error> {
        let rules = self.rules();
        let counts = self
            .store
            .state_key_counts()
            .await
            .map_err(Error::store("counting the keys of stateful rules"))?;
        let mut evicted = 0;
        for (name, keys) in counts {
            let Some(rule) = rules.get(&name) else {
                continue;
            };
            let bound = rule.max_keys.max(1) as u64;
            if keys <= bound {
                continue;
            }
            let gone = self
                .store
                .evict_keys(&name, keys - bound)
                .await
                .map_err(Error::store(format!("evicting keys of rule `{name}`")))?;
            crate::metrics::global()
                .state_keys_evicted
                .get_or_create(&crate::metrics::RuleLabels { rule: name.clone() })
                .inc_by(gone);
            tracing::warn!(
                rule = %name,
                keys,
                max_keys = bound,
                evicted = gone,
                "rule holds more keys than its max_keys; the keys due first were evicted \
                 (check its key template, or raise max_keys)"
            );
            evicted += gone;
        }
        // Finished remediations are kept for `reflex history` a week, like a week of alerts.
        let before = Utc::now() - chrono::Duration::days(REMEDIATION_RETENTION_DAYS);
        self.store
            .forget_remediations(before.timestamp_millis())
            .await
            .map_err(Error::store("forgetting finished remediations"))?;
        Ok(evicted)
    }
}

/// Days a finished remediation (and a resolved alert occurrence) is kept.
const REMEDIATION_RETENTION_DAYS: i64 = 7;

/// Due keys one sweep takes at most; more are taken by the next sweep (a second later) or by
/// another replica meanwhile.
const DUE_PER_TICK: i64 = 64;

/// The `reflex-dlq-reason` code of a decode error.
pub fn dead_letter_reason(err: &DecodeError) -> &'static str {
    match err {
        DecodeError::Tombstone { .. } => "tombstone",
        DecodeError::Empty { .. } => "empty",
        DecodeError::TooLarge { .. } => "too_large",
        DecodeError::NotUtf8 { .. } => "not_utf8",
        DecodeError::NotJson { .. } => "not_json",
        DecodeError::NotProtobuf { .. } => "not_protobuf",
        DecodeError::TooDeep { .. } => "too_deep",
        DecodeError::WrongFormat { .. } => "wrong_format",
        DecodeError::MissingAttributes { .. } => "missing_attributes",
        DecodeError::Invalid { .. } => "invalid",
    }
}
