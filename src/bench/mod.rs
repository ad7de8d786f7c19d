//! `h2lab bench`: runs a matrix of setups × clients × pipeline depth. Each
//! run starts its own `h2lab serve` child (or a peer server), so that the
//! server's CPU time is read from /proc for that process alone, drives it
//! for a fixed time with the built-in load generator or h2load, and stops
//! it. Repeats are interleaved across cells to spread drift over all of them.
//!
//! Parts: [`matrix`] (what to run), [`child`] (our server processes),
//! [`peers`] (nginx, h2o, nghttpd), [`system`] (pinning, /proc),
//! [`h2load`], [`pace`] (the machine's own pace between runs), [`stats`],
//! [`row`] (the CSV record), [`export`] (table, CSV, JSON, markdown),
//! [`command`] and [`report`] (the two subcommands).

pub mod ab;
mod child;
pub mod command;
pub mod confidence;
pub mod counts;
pub mod diff;
pub mod export;
mod h2load;
pub mod machine;
pub mod matrix;
mod meter;
pub mod pace;
pub mod peers;
pub mod report;
pub mod row;
pub mod server_host;
pub mod stats;
pub mod system;
pub mod wakeup;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::{Body, Work};
use crate::load::{self, LoadConfig, Stop};
use crate::netns::attribution::Attribution;
use crate::netns::segments::Side;
use crate::server::Setup;
pub use counts::Counts;
pub use machine::Machine;
pub use matrix::{Cell, Target};
pub use peers::Peer;
pub use stats::Median;

/// Who makes the load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadClient {
    /// `h2lab load`, in this process.
    Builtin,
    /// h2load, from Debian's nghttp2-client.
    H2load,
}

impl LoadClient {
    pub fn name(self) -> &'static str {
        match self {
            LoadClient::Builtin => "builtin",
            LoadClient::H2load => "h2load",
        }
    }
}

#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub setups: Vec<Setup>,
    /// Peers to measure too, each with the TLS choices of the matrix.
    pub peers: Vec<(Peer, bool)>,
    pub clients: Vec<usize>,
    pub pipelines: Vec<usize>,
    /// `--threads`: server threads per cell (empty: each server's default).
    pub threads: Vec<usize>,
    /// `--work`: each request's work per cell, ours only (empty: none).
    pub work: Vec<Work>,
    /// `--body`: each response's body per cell (empty: the seed's).
    pub bodies: Vec<Body>,
    /// `--offload`: worker threads per cell, where it applies (empty: none).
    pub offload: Vec<usize>,
    /// `--source`: how our servers read and answer, per cell.
    pub sources: Vec<matrix::Source>,
    /// `--mix`: the request mixes, per cell, ours only (empty: `/`).
    pub mixes: Vec<matrix::Mix>,
    /// `--window`: the load client's receive windows (`None`: its default,
    /// 1 GiB for the built-in client, h2load's own).
    pub window: Option<u32>,
    pub duration: Duration,
    /// Load before each measured run, counted neither in requests nor CPU.
    pub warm_up: Duration,
    pub repeat: usize,
    /// `--precision`: a cell whose 95% interval of req/s or of CPU per
    /// request is wider than ± this percentage is run again, up to
    /// `max_repeat` runs (`None`: `repeat` runs, no more).
    pub precision: Option<f64>,
    pub max_repeat: usize,
    /// One more run of each cell with perf counting the server's system
    /// calls (its times are not kept).
    pub count_syscalls: bool,
    pub client: LoadClient,
    /// The `h2lab` binary whose `serve` is measured.
    pub exe: PathBuf,
    /// Requests still open this long after the run's end fail.
    pub timeout: Duration,
    /// CPU lists (`taskset -c` syntax) for the servers and for the load.
    pub pin_server: Option<String>,
    pub pin_client: Option<String>,
    /// Each of our setups also traced (`--trace-cost`), its files in here.
    pub trace_cost: bool,
    pub trace_dir: PathBuf,
    /// The machine's pace, timed before the first run and after each.
    pub pace: Option<pace::Pace>,
    /// `--net` and `--link`, made for the whole bench (undone when the
    /// last holder drops it).
    pub net: std::sync::Arc<crate::netns::Net>,
    /// `--load-hosts`, reached (versions checked, clocks measured) once a
    /// bench; `None`: the load runs here.
    pub hosts: Option<std::sync::Arc<load::remote::Hosts>>,
    /// `--listen`: the address the server binds and the load reaches it
    /// at; `None`: the network's (127.0.0.1, or the veth server's).
    pub listen: Option<std::net::IpAddr>,
    /// `--server-host`, reached (one host); `None`: the servers run here.
    pub server: Option<std::sync::Arc<load::remote::Hosts>>,
}

/// How the sides were joined, as the machine block says it: the
/// network, or with `--listen` where the servers listen (and on which
/// host, with `--server-host`), and with `--load-hosts` each host with
/// its clock offset.
pub fn network_line(
    net: &crate::netns::Net,
    listen: Option<std::net::IpAddr>,
    hosts: Option<&load::remote::Hosts>,
    server: Option<&load::remote::Hosts>,
) -> String {
    let mut line = match (listen, server) {
        (Some(at), Some(server)) => format!("servers on {} at {at}", server.describe()),
        (Some(at), None) => format!("servers listen on {at}"),
        (None, _) => net.describe(),
    };
    match hosts {
        Some(hosts) => line.push_str(&format!(", load from {}", hosts.describe())),
        None if listen.is_some() => line.push_str(", load here"),
        None => {}
    }
    line
}

impl BenchConfig {
    /// Where our servers and the peers run here.
    pub fn server_place(&self) -> child::ServerPlace<'_> {
        child::ServerPlace {
            exe: &self.exe,
            pin: self.pin_server.as_deref(),
            host: self.server_host(),
        }
    }

    /// Where the servers listen.
    pub fn server_host(&self) -> std::net::IpAddr {
        self.listen.unwrap_or_else(|| self.net.server_host())
    }
}

/// What tracing cost in a traced run, from the trace's own metadata.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TraceCost {
    pub records_per_req: f64,
    /// Dropped (queue full) plus not recorded (limit).
    pub lost: u64,
    /// The recorder's measured cost of one span and one frame event (ns).
    pub span_ns: f64,
    pub event_ns: f64,
}

/// One measured run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Run {
    pub cell: Cell,
    pub rep: usize,
    pub req_per_s: f64,
    /// Latency percentiles in µs; h2load reports no percentiles, only the mean.
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub mean_us: f64,
    /// Server CPU (user + system) per succeeded request, connection set-up
    /// included.
    pub cpu_us_per_req: f64,
    pub succeeded: u64,
    pub failed: u64,
    /// Connections refused, broken, or never served (built-in client only:
    /// h2load does not report them).
    pub connection_errors: u64,
    pub seconds: f64,
    /// DATA octets of the measured responses per second, in MiB.
    pub goodput_mib_per_s: f64,
    /// Counts per request: context switches in every run, system calls in
    /// the cell's counting run only.
    pub counts: Counts,
    pub trace: Option<TraceCost>,
    /// The machine's pace around the run: the mean of the time its fixed
    /// work took (ns a block, see [`pace`]) just before and just after it.
    pub pace_ns: Option<f64>,
}

/// Everything a bench measured: what every exporter writes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Results {
    pub client: LoadClient,
    /// Where and how the bench ran (`None`: read from a CSV without it).
    pub machine: Option<Machine>,
    pub runs: Vec<Run>,
    /// The cells' counting runs (system calls counted, times not kept).
    pub counted: Vec<Run>,
    pub medians: Vec<Median>,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot start {}: {source}", exe.display())]
    Spawn {
        exe: PathBuf,
        source: std::io::Error,
    },
    #[error("{target}: the server did not start: {reason}")]
    Serve { target: Target, reason: String },
    #[error("{0}")]
    Load(#[from] load::LoadError),
    #[error("h2load: {0}")]
    H2load(String),
    #[error("cannot meter the server: {0}")]
    Meter(String),
    #[error("{cell}: the trace: {reason}")]
    Trace { cell: Box<Cell>, reason: String },
    #[error("the network: {0}")]
    Net(String),
    #[error("interrupted after {runs} runs")]
    Interrupted { runs: usize },
}

impl BenchError {
    /// A traced run of `cell` whose trace could not be had.
    fn trace(cell: Cell, reason: String) -> BenchError {
        BenchError::Trace {
            cell: Box::new(cell),
            reason,
        }
    }
}

/// Runs every cell `repeat` times, interleaved; then, with a
/// `precision`, the cells not yet settled again, interleaved, until they
/// settle or have `max_repeat` runs; then each cell's counting run.
/// `progress` sees each run, the results so far and the runs planned so
/// far. SIGINT or SIGTERM ([`system::interrupt`]) ends it with
/// [`BenchError::Interrupted`], the run it cut short left out.
pub fn run(
    config: &BenchConfig,
    mut progress: impl FnMut(&Run, &Results, usize),
) -> Result<Results, BenchError> {
    let cells = config.cells();
    let mut results = Results {
        client: config.client,
        machine: Some(Machine::of_bench(config)),
        runs: Vec::new(),
        counted: Vec::new(),
        medians: Vec::new(),
    };
    let interrupted = |results: &Results| BenchError::Interrupted {
        runs: results.runs.len() + results.counted.len(),
    };
    let pace = || config.pace.as_ref().map(pace::Pace::measure);
    let mut pace_before = pace();
    let counted = cells.iter().filter(|c| !c.traced).count();
    let mut planned = cells.len() * config.repeat + counted * config.count_syscalls as usize;
    let mut pass =
        |todo: &[Cell], rep: usize, counting: bool, results: &mut Results, planned: usize| {
            for &cell in todo {
                if system::interrupted() {
                    return Err(interrupted(results));
                }
                let run = run_one(config, cell, rep, counting);
                if system::interrupted() {
                    return Err(interrupted(results));
                }
                let pace_after = pace();
                let pace_ns = pace_before.zip(pace_after).map(|(a, b)| (a + b) / 2.0);
                pace_before = pace_after;
                let run = Run { pace_ns, ..run? };
                match counting {
                    true => results.counted.push(run),
                    false => results.runs.push(run),
                }
                let measured: Vec<Cell> = cells
                    .iter()
                    .copied()
                    .filter(|c| results.runs.iter().any(|r| r.cell == *c))
                    .collect();
                results.medians =
                    stats::medians(&measured, &results.runs, &results.counted, config.precision);
                let last = match counting {
                    true => results.counted.last(),
                    false => results.runs.last(),
                };
                progress(last.expect("pushed"), results, planned);
            }
            Ok(())
        };
    for rep in 1..=config.repeat {
        pass(&cells, rep, false, &mut results, planned)?;
    }
    let mut rep = config.repeat;
    while rep < config.max_repeat {
        let unsettled: Vec<Cell> = results
            .medians
            .iter()
            .filter(|m| m.settled == Some(false))
            .map(|m| m.cell)
            .collect();
        if unsettled.is_empty() {
            break;
        }
        rep += 1;
        planned += unsettled.len();
        pass(&unsettled, rep, false, &mut results, planned)?;
    }
    if config.count_syscalls {
        // A traced cell's counts would be the tracer's too.
        let untraced: Vec<Cell> = cells.iter().copied().filter(|c| !c.traced).collect();
        pass(&untraced, 0, true, &mut results, planned)?;
    }
    Ok(results)
}

/// One run of `cell`; a `counting` run also counts the server's system
/// calls (which slows it: its times are not kept).
fn run_one(
    config: &BenchConfig,
    cell: Cell,
    rep: usize,
    counting: bool,
) -> Result<Run, BenchError> {
    if let Some(host) = &config.server {
        return run_away(config, cell, rep, counting, host);
    }
    let trace = cell.traced.then(|| trace_config(config, cell, rep));
    let net = &config.net;
    let server = net
        .within(Side::Server, || {
            child::Running::start(
                &config.server_place(),
                cell.target,
                cell.threads,
                cell.handler(),
                cell.offload,
                cell.source,
                trace.as_ref(),
            )
        })
        .map_err(|e| BenchError::Net(e.to_string()))??;
    let port = port_of(server.url());
    // The load, its probe and the meter run in the load's namespace.
    let (heads, m, metered) = net
        .within(Side::Client, || {
            // What the server puts in each response, read before the run.
            let heads = probe(server.url())?;
            // nginx's worker exists before the load starts: the set is
            // stable. The load warms up first; the server is metered
            // from its end.
            // Load hosts start at an instant a moment ahead, which the
            // meter's window is set from.
            let start = config.hosts.as_ref().map(|h| h.start());
            let lead = start.map_or(Duration::ZERO, load::remote::Hosts::until);
            let (m, metered) = meter::around(
                &server.pids(),
                lead,
                config.warm_up,
                config.duration,
                counting,
                port.filter(|_| net.counted().is_ok())
                    .map(|port| meter::NetWindow { net, port }),
                || match (&config.hosts, start, config.client) {
                    (Some(hosts), Some(start), _) => {
                        from_hosts(config, cell, server.url(), hosts, start)
                    }
                    (_, _, LoadClient::Builtin) => builtin(config, cell, server.url()),
                    (_, _, LoadClient::H2load) => h2load::run(config, cell, server.url()),
                },
            );
            Ok::<_, BenchError>((heads, m, metered))
        })
        .map_err(|e| BenchError::Net(e.to_string()))??;
    let (m, metered) = (m?, metered.map_err(BenchError::Meter)?);
    let attribution = metered.net.as_ref().and_then(|(a, b, span)| {
        let spec = net.spec();
        Attribution::between(
            a,
            b,
            spec.topology,
            &spec.server_cpus,
            &spec.client_cpus,
            m.req_per_s * span.as_secs_f64(),
        )
    });
    // A traced server must stop cleanly for its trace to be complete.
    let trace = match trace {
        Some(t) => Some(trace_cost(cell, server, &t, m.succeeded)?),
        None => {
            drop(server);
            None
        }
    };
    let counts = Counts::per_request(
        m.succeeded,
        metered.syscalls,
        Some(metered.ctx_switches),
        m.octets_in,
    )
    .with_heads(Some(heads))
    .with_net(attribution);
    Ok(Run {
        trace,
        ..run_of(cell, rep, &m, metered.cpu_s, counts)
    })
}

/// Where a traced run of `cell` writes its trace.
fn trace_config(config: &BenchConfig, cell: Cell, rep: usize) -> crate::trace::TraceConfig {
    let name = format!(
        "{}-c{}-m{}-{}-rep{rep}",
        cell.target, cell.clients, cell.pipeline, cell.work
    );
    crate::trace::TraceConfig::new(config.trace_dir.join(name.replace('/', "-")))
}

/// A run's figures from what the load measured, the server's CPU time
/// over the window and the counts per request.
fn run_of(cell: Cell, rep: usize, m: &Measured, cpu: f64, counts: Counts) -> Run {
    Run {
        cell,
        rep,
        req_per_s: m.req_per_s,
        p50_us: m.p50_us,
        p99_us: m.p99_us,
        mean_us: m.mean_us,
        cpu_us_per_req: if m.succeeded > 0 {
            cpu * 1e6 / m.succeeded as f64
        } else {
            0.0
        },
        succeeded: m.succeeded,
        failed: m.failed,
        connection_errors: m.connection_errors,
        seconds: m.seconds,
        goodput_mib_per_s: m.goodput_bytes_per_s / (1 << 20) as f64,
        counts,
        trace: None,
        pace_ns: None,
    }
}

/// [`run_one`] with the server on `--server-host`: started there by its
/// agent, metered there over the window that begins at the same instant
/// as the load (here, or from `--load-hosts`).
fn run_away(
    config: &BenchConfig,
    cell: Cell,
    rep: usize,
    counting: bool,
    host: &load::remote::Hosts,
) -> Result<Run, BenchError> {
    let trace = cell.traced.then(|| trace_config(config, cell, rep));
    let mut server = server_host::RemoteServer::start(
        host,
        cell,
        config.server_host(),
        config.pin_server.as_deref(),
        trace.as_ref(),
    )?;
    let url = server.url.clone();
    let heads = probe(&url)?;
    let lead = host
        .lead
        .max(config.hosts.as_ref().map_or(Duration::ZERO, |h| h.lead));
    let start = load::remote::Hosts::start_in(lead);
    server
        .meter(start, config.warm_up, config.duration, counting)
        .map_err(BenchError::Meter)?;
    let m = match (&config.hosts, config.client) {
        (Some(hosts), _) => from_hosts(config, cell, &url, hosts, start),
        (None, client) => {
            std::thread::sleep(load::remote::Hosts::until(start));
            match client {
                LoadClient::Builtin => builtin(config, cell, &url),
                LoadClient::H2load => h2load::run(config, cell, &url),
            }
        }
    }?;
    let metered = server.metered().map_err(BenchError::Meter)?;
    // A traced server stops cleanly, and its files come back here.
    let trace = match trace {
        Some(t) => {
            server
                .finish(Some(&t))
                .map_err(|reason| BenchError::trace(cell, reason))?;
            Some(trace_read(cell, &t, m.succeeded)?)
        }
        None => None,
    };
    drop(server);
    let counts = Counts::per_request(
        m.succeeded,
        metered.syscalls,
        Some(metered.ctx_switches),
        m.octets_in,
    )
    .with_heads(Some(heads));
    Ok(Run {
        trace,
        ..run_of(cell, rep, &m, metered.cpu_s, counts)
    })
}

/// Stops a traced server with SIGTERM, reads what its trace says, and
/// removes the trace files.
fn trace_cost(
    cell: Cell,
    server: child::Running,
    trace: &crate::trace::TraceConfig,
    succeeded: u64,
) -> Result<TraceCost, BenchError> {
    let failed = |reason: String| BenchError::trace(cell, reason);
    server.terminate().map_err(failed)?;
    trace_read(cell, trace, succeeded)
}

/// What a stopped server's trace says (its files here), the files then
/// removed.
fn trace_read(
    cell: Cell,
    trace: &crate::trace::TraceConfig,
    succeeded: u64,
) -> Result<TraceCost, BenchError> {
    let failed = |reason: String| BenchError::trace(cell, reason);
    let meta = crate::trace::TraceMeta::read(&trace.meta_path())
        .map_err(|e| failed(format!("{}: {e}", trace.meta_path().display())))?;
    for path in [trace.json_path(), trace.csv_path(), trace.meta_path()] {
        let _ = std::fs::remove_file(path);
    }
    if !meta.complete {
        return Err(failed("the server did not complete its trace".into()));
    }
    // Per response the server sent: records of the warm-up are in the trace.
    let responses = meta.responses.unwrap_or(succeeded);
    Ok(TraceCost {
        records_per_req: meta.records as f64 / responses.max(1) as f64,
        lost: meta.dropped + meta.unrecorded,
        span_ns: meta.span_cost_ns,
        event_ns: meta.event_cost_ns,
    })
}

/// The port of a server's URL (`None` if it has none).
fn port_of(url: &str) -> Option<u16> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    authority.rsplit_once(':')?.1.parse().ok()
}

/// What a load client reports of one run (the server's CPU is read apart).
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    pub req_per_s: f64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub mean_us: f64,
    pub succeeded: u64,
    pub failed: u64,
    pub connection_errors: u64,
    pub seconds: f64,
    pub goodput_bytes_per_s: f64,
    /// Octets the client read in the measured time (`None`: h2load).
    pub octets_in: Option<u64>,
}

/// What the server at `url` puts in each response: 4 requests, one at a
/// time, by the built-in client, which decodes every response head.
fn probe(url: &str) -> Result<counts::Heads, BenchError> {
    const N: u64 = 4;
    let report = load::run(&LoadConfig {
        url: url.to_string(),
        stop: Stop::Requests(N),
        insecure: true,
        ..LoadConfig::default()
    })?;
    let t = &report.traffic;
    let per = |n: u64| n as f64 / t.header_blocks.max(1) as f64;
    Ok(counts::Heads {
        fields: per(t.header_fields),
        octets: per(t.headers_in),
        dated: per(t.dated_blocks),
        body: per(t.data_in),
    })
}

fn builtin(config: &BenchConfig, cell: Cell, url: &str) -> Result<Measured, BenchError> {
    Ok(Measured::of(&load::run(&load_config(config, cell, url))?))
}

/// The cell's load from `--load-hosts`, all of them starting at `start`
/// (ns, our clock). A lost host fails the run, naming it.
fn from_hosts(
    config: &BenchConfig,
    cell: Cell,
    url: &str,
    hosts: &load::remote::Hosts,
    start: u64,
) -> Result<Measured, BenchError> {
    let report = load_from_hosts(hosts, &load_config(config, cell, url), start)?;
    Ok(Measured::of(&report))
}

/// `config` from the load hosts, all starting at `start` (ns, our
/// clock); a lost host is an error that names it (a run without its
/// share is not the cell's). SIGINT or SIGTERM at the bench
/// ([`system::interrupt`]) tells every host to stop at once.
pub fn load_from_hosts(
    hosts: &load::remote::Hosts,
    config: &LoadConfig,
    start: u64,
) -> Result<load::LoadReport, load::LoadError> {
    let control = load::Control::default();
    let done = std::sync::atomic::AtomicBool::new(false);
    let report = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if system::interrupted() {
                    control
                        .interrupted
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let report = hosts.run(config, None, start, &control);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        report
    })?;
    match report.hosts.iter().find(|h| h.lost.is_some()) {
        Some(h) => Err(load::LoadError::Setup(format!(
            "load host {}: lost: {}",
            h.host,
            h.lost.as_deref().unwrap_or("")
        ))),
        None => Ok(report),
    }
}

/// The built-in client's load for `cell` on the server at `url`.
fn load_config(config: &BenchConfig, cell: Cell, url: &str) -> LoadConfig {
    let mut urls = match cell.mix {
        Some(m) => m.urls(url),
        None => vec![url.to_string()],
    };
    let first = urls.remove(0);
    LoadConfig {
        url: first,
        more_urls: urls,
        clients: cell.clients,
        streams: cell.pipeline,
        // As many threads as the server has, at most one per connection
        // (as h2load gets).
        threads: cell.threads.clamp(1, cell.clients),
        stop: Stop::Duration(config.duration),
        warm_up: config.warm_up,
        insecure: true,
        timeout: config.timeout,
        // Every answer checked: a wrong body is a failed request.
        expect_body: Some(cell.body),
        window: config.window.unwrap_or(crate::load::client::WINDOW),
        ..LoadConfig::default()
    }
}

impl Measured {
    /// What the built-in client's report says of the run.
    pub fn of(report: &load::LoadReport) -> Measured {
        let l = report.latency_us.unwrap_or_default();
        Measured {
            req_per_s: report.req_per_s,
            p50_us: report.latency_us.map(|l| l.p50),
            p99_us: report.latency_us.map(|l| l.p99),
            mean_us: l.mean,
            succeeded: report.succeeded,
            failed: report.failed,
            connection_errors: report.connection_errors,
            seconds: report.seconds,
            goodput_bytes_per_s: report.goodput_bytes_per_s,
            octets_in: Some(report.traffic.bytes_in_measured),
        }
    }
}
