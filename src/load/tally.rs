//! What a load thread counts as it goes; the threads' tallies add up to the
//! report.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::client::Outcome;
use crate::frame::Reason;

/// Why something failed: a short key the report counts by, and the first
/// full message seen with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub reason: String,
    pub message: String,
}

impl Problem {
    pub fn new(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// A failed connect.
    pub fn connect(e: &std::io::Error) -> Self {
        let reason = match e.kind() {
            std::io::ErrorKind::ConnectionRefused => "connect refused",
            std::io::ErrorKind::TimedOut => "connect timed out",
            _ => "connect failed",
        };
        Self::new(reason, e.to_string())
    }

    /// A connection that ended in an I/O error after connecting.
    pub fn io(e: &std::io::Error) -> Self {
        let reason = match e.kind() {
            std::io::ErrorKind::UnexpectedEof => "closed by the server",
            std::io::ErrorKind::ConnectionReset => "connection reset",
            std::io::ErrorKind::BrokenPipe => "connection reset",
            _ => "I/O error",
        };
        Self::new(reason, e.to_string())
    }

    /// A request that ended badly, by how.
    pub fn stream(outcome: Outcome) -> Option<Self> {
        match outcome {
            Outcome::Reset(code) => Some(Self::new(
                format!("stream reset {code}"),
                format!("the server reset the stream with {code}"),
            )),
            Outcome::Refused => Some(Self::new(
                "stream refused",
                "REFUSED_STREAM, and refused again on every retry",
            )),
            Outcome::WrongBody { octets } => Some(Self::new(
                "wrong body",
                format!("a response's body was not the one expected ({octets} octets)"),
            )),
            Outcome::WrongStatus(status) => Some(Self::new(
                "wrong status",
                format!("a response's status was {status}, not its route's"),
            )),
            Outcome::Status(_) | Outcome::Unprocessed | Outcome::Lost => None,
        }
    }

    pub fn goaway(reason: Reason) -> Self {
        Self::new(
            format!("GOAWAY {reason}"),
            format!("the server closed the connection with GOAWAY {reason}"),
        )
    }
}

/// Min, max and sum of some µs figures.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Spread {
    pub n: u64,
    pub min: u64,
    pub max: u64,
    pub sum: u128,
}

impl Spread {
    pub fn add(&mut self, v: u64) {
        self.min = if self.n == 0 { v } else { self.min.min(v) };
        self.max = self.max.max(v);
        self.sum += u128::from(v);
        self.n += 1;
    }

    pub fn merge(&mut self, o: &Spread) {
        if o.n > 0 {
            self.min = if self.n == 0 {
                o.min
            } else {
                self.min.min(o.min)
            };
            self.max = self.max.max(o.max);
            self.sum += o.sum;
            self.n += o.n;
        }
    }

    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum as f64 / self.n as f64)
    }
}

/// The TLS a connection negotiated.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
    pub alpn: Option<String>,
}

/// `--rps`: how well the schedule was kept.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Schedule {
    /// Requests sent (due in the measured part).
    pub sent: u64,
    /// Requests whose time came but that were never sent.
    pub unsent: u64,
    /// The most a request was sent after its time, in µs.
    pub max_lag_us: u64,
}

/// One path's share of a run (`-i` or several URLs).
#[derive(Clone, Debug)]
pub struct PathTally {
    pub succeeded: u64,
    pub failed: u64,
    /// Responses by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Latency of its succeeded requests, µs (2 significant digits: a
    /// histogram per path stays small).
    pub hist: Histogram<u64>,
    /// DATA octets of its succeeded responses.
    pub body: u64,
}

impl Default for PathTally {
    fn default() -> Self {
        Self {
            succeeded: 0,
            failed: 0,
            statuses: BTreeMap::new(),
            hist: Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid bounds"),
            body: 0,
        }
    }
}

impl PathTally {
    fn merge(&mut self, o: &PathTally) {
        self.succeeded += o.succeeded;
        self.failed += o.failed;
        for (s, n) in &o.statuses {
            *self.statuses.entry(*s).or_default() += n;
        }
        let _ = self.hist.add(&o.hist);
        self.body += o.body;
    }
}

pub struct Tally {
    /// Latency of succeeded requests, µs.
    pub hist: Histogram<u64>,
    pub succeeded: u64,
    pub failed: u64,
    pub connection_errors: u64,
    /// Responses by status (100–999), counted requests only: an array,
    /// since a map lookup per response showed in the client's profile.
    pub statuses: Box<[u64; 1000]>,
    /// Problems by reason: how many, and the first message.
    pub problems: BTreeMap<String, (u64, String)>,
    pub connect_us: Spread,
    pub first_byte_us: Spread,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Octets read from the sockets once the measured time had begun.
    pub bytes_in_measured: u64,
    pub headers_in: u64,
    pub data_in: u64,
    /// Response header blocks received, the fields in them, and the
    /// blocks with a `date` (warm-up included, as `headers_in`).
    pub header_blocks: u64,
    pub header_fields: u64,
    pub dated: u64,
    /// DATA octets of the counted responses that succeeded (goodput).
    pub body_in: u64,
    /// Requests sent again (REFUSED_STREAM, or unprocessed by a GOAWAY).
    pub retried: u64,
    /// New connections opened after a GOAWAY or used-up stream ids.
    pub reconnects: u64,
    /// Succeeded requests per client slot (`-c`), this thread's slots.
    pub per_client: Vec<u64>,
    pub tls: Option<TlsInfo>,
    pub schedule: Schedule,
    /// Requests in flight when the run was interrupted (not counted).
    pub abandoned: u64,
    /// Only requests started at or after this count.
    pub from: Instant,
    /// Per request of the run (per path), the requests that were sent.
    pub paths: Vec<PathTally>,
}

impl Tally {
    pub fn new(from: Instant, slots: usize, paths: usize) -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
            succeeded: 0,
            failed: 0,
            connection_errors: 0,
            statuses: Box::new([0; 1000]),
            problems: BTreeMap::new(),
            connect_us: Spread::default(),
            first_byte_us: Spread::default(),
            bytes_in: 0,
            bytes_out: 0,
            bytes_in_measured: 0,
            headers_in: 0,
            header_blocks: 0,
            header_fields: 0,
            dated: 0,
            data_in: 0,
            body_in: 0,
            retried: 0,
            reconnects: 0,
            per_client: vec![0; slots],
            tls: None,
            schedule: Schedule::default(),
            abandoned: 0,
            from,
            paths: vec![PathTally::default(); paths],
        }
    }

    /// Request `request` (of the run's list) of client `slot` ended
    /// (started at `started`), its response carrying `body` DATA octets.
    pub fn record(
        &mut self,
        slot: usize,
        request: usize,
        started: Instant,
        outcome: Outcome,
        body: u64,
        now: Instant,
    ) {
        if started < self.from {
            return;
        }
        let path = self.paths.get_mut(request);
        let status = match outcome {
            Outcome::Status(s) | Outcome::WrongStatus(s) => Some(s),
            _ => None,
        };
        if let Some(s) = status {
            // A status over 999 is not HTTP: counted as 999.
            self.statuses[usize::from(s.min(999))] += 1;
        }
        let mut path = path;
        if let (Some(p), Some(s)) = (path.as_deref_mut(), status) {
            *p.statuses.entry(s).or_default() += 1;
        }
        if matches!(outcome, Outcome::Status(s) if (200..400).contains(&s)) {
            self.succeeded += 1;
            self.body_in += body;
            if let Some(n) = self.per_client.get_mut(slot) {
                *n += 1;
            }
            let us = now.saturating_duration_since(started).as_micros().max(1) as u64;
            let _ = self.hist.record(us.min(self.hist.high()));
            if let Some(p) = path {
                p.succeeded += 1;
                p.body += body;
                let _ = p.hist.record(us.min(p.hist.high()));
            }
        } else {
            self.failed = self.failed.saturating_add(1);
            if let Some(p) = path {
                p.failed += 1;
            }
            if let Some(p) = Problem::stream(outcome) {
                self.problem(p);
            }
        }
    }

    /// `n` requests that never got an answer fail, for `problem`.
    pub fn fail_unsent(&mut self, n: u64) {
        self.failed = self.failed.saturating_add(n);
    }

    pub fn problem(&mut self, p: Problem) {
        let e = self.problems.entry(p.reason).or_insert((0, p.message));
        e.0 += 1;
    }

    /// A connection failed (counted once) for this reason.
    pub fn connection_error(&mut self, p: Problem) {
        self.connection_errors += 1;
        self.problem(p);
    }

    /// The statuses seen, with their counts.
    pub fn status_counts(&self) -> BTreeMap<u16, u64> {
        (0..1000u16)
            .zip(self.statuses.iter())
            .filter(|(_, &n)| n > 0)
            .map(|(s, &n)| (s, n))
            .collect()
    }

    pub fn lag(&mut self, lag: Duration) {
        self.schedule.max_lag_us = self.schedule.max_lag_us.max(lag.as_micros() as u64);
    }

    pub fn merge(&mut self, o: Tally) {
        let _ = self.hist.add(&o.hist);
        self.succeeded += o.succeeded;
        self.failed = self.failed.saturating_add(o.failed);
        self.connection_errors += o.connection_errors;
        for (mine, theirs) in self.statuses.iter_mut().zip(o.statuses.iter()) {
            *mine += theirs;
        }
        for (reason, (n, msg)) in o.problems {
            self.problems.entry(reason).or_insert((0, msg)).0 += n;
        }
        self.connect_us.merge(&o.connect_us);
        self.first_byte_us.merge(&o.first_byte_us);
        self.bytes_in += o.bytes_in;
        self.bytes_in_measured += o.bytes_in_measured;
        self.bytes_out += o.bytes_out;
        self.headers_in += o.headers_in;
        self.header_blocks += o.header_blocks;
        self.header_fields += o.header_fields;
        self.dated += o.dated;
        self.data_in += o.data_in;
        self.body_in += o.body_in;
        self.retried += o.retried;
        self.reconnects += o.reconnects;
        self.per_client.extend(o.per_client);
        if self.tls.is_none() {
            self.tls = o.tls;
        }
        self.schedule.sent += o.schedule.sent;
        self.schedule.unsent += o.schedule.unsent;
        self.schedule.max_lag_us = self.schedule.max_lag_us.max(o.schedule.max_lag_us);
        self.abandoned += o.abandoned;
        if self.paths.len() < o.paths.len() {
            self.paths.resize(o.paths.len(), PathTally::default());
        }
        for (mine, theirs) in self.paths.iter_mut().zip(&o.paths) {
            mine.merge(theirs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_counted_by_status_and_reason() {
        let t0 = Instant::now();
        let mut t = Tally::new(t0, 2, 1);
        t.record(
            0,
            0,
            t0,
            Outcome::Status(200),
            0,
            t0 + Duration::from_millis(1),
        );
        t.record(1, 0, t0, Outcome::Status(404), 0, t0);
        t.record(1, 0, t0, Outcome::Reset(Reason::CANCEL), 0, t0);
        t.record(1, 0, t0, Outcome::Reset(Reason::CANCEL), 0, t0);
        let mut other = Tally::new(t0, 1, 1);
        other.record(0, 0, t0, Outcome::Status(200), 0, t0);
        other.connection_error(Problem::new("connect refused", "refused"));
        t.merge(other);
        assert_eq!((t.succeeded, t.failed, t.connection_errors), (2, 3, 1));
        assert_eq!(t.status_counts(), BTreeMap::from([(200, 2), (404, 1)]));
        assert_eq!(t.problems["stream reset CANCEL"].0, 2);
        assert_eq!(t.problems["connect refused"], (1, "refused".into()));
        assert_eq!(t.per_client, [1, 0, 1]);
        assert_eq!(t.hist.len(), 2);
        // Before the warm-up ended: not counted at all.
        let mut late = Tally::new(t0 + Duration::from_secs(1), 1, 1);
        late.record(0, 0, t0, Outcome::Status(500), 0, t0);
        assert_eq!((late.failed, late.status_counts().len()), (0, 0));
    }

    #[test]
    fn spreads_merge() {
        let mut a = Spread::default();
        assert_eq!(a.mean(), None);
        a.add(5);
        a.add(1);
        let mut b = Spread::default();
        b.add(9);
        a.merge(&b);
        a.merge(&Spread::default());
        assert_eq!((a.n, a.min, a.max, a.mean()), (3, 1, 9, Some(5.0)));
    }
}
