//! `--load-hosts`: the load run from other hosts over SSH, as one run.
//!
//! The controller checks each host's h2lab version and measures its clock
//! offset (`hosts::Ssh::connect`, whose session stays open as the connection
//! its later sessions share), picks an instant a moment ahead, and starts
//! one agent a host (`h2lab load --agent-start NS …` with its share of the
//! clients, threads, requests and rate), each told the instant in its own
//! clock. Every agent waits for it, runs, and writes one JSON line: its
//! whole tally, latency histograms in HdrHistogram's serialized form
//! (`wire.rs`). The controller merges the tallies as the threads of one
//! run merge theirs, so percentiles are those of one histogram of every
//! sample and failures are summed by reason.
//!
//! A lost host (its session ended without a result) is named in the
//! report and the run still reports what the others did; Ctrl-C at the
//! controller tells every agent to stop and report; an agent whose input
//! ends (the controller or the connection gone) exits at once.

use std::io::{BufRead, Write};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::hosts::{self, Host, Offset, Ssh};

use super::report::HostReport;
use super::request::Header;
use super::wire::{AgentResult, TallyWire};
use super::{Control, LoadConfig, LoadError, LoadReport, Stop};

/// Clock exchanges a host's offset is measured from.
const CLOCK_SAMPLES: usize = 8;
/// How far ahead of now the agents start: room for every session to open,
/// three times the slowest opening seen, within these bounds.
const LEAD_MIN: Duration = Duration::from_millis(200);
const LEAD_MAX: Duration = Duration::from_secs(5);
/// A progress line from an agent this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// One host's share of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Share {
    pub clients: u64,
    pub threads: u64,
    /// `-n`: its requests (the quotas of its clients); `None` with `-D`.
    pub requests: Option<u64>,
    pub rps: Option<f64>,
}

/// Splits a run over `hosts` hosts: clients as evenly as they go (the
/// first hosts one more), threads likewise (at least one, at most its
/// clients), each client's `-n` quota as a local run gives it, the rate
/// in proportion to the clients.
pub fn shares(
    clients: u64,
    threads: u64,
    requests: Option<u64>,
    rps: Option<f64>,
    hosts: usize,
) -> Result<Vec<Share>, String> {
    let h = hosts as u64;
    if clients < h {
        return Err(format!(
            "{clients} clients for {hosts} load hosts: -c must be at least the number of hosts"
        ));
    }
    if let Some(n) = requests {
        if n < clients {
            return Err(format!(
                "-n {n} for {clients} clients over {hosts} hosts: -n must be at least -c"
            ));
        }
    }
    let mut first = 0;
    Ok((0..h)
        .map(|i| {
            let c = clients / h + u64::from(i < clients % h);
            let t = (threads / h + u64::from(i < threads % h)).clamp(1, c);
            let requests = requests.map(|n| {
                (first..first + c)
                    .map(|j| n / clients + u64::from(j < n % clients))
                    .sum()
            });
            first += c;
            Share {
                clients: c,
                threads: t,
                requests,
                rps: rps.map(|r| r * c as f64 / clients as f64),
            }
        })
        .collect())
}

/// `--load-hosts` and how to reach them (`load`, `bench` and `ab`).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct HostArgs {
    /// Run the load from these hosts instead of here: ssh destinations
    /// (`user@name`, or a Host of the ssh configuration), reached with
    /// the system's `ssh` in batch mode (keys or an agent, no password
    /// prompt). The clients are split between them (-c at least the
    /// number of hosts), and so are the threads, -n and --rps; every host
    /// starts at the same instant (each one's clock offset is measured
    /// first, and reported), and their latency histograms are merged
    /// without loss. The server is where the hosts reach it (load: its
    /// URL; bench and ab: --listen); a file option (-d, --cacert) is read
    /// at the same path here and on each host; each host must run this
    /// very h2lab version. A lost host is named in the report, and the
    /// others' results kept.
    #[arg(long, value_name = "HOST,...", value_delimiter = ',')]
    pub load_hosts: Vec<Host>,
    /// With other hosts: the h2lab to run there (default: `h2lab` on
    /// the hosts' PATH).
    #[arg(long, value_name = "PATH")]
    pub remote_bin: Option<String>,
    /// With other hosts: ssh's configuration file (`ssh -F FILE`;
    /// default: the user's ~/.ssh/config).
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<std::path::PathBuf>,
}

/// The load hosts of a run, reached: each runs our version, and each
/// one's clock offset is known.
#[derive(Debug)]
pub struct Hosts {
    pub hosts: Vec<Host>,
    pub ssh: Ssh,
    pub offsets: Vec<Offset>,
    /// How far ahead a run starts ([`Hosts::start`]).
    pub lead: Duration,
    /// Each host's connection, which its sessions share (ControlMaster):
    /// closed when the hosts are dropped.
    _links: Vec<hosts::Session>,
    _control: hosts::ControlDir,
}

impl Hosts {
    /// Checks every host's version and measures its clock, all at once:
    /// a run whose offsets are not all known does not start.
    pub fn reach(args: &HostArgs) -> Result<Hosts, LoadError> {
        Hosts::reach_these(&args.load_hosts, args)
    }

    /// [`Hosts::reach`] for `hosts` (`bench --server-host`'s one), with
    /// `args`' ssh configuration and remote binary.
    pub fn reach_these(hosts: &[Host], args: &HostArgs) -> Result<Hosts, LoadError> {
        let control = hosts::ControlDir::new()
            .map_err(|e| LoadError::Setup(format!("a directory for ssh's control sockets: {e}")))?;
        let ssh = Ssh {
            config: args.ssh_config.clone(),
            remote_bin: args.remote_bin.clone().unwrap_or_else(|| "h2lab".into()),
            control: Some(control.path().to_path_buf()),
        };
        let links = std::thread::scope(|scope| {
            let asks: Vec<_> = hosts
                .iter()
                .map(|h| scope.spawn(|| ssh.connect(h, CLOCK_SAMPLES)))
                .collect();
            asks.into_iter()
                .map(|a| a.join().expect("a clock exchange does not panic"))
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| LoadError::Setup(e.to_string()))?;
        // Later sessions share the connections: the lead is three times
        // the slowest such session's opening, timed now.
        let mut slowest = Duration::ZERO;
        for host in hosts {
            let opened = Instant::now();
            let mut s = ssh
                .open(host, &["remote-clock".to_string()])
                .map_err(|e| LoadError::Setup(e.to_string()))?;
            if !matches!(s.line(), Ok(Some(_))) {
                let why = s.end();
                return Err(LoadError::Setup(format!("{host}: unreachable: {why}")));
            }
            slowest = slowest.max(opened.elapsed());
        }
        Ok(Hosts {
            hosts: hosts.to_vec(),
            ssh,
            offsets: links.iter().map(|l| l.offset).collect(),
            lead: (3 * slowest).clamp(LEAD_MIN, LEAD_MAX),
            _links: links.into_iter().map(|l| l.session).collect(),
            _control: control,
        })
    }

    /// An instant a moment ahead (ns since the epoch, our clock): room
    /// for every session to open before it.
    pub fn start(&self) -> u64 {
        hosts::now_ns() + self.lead.as_nanos() as u64
    }

    /// An instant `lead` from now (ns since the epoch, our clock).
    pub fn start_in(lead: Duration) -> u64 {
        hosts::now_ns() + lead.as_nanos() as u64
    }

    /// How long from now until `start` (ns, our clock).
    pub fn until(start: u64) -> Duration {
        Duration::from_nanos(start.saturating_sub(hosts::now_ns()))
    }

    /// Each host's clock offset, as a line for people.
    pub fn describe(&self) -> String {
        let each: Vec<String> = self
            .hosts
            .iter()
            .zip(&self.offsets)
            .map(|(h, o)| {
                format!(
                    "{h} (clock {:+.1} µs, within {:.1} µs)",
                    o.ns as f64 / 1e3,
                    o.within_ns as f64 / 1e3
                )
            })
            .collect();
        each.join(", ")
    }

    /// Runs `config` from the hosts, every one starting at `start` (our
    /// clock), and merges what they measured. `data` is the path of the
    /// body file (`-d`), read on each host.
    pub fn run(
        &self,
        config: &LoadConfig,
        data: Option<&std::path::Path>,
        start: u64,
        control: &Control,
    ) -> Result<LoadReport, LoadError> {
        let plan = config.plan()?;
        let requests = match config.stop {
            Stop::Requests(n) => Some(n),
            Stop::Duration(_) => None,
        };
        let shares = shares(
            config.clients as u64,
            config.threads as u64,
            requests,
            config.rps,
            self.hosts.len(),
        )
        .map_err(LoadError::Setup)?;
        let started = crate::wall_clock::utc_now();
        let mut sessions = Vec::new();
        for ((host, share), offset) in self.hosts.iter().zip(&shares).zip(&self.offsets) {
            let argv = agent_argv(config, data, share, offset.theirs(start));
            let session = self
                .ssh
                .open(host, &argv)
                .map_err(|e| LoadError::Setup(e.to_string()))?;
            sessions.push(session);
        }
        let (results, lost) = collect(config, self.lead, &mut sessions, control);
        drop(sessions);
        let mut all = super::tally::Tally::new(plan.measure_from, 0, plan.requests.len());
        let mut seconds: f64 = 0.0;
        let mut interrupted = control.interrupted.load(Ordering::Relaxed);
        let mut reports = Vec::new();
        for (i, (result, lost)) in results.into_iter().zip(lost).enumerate() {
            let host = &self.hosts[i];
            let mut report = HostReport {
                host: host.to_string(),
                clients: shares[i].clients as usize,
                requests: 0,
                succeeded: 0,
                failed: 0,
                clock_offset_us: self.offsets[i].ns as f64 / 1e3,
                clock_within_us: self.offsets[i].within_ns as f64 / 1e3,
                seconds: None,
                late_us: None,
                lost,
            };
            match result {
                Some(r) => {
                    let tally = r.tally.into_tally(plan.measure_from).map_err(|e| {
                        LoadError::Setup(format!("{host}: its agent's result: {e}"))
                    })?;
                    report.succeeded = tally.succeeded;
                    report.failed = tally.failed;
                    report.requests = tally.succeeded.saturating_add(tally.failed);
                    report.seconds = Some(r.seconds);
                    report.late_us = Some(r.late_us);
                    seconds = seconds.max(r.seconds);
                    interrupted |= r.interrupted;
                    all.merge(tally);
                }
                None => {
                    interrupted = true;
                    report.lost.get_or_insert_with(|| "no result".into());
                }
            }
            reports.push(report);
        }
        let mut report =
            super::report::build_timed(config, &plan, all, started, interrupted, seconds);
        report.hosts = reports;
        Ok(report)
    }
}

/// The command line (after `h2lab`) that runs `share` of `config` on a
/// host from `start` (ns, that host's clock): every option the run
/// depends on. `data`: where `-d`'s file is.
pub fn agent_argv(
    config: &LoadConfig,
    data: Option<&std::path::Path>,
    share: &Share,
    start: u64,
) -> Vec<String> {
    let mut v: Vec<String> = vec!["load".into(), "--agent-start".into(), start.to_string()];
    let opt = |v: &mut Vec<String>, name: &str, value: String| {
        v.push(name.into());
        v.push(value);
    };
    opt(&mut v, "-c", share.clients.to_string());
    opt(&mut v, "-m", config.streams.to_string());
    opt(&mut v, "-t", share.threads.to_string());
    match config.stop {
        Stop::Requests(_) => opt(&mut v, "-n", share.requests.unwrap_or(1).to_string()),
        Stop::Duration(d) => {
            opt(&mut v, "-D", format!("{}ns", d.as_nanos()));
            opt(
                &mut v,
                "--warm-up",
                format!("{}ns", config.warm_up.as_nanos()),
            );
        }
    }
    if let Some(r) = share.rps {
        opt(&mut v, "--rps", r.to_string());
    }
    if let Some(m) = &config.method {
        opt(&mut v, "--method", m.clone());
    }
    for h in &config.headers {
        match h {
            Header::Authority(a) => opt(&mut v, "-H", format!("host:{a}")),
            Header::Field(n, value) => opt(&mut v, "-H", format!("{n}:{value}")),
        }
    }
    if let Some(d) = data {
        opt(&mut v, "-d", d.display().to_string());
    }
    if let Some(c) = &config.cacert {
        opt(&mut v, "--cacert", c.display().to_string());
    }
    opt(
        &mut v,
        "--timeout",
        format!("{}ns", config.timeout.as_nanos()),
    );
    if let Some(b) = config.expect_body {
        opt(&mut v, "--expect-body", b.to_string());
    }
    opt(&mut v, "--window", config.window.to_string());
    if config.browser_headers {
        v.push("--browser-headers".into());
    }
    if config.insecure {
        v.push("-k".into());
    }
    v.push("--".into());
    v.push(config.url.clone());
    v.extend(config.more_urls.iter().cloned());
    v
}

/// What the controller hears from a host's agent.
enum Heard {
    Progress(usize, u64),
    Done(usize, Box<AgentResult>),
    Ended(usize),
}

/// Waits for every agent: its result, or why there is none.
fn collect(
    config: &LoadConfig,
    lead: Duration,
    sessions: &mut [hosts::Session],
    control: &Control,
) -> (Vec<Option<AgentResult>>, Vec<Option<String>>) {
    let n = sessions.len();
    let (tx, rx) = mpsc::channel();
    for (i, s) in sessions.iter_mut().enumerate() {
        let out = s.take_output().expect("a new session has its output");
        let tx = tx.clone();
        std::thread::spawn(move || listen(i, out, tx));
    }
    drop(tx);
    // The agents end by their own bounds; past these, a host is lost.
    let bound = lead
        + config.warm_up
        + match config.stop {
            Stop::Duration(d) => d,
            Stop::Requests(_) => Duration::ZERO,
        }
        + config.timeout
        + Duration::from_secs(30);
    let begun = Instant::now();
    let mut results: Vec<Option<AgentResult>> = (0..n).map(|_| None).collect();
    let mut lost: Vec<Option<String>> = vec![None; n];
    let mut done_so_far = vec![0u64; n];
    let mut told_to_stop = false;
    let mut open = n;
    while open > 0 {
        if control.interrupted.load(Ordering::Relaxed) && !told_to_stop {
            told_to_stop = true;
            for s in sessions.iter_mut() {
                let _ = s.send("stop");
            }
        }
        let heard = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(h) => h,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // A run of -n has no end time of its own (its agents end
                // by --timeout after their last progress); one of -D, or
                // one told to stop, is ended host by host past its bound.
                let bounded = matches!(config.stop, Stop::Duration(_)) || told_to_stop;
                if bounded && begun.elapsed() > bound {
                    for (i, s) in sessions.iter_mut().enumerate() {
                        if results[i].is_none() && lost[i].is_none() {
                            let why = s.end();
                            lost[i] = Some(format!("no result within {bound:?} ({why})"));
                            open -= 1;
                        }
                    }
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match heard {
            Heard::Progress(i, done) => {
                let step = done.saturating_sub(done_so_far[i]);
                done_so_far[i] = done;
                control.finished.fetch_add(step, Ordering::Relaxed);
            }
            Heard::Done(i, result) => results[i] = Some(*result),
            Heard::Ended(i) => {
                if lost[i].is_none() {
                    if results[i].is_none() {
                        lost[i] = Some(sessions[i].end());
                    }
                    open -= 1;
                }
            }
        }
    }
    (results, lost)
}

/// Reads an agent's lines: progress, then its result.
fn listen(i: usize, out: impl BufRead, tx: mpsc::Sender<Heard>) {
    for line in out.lines() {
        let Ok(line) = line else { break };
        if let Some(n) = line.strip_prefix("progress ") {
            if let Ok(n) = n.parse() {
                let _ = tx.send(Heard::Progress(i, n));
            }
        } else if line.starts_with('{') {
            if let Ok(r) = serde_json::from_str::<AgentResult>(&line) {
                let _ = tx.send(Heard::Done(i, Box::new(r)));
            }
        }
    }
    let _ = tx.send(Heard::Ended(i));
}

/// The agent (`h2lab load --agent-start NS`, run by a controller over
/// SSH): waits for `start` on this host's clock, runs `config`, writes
/// progress lines and then its result as one JSON line. A `stop` line on
/// its input ends the run early (with a result); the input's end exits
/// the process at once: nobody is left to read a result.
pub fn agent(config: &LoadConfig, start: u64, control: &Control) -> Result<bool, LoadError> {
    let interrupted = control.interrupted.clone();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            match line {
                Ok(l) if l.trim() == "stop" => interrupted.store(true, Ordering::Relaxed),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        std::process::exit(3);
    });
    loop {
        let now = hosts::now_ns();
        if now >= start || control.interrupted.load(Ordering::Relaxed) {
            break;
        }
        if start - now > 60_000_000_000 {
            return Err(LoadError::Setup(
                "the start is more than a minute away on this host's clock".into(),
            ));
        }
        std::thread::sleep(Duration::from_nanos(start - now).min(Duration::from_millis(50)));
    }
    let late_us = hosts::now_ns().saturating_sub(start) as f64 / 1e3;
    let result = std::thread::scope(|scope| {
        let run = scope.spawn(|| super::run_tally(config, control));
        while !run.is_finished() {
            std::thread::sleep(PROGRESS_EVERY);
            println!("progress {}", control.finished.load(Ordering::Relaxed));
        }
        run.join().expect("the load run does not panic")
    })?;
    let (plan, tally, started) = result;
    let wire = TallyWire::of(&tally);
    let interrupted = control.interrupted.load(Ordering::Relaxed);
    let report = super::report::build(config, &plan, tally, started, interrupted);
    let line = serde_json::to_string(&AgentResult {
        seconds: report.seconds,
        interrupted,
        late_us,
        tally: wire,
    })
    .expect("a result serializes");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    Ok(report.clean())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_run() {
        let s = shares(5, 3, Some(1003), Some(1000.0), 2).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.iter().map(|s| s.clients).sum::<u64>(), 5);
        assert_eq!((s[0].clients, s[1].clients), (3, 2));
        assert_eq!((s[0].threads, s[1].threads), (2, 1));
        assert_eq!(s.iter().map(|s| s.requests.unwrap()).sum::<u64>(), 1003);
        // Client quotas 201, 201, 201, 200, 200 (1003 over 5).
        assert_eq!(s[0].requests, Some(603));
        assert_eq!(s[1].requests, Some(400));
        assert_eq!(s[0].rps, Some(600.0));
        assert_eq!(s[1].rps, Some(400.0));
        let d = shares(4, 8, None, None, 3).unwrap();
        assert_eq!(
            d.iter().map(|s| (s.clients, s.threads)).collect::<Vec<_>>(),
            [(2, 2), (1, 1), (1, 1)]
        );
        assert!(d.iter().all(|s| s.requests.is_none() && s.rps.is_none()));
        // Threads split as clients do: 4 over 2 hosts is 2 each.
        let t = shares(8, 4, None, None, 2).unwrap();
        assert_eq!((t[0].threads, t[1].threads), (2, 2));
    }

    #[test]
    fn too_few_clients_or_requests_for_the_hosts_are_refused() {
        assert!(shares(1, 1, None, None, 2)
            .unwrap_err()
            .contains("-c must be"));
        assert!(shares(4, 1, Some(3), None, 2)
            .unwrap_err()
            .contains("-n must be"));
        assert!(shares(2, 1, Some(2), None, 2).is_ok());
    }
}
