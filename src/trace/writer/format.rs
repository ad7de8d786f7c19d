//! One record at a time into both formats: a CSV line and a JSON event
//! each, plus what the JSON derives across records (named tracks, flows
//! from a request to its write, the streams-in-flight counter).

use std::io::{self, Write};

use super::chrome::{counter, flow, name_reactor, name_track, write_json};
use super::csv_rows::write_csv;
use super::digits::num;
use crate::frame::{FrameHeader, FrameType};
use crate::trace::schema::{Kind, Name, Record};

/// Turns records into CSV lines and JSON events in reused byte buffers,
/// with hand-rolled number formatting: `core::fmt` was most of the cost.
/// Besides one event per record, the JSON gets what Perfetto users expect:
/// a flow arrow from each request's HEADERS to the `write_socket` that
/// carried its response, and a counter track of the streams in flight per
/// client.
pub(super) struct Formatter {
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
pub(super) const PID: u64 = 1_000_000_000;

/// The reactor a thread is, by its name (`h2lab-poll-K` among several).
fn reactor(thread: Option<&str>) -> Option<u64> {
    thread?.strip_prefix("h2lab-poll-")?.parse().ok()
}

impl Formatter {
    pub(super) fn new(setup: &str) -> Self {
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

    pub(super) fn record(&mut self, r: &Record) {
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

    pub(super) fn drain(&mut self, csv: &mut impl Write, json: &mut impl Write) -> io::Result<()> {
        csv.write_all(&self.csv)?;
        json.write_all(&self.json)?;
        self.csv.clear();
        self.json.clear();
        Ok(())
    }
}
