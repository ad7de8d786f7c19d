//! `h2lab load`: the built-in load generator. One thread, a mio loop, `c`
//! connections with up to `m` requests in flight each, our own HTTP/2 client
//! (`client.rs`) and rustls on memory buffers, so that the main job needs no
//! external tool. Like h2load: a total of `-n` requests split evenly over the
//! clients, or `-D` seconds after `--warm-up` seconds.

pub mod client;
pub mod command;
mod conn;
mod tls;
mod url;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rustls::pki_types::ServerName;

use client::ClientConnection;
use conn::{Conn, Tally};
use url::Target;

/// When to stop issuing requests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stop {
    /// This many requests in all.
    Requests(u64),
    /// Measure for this long after the warm-up.
    Duration(Duration),
}

#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub url: String,
    pub clients: usize,
    pub streams: usize,
    pub stop: Stop,
    /// Responses finished during the warm-up are not counted (`-D` only).
    pub warm_up: Duration,
    /// Accept any certificate (`-k`).
    pub insecure: bool,
    /// Trust this CA (PEM) for `https://`.
    pub cacert: Option<PathBuf>,
    /// Requests still open this long after the last one was due are failed.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("bad URL {0:?}: expected http://HOST:PORT/ or https://HOST:PORT/")]
    Url(String),
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, io::Error),
    #[error("https:// needs --cacert FILE or -k (no system roots are used)")]
    NoTrust,
    #[error("cannot read the CA {}: {reason}", path.display())]
    Ca { path: PathBuf, reason: String },
    #[error("{0}")]
    Setup(String),
}

/// What a run measured (`--json` writes it as it is).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LoadReport {
    pub clients: usize,
    pub streams: usize,
    /// Requests counted (started after the warm-up, or all with `-n`).
    pub requests: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Connections that failed (refused, reset, TLS or protocol errors) or
    /// were never served by the end.
    pub connection_errors: u64,
    pub seconds: f64,
    pub req_per_s: f64,
    /// Latency of succeeded requests, in µs.
    pub latency_us: Latency,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Latency {
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
    pub mean: f64,
}

/// Runs the load and reports. Bounded: it ends by `timeout` after the last
/// request was due, whatever the server does.
pub fn run(config: &LoadConfig) -> Result<LoadReport, LoadError> {
    let mut run = Run::start(config)?;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    let mut plain_in = Vec::with_capacity(64 * 1024);
    while run.issue() && !run.out_of_time() {
        // Wakes at least every 50 ms, for the deadlines.
        if let Err(e) = run.poll.poll(&mut events, Some(Duration::from_millis(50))) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(setup_err(e));
            }
        }
        run.handle(&events, &mut buf, &mut plain_in);
    }
    Ok(run.finish())
}

fn setup_err(e: impl ToString) -> LoadError {
    LoadError::Setup(e.to_string())
}

/// A load run under way.
struct Run<'a> {
    config: &'a LoadConfig,
    poll: Poll,
    conns: Vec<Conn>,
    tally: Tally,
    start: Instant,
    /// Requests count from here (after the warm-up).
    measure_from: Instant,
    /// `-D`: when the last request is due; `None` with `-n`.
    due: Option<Instant>,
    last_progress: Instant,
}

impl<'a> Run<'a> {
    /// Checks the configuration and opens every connection (one that cannot
    /// be opened is a connection error, and with `-n` its share fails).
    fn start(config: &'a LoadConfig) -> Result<Self, LoadError> {
        if config.clients == 0 || config.streams == 0 {
            return Err(LoadError::Setup(
                "clients and streams must be at least 1".into(),
            ));
        }
        let target = url::parse_url(&config.url)?;
        let tls = match target.https {
            true => Some(tls::config(config)?),
            false => None,
        };
        let start = Instant::now();
        let (measure_from, due) = match config.stop {
            Stop::Requests(_) => (start, None),
            Stop::Duration(d) => (start + config.warm_up, Some(start + config.warm_up + d)),
        };
        let mut run = Run {
            config,
            poll: Poll::new().map_err(setup_err)?,
            conns: Vec::with_capacity(config.clients),
            tally: Tally {
                hist: hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
                    .map_err(setup_err)?,
                succeeded: 0,
                failed: 0,
                connection_errors: 0,
                from: measure_from,
            },
            start,
            measure_from,
            due,
            last_progress: start,
        };
        for i in 0..config.clients {
            let quota = match config.stop {
                Stop::Requests(n) => {
                    let c = config.clients as u64;
                    n / c + u64::from((i as u64) < n % c)
                }
                Stop::Duration(_) => u64::MAX,
            };
            run.connect(&target, tls.as_ref(), quota)?;
        }
        run.last_progress = Instant::now();
        Ok(run)
    }

    /// With `-n`, every request of a connection's quota is counted.
    fn counted_quota(&self) -> bool {
        self.due.is_none()
    }

    fn connect(
        &mut self,
        target: &Target,
        tls: Option<&Arc<rustls::ClientConfig>>,
        quota: u64,
    ) -> Result<(), LoadError> {
        let sock = match std::net::TcpStream::connect(target.addr)
            .and_then(|s| s.set_nodelay(true).map(|()| s))
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
        {
            Ok(s) => s,
            Err(_) => {
                self.tally.connection_errors += 1;
                if self.counted_quota() {
                    self.tally.failed += quota;
                }
                return Ok(());
            }
        };
        let mut sock = TcpStream::from_std(sock);
        let token = Token(self.conns.len());
        self.poll
            .registry()
            .register(&mut sock, token, Interest::READABLE | Interest::WRITABLE)
            .map_err(setup_err)?;
        let tls = match tls {
            Some(cfg) => {
                let name = ServerName::try_from(target.host.clone())
                    .map_err(|e| LoadError::Setup(format!("server name {}: {e}", target.host)))?;
                Some(rustls::ClientConnection::new(cfg.clone(), name).map_err(setup_err)?)
            }
            None => None,
        };
        let mut plain = Vec::new();
        let h2 = ClientConnection::new(&target.authority, target.https, &mut plain);
        self.conns.push(Conn {
            sock,
            tls,
            h2,
            plain,
            wire: Vec::new(),
            writable: false,
            quota,
            started: Default::default(),
            closed: false,
        });
        Ok(())
    }

    /// Starts every request that may start now and writes what is queued;
    /// whether anything is left to wait for.
    fn issue(&mut self) -> bool {
        let now = Instant::now();
        let issuing = self.due.is_none_or(|d| now < d);
        let counted_quota = self.counted_quota();
        let streams = self.config.streams;
        let mut busy = false;
        for c in self.conns.iter_mut().filter(|c| !c.closed) {
            let mut fresh = false;
            while issuing
                && c.quota > 0
                && c.h2.in_flight() < streams
                && c.h2.can_send()
                && c.handshake_done()
            {
                let stream = c.h2.send_request(&mut c.plain);
                c.started.insert(stream, now);
                if counted_quota {
                    c.quota -= 1;
                }
                fresh = true;
            }
            if (fresh || !c.plain.is_empty() || !c.wire.is_empty()) && c.flush().is_err() {
                c.fail(&mut self.tally, now, counted_quota);
                continue;
            }
            if counted_quota && c.quota > 0 && c.h2.in_flight() == 0 && !c.h2.can_send() {
                // GOAWAY before its share was done: the rest fails.
                self.tally.failed += c.quota;
                c.quota = 0;
            }
            busy |= c.h2.in_flight() > 0 || (issuing && c.quota > 0);
        }
        busy
    }

    /// Past the timeout after the last request was due (`-D`), or after the
    /// last progress (`-n`).
    fn out_of_time(&self) -> bool {
        let now = Instant::now();
        match self.due {
            Some(d) => now > d + self.config.timeout,
            None => now > self.last_progress + self.config.timeout,
        }
    }

    /// Reads what the events say is there and writes what it unblocks.
    fn handle(&mut self, events: &Events, buf: &mut [u8], plain_in: &mut Vec<u8>) {
        let now = Instant::now();
        let counted_quota = self.counted_quota();
        let before = self.tally.succeeded + self.tally.failed;
        for event in events.iter() {
            let Some(c) = self.conns.get_mut(event.token().0) else {
                continue;
            };
            if c.closed {
                continue;
            }
            if event.is_writable() {
                c.writable = true;
            }
            if c.receive(buf, plain_in, &mut self.tally, now).is_err() || c.flush().is_err() {
                self.tally.connection_errors += 1;
                c.fail(&mut self.tally, now, counted_quota);
            }
        }
        if self.tally.succeeded + self.tally.failed != before {
            self.last_progress = now;
        }
    }

    /// Ends what is still open and sums up.
    fn finish(mut self) -> LoadReport {
        let end = Instant::now();
        let counted_quota = self.counted_quota();
        for c in self.conns.iter_mut().filter(|c| !c.closed) {
            // Never served (a server that takes one client at a time): that is
            // a connection error, even with nothing in flight to fail.
            if !c.h2.is_established() {
                self.tally.connection_errors += 1;
                if !counted_quota {
                    c.starve(&mut self.tally, self.config.streams);
                    continue;
                }
            }
            // Still open at the end: timed out.
            c.fail(&mut self.tally, end, counted_quota);
        }
        let seconds = match self.due {
            Some(d) => d
                .min(end)
                .saturating_duration_since(self.measure_from)
                .as_secs_f64(),
            None => end.duration_since(self.start).as_secs_f64(),
        };
        let h = &self.tally.hist;
        let latency_us = match h.len() {
            0 => Latency::default(),
            _ => Latency {
                min: h.min(),
                p50: h.value_at_quantile(0.50),
                p90: h.value_at_quantile(0.90),
                p99: h.value_at_quantile(0.99),
                max: h.max(),
                mean: h.mean(),
            },
        };
        let t = &self.tally;
        LoadReport {
            clients: self.config.clients,
            streams: self.config.streams,
            requests: t.succeeded + t.failed,
            succeeded: t.succeeded,
            failed: t.failed,
            connection_errors: t.connection_errors,
            seconds,
            req_per_s: if seconds > 0.0 {
                t.succeeded as f64 / seconds
            } else {
                0.0
            },
            latency_us,
        }
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = &self.latency_us;
        writeln!(
            f,
            "requests: {} total, {} succeeded, {} failed; {} connection errors ({} clients, {} streams each)",
            self.requests, self.succeeded, self.failed, self.connection_errors, self.clients, self.streams
        )?;
        writeln!(
            f,
            "finished in {:.3} s, {:.0} req/s",
            self.seconds, self.req_per_s
        )?;
        writeln!(
            f,
            "latency µs: min {} p50 {} p90 {} p99 {} max {} mean {:.1}",
            l.min, l.p50, l.p90, l.p99, l.max, l.mean
        )
    }
}
