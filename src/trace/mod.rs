//! Instrumentation: a `tracing` event for every action a dispatch takes for
//! a client, carrying its interval (see [`ActionSpan`]), an event for every
//! HTTP/2 frame in and out, and our own
//! subscriber ([`recorder`]) that turns them into fixed-size [`Record`]s
//! for a writer thread ([`writer`]), which writes a Chrome-trace JSON
//! (Perfetto) and a CSV action log, each with its metadata ([`meta`]).
//!
//! All fields are numbers (names are codes into static tables), so building
//! a record needs no allocation. With the `trace` cargo feature off, the
//! helpers here compile to nothing; with it on but no `--trace`, an action
//! costs the `tracing` callsite check only.

pub mod command;
pub mod meta;
mod recorder;
pub mod schema;
mod tracer;
pub mod writer;

use std::fmt;
use std::path::PathBuf;

use crate::frame::{FrameHeader, HEADER_LEN};

pub use meta::TraceMeta;
pub use recorder::recording_threads;

/// Sends this thread's last records to the writer now, as the thread's end
/// would (its thread-local state is dropped only after the thread's
/// function has returned). For a thread that others wait for by other
/// means than a join, such as a detached `thread` connection: once this
/// returns, its records are with the writer.
pub fn flush_this_thread() {
    recorder::flush_all();
}
pub use schema::{CsvRow, Flags, FrameFlags, Kind, Name, Packed, Record, CSV_HEADER, NO_STATE};
pub use tracer::Tracer;

/// The target of every h2lab event; the recorder ignores all others
/// (the `h2` crate's own tracing among them).
pub const TARGET: &str = "h2lab";

/// One action, timed from [`action`] until it is dropped, then reported to
/// `tracing` as one event that carries its whole interval (Chrome's
/// "complete" event): one subscriber call per action instead of the three
/// a span costs (`new_span`, `record` of the bytes, `try_close`). Nothing
/// is recorded inside an action (frame events come after it), so a span
/// would add nothing a subscriber can use. Record the octets moved with
/// [`ActionSpan::bytes`].
#[must_use = "the action is timed until it is dropped"]
pub struct ActionSpan {
    #[cfg(feature = "trace")]
    live: Option<Live>,
}

#[cfg(feature = "trace")]
struct Live {
    /// The clock's raw reading at the start ([`clock`]).
    start: u64,
    client: u64,
    /// The name's code (low 8 bits) and the state (above).
    what: std::cell::Cell<u64>,
    bytes: std::cell::Cell<u64>,
}

impl ActionSpan {
    #[inline]
    pub fn bytes(&self, n: usize) {
        #[cfg(feature = "trace")]
        if let Some(live) = &self.live {
            live.bytes.set(n as u64);
        }
        #[cfg(not(feature = "trace"))]
        let _ = n;
    }

    /// Sets the `state` of an action already begun (`name` is its name
    /// again): for the poll loop's wait, the run-queue delay known only
    /// after it.
    #[inline]
    pub fn state(&self, name: Name, state: u64) {
        #[cfg(feature = "trace")]
        if let Some(live) = &self.live {
            live.what
                .set(what(name, state.min(u64::from(u32::MAX) - 1)));
        }
        #[cfg(not(feature = "trace"))]
        let _ = (name, state);
    }
}

/// The name's code in the low 8 bits, the state above (all ones: none).
#[cfg(feature = "trace")]
#[inline]
fn what(name: Name, state: u64) -> u64 {
    name as u64 | state.min(u64::from(u32::MAX)) << 8
}

#[cfg(feature = "trace")]
impl Drop for ActionSpan {
    /// The end is read first, before any of the tracer's work. Two fields,
    /// since each costs a visit: `action` packs the client (bits 96–127)
    /// and the bytes moved (64–95), both saturating at `u32::MAX` as a
    /// record does, and [`what`] (0–63); `time` the raw clock readings at
    /// the start (high 64 bits) and the end.
    #[inline]
    fn drop(&mut self) {
        if let Some(live) = &self.live {
            let end = clock().raw();
            let sat = |n: u64| u128::from(u32::try_from(n).unwrap_or(u32::MAX));
            tracing::trace!(
                target: "h2lab",
                action = sat(live.client) << 96 | sat(live.bytes.get()) << 64
                    | u128::from(live.what.get()),
                time = u128::from(live.start) << 64 | u128::from(end)
            );
        }
    }
}

/// The clock every trace in this process reads (the TSC where there is
/// one), calibrated once.
#[inline]
pub(crate) fn clock() -> &'static quanta::Clock {
    static CLOCK: std::sync::OnceLock<quanta::Clock> = std::sync::OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Begins one action for `client`; `state` is the poll client's flags
/// ([`NO_STATE`] elsewhere). Reads the clock only when some subscriber in
/// the process wants `TRACE` (one atomic load; with no `--trace`, none
/// does); whether ours takes the action is decided once, at its end.
#[inline]
pub fn action(client: u64, name: Name, state: u64) -> ActionSpan {
    #[cfg(feature = "trace")]
    {
        let live = tracing::level_enabled!(tracing::Level::TRACE).then(|| Live {
            start: clock().raw(),
            client,
            what: std::cell::Cell::new(what(name, state)),
            bytes: std::cell::Cell::new(0),
        });
        ActionSpan { live }
    }
    #[cfg(not(feature = "trace"))]
    {
        let _ = (client, name, state);
        ActionSpan {}
    }
}

/// Whether frame events are wanted at all: skip scanning when not.
#[inline]
pub fn frames_enabled() -> bool {
    #[cfg(feature = "trace")]
    {
        tracing::enabled!(target: "h2lab", tracing::Level::TRACE)
    }
    #[cfg(not(feature = "trace"))]
    {
        false
    }
}

/// Reports one frame seen going in (`out == false`) or out.
#[inline]
pub fn frame(client: u64, out: bool, head: FrameHeader) {
    // One field, since each costs a visit: its high 64 bits pack type
    // (bits 56–63), flags (48–55), direction (bit 47) and stream id (0–30);
    // its low 64 bits the client id (above bit 24) and the payload length
    // (24 bits, as on the wire).
    #[cfg(feature = "trace")]
    tracing::trace!(
        target: "h2lab",
        frame = u128::from(
            u64::from(head.kind.0) << 56
                | u64::from(head.flags) << 48
                | u64::from(out) << 47
                | u64::from(head.stream)
        ) << 64
            | u128::from(client << 24 | u64::from(head.length & 0xff_ffff))
    );
    #[cfg(not(feature = "trace"))]
    let _ = (client, out, head);
}

/// Finds frame boundaries in one direction of a connection's plaintext, fed
/// in chunks of any size; sees headers only, never buffers a payload.
#[derive(Debug)]
pub struct FrameScanner {
    /// Octets of the client preface still to skip (inbound only).
    preface: usize,
    header: [u8; HEADER_LEN],
    have: usize,
    /// Payload octets of the current frame still to skip.
    skip: u64,
}

impl FrameScanner {
    /// For what the client sends: starts with the 24-octet preface.
    pub fn inbound() -> Self {
        Self {
            preface: crate::frame::CLIENT_PREFACE.len(),
            ..Self::outbound()
        }
    }

    pub fn outbound() -> Self {
        Self {
            preface: 0,
            header: [0; HEADER_LEN],
            have: 0,
            skip: 0,
        }
    }

    /// Calls `on_frame` for every frame header completed by `data`.
    pub fn scan(&mut self, mut data: &[u8], mut on_frame: impl FnMut(FrameHeader)) {
        while !data.is_empty() {
            if self.preface > 0 {
                let n = self.preface.min(data.len());
                self.preface -= n;
                data = &data[n..];
            } else if self.skip > 0 {
                let n = (self.skip.min(data.len() as u64)) as usize;
                self.skip -= n as u64;
                data = &data[n..];
            } else if self.have == 0 && data.len() >= HEADER_LEN {
                // The usual case: a whole header in place, no copy; its
                // payload skipped in the same step where it is all here.
                if let Some(head) = FrameHeader::parse(data) {
                    on_frame(head);
                    let payload = head.length as usize;
                    match data.len() - HEADER_LEN {
                        rest if rest >= payload => data = &data[HEADER_LEN + payload..],
                        rest => {
                            self.skip = (payload - rest) as u64;
                            data = &[];
                        }
                    }
                }
            } else {
                let n = (HEADER_LEN - self.have).min(data.len());
                self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
                self.have += n;
                data = &data[n..];
                if self.have == HEADER_LEN {
                    self.have = 0;
                    if let Some(head) = FrameHeader::parse(&self.header) {
                        self.skip = head.length.into();
                        on_frame(head);
                    }
                }
            }
        }
    }
}

/// Where and how much to trace.
#[derive(Clone, Debug)]
pub struct TraceConfig {
    /// Writes `PREFIX.json`, `PREFIX.csv` and `PREFIX.meta.json`.
    pub prefix: PathBuf,
    /// Stop recording after this many records (the rest is counted).
    pub limit: Option<u64>,
    /// Records the queue to the writer thread holds; past it, records are
    /// dropped and counted.
    pub queue: usize,
    /// Format as the records come (crash-safe files, at the writer's CPU
    /// cost during the run) instead of keeping them and formatting at stop.
    pub live: bool,
    /// Deferred mode: octets of records held during the run in the shared
    /// mapping of `PREFIX.spool`, sized and touched at start (so that
    /// recording takes no page faults, and a crash loses nothing the writer
    /// took); past it records are appended to the file.
    pub memory: usize,
    /// Install the recorder as the process's global dispatcher rather than
    /// each traced thread's: events then skip a thread-local lookup. For a
    /// process that runs one traced server (`h2lab serve`); falls back to
    /// per-thread when a global dispatcher is already set.
    pub process_wide: bool,
}

/// The default memory for held records: 256 MiB, 8 Mi records of 32 octets
/// (over two million requests at 3–4 records each).
pub const DEFAULT_MEMORY: usize = 256 << 20;

/// The default queue: 1 Mi records (32 MiB), enough for a run at full speed
/// however slowly the disk takes the spool.
pub const DEFAULT_QUEUE: usize = 1 << 20;

impl TraceConfig {
    pub fn new(prefix: impl Into<PathBuf>) -> Self {
        Self {
            prefix: prefix.into(),
            limit: None,
            queue: DEFAULT_QUEUE,
            live: false,
            memory: DEFAULT_MEMORY,
            process_wide: false,
        }
    }

    pub fn json_path(&self) -> PathBuf {
        with_suffix(&self.prefix, "json")
    }

    pub fn csv_path(&self) -> PathBuf {
        with_suffix(&self.prefix, "csv")
    }

    pub fn meta_path(&self) -> PathBuf {
        with_suffix(&self.prefix, "meta.json")
    }

    pub fn spool_path(&self) -> PathBuf {
        with_suffix(&self.prefix, "spool")
    }
}

fn with_suffix(prefix: &std::path::Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// What a finished trace holds and what it lost.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TraceSummary {
    /// Records written to both files.
    pub written: u64,
    /// Records lost because the writer's queue was full.
    pub dropped: u64,
    /// Records not taken because of the limit.
    pub unrecorded: u64,
    /// Seconds spent formatting the files at stop.
    pub format_seconds: f64,
}

impl fmt::Display for TraceSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} records written, {} dropped (queue full), {} not recorded (limit); formatted in {:.3} s",
            self.written, self.dropped, self.unrecorded, self.format_seconds
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    // `error`, not `source`: the message says it once (no repeated chain).
    #[error("cannot create {}: {error}", path.display())]
    Create {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot read {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot write the trace: {0}")]
    Write(std::io::Error),
    #[error("cannot start the trace writer: {0}")]
    Spawn(std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameType;

    #[test]
    fn scanner_finds_frames_across_any_split() {
        let mut stream = crate::frame::CLIENT_PREFACE.to_vec();
        stream.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // SETTINGS
        stream.extend_from_slice(&[0, 0, 3, 1, 5, 0, 0, 0, 1, 0x82, 0x86, 0x84]); // HEADERS
        stream.extend_from_slice(&[0, 0, 2, 0, 1, 0, 0, 0, 1, b'h', b'i']); // DATA
        for chunk in 1..stream.len() {
            let mut scanner = FrameScanner::inbound();
            let mut seen = Vec::new();
            for part in stream.chunks(chunk) {
                scanner.scan(part, |h| seen.push((h.kind, h.flags, h.stream, h.length)));
            }
            assert_eq!(
                seen,
                [
                    (FrameType::SETTINGS, 0, 0, 0),
                    (FrameType::HEADERS, 5, 1, 3),
                    (FrameType::DATA, 1, 1, 2)
                ],
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn trace_paths_append_the_extension() {
        let c = TraceConfig::new("traces/run1");
        assert_eq!(c.json_path(), PathBuf::from("traces/run1.json"));
        assert_eq!(c.csv_path(), PathBuf::from("traces/run1.csv"));
    }
}
