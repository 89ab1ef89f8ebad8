//! What `replay` and `backtest` share: reading an events file (JSON lines, or raw log lines),
//! decoding its lines and Kafka records as `reflex run` would (configured per-topic decoding and
//! limits), and running the engine on the events' own time with due timers fired as time passes.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::config::Config;
use crate::event::Event;
use crate::event::decode::{DecodeLimits, Decoding, RawRecord, decode, logs};
use crate::rules::engine::Evaluation;
use crate::rules::testing::run_timers;
use crate::rules::{Engine, LoadError, RuleSet, load_dir};

/// Longest input line read, at least: a line holds one event (bounded by the decode limits,
/// which `decode` applies as `reflex run` does) plus its envelope; this bound keeps a stray
/// binary file from being read into memory as one line. Raised to twice
/// `pipeline.max_payload_bytes` when that is larger, for escaped payloads in envelopes.
const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// `reflex run`'s configuration from `path` (or the defaults), with the environment's
/// overrides (`KAFKA_BOOTSTRAP_SERVERS`, ...) applied as `reflex run` applies them.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    Config::load(path).with_context(|| match path {
        Some(path) => format!("cannot load the configuration {}", path.display()),
        None => "the default configuration with the environment's overrides is invalid".to_owned(),
    })
}

/// The rules of `dir`; `Ok(None)` when they are invalid, every problem printed to stderr.
pub fn load_rules(dir: &Path) -> anyhow::Result<Option<Arc<RuleSet>>> {
    match load_dir(dir) {
        Ok(rules) => Ok(Some(Arc::new(rules))),
        Err(LoadError::Invalid(problems)) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!(
                "{} problem(s) in the rules of {}; fix them first (reflex validate)",
                problems.len(),
                dir.display()
            );
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
struct Envelope {
    topic: String,
    payload: Value,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    timestamp: Option<DateTime<Utc>>,
}

/// How lines and records become events: what `reflex run` would do with them.
#[derive(Debug, Clone)]
pub struct Decoder {
    /// Topic of bare payload lines.
    topic: String,
    /// A decoder forced on the command line.
    forced: Option<Decoding>,
    /// `pipeline.decoding`.
    per_topic: BTreeMap<String, Decoding>,
    limits: DecodeLimits,
}

impl Decoder {
    /// The configured decoding and limits; `topic` names bare lines, `forced` overrides the
    /// configured decoding.
    pub fn new(config: &Config, topic: &str, forced: Option<Decoding>) -> Self {
        Self {
            topic: topic.to_owned(),
            forced,
            per_topic: config.pipeline.decoding.clone(),
            limits: config.pipeline.decode_limits(),
        }
    }

    /// The events of one Kafka record, decoded by the function `reflex run` uses.
    pub fn record(&self, record: &RawRecord<'_>) -> Result<Vec<Event>, String> {
        decode(record, self.decoding_of(record.topic), &self.limits).map_err(|e| e.to_string())
    }

    /// The events of one line, decoded by the function `reflex run` uses, with the same limits:
    /// a bare line is a record value; an envelope's payload is the value serialized as JSON.
    /// The record's offset is the line number.
    fn line(&self, line: &[u8], number: usize) -> Result<Vec<Event>, String> {
        let envelope = serde_json::from_slice::<Value>(line).ok().filter(|value| {
            value.get("topic").is_some_and(Value::is_string) && value.get("payload").is_some()
        });
        let envelope: Option<Envelope> = envelope
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| format!("bad envelope: {e}"))?;
        let env = envelope.as_ref();
        let topic = env.map_or(self.topic.as_str(), |e| e.topic.as_str());
        let payload = match env.map(|e| &e.payload) {
            // A log line in an envelope is a JSON string; the record `reflex run` would read
            // holds the line itself, not its JSON quoting.
            Some(Value::String(text)) if logs::is_text(self.decoding_of(topic)) => {
                Cow::Borrowed(text.as_bytes())
            }
            Some(payload) => {
                Cow::Owned(serde_json::to_vec(payload).map_err(|e| format!("bad payload: {e}"))?)
            }
            None => Cow::Borrowed(line),
        };
        let record = RawRecord {
            topic,
            partition: 0,
            offset: i64::try_from(number).unwrap_or(i64::MAX),
            key: env.and_then(|e| e.key.as_deref()).map(str::as_bytes),
            headers: env
                .map(|e| {
                    e.headers
                        .iter()
                        .map(|(name, value)| (name.as_str(), Some(value.as_bytes())))
                        .collect()
                })
                .unwrap_or_default(),
            payload: Some(&*payload),
            timestamp: env.and_then(|e| e.timestamp),
        };
        self.record(&record)
    }

    /// The forced decoder, else the topic's `pipeline.decoding`, else auto-detection.
    fn decoding_of(&self, topic: &str) -> Decoding {
        self.forced
            .or_else(|| self.per_topic.get(topic).copied())
            .unwrap_or_default()
    }
}

/// Reads the events file `path` (`-`: stdin), one record per line, either a bare record value
/// (JSON, or a raw log line under a log decoding) or an envelope `{"topic", "payload", "key"?,
/// "headers"?, "timestamp"?}`, and hands each
/// decoded event to `each` with its line number. Lines that are too long or cannot be decoded
/// are reported on stderr and skipped; returns how many were.
pub fn read_events(
    path: &Path,
    decoder: &Decoder,
    mut each: impl FnMut(usize, Event) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    let max_line = MAX_LINE_BYTES.max(decoder.limits.max_payload_bytes.saturating_mul(2));
    let mut reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Box::new(BufReader::new(file))
    };
    let mut bad = 0;
    let mut line = Vec::new();
    for number in 1.. {
        let fits = match read_line(&mut reader, max_line, &mut line)
            .with_context(|| format!("reading line {number} of {}", path.display()))?
        {
            None => break,
            Some(fits) => fits,
        };
        if !fits {
            eprintln!(
                "line {number}: skipped, longer than {max_line} bytes (an event is at most \
                 {} bytes: pipeline.max_payload_bytes)",
                decoder.limits.max_payload_bytes
            );
            bad += 1;
            continue;
        }
        if line.trim_ascii().is_empty() {
            continue;
        }
        match decoder.line(&line, number) {
            Ok(batch) => {
                for event in batch {
                    each(number, event)?;
                }
            }
            Err(why) => {
                eprintln!("line {number}: skipped, {why}");
                bad += 1;
            }
        }
    }
    Ok(bad)
}

/// Reads one line (without its `\n`) into `line`, keeping at most `max` bytes: `Some(true)`
/// for a line within the bound, `Some(false)` for a longer one (read to its end and dropped,
/// never held whole in memory), `None` at the end of the input.
fn read_line(
    reader: &mut dyn BufRead,
    max: usize,
    line: &mut Vec<u8>,
) -> std::io::Result<Option<bool>> {
    line.clear();
    let (mut read_any, mut fits) = (false, true);
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(read_any.then_some(fits));
        }
        read_any = true;
        let newline = chunk.iter().position(|&b| b == b'\n');
        let part = &chunk[..newline.unwrap_or(chunk.len())];
        if fits && line.len() + part.len() <= max {
            line.extend_from_slice(part);
        } else {
            fits = false;
            line.clear();
        }
        let used = newline.map_or(chunk.len(), |i| i + 1);
        reader.consume(used);
        if newline.is_some() {
            return Ok(Some(fits));
        }
    }
}

/// Event time for an engine: it only moves forward (an event older than one seen runs at the
/// latest time seen, as a late record does in `reflex run`), and the timers due by then fire
/// before the event, so windows, bursts and absences behave as they did when the events
/// happened.
#[derive(Debug, Default, Clone, Copy)]
pub struct EventClock {
    now: Option<DateTime<Utc>>,
}

impl EventClock {
    /// Moves the clock to `at` (never backwards) and fires the timers due by then; returns the
    /// engine's time and what the timers planned.
    pub fn advance(
        &mut self,
        engine: &mut Engine,
        at: DateTime<Utc>,
    ) -> (DateTime<Utc>, Evaluation) {
        let now = self.now.map_or(at, |c| c.max(at));
        self.now = Some(now);
        let mut timers = Evaluation::default();
        run_timers(engine, now, &mut timers);
        (now, timers)
    }

    /// The latest time seen.
    pub fn now(&self) -> Option<DateTime<Utc>> {
        self.now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_over_the_bound_is_skipped_without_being_kept_and_the_next_one_is_read() {
        let input = format!("{}\nshort\r\nlast", "x".repeat(100));
        let mut reader = std::io::BufReader::with_capacity(8, input.as_bytes());
        let mut line = Vec::new();
        assert_eq!(read_line(&mut reader, 10, &mut line).unwrap(), Some(false));
        assert!(line.is_empty());
        assert_eq!(read_line(&mut reader, 10, &mut line).unwrap(), Some(true));
        assert_eq!(line, b"short\r");
        assert_eq!(read_line(&mut reader, 10, &mut line).unwrap(), Some(true));
        assert_eq!(line, b"last");
        assert_eq!(read_line(&mut reader, 10, &mut line).unwrap(), None);
    }
}
