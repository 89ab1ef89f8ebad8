//! Reading the history on a thread of its own and decoding it, on the caller's thread or on
//! several, keeping its order. Decoding a record (JSON parsing into a tree) costs more than
//! reading it or running the rules on it, and the engine must see the events one by one in time
//! order: one thread reads (the merge of [`History`]) and hands batches of records on; with
//! `workers` threads those decode the batches and the caller's thread takes them back in read
//! order and runs them; without, the caller's thread decodes and runs each batch.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, sync_channel};

use anyhow::bail;
use rdkafka::message::OwnedMessage;

use super::kafka::History;
use crate::cli::replay::input::Decoder;
use crate::event::Event;

/// Records per batch handed to a decoding thread: large enough that channel hand-offs cost
/// nothing per record, small enough that the threads share the work evenly.
const BATCH: usize = 512;
/// Batches read but not yet run, at most: bounds memory (about `IN_FLIGHT * BATCH` records,
/// decoded or not) whatever the speed of each stage.
const IN_FLIGHT: usize = 16;

/// A record that could not be decoded (`reflex run` would dead-letter it).
#[derive(Debug)]
pub struct Skipped {
    /// Where it is.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Why.
    pub why: String,
}

/// Decoding threads by default: none, the rules' thread decodes while the reading thread reads.
/// Measured on the project's 2-vCPU machine (docs/performance.md): decoding threads add a
/// little speed at best and cost a quarter more CPU per event — the events' trees are allocated
/// on one thread and freed on another, which even mimalloc pays for in collecting the frees —
/// so they only pay where cores are plenty (`--decode-threads N`).
pub const DEFAULT_THREADS: usize = 0;

/// Reads `history` to its end on a thread of its own, decodes on `workers` threads (0: on the
/// caller's) and hands every record's events (or why it was skipped) to `each`, in read order.
pub fn in_order(
    mut history: History,
    decoder: &Decoder,
    workers: usize,
    mut each: impl FnMut(Result<Vec<Event>, Skipped>),
) -> anyhow::Result<()> {
    let (work_tx, work_rx) = sync_channel::<(u64, Vec<OwnedMessage>)>(IN_FLIGHT);
    // Shared by the decoding threads, outliving them.
    let work_rx = Mutex::new(work_rx);
    std::thread::scope(|scope| {
        // One token per batch in flight: the reader takes one before sending a batch, the
        // caller's thread gives it back once the batch has run.
        let (token_tx, token_rx) = sync_channel::<()>(IN_FLIGHT);
        for _ in 0..IN_FLIGHT {
            token_tx
                .send(())
                .expect("the token channel holds IN_FLIGHT tokens");
        }
        // Reading (polling librdkafka, copying records out, the merge) is a fifth of a
        // record's cost and needs nothing the rules do: it runs beside them.
        let reader = scope.spawn(move || -> anyhow::Result<u64> {
            let mut batches = 0;
            let mut batch = Vec::with_capacity(BATCH);
            loop {
                let record = history.next_record()?;
                let end = record.is_none();
                batch.extend(record);
                if batch.len() == BATCH || (end && !batch.is_empty()) {
                    if token_rx.recv().is_err() || work_tx.send((batches, batch)).is_err() {
                        // The caller's side stopped: it reports why.
                        return Ok(batches);
                    }
                    batches += 1;
                    batch = Vec::with_capacity(BATCH);
                }
                if end {
                    return Ok(batches);
                }
            }
        });
        let mut ran = 0u64;
        if workers == 0 {
            while let Some((_, batch)) = next_job(&work_rx) {
                batch.iter().map(|m| decode(decoder, m)).for_each(&mut each);
                ran += 1;
                // The reader may have finished already: a token it never takes is harmless.
                let _ = token_tx.send(());
            }
        } else {
            let (done_tx, done_rx) = sync_channel(IN_FLIGHT);
            for _ in 0..workers {
                let (done_tx, work_rx) = (done_tx.clone(), &work_rx);
                scope.spawn(move || {
                    while let Some((seq, batch)) = next_job(work_rx) {
                        let decoded: Vec<_> = batch.iter().map(|m| decode(decoder, m)).collect();
                        if done_tx.send((seq, decoded)).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(done_tx);
            let mut pending = BTreeMap::new();
            for (seq, decoded) in done_rx {
                pending.insert(seq, decoded);
                while let Some(decoded) = pending.remove(&ran) {
                    decoded.into_iter().for_each(&mut each);
                    ran += 1;
                    let _ = token_tx.send(());
                }
            }
        }
        drop(token_tx);
        let read = reader
            .join()
            .map_err(|_| anyhow::anyhow!("the history reader panicked"))??;
        if ran != read {
            bail!("a decoding thread stopped: {ran} of {read} batches of records ran");
        }
        Ok(())
    })
}

/// The next batch to decode, `None` once the reader is done.
fn next_job(work: &Mutex<Receiver<(u64, Vec<OwnedMessage>)>>) -> Option<(u64, Vec<OwnedMessage>)> {
    // A poisoned lock means another decoding thread panicked; the count check reports it.
    let work = work.lock().ok()?;
    work.recv().ok()
}

fn decode(decoder: &Decoder, message: &OwnedMessage) -> Result<Vec<Event>, Skipped> {
    let record = crate::source::raw_record(message);
    decoder.record(&record).map_err(|why| Skipped {
        topic: record.topic.to_owned(),
        partition: record.partition,
        offset: record.offset,
        why,
    })
}
