//! The `tracing-subscriber` layer: spans and events of target `h2lab` become
//! [`Record`]s on a bounded queue to the writer thread.
//!
//! Open spans wait on a small per-thread stack, not in the registry's span
//! extensions (which would box every record): an action span is opened and
//! closed on one thread, around synchronous code. Finished records gather in
//! a per-thread batch, so the writer thread is woken once per batch, not per
//! record; batches are recycled, not reallocated. The queue is bounded; a
//! batch that finds it full is dropped and its records counted, never waited
//! for. A thread's last, partial batch is sent when the thread ends.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record as Values};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

use super::writer::{self, Msg};
use super::{Kind, Name, Record, TraceConfig, TraceError, TraceSummary, NO_STATE, TARGET};
use crate::frame::{FrameHeader, FrameType};

/// Open spans a thread may nest before further ones go unrecorded.
const MAX_OPEN: usize = 16;
/// Records per batch to the writer (fewer when the queue is smaller).
const BATCH: usize = 256;

static NEXT_LAYER: AtomicUsize = AtomicUsize::new(1);

struct Open {
    layer: usize,
    id: u64,
    record: Record,
}

/// The records a thread has finished for one layer, not yet sent.
struct Pending {
    layer: usize,
    records: Vec<Record>,
    shared: Arc<Shared>,
}

impl Pending {
    /// Sends the batch. `wait`: block for room (a thread's last batch);
    /// otherwise a full queue drops it, counted.
    fn flush(&mut self, wait: bool) {
        if self.records.is_empty() {
            return;
        }
        let fresh = self.shared.spare();
        let batch = std::mem::replace(&mut self.records, fresh);
        let n = batch.len() as u64;
        let sent = match wait {
            true => self.shared.tx.send(Msg::Batch(batch)).map_err(|e| e.0),
            false => self
                .shared
                .tx
                .try_send(Msg::Batch(batch))
                .map_err(|e| match e {
                    TrySendError::Full(m) | TrySendError::Disconnected(m) => m,
                }),
        };
        if let Err(Msg::Batch(batch)) = sent {
            self.shared.losses.dropped.fetch_add(n, Ordering::Relaxed);
            self.shared.recycle(batch);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.flush(true);
    }
}

thread_local! {
    static OPEN: RefCell<Vec<Open>> = RefCell::new(Vec::with_capacity(MAX_OPEN));
    static PENDING: RefCell<Vec<Pending>> = const { RefCell::new(Vec::new()) };
}

/// What the layer, its threads' batches and the writer share.
pub(super) struct Shared {
    tx: SyncSender<Msg>,
    losses: Losses,
    batch: usize,
    /// Emptied batches, back from the writer for reuse.
    spares: Mutex<Vec<Vec<Record>>>,
}

impl Shared {
    fn spare(&self) -> Vec<Record> {
        let reused = self.spares.lock().unwrap_or_else(|e| e.into_inner()).pop();
        reused.unwrap_or_else(|| Vec::with_capacity(self.batch))
    }

    pub(super) fn recycle(&self, mut batch: Vec<Record>) {
        batch.clear();
        let mut spares = self.spares.lock().unwrap_or_else(|e| e.into_inner());
        if spares.len() < 64 {
            spares.push(batch);
        }
    }
}

/// What was lost, shared by the layer and its [`Tracer`].
#[derive(Default)]
struct Losses {
    dropped: AtomicU64,
    unrecorded: AtomicU64,
    offered: AtomicU64,
}

pub struct TraceLayer {
    /// Tells this layer's open spans and batches from another's on the
    /// same thread.
    id: usize,
    start: Instant,
    limit: u64,
    shared: Arc<Shared>,
}

/// The handle of a running trace: `finish` completes both files.
pub struct Tracer {
    shared: Arc<Shared>,
    writer: JoinHandle<std::io::Result<u64>>,
}

impl Tracer {
    /// Creates both files and the writer thread; returns the handle and the
    /// dispatcher to install in every thread that should be traced.
    pub fn start(config: &TraceConfig) -> Result<(Tracer, tracing::Dispatch), TraceError> {
        let files = writer::Files::create(config)?;
        // The queue holds `config.queue` records, in batches.
        let batch = BATCH.min(config.queue.max(1));
        let (tx, rx) = mpsc::sync_channel((config.queue / batch).max(1));
        let shared = Arc::new(Shared {
            tx,
            losses: Losses::default(),
            batch,
            spares: Mutex::new(Vec::new()),
        });
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("h2lab-trace".into())
            .spawn(move || writer::run(rx, files, &writer_shared))
            .map_err(TraceError::Spawn)?;
        let layer = TraceLayer {
            id: NEXT_LAYER.fetch_add(1, Ordering::Relaxed),
            start: Instant::now(),
            limit: config.limit.unwrap_or(u64::MAX),
            shared: shared.clone(),
        };
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        Ok((Tracer { shared, writer }, dispatch))
    }

    /// Writes the trailer (with what was lost) and closes both files. Call
    /// it once every traced thread has finished.
    pub fn finish(self) -> Result<TraceSummary, TraceError> {
        // This thread's own batch, if it traced anything (the server's
        // threads have ended, and sent theirs).
        PENDING.with(|p| {
            p.borrow_mut()
                .retain(|b| !Arc::ptr_eq(&b.shared, &self.shared))
        });
        let dropped = self.shared.losses.dropped.load(Ordering::SeqCst);
        let unrecorded = self.shared.losses.unrecorded.load(Ordering::SeqCst);
        // A blocking send: the writer is draining the queue.
        let _ = self.shared.tx.send(Msg::Finish {
            dropped,
            unrecorded,
        });
        let written = match self.writer.join() {
            Ok(result) => result.map_err(TraceError::Write)?,
            Err(_) => return Err(TraceError::Write(std::io::Error::other("writer panicked"))),
        };
        Ok(TraceSummary {
            written,
            dropped,
            unrecorded,
        })
    }
}

/// Reads our numeric fields by position: the two callsites in `trace/mod.rs`
/// declare them in the orders of [`SPAN_FIELDS`] and [`EVENT_FIELDS`]
/// (checked in debug builds), which saves a string match per field.
#[derive(Default)]
struct Fields {
    client: u64,
    name: Option<u64>,
    state: Option<u64>,
    bytes: u64,
    out: bool,
    kind: u64,
    flags: u64,
    stream: u64,
    length: u64,
    /// Which callsite: an action span, or a frame event.
    event: bool,
}

const SPAN_FIELDS: [&str; 4] = ["client", "name", "state", "bytes"];
const EVENT_FIELDS: [&str; 6] = ["client", "out", "kind", "flags", "stream", "length"];

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        let i = field.index();
        if self.event {
            debug_assert_eq!(EVENT_FIELDS.get(i), Some(&field.name()));
            match i {
                0 => self.client = value,
                2 => self.kind = value,
                3 => self.flags = value,
                4 => self.stream = value,
                5 => self.length = value,
                _ => {}
            }
        } else {
            debug_assert_eq!(SPAN_FIELDS.get(i), Some(&field.name()));
            match i {
                0 => self.client = value,
                1 => self.name = Some(value),
                2 => self.state = Some(value),
                3 => self.bytes = value,
                _ => {}
            }
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        debug_assert_eq!(field.name(), "out");
        self.out = value;
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

impl TraceLayer {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn send(&self, record: Record) {
        let losses = &self.shared.losses;
        if losses.offered.fetch_add(1, Ordering::Relaxed) >= self.limit {
            losses.unrecorded.fetch_add(1, Ordering::Relaxed);
            return;
        }
        PENDING.with(|pending| {
            let mut pending = pending.borrow_mut();
            let at = match pending.iter().position(|p| p.layer == self.id) {
                Some(at) => at,
                None => {
                    pending.push(Pending {
                        layer: self.id,
                        records: self.shared.spare(),
                        shared: self.shared.clone(),
                    });
                    pending.len() - 1
                }
            };
            let batch = &mut pending[at];
            batch.records.push(record);
            if batch.records.len() >= self.shared.batch {
                batch.flush(false);
            }
        });
    }
}

impl<S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>> Layer<S> for TraceLayer {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if meta.target() == TARGET {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _: Context<'_, S>) -> bool {
        meta.target() == TARGET
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut f = Fields::default();
        attrs.record(&mut f);
        let Some(name) = f.name.and_then(Name::from_code) else {
            return;
        };
        let record = Record {
            ts_ns: self.now_ns(),
            dur_ns: 0,
            client: f.client,
            kind: name.kind(),
            name: Some(name),
            frame: None,
            bytes: f.bytes,
            state: f.state.unwrap_or(NO_STATE),
        };
        OPEN.with(|open| {
            let mut open = open.borrow_mut();
            if open.len() < MAX_OPEN {
                open.push(Open {
                    layer: self.id,
                    id: id.into_u64(),
                    record,
                });
            } else {
                self.shared
                    .losses
                    .unrecorded
                    .fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    fn on_record(&self, id: &Id, values: &Values<'_>, _: Context<'_, S>) {
        let mut f = Fields::default();
        values.record(&mut f);
        OPEN.with(|open| {
            let mut open = open.borrow_mut();
            if let Some(o) = open
                .iter_mut()
                .rev()
                .find(|o| o.layer == self.id && o.id == id.into_u64())
            {
                o.record.bytes = f.bytes;
            }
        });
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        let closed = OPEN.with(|open| {
            let mut open = open.borrow_mut();
            let at = open
                .iter()
                .rposition(|o| o.layer == self.id && o.id == id.into_u64())?;
            Some(open.remove(at).record)
        });
        if let Some(mut record) = closed {
            record.dur_ns = self.now_ns().saturating_sub(record.ts_ns);
            self.send(record);
        }
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut f = Fields {
            event: true,
            ..Fields::default()
        };
        event.record(&mut f);
        self.send(Record {
            ts_ns: self.now_ns(),
            dur_ns: 0,
            client: f.client,
            kind: if f.out { Kind::FrameOut } else { Kind::FrameIn },
            name: None,
            frame: Some(FrameHeader {
                length: f.length as u32,
                kind: FrameType(f.kind as u8),
                flags: f.flags as u8,
                stream: f.stream as u32,
            }),
            bytes: f.length,
            state: NO_STATE,
        });
    }
}
