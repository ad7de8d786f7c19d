//! The `tracing` subscriber behind `--trace`: events of target `h2lab`
//! become fixed-size [`Record`]s, gathered per thread and handed to the
//! writer thread in whole batches. Our own `Subscriber`, not a `Registry`
//! with a layer: no span slab and no extensions, fields read by position,
//! the TSC for a clock, one call per record.
//!
//! What the tracer must not do is lengthen what it times. An action's start
//! and end are read by the action itself ([`super::ActionSpan`]), the end
//! before any of the tracer's own work on the record; a frame event reads
//! no clock at all: it is stamped inside the interval of the slice that
//! just closed on its thread (the step that produced or consumed the
//! frame), since frames are scanned after that slice ends.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record as Values};
use tracing::subscriber::Interest;

use tracing::{Event, Metadata, Subscriber};

use super::schema::{Name, Packed};
use super::TARGET;
use crate::frame::{FrameHeader, FrameType};

/// What a recording thread hands the writer thread.
pub(super) enum Msg {
    Batch(Vec<Packed>),
    /// Complete the files; the server's response count, if known.
    Finish(Option<u64>),
}

static NEXT_SINK: AtomicUsize = AtomicUsize::new(1);
/// Threads that have set up to record, in any trace of this process.
static RECORDING_THREADS: AtomicU64 = AtomicU64::new(0);

/// How many threads of this process have set up to record so far: none
/// unless something was traced (a check that tracing off stays off).
pub fn recording_threads() -> u64 {
    RECORDING_THREADS.load(Ordering::Relaxed)
}

/// What the recorder, its threads' batches and the tracer handle share.
pub(super) struct Sink {
    /// Tells this trace's thread state from another's on the same thread.
    id: usize,
    clock: &'static quanta::Clock,
    start_raw: u64,
    /// `u64::MAX`: no limit, and no counting on the hot path.
    limit: u64,
    offered: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) unrecorded: AtomicU64,
    tx: SyncSender<Msg>,
    batch: usize,
    /// Emptied batches, back from the writer for reuse.
    spares: Mutex<Vec<Vec<Packed>>>,
    /// Names of the threads that recorded, by their index in records.
    pub(super) threads: Mutex<Vec<String>>,
    next_thread: AtomicU16,
}

impl Sink {
    /// `prealloc`: batches to allocate and touch now, so that recording
    /// into them later takes no page faults.
    pub(super) fn new(
        tx: SyncSender<Msg>,
        batch: usize,
        limit: Option<u64>,
        prealloc: usize,
    ) -> Self {
        let clock = super::clock();
        let start_raw = clock.raw();
        let filler = Packed::default();
        let spares = (0..prealloc)
            .map(|_| {
                let mut v = vec![filler; batch];
                v.clear();
                v
            })
            .collect();
        Self {
            id: NEXT_SINK.fetch_add(1, Ordering::Relaxed),
            clock,
            start_raw,
            limit: limit.unwrap_or(u64::MAX),
            offered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            unrecorded: AtomicU64::new(0),
            tx,
            batch,
            spares: Mutex::new(spares),
            threads: Mutex::new(Vec::new()),
            next_thread: AtomicU16::new(0),
        }
    }

    #[inline]
    fn now_ns(&self) -> u64 {
        self.ns_at(self.clock.raw())
    }

    /// A raw clock reading as ns since the trace started (0 before).
    #[inline]
    fn ns_at(&self, raw: u64) -> u64 {
        match raw > self.start_raw {
            true => self.clock.delta_as_nanos(self.start_raw, raw),
            false => 0,
        }
    }

    fn spare(&self) -> Vec<Packed> {
        let reused = self.spares.lock().unwrap_or_else(|e| e.into_inner()).pop();
        reused.unwrap_or_else(|| Vec::with_capacity(self.batch))
    }

    pub(super) fn recycle(&self, mut batch: Vec<Packed>) {
        batch.clear();
        self.spares
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(batch);
    }

    /// Sends a batch. `wait`: block for room (a thread's last batch);
    /// otherwise a full queue drops it, counted.
    fn send(&self, batch: Vec<Packed>, wait: bool) {
        if batch.is_empty() {
            return self.recycle(batch);
        }
        let n = batch.len() as u64;
        let sent = match wait {
            true => self.tx.send(Msg::Batch(batch)).map_err(|e| e.0),
            false => self.tx.try_send(Msg::Batch(batch)).map_err(|e| match e {
                TrySendError::Full(m) | TrySendError::Disconnected(m) => m,
            }),
        };
        if let Err(Msg::Batch(batch)) = sent {
            self.dropped.fetch_add(n, Ordering::Relaxed);
            self.recycle(batch);
        }
    }

    /// Tells the writer to complete the files (waits for room in the queue).
    pub(super) fn send_finish(&self, responses: Option<u64>) -> Result<(), mpsc::SendError<Msg>> {
        self.tx.send(Msg::Finish(responses))
    }

    /// Whether one more record may be taken (`--trace-limit`); counts it.
    #[inline]
    fn take(&self) -> bool {
        if self.offered.fetch_add(1, Ordering::Relaxed) < self.limit {
            return true;
        }
        self.unrecorded.fetch_add(1, Ordering::Relaxed);
        false
    }
}

/// One thread's state for one trace.
struct Local {
    sink: Arc<Sink>,
    /// The sink's id and batch size, copied here: the hot path then reads
    /// this state only.
    sink_id: usize,
    capacity: usize,
    thread: u16,
    /// Whether each record counts against `--trace-limit`.
    limited: bool,
    /// Keeps nothing: full batches are emptied, never sent (see [`scratch`]).
    scratch: bool,
    batch: Vec<Packed>,
    /// The interval of the last slice closed on this thread.
    last: Option<(u64, u64)>,
}

impl Local {
    fn new(sink: &Arc<Sink>) -> Self {
        RECORDING_THREADS.fetch_add(1, Ordering::Relaxed);
        let thread = sink.next_thread.fetch_add(1, Ordering::Relaxed);
        let name = std::thread::current()
            .name()
            .map_or_else(|| format!("thread {thread}"), str::to_string);
        {
            let mut names = sink.threads.lock().unwrap_or_else(|e| e.into_inner());
            if names.len() <= thread as usize {
                names.resize(thread as usize + 1, String::new());
            }
            names[thread as usize] = name;
        }
        Self {
            sink: sink.clone(),
            sink_id: sink.id,
            capacity: sink.batch,
            thread,
            limited: sink.limit != u64::MAX,
            scratch: false,
            batch: sink.spare(),
            last: None,
        }
    }

    #[inline]
    fn push(&mut self, mut record: Packed) {
        if self.limited && !self.sink.take() {
            return;
        }
        record.set_thread(self.thread);
        self.batch.push(record);
        if self.batch.len() >= self.capacity {
            if self.scratch {
                return self.batch.clear();
            }
            let full = std::mem::replace(&mut self.batch, self.sink.spare());
            self.sink.send(full, false);
        }
    }
}

impl Drop for Local {
    /// The thread ends: its last batch is waited for, never dropped.
    fn drop(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        match self.scratch {
            true => self.sink.recycle(batch),
            false => self.sink.send(batch, true),
        }
    }
}

thread_local! {
    static LOCALS: RefCell<Vec<Local>> = const { RefCell::new(Vec::new()) };
}

/// Sends this thread's last batch of every trace now, as its end would,
/// and forgets its states.
pub(super) fn flush_all() {
    let _ = LOCALS.try_with(|l| l.borrow_mut().clear());
}

/// Sends this thread's batch of `sink` now and forgets its state (the
/// tracer's own thread, before the trace is finished).
pub(super) fn flush_thread(sink: &Arc<Sink>) {
    LOCALS.with(|l| l.borrow_mut().retain(|local| local.sink_id != sink.id));
}

/// Runs `f` with this thread recording for `sink` into a scratch state
/// that keeps nothing: no batch sent, no thread named, nothing counted
/// against the limit. For measuring what recording costs, through the
/// very dispatcher the server's threads use.
pub(super) fn scratch<R>(sink: &Arc<Sink>, f: impl FnOnce() -> R) -> R {
    let local = Local {
        sink: sink.clone(),
        sink_id: sink.id,
        capacity: sink.batch,
        thread: u16::MAX,
        limited: false,
        scratch: true,
        batch: sink.spare(),
        last: None,
    };
    // First: the recorder's fast path takes the first state that matches.
    LOCALS.with(|l| l.borrow_mut().insert(0, local));
    let result = f();
    LOCALS.with(|l| {
        l.borrow_mut()
            .retain(|x| !(x.scratch && x.sink_id == sink.id))
    });
    result
}

/// The subscriber; cheap to clone into a `tracing::Dispatch`.
pub(super) struct Recorder {
    sink: Arc<Sink>,
    /// The sink's, copied.
    id: usize,
}

impl Recorder {
    pub(super) fn new(sink: Arc<Sink>) -> Self {
        Self { id: sink.id, sink }
    }

    #[inline]
    fn with_local<R>(&self, f: impl FnOnce(&mut Local) -> R) -> R {
        LOCALS.with(|l| {
            let mut locals = l.borrow_mut();
            // Nearly always a thread records for one trace only.
            if let Some(local) = locals.first_mut().filter(|x| x.sink_id == self.id) {
                return f(local);
            }
            let at = match locals.iter().position(|x| x.sink_id == self.id) {
                Some(at) => at,
                None => {
                    locals.push(Local::new(&self.sink));
                    locals.len() - 1
                }
            };
            f(&mut locals[at])
        })
    }
}

/// Reads our fields by position: an action event has two `u128` fields
/// (`action`, `time`: see [`super::ActionSpan`]'s drop), a frame event one
/// (`frame`), which saves a string match per field.
#[derive(Default)]
struct Fields([u128; 2]);

impl Visit for Fields {
    #[inline]
    fn record_u128(&mut self, field: &Field, value: u128) {
        debug_assert!(["action", "time", "frame"].contains(&field.name()));
        if let Some(v) = self.0.get_mut(field.index()) {
            *v = value;
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

impl Subscriber for Recorder {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        match meta.target() == TARGET {
            true => Interest::always(),
            false => Interest::never(),
        }
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        meta.target() == TARGET
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }

    // h2lab opens no spans: an action is one event (see `ActionSpan`).
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Values<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut f = Fields::default();
        event.record(&mut f);
        match event.metadata().fields().len() {
            1 => self.frame(f.0[0]),
            _ => self.action(f.0[0], f.0[1]),
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

impl Recorder {
    #[inline]
    fn action(&self, action: u128, time: u128) {
        let (start, end) = ((time >> 64) as u64, time as u64);
        let (ts_ns, end_ns) = (self.sink.ns_at(start), self.sink.ns_at(end));
        let (client, bytes) = ((action >> 96) as u64, (action >> 64) as u32);
        let what = action as u64;
        let name = Name::from_code(what & 0xff).unwrap_or(Name::Engine);
        let state = match what >> 8 {
            s if s >= u64::from(u32::MAX) => crate::trace::NO_STATE,
            s => s,
        };
        let mut record = Packed::action(ts_ns, client, name, bytes.into(), state);
        let dur_ns = end_ns.saturating_sub(ts_ns);
        record.set_dur(dur_ns);
        self.with_local(|local| {
            local.last = Some((ts_ns, dur_ns));
            local.push(record);
        });
    }

    #[inline]
    fn frame(&self, frame: u128) {
        let (head, client_length) = ((frame >> 64) as u64, frame as u64);
        let (client, length) = (client_length >> 24, client_length & 0xff_ffff);
        let out = head >> 47 & 1 == 1;
        self.with_local(|local| {
            // Inside the slice that just closed; a clock read only if none has.
            let ts_ns = match local.last {
                Some((ts, dur)) => ts + dur / 2,
                None => self.sink.now_ns(),
            };
            let head = FrameHeader {
                length: length as u32,
                kind: FrameType((head >> 56) as u8),
                flags: (head >> 48) as u8,
                stream: (head & 0x7fff_ffff) as u32,
            };
            local.push(Packed::frame(ts_ns, client, out, head));
        });
    }
}
