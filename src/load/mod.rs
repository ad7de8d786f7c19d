//! `h2lab load`: the built-in load generator. `-t` threads, each a mio
//! loop over its share of `c` connections with up to `m` requests in flight
//! each, our own HTTP/2 client (`client.rs`) and rustls on memory buffers,
//! so that the main job needs no external tool. Like h2load: a total of
//! `-n` requests split evenly over the clients, or `-D` after `--warm-up`;
//! with `--rps`, requests go out on a schedule (open loop) and latency
//! counts from each request's scheduled time, as wrk2 does.

pub mod client;
pub mod command;
mod conn;
pub mod remote;
mod report;
pub mod request;
mod tally;
mod timer;
mod timetable;
mod tls;
pub mod url;
mod wire;
mod worker;

use crate::engine::Body;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;

pub use report::{HostReport, Latency, LoadReport};
use request::{Header, Request, Spec};

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
    /// `-i`: more URLs, taken in turn after `url`; only their paths count
    /// (the connection is to `url`'s scheme, host and port, as in h2load).
    pub more_urls: Vec<String>,
    pub clients: usize,
    pub streams: usize,
    /// Threads, each with its share of the clients.
    pub threads: usize,
    pub stop: Stop,
    /// Responses finished during the warm-up are not counted (`-D` only).
    pub warm_up: Duration,
    /// Accept any certificate (`-k`).
    pub insecure: bool,
    /// Trust this CA (PEM) for `https://`.
    pub cacert: Option<PathBuf>,
    /// Requests still open this long after the last one was due are failed.
    pub timeout: Duration,
    /// `GET`, or `POST` with a body, unless given.
    pub method: Option<String>,
    pub headers: Vec<Header>,
    pub body: Option<Arc<[u8]>>,
    /// Requests per second in all (open loop); `None`: as fast as the
    /// server answers (closed loop).
    pub rps: Option<f64>,
    /// Every response's body must be this `h2lab serve --body` one.
    pub expect_body: Option<Body>,
    /// Our connection and stream receive windows (`--window`).
    pub window: u32,
    /// Browser-like request headers (about 600 octets with a cookie),
    /// encoded with each connection's dynamic table
    /// (`--browser-headers`).
    pub browser_headers: bool,
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            more_urls: Vec::new(),
            clients: 1,
            streams: 1,
            threads: 1,
            stop: Stop::Requests(1),
            warm_up: Duration::ZERO,
            insecure: false,
            cacert: None,
            timeout: Duration::from_secs(10),
            method: None,
            headers: Vec::new(),
            body: None,
            rps: None,
            expect_body: None,
            window: client::WINDOW,
            browser_headers: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("bad URL {0:?}: expected http://HOST:PORT/PATH or https://HOST:PORT/PATH")]
    Url(String),
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, io::Error),
    #[error("https:// needs --cacert FILE or -k (no system roots are used)")]
    NoTrust,
    #[error("cannot use the CA {}: {reason}", path.display())]
    Ca { path: PathBuf, reason: String },
    #[error("{0}")]
    Setup(String),
}

/// Shared with the threads of a run: Ctrl-C, and the progress line.
#[derive(Debug, Default)]
pub struct Control {
    /// Set to end the run now; what was done is reported.
    pub interrupted: Arc<AtomicBool>,
    /// Requests finished so far, all threads.
    pub finished: AtomicU64,
}

/// What every thread of a run shares: where to connect, what to send,
/// when to stop.
pub struct Plan {
    pub addr: std::net::SocketAddr,
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    pub requests: Vec<Request>,
    /// The order in which each client takes `requests` (weights repeat
    /// them), by index.
    pub order: Vec<usize>,
    /// Each request's weight.
    pub weights: Vec<u32>,
    pub clients: usize,
    pub streams: usize,
    pub start: Instant,
    /// Requests count from here (after the warm-up).
    pub measure_from: Instant,
    /// `-D`: when the last request is due; `None` with `-n`.
    pub due: Option<Instant>,
    pub timeout: Duration,
    /// `--rps`: the time between two requests of one client.
    pub interval: Option<Duration>,
    pub expect_body: Option<Body>,
    pub window: u32,
}

impl LoadConfig {
    /// Checks everything that can be checked before connecting: the URLs,
    /// the TLS trust, the numbers.
    fn plan(&self) -> Result<Plan, LoadError> {
        if self.clients == 0 || self.streams == 0 || self.threads == 0 {
            return Err(LoadError::Setup(
                "clients, streams and threads must be at least 1".into(),
            ));
        }
        if self.threads > self.clients {
            return Err(LoadError::Setup(format!(
                "{} threads for {} clients: -t must not exceed -c",
                self.threads, self.clients
            )));
        }
        let (first, weight) = url::weighted(&self.url)?;
        let target = url::parse_url(first)?;
        let tls = match target.https {
            true => {
                let name = ServerName::try_from(target.host.clone())
                    .map_err(|e| LoadError::Setup(format!("server name {}: {e}", target.host)))?;
                Some((tls::config(self)?, name))
            }
            false => None,
        };
        let mut paths = vec![target.path.clone()];
        let mut weights = vec![weight];
        for u in &self.more_urls {
            let (u, w) = url::weighted(u)?;
            paths.push(url::path_of(u)?);
            weights.push(w);
        }
        if weights.iter().map(|&w| u64::from(w)).sum::<u64>() > url::MAX_TOTAL_WEIGHT {
            return Err(LoadError::Setup(format!(
                "the weights add up to more than {}",
                url::MAX_TOTAL_WEIGHT
            )));
        }
        let mut authority = target.authority.clone();
        let mut headers = Vec::new();
        // `--browser-headers`: a browser's set, but what -H says instead.
        let mut headers_extra: Vec<(String, String)> = Vec::new();
        if self.browser_headers {
            for (n, v) in request::BROWSER_HEADERS {
                if !self
                    .headers
                    .iter()
                    .any(|h| matches!(h, Header::Field(m, _) if m == n))
                {
                    headers_extra.push((n.to_string(), v.to_string()));
                }
            }
        }
        for h in &self.headers {
            match h {
                Header::Authority(a) => authority = a.clone(),
                Header::Field(n, v) => headers.push((n.clone(), v.clone())),
            }
        }
        let method = self.method.clone().unwrap_or_else(|| match self.body {
            Some(_) => "POST".into(),
            None => "GET".into(),
        });
        let requests = paths
            .into_iter()
            .map(|path| {
                Spec {
                    method: method.clone(),
                    authority: authority.clone(),
                    https: target.https,
                    path,
                    headers: headers.iter().chain(&headers_extra).cloned().collect(),
                    body: self.body.clone(),
                    indexed: self.browser_headers,
                }
                .encode()
            })
            .collect();
        let interval = match self.rps {
            None => None,
            Some(r) if r.is_finite() && r > 0.0 => {
                Some(Duration::from_secs_f64(self.clients as f64 / r))
            }
            Some(r) => return Err(LoadError::Setup(format!("--rps {r} is not a rate"))),
        };
        let start = Instant::now();
        let (measure_from, due) = match self.stop {
            Stop::Requests(_) => (start, None),
            Stop::Duration(d) => (start + self.warm_up, Some(start + self.warm_up + d)),
        };
        Ok(Plan {
            addr: target.addr,
            tls,
            requests,
            order: url::weighted_order(&weights),
            weights,
            clients: self.clients,
            streams: self.streams,
            start,
            measure_from,
            due,
            timeout: self.timeout,
            interval,
            expect_body: self.expect_body,
            window: self.window,
        })
    }
}

/// Runs the load and reports. Bounded: it ends by `timeout` after the last
/// request was due, whatever the server does.
pub fn run(config: &LoadConfig) -> Result<LoadReport, LoadError> {
    run_with(config, &Control::default())
}

/// [`run`], stopped early when `control.interrupted` is set (the report
/// then says so), and counting finished requests into `control.finished`.
pub fn run_with(config: &LoadConfig, control: &Control) -> Result<LoadReport, LoadError> {
    let (plan, all, started) = run_tally(config, control)?;
    let interrupted = control
        .interrupted
        .load(std::sync::atomic::Ordering::Relaxed);
    Ok(report::build(config, &plan, all, started, interrupted))
}

/// The run itself: its plan, every thread's tally merged, and when it
/// started (UTC).
fn run_tally(
    config: &LoadConfig,
    control: &Control,
) -> Result<(Plan, tally::Tally, String), LoadError> {
    let started = crate::wall_clock::utc_now();
    let plan = config.plan()?;
    let c = config.clients as u64;
    let quota = |i: usize| match config.stop {
        Stop::Requests(n) => n / c + u64::from((i as u64) < n % c),
        Stop::Duration(_) => u64::MAX,
    };
    let tallies = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..config.threads)
            .map(|k| {
                let mine: Vec<(usize, u64)> = (k..config.clients)
                    .step_by(config.threads)
                    .map(|i| (i, quota(i)))
                    .collect();
                let plan = &plan;
                std::thread::Builder::new()
                    .name(format!("h2lab-load-{k}"))
                    .spawn_scoped(scope, move || {
                        worker::Worker::start(plan, control, &mine).map(worker::Worker::run)
                    })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                let t = t.map_err(|e| LoadError::Setup(format!("cannot start a thread: {e}")))?;
                t.join()
                    .map_err(|_| LoadError::Setup("a load thread panicked".into()))?
                    .map_err(|e| LoadError::Setup(format!("cannot set up the event loop: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()
    })?;
    let mut all = tally::Tally::new(plan.measure_from, 0, plan.requests.len());
    for t in tallies {
        all.merge(t);
    }
    Ok((plan, all, started))
}
