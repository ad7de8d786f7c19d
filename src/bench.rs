//! `h2lab bench`: runs a matrix of setups × clients × pipeline depth. Each
//! run starts its own `h2lab serve` child, so that the server's CPU time is
//! read from /proc for that process alone, drives it for a fixed time with
//! the built-in load generator or h2load, and stops it. Repeats are
//! interleaved across cells to spread drift over all of them.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::load::{self, LoadConfig, Stop};
use crate::peers::{self, Peer};
use crate::server::Setup;

/// Who makes the load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
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

/// What a cell measures: one of our setups, or a peer server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    H2lab(Setup),
    /// A peer with TLS (its own OpenSSL) or h2c.
    Peer {
        peer: Peer,
        tls: bool,
    },
}

impl Target {
    /// The (dispatch, engine, tls) columns; a peer is `NAME,peer,openssl|none`.
    pub fn columns(&self) -> [String; 3] {
        match self {
            Target::H2lab(s) => [
                s.dispatch.to_string(),
                s.engine.to_string(),
                s.tls.name().into(),
            ],
            Target::Peer { peer, tls } => [
                peer.name().into(),
                "peer".into(),
                if *tls { "openssl" } else { "none" }.into(),
            ],
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c] = self.columns();
        write!(f, "{a}/{b}/{c}")
    }
}

#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub setups: Vec<Setup>,
    /// Peers to measure too, each with the TLS choices of the matrix.
    pub peers: Vec<(Peer, bool)>,
    pub clients: Vec<usize>,
    pub pipelines: Vec<usize>,
    pub duration: Duration,
    pub repeat: usize,
    pub client: LoadClient,
    /// The `h2lab` binary whose `serve` is measured.
    pub exe: PathBuf,
    /// Requests still open this long after the run's end fail.
    pub timeout: Duration,
    /// CPU lists (`taskset -c` syntax) for the servers and for the load.
    pub pin_server: Option<String>,
    pub pin_client: Option<String>,
}

/// One cell of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell {
    pub target: Target,
    pub clients: usize,
    pub pipeline: usize,
}

/// One measured run.
#[derive(Clone, Debug, PartialEq)]
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
}

/// The runs of one cell, summed up.
#[derive(Clone, Debug, PartialEq)]
pub struct Median {
    pub cell: Cell,
    pub runs: usize,
    pub req_per_s: f64,
    pub req_per_s_min: f64,
    pub req_per_s_max: f64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub cpu_us_per_req: f64,
    pub succeeded: u64,
    pub failed: u64,
    pub connection_errors: u64,
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
    #[error("cannot read the server's CPU time: {0}")]
    Proc(String),
}

impl BenchConfig {
    pub fn cells(&self) -> Vec<Cell> {
        let targets = self.setups.iter().map(|&s| Target::H2lab(s)).chain(
            self.peers
                .iter()
                .map(|&(peer, tls)| Target::Peer { peer, tls }),
        );
        let mut cells = Vec::new();
        for target in targets {
            for &clients in &self.clients {
                for &pipeline in &self.pipelines {
                    cells.push(Cell {
                        target,
                        clients,
                        pipeline,
                    });
                }
            }
        }
        cells
    }
}

/// Runs every cell `repeat` times, interleaved; `progress` sees each run.
pub fn run(config: &BenchConfig, mut progress: impl FnMut(&Run)) -> Result<Vec<Run>, BenchError> {
    let ticks = clock_ticks();
    let mut runs = Vec::new();
    for rep in 1..=config.repeat {
        for cell in config.cells() {
            let run = run_one(config, cell, rep, ticks)?;
            progress(&run);
            runs.push(run);
        }
    }
    Ok(runs)
}

/// The server child, killed when dropped (also on an error path).
struct ServerChild(Child);

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `cmd` run under `taskset -c CPUS` when `cpus` is given.
pub fn pinned(cmd: Command, cpus: Option<&str>) -> Command {
    match cpus {
        None => cmd,
        Some(cpus) => {
            let mut t = Command::new("taskset");
            t.arg("-c")
                .arg(cpus)
                .arg(cmd.get_program())
                .args(cmd.get_args());
            t
        }
    }
}

/// Pins every thread of this process to `cpus` (for the built-in client).
pub fn pin_self(cpus: &str) -> Result<(), String> {
    let out = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
        .output()
        .map_err(|e| format!("cannot run taskset ({e}): apt-get install util-linux"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!(
            "taskset -c {cpus}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// A `taskset -c` CPU list: numbers, ranges and commas.
pub fn check_cpu_list(s: &str) -> Result<String, String> {
    let num = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    let ok = !s.is_empty()
        && s.split(',').all(|part| match part.split_once('-') {
            Some((a, b)) => num(a) && num(b),
            None => num(part),
        });
    match ok {
        true => Ok(s.to_string()),
        false => Err(format!("'{s}' is not a CPU list (e.g. 0, 0-1 or 0,2)")),
    }
}

fn start_server(config: &BenchConfig, setup: Setup) -> Result<(ServerChild, String), BenchError> {
    let mut serve = Command::new(&config.exe);
    serve.args(["serve", "--port", "0"]);
    let mut child = pinned(serve, config.pin_server.as_deref())
        .args(["--dispatch", &setup.dispatch.to_string()])
        .args(["--engine", &setup.engine.to_string()])
        .args(["--tls", setup.tls.name()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| BenchError::Spawn {
            exe: config.exe.clone(),
            source,
        })?;
    let stdout = child.stdout.take().expect("piped");
    let child = ServerChild(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| BenchError::Serve {
            target: Target::H2lab(setup),
            reason: e.to_string(),
        })?;
    match line.strip_prefix("listening on ") {
        Some(url) => Ok((child, url.trim().to_string())),
        None => Err(BenchError::Serve {
            target: Target::H2lab(setup),
            reason: "no `listening on` line (see `h2lab serve --help`)".into(),
        }),
    }
}

/// A server under measurement: our child, or a peer (with its children).
enum Running {
    H2lab(ServerChild),
    Peer(peers::RunningPeer),
}

impl Running {
    fn pids(&self) -> Vec<u32> {
        match self {
            Running::H2lab(c) => vec![c.0.id()],
            Running::Peer(p) => p.pids(),
        }
    }
}

fn run_one(config: &BenchConfig, cell: Cell, rep: usize, ticks: f64) -> Result<Run, BenchError> {
    let (server, url) = match cell.target {
        Target::H2lab(setup) => {
            let (child, url) = start_server(config, setup)?;
            (Running::H2lab(child), url)
        }
        Target::Peer { peer, tls } => {
            let p = peers::start(peer, tls, config.pin_server.as_deref()).map_err(|reason| {
                BenchError::Serve {
                    target: cell.target,
                    reason,
                }
            })?;
            let url = p.url.clone();
            (Running::Peer(p), url)
        }
    };
    // nginx's worker exists before the load starts: the set is stable.
    let pids = server.pids();
    let cpu_before = cpu_of(&pids, ticks)?;
    let measured = match config.client {
        LoadClient::Builtin => builtin(config, cell, &url)?,
        LoadClient::H2load => h2load(config, cell, &url)?,
    };
    let cpu = cpu_of(&pids, ticks)? - cpu_before;
    drop(server);
    let m = measured;
    Ok(Run {
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
    })
}

fn cpu_of(pids: &[u32], ticks: f64) -> Result<f64, BenchError> {
    pids.iter().map(|&p| cpu_seconds(p, ticks)).sum()
}

/// What a load client reports of one run (the server's CPU is read apart).
#[derive(Clone, Debug, PartialEq)]
struct Measured {
    req_per_s: f64,
    p50_us: Option<u64>,
    p99_us: Option<u64>,
    mean_us: f64,
    succeeded: u64,
    failed: u64,
    connection_errors: u64,
    seconds: f64,
}

fn builtin(config: &BenchConfig, cell: Cell, url: &str) -> Result<Measured, BenchError> {
    let report = load::run(&LoadConfig {
        url: url.to_string(),
        clients: cell.clients,
        streams: cell.pipeline,
        stop: Stop::Duration(config.duration),
        warm_up: Duration::ZERO,
        insecure: true,
        cacert: None,
        timeout: config.timeout,
    })?;
    let l = report.latency_us;
    Ok(Measured {
        req_per_s: report.req_per_s,
        p50_us: Some(l.p50),
        p99_us: Some(l.p99),
        mean_us: l.mean,
        succeeded: report.succeeded,
        failed: report.failed,
        connection_errors: report.connection_errors,
        seconds: report.seconds,
    })
}

fn h2load(config: &BenchConfig, cell: Cell, url: &str) -> Result<Measured, BenchError> {
    let started = Instant::now();
    let out = pinned(Command::new("h2load"), config.pin_client.as_deref())
        .arg(format!(
            "--duration={}ms",
            config.duration.as_millis().max(1)
        ))
        .args([
            "-c",
            &cell.clients.to_string(),
            "-m",
            &cell.pipeline.to_string(),
        ])
        .args(["-T", &config.timeout.as_secs().max(1).to_string()])
        .args(["-N", &config.timeout.as_secs().max(1).to_string()])
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            BenchError::H2load(format!(
                "cannot run it ({e}): apt-get install nghttp2-client"
            ))
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_h2load(&text, started.elapsed().as_secs_f64())
        .ok_or_else(|| BenchError::H2load(format!("unexpected output: {}", text.trim())))
}

/// Reads h2load's summary: req/s, the request counts and the mean time
/// for a request (it prints no percentiles).
fn parse_h2load(text: &str, elapsed: f64) -> Option<Measured> {
    let number = |s: &str| s.trim().parse::<f64>().ok();
    let finished = text.lines().find(|l| l.starts_with("finished in"))?;
    let req_per_s = finished
        .split(',')
        .nth(1)?
        .trim()
        .strip_suffix("req/s")
        .and_then(number)?;
    let requests = text.lines().find(|l| l.starts_with("requests:"))?;
    let count = |what: &str| -> Option<u64> {
        requests
            .split(',')
            .find(|p| p.trim().ends_with(what))?
            .trim()
            .split(' ')
            .find_map(|w| w.parse().ok())
    };
    let succeeded = count("succeeded")?;
    // As h2load counts them: with --duration it stops with requests in
    // flight, which it does not count, so a starved connection is invisible.
    let failed = count("failed")? + count("errored")? + count("timeout")?;
    let mean_us = text
        .lines()
        .find(|l| l.starts_with("time for request:"))
        .and_then(|l| l.split_whitespace().nth(5))
        .map(micros)
        .unwrap_or(0.0);
    Some(Measured {
        req_per_s,
        p50_us: None, // h2load prints no percentiles
        p99_us: None,
        mean_us,
        succeeded,
        failed,
        connection_errors: 0, // nor a per-connection outcome
        seconds: elapsed,
    })
}

/// `123.45us`, `1.2ms`, `2s` in µs.
fn micros(s: &str) -> f64 {
    let (num, scale) = if let Some(n) = s.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e6)
    } else {
        (s, 1.0)
    };
    num.parse::<f64>().map(|v| v * scale).unwrap_or(0.0)
}

/// Clock ticks per second for /proc's times (USER_HZ).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU seconds of a process so far.
fn cpu_seconds(pid: u32, ticks: f64) -> Result<f64, BenchError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| BenchError::Proc(e.to_string()))?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (field(11), field(12)) {
        (Some(u), Some(s)) => Ok((u + s) / ticks),
        _ => Err(BenchError::Proc(format!("unexpected /proc/{pid}/stat"))),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The median of every cell, in the matrix's order.
pub fn medians(cells: &[Cell], runs: &[Run]) -> Vec<Median> {
    cells
        .iter()
        .map(|cell| {
            let mine: Vec<&Run> = runs.iter().filter(|r| r.cell == *cell).collect();
            let rps: Vec<f64> = mine.iter().map(|r| r.req_per_s).collect();
            let pct = |f: fn(&Run) -> Option<u64>| -> Option<u64> {
                let v: Vec<f64> = mine.iter().filter_map(|r| f(r).map(|x| x as f64)).collect();
                (!v.is_empty()).then(|| median(v) as u64)
            };
            Median {
                cell: *cell,
                runs: mine.len(),
                req_per_s: median(rps.clone()),
                req_per_s_min: rps.iter().copied().fold(f64::INFINITY, f64::min),
                req_per_s_max: rps.iter().copied().fold(0.0, f64::max),
                p50_us: pct(|r| r.p50_us),
                p99_us: pct(|r| r.p99_us),
                cpu_us_per_req: median(mine.iter().map(|r| r.cpu_us_per_req).collect()),
                succeeded: mine.iter().map(|r| r.succeeded).sum(),
                failed: mine.iter().map(|r| r.failed).sum(),
                connection_errors: mine.iter().map(|r| r.connection_errors).sum(),
            }
        })
        .collect()
}

pub const CSV_HEADER: &str = "kind,client,dispatch,engine,tls,clients,pipeline,rep,req_per_s,req_per_s_min,req_per_s_max,p50_us,p99_us,cpu_us_per_req,succeeded,failed,connection_errors";

fn opt(v: Option<u64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// The CSV: one row per run, then one per cell with the medians.
pub fn csv(client: LoadClient, runs: &[Run], medians: &[Median]) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    let cell_cols = |c: &Cell| {
        let [a, b, t] = c.target.columns();
        format!("{a},{b},{t},{},{}", c.clients, c.pipeline)
    };
    for r in runs {
        out.push_str(&format!(
            "run,{},{},{},{:.1},,,{},{},{:.3},{},{},{}\n",
            client.name(),
            cell_cols(&r.cell),
            r.rep,
            r.req_per_s,
            opt(r.p50_us),
            opt(r.p99_us),
            r.cpu_us_per_req,
            r.succeeded,
            r.failed,
            r.connection_errors
        ));
    }
    for m in medians {
        out.push_str(&format!(
            "median,{},{},,{:.1},{:.1},{:.1},{},{},{:.3},{},{},{}\n",
            client.name(),
            cell_cols(&m.cell),
            m.req_per_s,
            m.req_per_s_min,
            m.req_per_s_max,
            opt(m.p50_us),
            opt(m.p99_us),
            m.cpu_us_per_req,
            m.succeeded,
            m.failed,
            m.connection_errors
        ));
    }
    out
}

/// The table printed at the end.
pub fn table(medians: &[Median]) -> String {
    let mut out = format!(
        "{:<22} {:>4} {:>4} {:>12} {:>23} {:>8} {:>8} {:>9} {:>7} {:>9}\n",
        "setup",
        "c",
        "m",
        "req/s",
        "(min – max)",
        "p50 µs",
        "p99 µs",
        "CPU µs/r",
        "failed",
        "conn err"
    );
    for m in medians {
        out.push_str(&format!(
            "{:<22} {:>4} {:>4} {:>12.0} {:>23} {:>8} {:>8} {:>9.2} {:>7} {:>9}\n",
            m.cell.target.to_string(),
            m.cell.clients,
            m.cell.pipeline,
            m.req_per_s,
            format!("({:.0} – {:.0})", m.req_per_s_min, m.req_per_s_max),
            opt(m.p50_us),
            opt(m.p99_us),
            m.cpu_us_per_req,
            m.failed,
            m.connection_errors
        ));
    }
    out
}

/// Everything, for `--json`.
pub fn json(client: LoadClient, runs: &[Run], medians: &[Median]) -> serde_json::Value {
    let cell = |c: &Cell| {
        let [dispatch, engine, tls] = c.target.columns();
        serde_json::json!({
            "dispatch": dispatch,
            "engine": engine,
            "tls": tls,
            "clients": c.clients,
            "pipeline": c.pipeline,
        })
    };
    serde_json::json!({
        "client": client.name(),
        "runs": runs.iter().map(|r| serde_json::json!({
            "cell": cell(&r.cell), "rep": r.rep, "req_per_s": r.req_per_s,
            "p50_us": r.p50_us, "p99_us": r.p99_us, "mean_us": r.mean_us,
            "cpu_us_per_req": r.cpu_us_per_req, "succeeded": r.succeeded,
            "failed": r.failed, "connection_errors": r.connection_errors, "seconds": r.seconds,
        })).collect::<Vec<_>>(),
        "medians": medians.iter().map(|m| serde_json::json!({
            "cell": cell(&m.cell), "runs": m.runs, "req_per_s": m.req_per_s,
            "req_per_s_min": m.req_per_s_min, "req_per_s_max": m.req_per_s_max,
            "p50_us": m.p50_us, "p99_us": m.p99_us, "cpu_us_per_req": m.cpu_us_per_req,
            "succeeded": m.succeeded, "failed": m.failed,
            "connection_errors": m.connection_errors,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h2load_summary_is_read() {
        let text = "finished in 1.00s, 12345.67 req/s, 1.2MB/s\n\
                    requests: 12400 total, 12400 started, 12346 done, 12340 succeeded, 6 failed, 2 errored, 1 timeout\n\
                    time for request:      120us      8.05ms       812us       455us    70.12%\n";
        let m = parse_h2load(text, 1.0).unwrap();
        assert_eq!(
            (m.req_per_s, m.p50_us, m.succeeded, m.failed),
            (12345.67, None, 12340, 9)
        );
        assert_eq!(m.mean_us, 812.0);
        assert!(parse_h2load("nonsense", 1.0).is_none());
    }

    #[test]
    fn cpu_lists_are_checked() {
        for good in ["0", "0-1", "0,2", "1,3-5"] {
            assert_eq!(check_cpu_list(good).as_deref(), Ok(good));
        }
        for bad in ["", "a", "0-", "-1", "0,,1", "0;1"] {
            assert!(check_cpu_list(bad).is_err(), "{bad}");
        }
        let cmd = pinned(Command::new("h2load"), Some("1"));
        let args: Vec<&std::ffi::OsStr> = cmd.get_args().collect();
        assert_eq!(cmd.get_program(), "taskset");
        assert_eq!(args, ["-c", "1", "h2load"]);
    }

    #[test]
    fn medians_take_the_middle_run() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0]), 2.5);
        assert_eq!(micros("1.5ms"), 1500.0);
        assert_eq!(micros("812us"), 812.0);
    }
}
