//! The writer thread: batches of records in; the CSV action log and the
//! Chrome-trace JSON out, plus the `PREFIX.meta.json` sidecar.
//!
//! Two modes. **Deferred** (the default): during the run the writer only
//! keeps the batches, in memory up to `TraceConfig::memory` and past that
//! as raw fixed-size records in `PREFIX.spool`, so that no formatting and no
//! file system work competes with the server for CPU; at stop it formats
//! them into both files and says how long that took. After a crash the
//! spool, if any, is still there: `h2lab trace-convert PREFIX` formats it;
//! what was held in memory is lost. **Live** (`--trace-live`): every batch
//! is formatted and flushed as it comes, so even a killed server leaves
//! files Perfetto loads, at the cost of the writer's CPU during the run.
//!
//! The JSON is crash-safe in both modes: it starts as 15 spaces and `[`, the
//! Chrome "JSON array" form, which loads however it is cut; a clean stop
//! appends the end and the metadata and overwrites those 16 octets with
//! `{"traceEvents":[`, the object form, whose `metadata` Perfetto shows.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::time::Instant;

use super::meta::TraceMeta;
use super::recorder::Sink;
use super::schema::{Flags, FrameFlags, Kind, Name, Packed, Record, CSV_HEADER, NO_STATE};
use super::{TraceConfig, TraceError};
use crate::frame::{FrameHeader, FrameType};

pub(super) enum Msg {
    Batch(Vec<Packed>),
    /// Complete the files; the server's response count, if known.
    Finish(Option<u64>),
}

/// The JSON's first 16 octets while it is being written, and after a clean end.
const JSON_OPEN: &[u8; 16] = b"               [";
const JSON_OBJECT: &[u8; 16] = b"{\"traceEvents\":[";
/// Octets of one record in the spool.
pub const SPOOL_RECORD: usize = Packed::SIZE;

/// The files of one trace.
pub(super) struct Files {
    json: BufWriter<File>,
    csv: BufWriter<File>,
    spool_path: PathBuf,
    /// Deferred mode, once the memory is full.
    spool: Option<BufWriter<File>>,
    meta_path: PathBuf,
    live: bool,
    /// Deferred mode, before the spool takes over: room for the records, copied out of each batch, which goes
    /// back to the recording thread at once: it keeps writing into the same
    /// few batches (in its cache) instead of fresh memory. Allocated and
    /// touched at start, so that holding records takes no page faults.
    held: Option<Vec<Packed>>,
}

fn create(path: PathBuf) -> Result<BufWriter<File>, TraceError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|error| TraceError::Create {
            path: dir.to_owned(),
            error,
        })?;
    }
    open_rw(&path).map_err(|error| TraceError::Create { path, error })
}

/// A new, empty file, readable too (the spool is read back at stop).
fn open_rw(path: &Path) -> io::Result<BufWriter<File>> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map(|f| BufWriter::with_capacity(256 * 1024, f))
}

impl Files {
    /// Creates every file now (and their folder), so that a bad path is an
    /// error at start, not a trace silently missing at the end; writes the
    /// CSV header, the JSON's opening and the metadata known at start.
    pub(super) fn create(config: &TraceConfig, meta: &TraceMeta) -> Result<Self, TraceError> {
        let mut files = Self {
            json: create(config.json_path())?,
            csv: create(config.csv_path())?,
            spool_path: config.spool_path(),
            spool: None,
            meta_path: config.meta_path(),
            live: config.live,
            held: (!config.live).then(|| {
                let mut held =
                    vec![Packed::default(); config.memory / std::mem::size_of::<Packed>()];
                held.clear();
                held
            }),
        };
        let write = |f: &mut Files| -> io::Result<()> {
            writeln!(f.csv, "{CSV_HEADER}")?;
            f.csv.flush()?;
            f.json.write_all(JSON_OPEN)?;
            f.json.flush()?;
            meta.write(&f.meta_path)
        };
        write(&mut files).map_err(TraceError::Write)?;
        Ok(files)
    }
}

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
    let mut held = files.held.take().unwrap_or_default();
    let mut spool_buf = Vec::new();
    for msg in rx.iter() {
        let batch = match msg {
            Msg::Batch(batch) => batch,
            Msg::Finish(responses) => {
                meta.responses = responses;
                break;
            }
        };
        records += batch.len() as u64;
        if files.live {
            fmt.threads = names(sink);
            for r in &batch {
                fmt.record(&r.unpack());
            }
            fmt.drain(&mut files.csv, &mut files.json)?;
            files.csv.flush()?;
            files.json.flush()?;
            sink.recycle(batch);
        } else if held.len() + batch.len() <= held.capacity() {
            held.extend_from_slice(&batch);
            sink.recycle(batch);
        } else {
            if files.spool.is_none() {
                files.spool = Some(open_rw(&files.spool_path)?);
            }
            let spool = files.spool.as_mut().expect("created above");
            spool_buf.clear();
            for r in &batch {
                spool_buf.extend_from_slice(&r.to_bytes());
            }
            // On disk at once: a crash loses only what threads still hold.
            spool.write_all(&spool_buf)?;
            spool.flush()?;
            sink.recycle(batch);
        }
    }
    fmt.threads = names(sink);
    let started = Instant::now();
    for chunk in held.chunks(4096) {
        for r in chunk {
            fmt.record(&r.unpack());
        }
        fmt.drain(&mut files.csv, &mut files.json)?;
    }
    if let Some(spool) = files.spool.take() {
        let file = spool.into_inner().map_err(|e| e.into_error())?;
        format_spool(file, &mut fmt, &mut files.csv, &mut files.json)?;
    }
    meta.format_seconds = started.elapsed().as_secs_f64();
    meta.complete = true;
    meta.records = records;
    meta.dropped = sink.dropped.load(std::sync::atomic::Ordering::SeqCst);
    meta.unrecorded = sink.unrecorded.load(std::sync::atomic::Ordering::SeqCst);
    meta.thread_names = fmt.threads.join("|");
    finish_json(files.json, &meta)?;
    files.csv.flush()?;
    files.csv.get_ref().sync_all()?;
    meta.write(&files.meta_path)?;
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

/// Formats every record of a spool file into both outputs.
fn format_spool(
    mut spool: File,
    fmt: &mut Formatter,
    csv: &mut impl Write,
    json: &mut impl Write,
) -> io::Result<u64> {
    spool.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::with_capacity(1 << 20, spool);
    let mut chunk = vec![0u8; SPOOL_RECORD * 4096];
    let mut n = 0u64;
    loop {
        let got = read_full(&mut reader, &mut chunk)?;
        // A record cut short by a crash is left out.
        for raw in chunk[..got - got % SPOOL_RECORD].chunks_exact(SPOOL_RECORD) {
            let raw = raw.try_into().expect("a whole record");
            fmt.record(&Packed::from_bytes(raw).unpack());
            n += 1;
        }
        fmt.drain(csv, json)?;
        if got < chunk.len() {
            return Ok(n);
        }
    }
}

/// Reads until `buf` is full or the input ends; returns the octets read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Ends the array, adds the metadata, and turns the array form into the
/// object form by overwriting the 16 octets it began with.
fn finish_json(json: BufWriter<File>, meta: &TraceMeta) -> io::Result<()> {
    let mut json = json;
    write!(json, "\n],\n\"displayTimeUnit\":\"ns\",\n\"metadata\":")?;
    serde_json::to_writer(&mut json, meta).map_err(io::Error::other)?;
    json.write_all(b"\n}\n")?;
    let mut file = json.into_inner().map_err(|e| e.into_error())?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(JSON_OBJECT)?;
    file.sync_all()?;
    Ok(())
}

/// Formats a crashed trace's spool: `PREFIX.json` and `PREFIX.csv` from
/// `PREFIX.spool` and the metadata written at start; the result says it is
/// incomplete. Returns the records formatted.
pub fn convert(config: &TraceConfig) -> Result<(u64, TraceMeta), TraceError> {
    let read_err = |path: &Path, error: io::Error| TraceError::Read {
        path: path.to_owned(),
        error,
    };
    let meta_path = config.meta_path();
    let mut meta = TraceMeta::read(&meta_path).map_err(|e| read_err(&meta_path, e))?;
    let spool_path = config.spool_path();
    let spool = File::open(&spool_path).map_err(|e| read_err(&spool_path, e))?;
    let mut csv = create(config.csv_path())?;
    let mut json = create(config.json_path())?;
    let mut fmt = Formatter::new(&meta.setup);
    let done = (|| -> io::Result<u64> {
        writeln!(csv, "{CSV_HEADER}")?;
        json.write_all(JSON_OPEN)?;
        let n = format_spool(spool, &mut fmt, &mut csv, &mut json)?;
        csv.flush()?;
        Ok(n)
    })()
    .map_err(TraceError::Write)?;
    meta.complete = false;
    meta.records = done;
    finish_json(json, &meta).map_err(TraceError::Write)?;
    meta.write(&meta_path).map_err(TraceError::Write)?;
    Ok((done, meta))
}

/// Turns records into CSV lines and JSON events in reused byte buffers,
/// with hand-rolled number formatting: `core::fmt` was most of the cost.
/// Besides one event per record, the JSON gets what Perfetto users expect:
/// a flow arrow from each request's HEADERS to the `write_socket` that
/// carried its response, and a counter track of the streams in flight per
/// client.
struct Formatter {
    csv: Vec<u8>,
    json: Vec<u8>,
    /// Bitmap of the clients whose track is named already.
    named: Vec<u64>,
    setup: String,
    process_named: bool,
    /// Reactors (of `poll --threads N`) whose process is named already.
    reactors_named: std::collections::BTreeSet<u64>,
    pub threads: Vec<String>,
    requests: std::collections::HashMap<u64, Requests>,
    next_flow: u64,
}

/// One client's requests, for flows and the in-flight counter.
#[derive(Default)]
struct Requests {
    /// Stream → when its HEADERS came in.
    open: std::collections::HashMap<u32, u64>,
    /// Answered (END_STREAM sent), waiting for the write that carries them.
    answered: Vec<u64>,
    /// The last `write_socket` slice: frames seen in the bytes written (h2c
    /// under the h2 engine) are stamped inside it, and it carried them.
    last_write: Option<(u64, u64)>,
    /// The process (track group) of the client's track.
    pid: u64,
}

/// The trace's process: every track, unless the server runs several poll
/// reactors. (Far above any client id: a tid equal to the pid is the
/// process's main thread to Perfetto, and tid 0 is taken as the pid.)
const PID: u64 = 1_000_000_000;

/// The reactor a thread is, by its name (`h2lab-poll-K` among several).
fn reactor(thread: Option<&str>) -> Option<u64> {
    thread?.strip_prefix("h2lab-poll-")?.parse().ok()
}

impl Formatter {
    fn new(setup: &str) -> Self {
        Self {
            csv: Vec::with_capacity(1 << 16),
            json: Vec::with_capacity(1 << 16),
            named: Vec::new(),
            setup: setup.to_string(),
            process_named: false,
            reactors_named: std::collections::BTreeSet::new(),
            threads: Vec::new(),
            requests: std::collections::HashMap::new(),
            next_flow: 1,
        }
    }

    /// Flows and counters: what the record means for its client's requests.
    fn follow(&mut self, r: &Record, pid: u64) {
        let end_stream = |f: &FrameHeader| {
            f.flags & crate::frame::flags::END_STREAM != 0
                && matches!(f.kind, FrameType::DATA | FrameType::HEADERS)
        };
        let reqs = self.requests.entry(r.client).or_default();
        reqs.pid = pid;
        let before = reqs.open.len();
        match (r.kind, r.frame) {
            (Kind::FrameIn, Some(f)) if f.kind == FrameType::HEADERS && f.stream != 0 => {
                reqs.open.entry(f.stream).or_insert(r.ts_ns);
            }
            (Kind::FrameOut, Some(f)) if end_stream(&f) => {
                if let Some(start) = reqs.open.remove(&f.stream) {
                    match reqs.last_write {
                        Some((ts, dur)) if (ts..=ts + dur).contains(&r.ts_ns) => {
                            flow(
                                &mut self.json,
                                self.next_flow,
                                pid,
                                r.client,
                                start,
                                r.ts_ns,
                            );
                            self.next_flow += 1;
                        }
                        _ => reqs.answered.push(start),
                    }
                }
            }
            (Kind::Action, _) if r.name == Some(Name::WriteSocket) => {
                reqs.last_write = Some((r.ts_ns, r.dur_ns));
                let at = r.ts_ns + r.dur_ns / 2;
                for start in std::mem::take(&mut reqs.answered) {
                    flow(&mut self.json, self.next_flow, pid, r.client, start, at);
                    self.next_flow += 1;
                }
            }
            _ => {}
        }
        let after = self.requests[&r.client].open.len();
        if after != before {
            counter(&mut self.json, pid, r.client, r.ts_ns, after);
        }
    }

    fn record(&mut self, r: &Record) {
        if !self.process_named {
            self.process_named = true;
            self.json
                .extend_from_slice(b"{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":");
            num(&mut self.json, PID);
            self.json
                .extend_from_slice(b",\"tid\":0,\"args\":{\"name\":\"h2lab ");
            self.json.extend_from_slice(self.setup.as_bytes());
            self.json.extend_from_slice(b"\"}}");
        }
        write_csv(&mut self.csv, r);
        let thread = self.threads.get(r.thread as usize).map(String::as_str);
        // Several poll reactors: a track group (process) each, its loop the
        // main thread, its clients' tracks inside.
        let (pid, tid) = match reactor(thread) {
            Some(k) => {
                let pid = PID + 1 + k;
                if self.reactors_named.insert(k) {
                    name_reactor(&mut self.json, pid, &self.setup, k);
                }
                (pid, if r.kind == Kind::Loop { pid } else { r.client })
            }
            None => (PID, r.client),
        };
        if tid == r.client {
            let (word, bit) = ((r.client / 64) as usize, r.client % 64);
            if self.named.len() <= word {
                self.named.resize(word + 1, 0);
            }
            if self.named[word] & (1 << bit) == 0 {
                self.named[word] |= 1 << bit;
                name_track(&mut self.json, pid, r.client);
            }
        }
        write_json(&mut self.json, r, thread, pid, tid);
        if r.kind != Kind::Loop && r.kind != Kind::Conn {
            self.follow(r, pid);
        }
    }

    fn drain(&mut self, csv: &mut impl Write, json: &mut impl Write) -> io::Result<()> {
        csv.write_all(&self.csv)?;
        json.write_all(&self.json)?;
        self.csv.clear();
        self.json.clear();
        Ok(())
    }
}

/// Decimal digits of `n`.
fn num(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Nanoseconds as microseconds with three decimals, as Chrome traces want.
fn micros(out: &mut Vec<u8>, ns: u64) {
    num(out, ns / 1000);
    let r = (ns % 1000) as u16;
    out.extend_from_slice(&[
        b'.',
        b'0' + (r / 100) as u8,
        b'0' + (r / 10 % 10) as u8,
        b'0' + (r % 10) as u8,
    ]);
}

/// A flow arrow on `client`'s track from the slice around `from` to the
/// slice around `to` (Chrome "s"/"f" events, bound to enclosing slices).
fn flow(out: &mut Vec<u8>, id: u64, pid: u64, client: u64, from: u64, to: u64) {
    for (ph, ts) in [("s", from), ("f", to)] {
        out.extend_from_slice(b",\n{\"name\":\"request\",\"cat\":\"request\",\"ph\":\"");
        out.extend_from_slice(ph.as_bytes());
        out.extend_from_slice(b"\",\"bp\":\"e\",\"id\":");
        num(out, id);
        out.extend_from_slice(b",\"pid\":");
        num(out, pid);
        out.extend_from_slice(b",\"tid\":");
        num(out, client);
        out.extend_from_slice(b",\"ts\":");
        micros(out, ts);
        out.push(b'}');
    }
}

/// The streams in flight of `client` from `ts` on (a counter track).
fn counter(out: &mut Vec<u8>, pid: u64, client: u64, ts: u64, n: usize) {
    out.extend_from_slice(b",\n{\"name\":\"streams in flight, client ");
    num(out, client);
    out.extend_from_slice(b"\",\"ph\":\"C\",\"pid\":");
    num(out, pid);
    out.extend_from_slice(b",\"ts\":");
    micros(out, ts);
    out.extend_from_slice(b",\"args\":{\"streams\":");
    num(out, n as u64);
    out.extend_from_slice(b"}}");
}

/// A thread's name and sort index in process `pid`.
fn name_thread(out: &mut Vec<u8>, pid: u64, tid: u64, name: &[u8], number: Option<u64>, sort: u64) {
    out.extend_from_slice(b",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":");
    num(out, pid);
    out.extend_from_slice(b",\"tid\":");
    num(out, tid);
    out.extend_from_slice(b",\"args\":{\"name\":\"");
    out.extend_from_slice(name);
    if let Some(n) = number {
        num(out, n);
    }
    out.extend_from_slice(b"\"}},\n{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":");
    num(out, pid);
    out.extend_from_slice(b",\"tid\":");
    num(out, tid);
    out.extend_from_slice(b",\"args\":{\"sort_index\":");
    num(out, sort);
    out.extend_from_slice(b"}}");
}

/// One named, sorted track per client; client 0 is the dispatch's own.
fn name_track(out: &mut Vec<u8>, pid: u64, client: u64) {
    match client {
        0 => name_thread(out, pid, 0, b"poll loop", None, 0),
        _ => name_thread(out, pid, client, b"client ", Some(client), client),
    }
}

/// The process of reactor `k` and its loop's track (its main thread).
fn name_reactor(out: &mut Vec<u8>, pid: u64, setup: &str, k: u64) {
    out.extend_from_slice(b",\n{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":");
    num(out, pid);
    out.extend_from_slice(b",\"tid\":0,\"args\":{\"name\":\"h2lab ");
    out.extend_from_slice(setup.as_bytes());
    out.extend_from_slice(b", reactor ");
    num(out, k);
    out.extend_from_slice(b"\"}}");
    name_thread(out, pid, pid, b"poll loop ", Some(k), 0);
}

fn write_csv(out: &mut Vec<u8>, r: &Record) {
    num(out, r.ts_ns);
    out.push(b',');
    num(out, r.dur_ns);
    out.push(b',');
    num(out, r.client);
    out.push(b',');
    out.extend_from_slice(r.kind.name().as_bytes());
    out.push(b',');
    out.extend_from_slice(r.name_str().as_bytes());
    out.push(b',');
    if let Some(f) = r.frame {
        num(out, f.stream.into());
    }
    out.push(b',');
    num(out, r.bytes);
    out.push(b',');
    write_state(out, r);
    out.push(b'\n');
}

fn write_state(out: &mut Vec<u8>, r: &Record) {
    match r.frame {
        Some(f) => FrameFlags {
            kind: f.kind,
            flags: f.flags,
        }
        .write_to(out),
        None if r.state == NO_STATE => {}
        // The loop's wait: the time it was runnable but not running.
        None if r.kind == Kind::Loop => {
            out.extend_from_slice(b"runq_ns=");
            num(out, r.state);
        }
        None => out.extend_from_slice(&Flags::from_bits(r.state as u16).letters()),
    }
}

fn write_json(out: &mut Vec<u8>, r: &Record, thread: Option<&str>, pid: u64, tid: u64) {
    out.extend_from_slice(b",\n{\"name\":\"");
    out.extend_from_slice(r.name_str().as_bytes());
    match r.kind {
        Kind::FrameIn => out.extend_from_slice(b" in"),
        Kind::FrameOut => out.extend_from_slice(b" out"),
        _ => {}
    }
    out.extend_from_slice(b"\",\"cat\":\"");
    out.extend_from_slice(r.kind.name().as_bytes());
    match (r.kind, r.frame) {
        (Kind::FrameIn | Kind::FrameOut, Some(f)) => {
            out.extend_from_slice(b"\",\"ph\":\"i\",\"s\":\"t\",\"pid\":");
            num(out, pid);
            out.extend_from_slice(b",\"tid\":");
            num(out, tid);
            out.extend_from_slice(b",\"ts\":");
            micros(out, r.ts_ns);
            out.extend_from_slice(b",\"args\":{\"stream\":");
            num(out, f.stream.into());
            out.extend_from_slice(b",\"length\":");
            num(out, f.length.into());
            out.extend_from_slice(b",\"flags\":\"");
            write_state(out, r);
            out.push(b'"');
        }
        _ => {
            out.extend_from_slice(b"\",\"ph\":\"X\",\"pid\":");
            num(out, pid);
            out.extend_from_slice(b",\"tid\":");
            num(out, tid);
            out.extend_from_slice(b",\"ts\":");
            micros(out, r.ts_ns);
            out.extend_from_slice(b",\"dur\":");
            micros(out, r.dur_ns);
            out.extend_from_slice(b",\"args\":{\"bytes\":");
            num(out, r.bytes);
            match (r.kind, r.state) {
                (_, NO_STATE) => {}
                (Kind::Loop, delay) => {
                    out.extend_from_slice(b",\"runq_ns\":");
                    num(out, delay);
                }
                _ => {
                    out.extend_from_slice(b",\"state\":\"");
                    write_state(out, r);
                    out.push(b'"');
                }
            }
        }
    }
    if let Some(thread) = thread {
        out.extend_from_slice(b",\"thread\":\"");
        out.extend_from_slice(thread.as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b"}}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::CsvRow;

    fn action() -> Record {
        Record {
            ts_ns: 1_234_567,
            dur_ns: 2_500,
            client: 3,
            kind: Kind::Action,
            name: Some(Name::ReadSocket),
            frame: None,
            bytes: 42,
            state: Flags::CAN_READ.with(Flags::TLS_READY).bits() as u64,
            thread: 1,
        }
    }

    fn frame() -> Record {
        Record {
            ts_ns: 2_000_001,
            dur_ns: 0,
            client: 3,
            kind: Kind::FrameOut,
            name: None,
            frame: Some(FrameHeader {
                length: 12,
                kind: FrameType::DATA,
                flags: 1,
                stream: 5,
            }),
            bytes: 12,
            state: NO_STATE,
            thread: 0,
        }
    }

    fn csv(r: &Record) -> String {
        let mut v = Vec::new();
        write_csv(&mut v, r);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn numbers_format_like_display() {
        for n in [0, 7, 10, 999, 1000, 123_456_789, u64::MAX] {
            let mut v = Vec::new();
            num(&mut v, n);
            assert_eq!(String::from_utf8(v).unwrap(), n.to_string());
        }
        for (ns, text) in [
            (0, "0.000"),
            (999, "0.999"),
            (1_000, "1.000"),
            (1_234_567, "1234.567"),
            (5_005, "5.005"),
        ] {
            let mut v = Vec::new();
            micros(&mut v, ns);
            assert_eq!(String::from_utf8(v).unwrap(), text);
        }
    }

    #[test]
    fn csv_rows_have_the_eight_columns() {
        assert_eq!(
            csv(&action()),
            "1234567,2500,3,action,read_socket,,42,r---t-----\n"
        );
        assert_eq!(
            csv(&frame()),
            "2000001,0,3,frame-out,DATA,5,12,END_STREAM\n"
        );
        let no_state = Record {
            state: NO_STATE,
            ..action()
        };
        assert_eq!(csv(&no_state), "1234567,2500,3,action,read_socket,,42,\n");
    }

    #[test]
    fn csv_rows_read_back_through_the_schema() {
        let mut text = format!("{CSV_HEADER}\n").into_bytes();
        write_csv(&mut text, &action());
        write_csv(&mut text, &frame());
        let rows: Vec<CsvRow> = csv::Reader::from_reader(text.as_slice())
            .deserialize()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows[0].kind, Kind::Action);
        assert_eq!(
            (rows[0].name.as_str(), rows[0].stream, rows[0].bytes),
            ("read_socket", None, 42)
        );
        assert_eq!(rows[0].state, "r---t-----");
        assert_eq!((rows[1].kind, rows[1].stream), (Kind::FrameOut, Some(5)));
        assert!(rows[1].is_response());
        assert!(!rows[0].is_response());
    }

    #[test]
    fn json_events_are_complete_slices_and_named_instants_in_micros() {
        let mut v = Vec::new();
        write_json(&mut v, &action(), Some("h2lab-poll"), PID, 3);
        write_json(&mut v, &frame(), None, PID, 3);
        let text = String::from_utf8(v).unwrap();
        assert!(
            text.contains(
                "\"ph\":\"X\",\"pid\":1000000000,\"tid\":3,\"ts\":1234.567,\"dur\":2.500"
            ),
            "{text}"
        );
        assert!(text.contains("\"state\":\"r---t-----\""), "{text}");
        assert!(text.contains("\"thread\":\"h2lab-poll\""), "{text}");
        assert!(
            text.contains("\"name\":\"DATA out\",\"cat\":\"frame-out\",\"ph\":\"i\""),
            "{text}"
        );
        assert!(text.contains("\"ts\":2000.001"), "{text}");
    }

    #[test]
    fn spool_records_round_trip() {
        for r in [
            action(),
            frame(),
            Record {
                state: NO_STATE,
                ..action()
            },
        ] {
            assert_eq!(Packed::from_bytes(&Packed::pack(&r).to_bytes()).unpack(), r);
        }
        let conn = Record {
            kind: Kind::Conn,
            name: Some(Name::Accept),
            ..action()
        };
        assert_eq!(
            Packed::from_bytes(&Packed::pack(&conn).to_bytes()).unpack(),
            conn
        );
    }
}
