//! The handle of a running trace: starts the writer, measures what one
//! record costs, hands out the dispatcher to install in traced threads, and
//! completes the files.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use super::meta::TraceMeta;
use super::recorder::{flush_thread, scratch, Recorder, Sink};
use super::writer::{self, Files, Written};
use super::{TraceConfig, TraceError, TraceSummary};

/// Records per batch handed to the writer (fewer when the queue is
/// smaller): large, so that the writer wakes rarely.
const BATCH: usize = 4096;
/// Batches allocated at start for the recording threads to fill.
const SPARE_BATCHES: usize = 16;

pub struct Tracer {
    sink: Arc<Sink>,
    writer: JoinHandle<std::io::Result<(Written, TraceMeta)>>,
}

impl Tracer {
    /// Creates the files and the writer thread; returns the handle and the
    /// dispatcher to install in every thread that should be traced, or
    /// `None` where it is installed process-wide
    /// ([`TraceConfig::process_wide`]). `meta` says what is traced; the
    /// cost of a record is measured, the way the server's threads will
    /// record, and added.
    pub fn start(
        config: &TraceConfig,
        mut meta: TraceMeta,
    ) -> Result<(Tracer, Option<tracing::Dispatch>), TraceError> {
        meta.trace_mode = if config.live { "live" } else { "deferred" }.into();
        meta.trace_queue = config.queue;
        meta.trace_limit = config.limit;
        let batch = BATCH.min(config.queue.max(1));
        let (tx, rx) = mpsc::sync_channel((config.queue / batch).max(1));
        // Batches go back and forth between the recording threads and the
        // writer, which copies them out: a few, touched now, are enough.
        let prealloc = (config.queue / batch).clamp(1, SPARE_BATCHES);
        let sink = Arc::new(Sink::new(tx, batch, config.limit, prealloc));
        let dispatch = tracing::Dispatch::new(Recorder::new(sink.clone()));
        // Process-wide: no thread sets its own dispatcher, and none may
        // (not even to measure): once one has, every event looks for it.
        let global = config.process_wide
            && tracing::dispatcher::set_global_default(dispatch.clone()).is_ok();
        let dispatch = (!global).then_some(dispatch);
        (meta.span_cost_ns, meta.event_cost_ns) = measure_record_cost(&sink, dispatch.as_ref());
        let files = Files::create(config, &meta)?;
        let writer_sink = sink.clone();
        let writer = std::thread::Builder::new()
            .name("h2lab-trace".into())
            .spawn(move || writer::run(rx, files, &writer_sink, meta))
            .map_err(TraceError::Spawn)?;
        Ok((Tracer { sink, writer }, dispatch))
    }

    /// Completes both files with what was lost. Call it once every traced
    /// thread has finished (they send their last batch as they end).
    pub fn finish(self) -> Result<TraceSummary, TraceError> {
        self.finish_with(None)
    }

    /// [`Tracer::finish`], recording in the metadata how many responses
    /// the server sent (records per response, a warm-up included).
    pub fn finish_with(self, responses: Option<u64>) -> Result<TraceSummary, TraceError> {
        flush_thread(&self.sink);
        // A blocking send: the writer is draining the queue.
        let _ = self.sink.send_finish(responses);
        let (written, meta) = match self.writer.join() {
            Ok(result) => result.map_err(TraceError::Write)?,
            Err(_) => return Err(TraceError::Write(std::io::Error::other("writer panicked"))),
        };
        Ok(TraceSummary {
            written: written.records,
            dropped: meta.dropped,
            unrecorded: meta.unrecorded,
            format_seconds: written.format_seconds,
        })
    }
}

/// What one action and one frame event cost the thread that records them,
/// in ns: the median of 7 rounds of 2,000 each, through `dispatch` (the
/// global dispatcher if `None`), recorded into a scratch state of this
/// thread that keeps nothing (see [`scratch`]).
fn measure_record_cost(sink: &Arc<Sink>, dispatch: Option<&tracing::Dispatch>) -> (f64, f64) {
    const N: u32 = 2_000;
    let head = crate::frame::FrameHeader {
        length: 12,
        kind: crate::frame::FrameType::DATA,
        flags: 1,
        stream: 1,
    };
    let (mut spans, mut events) = (Vec::new(), Vec::new());
    let mut measure = || {
        scratch(sink, || {
            for _ in 0..7 {
                let t = Instant::now();
                for i in 0..N {
                    let span = super::action(1, super::Name::Engine, 0);
                    span.bytes(i as usize);
                }
                spans.push(t.elapsed().as_nanos() as f64 / f64::from(N));
                let t = Instant::now();
                for _ in 0..N {
                    super::frame(1, true, head);
                }
                events.push(t.elapsed().as_nanos() as f64 / f64::from(N));
            }
        })
    };
    match dispatch {
        Some(d) => tracing::dispatcher::with_default(d, measure),
        None => measure(),
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(spans), median(events))
}
