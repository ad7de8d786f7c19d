//! The `tracing-subscriber` layer: spans and events of target `h2lab` become
//! [`Record`]s on a bounded queue to the writer thread.
//!
//! Open spans wait on a small per-thread stack, not in the registry's span
//! extensions (which would box every record): an action span is opened and
//! closed on one thread, around synchronous code. The queue is bounded; a
//! record that finds it full is dropped and counted, never waited for.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
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

static NEXT_LAYER: AtomicUsize = AtomicUsize::new(1);

struct Open {
    layer: usize,
    id: u64,
    record: Record,
}

thread_local! {
    static OPEN: RefCell<Vec<Open>> = RefCell::new(Vec::with_capacity(MAX_OPEN));
}

/// Counters shared by the layer and its [`Tracer`].
#[derive(Default)]
struct Losses {
    dropped: AtomicU64,
    unrecorded: AtomicU64,
    offered: AtomicU64,
}

pub struct TraceLayer {
    /// Tells this layer's open spans from another's on the same thread.
    id: usize,
    start: Instant,
    tx: SyncSender<Msg>,
    limit: u64,
    losses: Arc<Losses>,
}

/// The handle of a running trace: `finish` completes both files.
pub struct Tracer {
    tx: SyncSender<Msg>,
    losses: Arc<Losses>,
    writer: JoinHandle<std::io::Result<u64>>,
}

impl Tracer {
    /// Creates both files and the writer thread; returns the handle and the
    /// dispatcher to install in every thread that should be traced.
    pub fn start(config: &TraceConfig) -> Result<(Tracer, tracing::Dispatch), TraceError> {
        let files = writer::Files::create(config)?;
        let (tx, rx) = mpsc::sync_channel(config.queue.max(1));
        let writer = std::thread::Builder::new()
            .name("h2lab-trace".into())
            .spawn(move || writer::run(rx, files))
            .map_err(TraceError::Spawn)?;
        let losses = Arc::new(Losses::default());
        let layer = TraceLayer {
            id: NEXT_LAYER.fetch_add(1, Ordering::Relaxed),
            start: Instant::now(),
            tx: tx.clone(),
            limit: config.limit.unwrap_or(u64::MAX),
            losses: losses.clone(),
        };
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        Ok((Tracer { tx, losses, writer }, dispatch))
    }

    /// Writes the trailer (with what was lost) and closes both files. Call
    /// it once every traced thread has finished.
    pub fn finish(self) -> Result<TraceSummary, TraceError> {
        let dropped = self.losses.dropped.load(Ordering::SeqCst);
        let unrecorded = self.losses.unrecorded.load(Ordering::SeqCst);
        // A blocking send: the writer is draining the queue.
        let _ = self.tx.send(Msg::Finish {
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

/// Reads our numeric fields; anything else is ignored.
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
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "client" => self.client = value,
            "name" => self.name = Some(value),
            "state" => self.state = Some(value),
            "bytes" => self.bytes = value,
            "kind" => self.kind = value,
            "flags" => self.flags = value,
            "stream" => self.stream = value,
            "length" => self.length = value,
            _ => {}
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "out" {
            self.out = value;
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

impl TraceLayer {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn send(&self, record: Record) {
        if self.losses.offered.fetch_add(1, Ordering::Relaxed) >= self.limit {
            self.losses.unrecorded.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.tx.try_send(Msg::Record(record)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.losses.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
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
                self.losses.unrecorded.fetch_add(1, Ordering::Relaxed);
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
        let mut f = Fields::default();
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
