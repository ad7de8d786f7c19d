//! Chrome-trace JSON events (the format Perfetto loads): slices,
//! instants, flows, counters and the names of processes and tracks.

use super::csv_rows::write_state;
use super::digits::{micros, num};
use crate::trace::schema::{Kind, Record, NO_STATE};

/// A flow arrow on `client`'s track from the slice around `from` to the
/// slice around `to` (Chrome "s"/"f" events, bound to enclosing slices).
pub(super) fn flow(out: &mut Vec<u8>, id: u64, pid: u64, client: u64, from: u64, to: u64) {
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
pub(super) fn counter(out: &mut Vec<u8>, pid: u64, client: u64, ts: u64, n: usize) {
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
pub(super) fn name_thread(
    out: &mut Vec<u8>,
    pid: u64,
    tid: u64,
    name: &[u8],
    number: Option<u64>,
    sort: u64,
) {
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
pub(super) fn name_track(out: &mut Vec<u8>, pid: u64, client: u64) {
    match client {
        0 => name_thread(out, pid, 0, b"poll loop", None, 0),
        _ => name_thread(out, pid, client, b"client ", Some(client), client),
    }
}

/// The process of reactor `k` and its loop's track (its main thread).
pub(super) fn name_reactor(out: &mut Vec<u8>, pid: u64, setup: &str, k: u64) {
    out.extend_from_slice(b",\n{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":");
    num(out, pid);
    out.extend_from_slice(b",\"tid\":0,\"args\":{\"name\":\"h2lab ");
    out.extend_from_slice(setup.as_bytes());
    out.extend_from_slice(b", reactor ");
    num(out, k);
    out.extend_from_slice(b"\"}}");
    name_thread(out, pid, pid, b"poll loop ", Some(k), 0);
}

pub(super) fn write_json(out: &mut Vec<u8>, r: &Record, thread: Option<&str>, pid: u64, tid: u64) {
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
