//! The writer thread: batches of records in; the CSV action log and the
//! Chrome-trace JSON out, plus the `PREFIX.meta.json` sidecar.
//!
//! Two modes. **Deferred** (the default): during the run the writer only
//! keeps the batches, in the spool (`PREFIX.spool`: up to
//! `TraceConfig::memory` in a shared mapping of the file, past that
//! appended to it), so that no formatting and no file system work
//! competes with the server for CPU; at stop it formats them into both
//! files and says how long that took. After a crash the spool is still
//! there, every batch the writer took in it (the mapping is the file's
//! page cache): `h2lab trace-convert PREFIX` formats it. **Live**
//! (`--trace-live`): every batch is formatted and flushed as it comes, so
//! even a killed server leaves files Perfetto loads, at the cost of the
//! writer's CPU during the run.
//!
//! The JSON is crash-safe in both modes: it starts as 15 spaces and `[`, the
//! Chrome "JSON array" form, which loads however it is cut; a clean stop
//! appends the end and the metadata and overwrites those 16 octets with
//! `{"traceEvents":[`, the object form, whose `metadata` Perfetto shows.

mod chrome;
mod convert;
mod csv_rows;
mod digits;
mod files;
mod format;
mod spool;
#[cfg(test)]
mod tests;

use std::io::{self, Write};
use std::sync::mpsc::Receiver;
use std::time::Instant;

use super::meta::TraceMeta;
use super::recorder::{Msg, Sink};
use format::Formatter;

pub use convert::convert;
pub(super) use files::Files;
pub use spool::SPOOL_RECORD;

/// What the writer did.
pub(super) struct Written {
    pub records: u64,
    pub format_seconds: f64,
}

/// Writes until `Finish` (or until every sender is gone), then completes
/// the files with `meta` (whose counts it fills in).
pub(super) fn run(
    rx: Receiver<Msg>,
    mut files: Files,
    sink: &Sink,
    mut meta: TraceMeta,
) -> io::Result<(Written, TraceMeta)> {
    let mut fmt = Formatter::new(&meta.setup);
    let mut records = 0u64;
    let mut spool = files.spool.take();
    for msg in rx.iter() {
        let batch = match msg {
            Msg::Batch(batch) => batch,
            Msg::Finish(responses) => {
                meta.responses = responses;
                break;
            }
        };
        records += batch.len() as u64;
        match spool.as_mut() {
            None => {
                fmt.threads = names(sink);
                for r in &batch {
                    fmt.record(&r.unpack());
                }
                fmt.drain(&mut files.csv, &mut files.json)?;
                files.csv.flush()?;
                files.json.flush()?;
            }
            Some(spool) => spool.keep(&batch)?,
        }
        // Back to the recording thread at once: it keeps writing into the
        // same few batches (in its cache) instead of fresh memory.
        sink.recycle(batch);
    }
    fmt.threads = names(sink);
    let started = Instant::now();
    if let Some(spool) = &spool {
        spool.format(&mut fmt, &mut files.csv, &mut files.json)?;
    }
    meta.format_seconds = started.elapsed().as_secs_f64();
    meta.complete = true;
    meta.records = records;
    meta.dropped = sink.dropped.load(std::sync::atomic::Ordering::SeqCst);
    meta.unrecorded = sink.unrecorded.load(std::sync::atomic::Ordering::SeqCst);
    meta.thread_names = fmt.threads.join("|");
    files::finish_json(files.json, &meta)?;
    files.csv.flush()?;
    files.csv.get_ref().sync_all()?;
    meta.write(&files.meta_path)?;
    drop(spool);
    let _ = std::fs::remove_file(&files.spool_path);
    Ok((
        Written {
            records,
            format_seconds: meta.format_seconds,
        },
        meta,
    ))
}

fn names(sink: &Sink) -> Vec<String> {
    sink.threads
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}
