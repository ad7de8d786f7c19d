//! `h2lab ab`: is B cheaper than A, by how much, and how sure are we?
//! Two servers run alternately in short paired runs (A B, then B A, so
//! that a drift of the machine falls on both sides), each pair giving the
//! ratio B/A of each figure; noise that hits both sides of a pair cancels
//! in its ratio. The ratios' trimmed geometric mean, with a 95% confidence
//! interval, says the difference; the run stops at `--pairs`, or once the
//! interval of CPU per request is as narrow as `--precision`, or at
//! `--max-time`.
//!
//! The interval is Tukey and McLaughlin's for the 20% trimmed mean of the
//! logarithms of the pairs' ratios ([`super::confidence`]): a pair the
//! machine stalled (one run 70× dearer) does not widen it, as it did the
//! mean's. Not a percentile bootstrap: at the 4 to 20 pairs a run takes,
//! the bootstrap's interval is too narrow, and it said "B costs 2.0% less"
//! of a server compared with itself.
//!
//! Counts per request (system calls, context switches, octets per write,
//! requests per read) come from one more run of each side with perf
//! attached ([`super::counts`]); they do not move with the noise, so one
//! run says them.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::child::{serve_child, ServeFailure};
use super::confidence::{self, Interval};
use super::counts::{self, Counts};
use super::server_host::RemoteServer;
use super::{h2load, meter, system, LoadClient, Measured};
use crate::cli::{self, values, CmdError, CmdResult, Exit};
use crate::load::{self, LoadConfig, Stop};
use crate::netns::segments::Side;
use crate::netns::Net;

/// Compare two servers, A and B, in paired runs: each pair runs A then B
/// (or B then A, in turn), each run a fresh `h2lab serve` child pinned to
/// one CPU with the built-in load on another, warmed up, then measured.
/// Reports, for server CPU per request, req/s, p50 and p99: each side's
/// median, the ratio B/A (the 20% trimmed geometric mean of the pairs'
/// ratios, so that a pair the machine stalled does not decide it) with a
/// 95% confidence interval (Tukey and McLaughlin's, over the pairs' log
/// ratios), and a verdict in words.
///
/// Then one more run of each side, with `perf stat` counting the server's
/// system calls, gives the counts per request (system calls, read-like
/// and write-like, context switches, octets per write, requests per read)
/// and their ratio B/A.
///
/// Example: `h2lab ab --a '--dispatch poll' --b '--dispatch poll --work
/// cpu:400ns'`. Ctrl-C stops it and prints the answer of the pairs done
/// so far. Exit status: 0; 1 with --fail-if-slower PCT when the whole
/// interval of B's CPU per request lies more than PCT% above A's, or when
/// interrupted; 2 on bad arguments or a server that does not start.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A's `h2lab serve` options, as one string (`--dispatch poll --tls
    /// rustls`); empty: the defaults.
    #[arg(
        long,
        value_name = "SERVE_ARGS",
        default_value = "",
        allow_hyphen_values = true
    )]
    pub a: String,
    /// B's `h2lab serve` options, as one string.
    #[arg(long, value_name = "SERVE_ARGS", allow_hyphen_values = true)]
    pub b: String,
    /// The `h2lab` binary that serves A (before a change, say); default:
    /// this one.
    #[arg(long, value_name = "PATH")]
    pub a_exe: Option<PathBuf>,
    /// The `h2lab` binary that serves B; default: this one.
    #[arg(long, value_name = "PATH")]
    pub b_exe: Option<PathBuf>,
    /// Connections.
    #[arg(short = 'c', long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub clients: u64,
    /// Requests in flight per connection.
    #[arg(short = 'm', long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub pipeline: u64,
    /// Measured time of each run (after its warm-up). Short runs and many
    /// pairs: on a shared machine the pace changes over seconds, and a
    /// pair that straddles a change is noise; 0.2 s pairs spread half as
    /// wide as 1 s pairs here (docs/bench.md).
    #[arg(long, value_name = "DURATION", default_value = "0.2", value_parser = values::secs)]
    pub duration: Duration,
    /// Load before each measured run, not counted.
    #[arg(long, value_name = "DURATION", default_value = "0.1", value_parser = values::secs_or_zero)]
    pub warm_up: Duration,
    /// Pairs at most (3 at least: with 2, Student's t is 12.7 and any
    /// interval is too wide to say anything).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(3..=10_000))]
    pub pairs: u64,
    /// Stop once the 95% interval of B/A's CPU per request is this narrow:
    /// ± PCT% around its estimate (after 10 pairs at least: stopping as
    /// soon as a few pairs happen to agree would make the interval too
    /// narrow; 0: never stop early).
    #[arg(long, value_name = "PCT", default_value = "2", value_parser = values::pct)]
    pub precision: f64,
    /// Stop after this long, whatever the interval.
    #[arg(long, value_name = "DURATION", default_value = "120", value_parser = values::secs)]
    pub max_time: Duration,
    /// CPUs for the servers (`taskset -c`); default: the first this
    /// process may use.
    #[arg(long, value_name = "CPUS", value_parser = system::check_cpu_list)]
    pub pin_server: Option<String>,
    /// CPUs for the load; default: the second.
    #[arg(long, value_name = "CPUS", value_parser = system::check_cpu_list)]
    pub pin_client: Option<String>,
    /// Exit 1 when the whole interval of B's CPU per request lies more than
    /// PCT% above A's (for CI).
    #[arg(long, value_name = "PCT", value_parser = values::pct)]
    pub fail_if_slower: Option<f64>,
    /// Print one JSON object instead of the table.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print a markdown table instead.
    #[arg(long)]
    pub markdown: bool,
    /// Who makes the load: the built-in client (in this process, pinned
    /// to --pin-client), or h2load (pinned there; it prints no
    /// percentiles, so the table has no latency rows then).
    #[arg(long, value_enum, default_value_t = LoadClient::Builtin)]
    pub client: LoadClient,
    #[command(flatten)]
    pub net: super::command::NetArgs,
}

/// One run of one side.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Sample {
    pub cpu_us_per_req: f64,
    pub req_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub ctx_switches_per_req: f64,
}

/// What a figure did between A and B.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Compared {
    pub figure: &'static str,
    pub a_median: f64,
    pub b_median: f64,
    /// B/A: the 20% trimmed geometric mean of the pairs' ratios, and its
    /// 95% interval (`None` before the second pair).
    pub ratio: f64,
    pub ratio_low: Option<f64>,
    pub ratio_high: Option<f64>,
}

/// A count per request on both sides, and its exact ratio B/A (`None`:
/// not counted).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CountCompared {
    pub count: &'static str,
    pub a: Option<f64>,
    pub b: Option<f64>,
    pub ratio: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AbReport {
    pub a: String,
    pub b: String,
    pub clients: u64,
    pub pipeline: u64,
    pub pairs: usize,
    pub figures: Vec<Compared>,
    /// On CPU per request, in words.
    pub verdict: String,
    /// Counts per request: system calls from a counting run of each side,
    /// context switches the median of the timed runs.
    pub counts: Vec<CountCompared>,
    /// Why system calls were not counted, if they were not.
    pub counts_missing: Option<String>,
    /// Ctrl-C stopped it: the answer is of the pairs done so far.
    pub interrupted: bool,
    /// Where it ran: CPU, kernel, hypervisor, cpuidle, wake-up latency.
    pub machine: super::Machine,
    /// Every pair's two runs, A first.
    pub samples: Vec<(Sample, Sample)>,
}

pub fn run(args: Args) -> CmdResult {
    let exe = std::env::current_exe().map_err(|e| anyhow::anyhow!("cannot find h2lab: {e}"))?;
    let (pin_server, pin_client) = match (&args.pin_server, &args.pin_client) {
        (None, None) => system::default_pins().unzip(),
        (s, c) => (s.clone(), c.clone()),
    };
    let reached = args.net.hosts(args.client)?;
    let net = args
        .net
        .set_up(pin_server.as_deref(), pin_client.as_deref())?;
    if let Some(cpus) = &pin_client {
        system::pin_self(cpus).map_err(|e| anyhow::anyhow!(e))?;
    }
    let sides = [
        (
            args.a_exe.clone().unwrap_or_else(|| exe.clone()),
            words(&args.a),
        ),
        (args.b_exe.clone().unwrap_or(exe), words(&args.b)),
    ];
    // A signal kills the server in its run, which then fails: the pairs
    // done so far stay, and are the answer.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .map_err(|e| anyhow::anyhow!("cannot watch for signals: {e}"))?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            system::interrupt();
        }
    });
    // Timed before the servers run, on the CPUs they and the load use.
    let machine = super::Machine::of_ab(
        pin_server.as_deref(),
        pin_client.as_deref(),
        super::network_line(
            &net,
            args.net.listen,
            reached.load.as_deref(),
            reached.server.as_deref(),
        ),
    );
    let place = Place {
        pin_server: pin_server.as_deref(),
        pin_client: pin_client.as_deref(),
        net: &net,
        listen: args.net.listen,
        hosts: reached.load.as_deref(),
        server: reached.server.as_deref(),
    };
    let started = Instant::now();
    let mut samples: Vec<(Sample, Sample)> = Vec::new();
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    'pairs: while (samples.len() as u64) < args.pairs && started.elapsed() < args.max_time {
        // A B, then B A: a drift of the machine falls on both sides.
        let order: [usize; 2] = match samples.len() % 2 {
            0 => [0, 1],
            _ => [1, 0],
        };
        let mut pair = [None, None];
        for side in order {
            let (exe, serve_args) = &sides[side];
            let run = measure(&args, exe, serve_args, &place, side, false);
            if system::interrupted() {
                break 'pairs;
            }
            pair[side] = Some(run?.0);
        }
        samples.push((pair[0].expect("measured"), pair[1].expect("measured")));
        let cpu = confidence::paired_ratio(
            samples
                .iter()
                .map(|(a, b)| (a.cpu_us_per_req, b.cpu_us_per_req)),
        );
        let half = cpu.map_or(f64::INFINITY, |c| c.half_width_pct());
        if progress {
            eprint!(
                "\rh2lab ab: {} pairs, {:.0} s, B/A CPU per request {:.3} (±{half:.1}%)   ",
                samples.len(),
                started.elapsed().as_secs_f64(),
                cpu.map_or(f64::NAN, |c| c.estimate)
            );
        }
        if samples.len() >= MIN_PAIRS_TO_STOP && args.precision > 0.0 && half <= args.precision {
            break;
        }
    }
    if progress {
        eprintln!();
    }
    let interrupted = system::interrupted();
    if samples.is_empty() {
        eprintln!("h2lab: ab: interrupted before the first pair ended");
        return Ok(Exit::Failure);
    }
    // The counting runs: one a side, after the timed ones.
    let mut counted = [None, None];
    let mut counts_missing = counts::perf_usable().err();
    if !interrupted && counts_missing.is_none() {
        for (side, (exe, serve_args)) in sides.iter().enumerate() {
            match measure(&args, exe, serve_args, &place, side, true) {
                Ok((_, c)) => counted[side] = Some(c),
                Err(_) if system::interrupted() => {
                    counts_missing.get_or_insert("interrupted during the counting runs".into());
                    break;
                }
                Err(CmdError::Failed(e)) => {
                    counts_missing.get_or_insert(e.to_string());
                }
                Err(e) => return Err(e),
            }
        }
    }
    let mut report = report(&args, samples, counted, counts_missing, interrupted);
    report.machine = machine;
    let text = match (args.json, args.markdown) {
        (true, _) => format!("{}\n", serde_json::to_string_pretty(&report)?),
        (_, true) => markdown(&report),
        _ => table(&report),
    };
    cli::out(text);
    let cpu = &report.figures[0];
    match args.fail_if_slower {
        _ if interrupted => Ok(Exit::Failure),
        Some(pct) if cpu.ratio_low.is_some_and(|low| low > 1.0 + pct / 100.0) => Ok(Exit::Failure),
        _ => Ok(Exit::Success),
    }
}

/// Pairs before `--precision` may stop a run: with 7 pairs that happened
/// to agree, an A-against-A run stopped at ±1.8% (docs/bench.md).
const MIN_PAIRS_TO_STOP: usize = 10;

/// A command line's options as words (split on white space).
fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// Where each side runs: the CPUs and the network.
struct Place<'a> {
    pin_server: Option<&'a str>,
    pin_client: Option<&'a str>,
    net: &'a Net,
    /// `--listen`.
    listen: Option<std::net::IpAddr>,
    /// `--load-hosts`, reached.
    hosts: Option<&'a super::load::remote::Hosts>,
    /// `--server-host`, reached.
    server: Option<&'a super::load::remote::Hosts>,
}

/// One run of side `side` (0: A, 1: B): a fresh server, warmed up, then
/// measured, with its CPU time and context switches read around the
/// measured part; a `counting` run also counts its system calls. With
/// `--server-host`, the server runs and is metered on that host.
fn measure(
    args: &Args,
    exe: &std::path::Path,
    serve_args: &[String],
    place: &Place,
    side: usize,
    counting: bool,
) -> Result<(Sample, Counts), CmdError> {
    let (pin, net) = (place.pin_server, place.net);
    let name = ["A", "B"][side];
    let host = place.listen.unwrap_or_else(|| net.server_host());
    let failed = |e: String| CmdError::Failed(anyhow::anyhow!("{name}: {e}"));
    if let Some(away) = place.server {
        // The side's own binary, if given, at the same path there.
        let exe = [&args.a_exe, &args.b_exe][side].as_deref();
        let mut server =
            RemoteServer::start_serve(away, exe, serve_args, host, pin).map_err(|why| {
                cli::bad_input(anyhow::anyhow!(
                    "{name} (`serve {}`): {why}",
                    serve_args.join(" ")
                ))
            })?;
        let lead = away
            .lead
            .max(place.hosts.map_or(Duration::ZERO, |h| h.lead));
        let start = load::remote::Hosts::start_in(lead);
        server
            .meter(start, args.warm_up, args.duration, counting)
            .map_err(failed)?;
        if place.hosts.is_none() {
            std::thread::sleep(load::remote::Hosts::until(start));
        }
        let m = run_load(args, place, &server.url, Some(start)).map_err(failed)?;
        let metered = server.metered().map_err(failed)?;
        return sample_of(name, m, metered);
    }
    let mut serve_args = serve_args.to_vec();
    if !host.is_loopback() {
        serve_args.extend(["--host".into(), host.to_string()]);
    }
    let serve_args = &serve_args[..];
    let started = net
        .within(Side::Server, || serve_child(exe, serve_args, pin))
        .map_err(|e| CmdError::Failed(e.into()))?;
    let (child, url) = started.map_err(|e| {
        let why = match e {
            ServeFailure::Spawn(e) => format!("cannot run {}: {e}", exe.display()),
            ServeFailure::NotServing(said) => said,
        };
        cli::bad_input(anyhow::anyhow!(
            "{name} (`serve {}`): {why}",
            serve_args.join(" ")
        ))
    })?;
    let start = place.hosts.map(|h| h.start());
    let lead = start.map_or(Duration::ZERO, load::remote::Hosts::until);
    let measured_in_ns = net.within(Side::Client, || {
        meter::around(
            &[child.id()],
            lead,
            args.warm_up,
            args.duration,
            counting,
            None,
            || run_load(args, place, &url, start),
        )
    });
    let (measured, metered) = measured_in_ns.map_err(|e| CmdError::Failed(e.into()))?;
    drop(child);
    let m = measured.map_err(failed)?;
    let metered = metered.map_err(failed)?;
    sample_of(name, m, metered)
}

/// A side's load on the server at `url`: here, or from the load hosts
/// from `start` (ns, our clock).
fn run_load(args: &Args, place: &Place, url: &str, start: Option<u64>) -> Result<Measured, String> {
    match args.client {
        LoadClient::Builtin => {
            let config = LoadConfig {
                url: url.to_string(),
                clients: args.clients as usize,
                streams: args.pipeline as usize,
                stop: Stop::Duration(args.duration),
                warm_up: args.warm_up,
                insecure: true,
                ..LoadConfig::default()
            };
            let report = match (place.hosts, start) {
                (Some(h), Some(at)) => super::load_from_hosts(h, &config, at),
                _ => load::run(&config),
            };
            match report {
                Err(e) => Err(e.to_string()),
                Ok(r) if r.succeeded == 0 => Err(format!("no request succeeded ({r})")),
                Ok(r) => Ok(Measured::of(&r)),
            }
        }
        LoadClient::H2load => h2load::run_with(
            &h2load::Shape {
                clients: args.clients as usize,
                pipeline: args.pipeline as usize,
                threads: 1,
                duration: args.duration,
                warm_up: args.warm_up,
                timeout: Duration::from_secs(10),
                window: None,
                pin: place.pin_client,
            },
            std::slice::from_ref(&url.to_string()),
        )
        .map_err(|e| e.to_string()),
    }
}

/// A side's sample and counts from what its load and its meter read.
fn sample_of(
    name: &str,
    m: Measured,
    metered: meter::Metered,
) -> Result<(Sample, Counts), CmdError> {
    if m.succeeded == 0 {
        return Err(CmdError::Failed(anyhow::anyhow!(
            "{name}: no request succeeded"
        )));
    }
    let counts = Counts::per_request(
        m.succeeded,
        metered.syscalls,
        Some(metered.ctx_switches),
        m.octets_in,
    );
    let sample = Sample {
        cpu_us_per_req: metered.cpu_s * 1e6 / m.succeeded as f64,
        req_per_s: m.req_per_s,
        p50_us: m.p50_us.map_or(f64::NAN, |v| v as f64),
        p99_us: m.p99_us.map_or(f64::NAN, |v| v as f64),
        ctx_switches_per_req: counts.ctx_switches_per_req.unwrap_or(0.0),
    };
    Ok((sample, counts))
}

fn report(
    args: &Args,
    samples: Vec<(Sample, Sample)>,
    counted: [Option<Counts>; 2],
    counts_missing: Option<String>,
    interrupted: bool,
) -> AbReport {
    let mut figures = vec![
        compare("CPU µs/request", &samples, |s| s.cpu_us_per_req),
        compare("req/s", &samples, |s| s.req_per_s),
    ];
    // h2load prints no percentiles.
    if args.client == LoadClient::Builtin {
        figures.push(compare("p50 µs", &samples, |s| s.p50_us));
        figures.push(compare("p99 µs", &samples, |s| s.p99_us));
    }
    // Context switches are counted in every timed run: their median.
    let ctx = |side: usize| {
        median(
            samples
                .iter()
                .map(|p| [p.0, p.1][side].ctx_switches_per_req)
                .collect(),
        )
    };
    let side = |i: usize| {
        counted[i]
            .unwrap_or_default()
            .with_ctx_switches(Some(ctx(i)))
    };
    let (a, b) = (side(0), side(1));
    let count = |name: &'static str, of: fn(&Counts) -> Option<f64>| CountCompared {
        count: name,
        a: of(&a),
        b: of(&b),
        ratio: of(&a)
            .zip(of(&b))
            .filter(|(a, _)| *a > 0.0)
            .map(|(a, b)| b / a),
    };
    let counts = vec![
        count("system calls/request", |c| c.syscalls_per_req),
        count("read-like calls/request", |c| c.reads_per_req),
        count("write-like calls/request", |c| c.writes_per_req),
        count("context switches/request", |c| c.ctx_switches_per_req),
        count("octets/write", |c| c.octets_per_write),
        count("requests/read", |c| c.requests_per_read),
    ];
    AbReport {
        a: args.a.clone(),
        b: args.b.clone(),
        clients: args.clients,
        pipeline: args.pipeline,
        pairs: samples.len(),
        verdict: verdict(&figures[0], samples.len()),
        figures,
        counts,
        counts_missing,
        interrupted,
        machine: super::Machine::default(),
        samples,
    }
}

/// Figure `of` compared over the pairs.
fn compare(figure: &'static str, pairs: &[(Sample, Sample)], of: fn(&Sample) -> f64) -> Compared {
    let ci: Option<Interval> = confidence::paired_ratio(pairs.iter().map(|(a, b)| (of(a), of(b))));
    // One pair: its own ratio, with no interval.
    let one = || pairs.first().map_or(f64::NAN, |(a, b)| of(b) / of(a));
    Compared {
        figure,
        a_median: median(pairs.iter().map(|(a, _)| of(a)).collect()),
        b_median: median(pairs.iter().map(|(_, b)| of(b)).collect()),
        ratio: ci.map_or_else(one, |c| c.estimate),
        ratio_low: ci.map(|c| c.low),
        ratio_high: ci.map(|c| c.high),
    }
}

/// CPU per request, in words.
fn verdict(cpu: &Compared, pairs: usize) -> String {
    let pct = |r: f64| (r - 1.0) * 100.0;
    let (Some(low), Some(high)) = (cpu.ratio_low, cpu.ratio_high) else {
        return format!(
            "{pairs} pair is too few for an interval: B/A of CPU per request is {:.3}",
            cpu.ratio
        );
    };
    let (low, high) = (pct(low), pct(high));
    if low > 0.0 {
        format!(
            "B costs {:.1}% more CPU per request, 95% CI {low:.1}–{high:.1}%",
            pct(cpu.ratio)
        )
    } else if high < 0.0 {
        format!(
            "B costs {:.1}% less CPU per request, 95% CI {:.1}–{:.1}%",
            -pct(cpu.ratio),
            -high,
            -low
        )
    } else {
        format!("no difference detected: the interval {low:+.1}…{high:+.1}% includes 0")
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n % 2 {
        1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// `low–high` of an interval, or a dash without one.
fn ci(f: &Compared) -> String {
    match (f.ratio_low, f.ratio_high) {
        (Some(low), Some(high)) => format!("{low:.3}–{high:.3}"),
        _ => "–".into(),
    }
}

fn count(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| match v {
        v if v >= 100.0 => format!("{v:.0}"),
        v => format!("{v:.3}"),
    })
}

/// What the report says beside its figures: an interruption, and counts
/// not counted.
fn notes(r: &AbReport) -> Vec<String> {
    let mut notes = Vec::new();
    if r.interrupted {
        notes.push(format!(
            "interrupted: the answer is of the {} pairs done",
            r.pairs
        ));
    }
    if let Some(why) = &r.counts_missing {
        notes.push(format!("system calls not counted: {why}"));
    }
    notes
}

fn table(r: &AbReport) -> String {
    let mut out = format!(
        "h2lab ab: A = `serve {}`, B = `serve {}`; {} clients × {} in flight; {} pairs (A B, B A in turn)\n",
        r.a, r.b, r.clients, r.pipeline, r.pairs
    );
    let _ = writeln!(
        out,
        "{:<24} {:>12} {:>12} {:>8} {:>17}",
        "", "A median", "B median", "B/A", "95% CI"
    );
    for f in &r.figures {
        let _ = writeln!(
            out,
            "{:<24} {:>12.3} {:>12.3} {:>8.3} {:>17}",
            f.figure,
            f.a_median,
            f.b_median,
            f.ratio,
            ci(f)
        );
    }
    let _ = writeln!(
        out,
        "counted (system calls: one more run a side with perf; context switches: the runs' median):"
    );
    for c in &r.counts {
        let _ = writeln!(
            out,
            "{:<24} {:>12} {:>12} {:>8}",
            c.count,
            count(c.a),
            count(c.b),
            count(c.ratio)
        );
    }
    for note in notes(r) {
        let _ = writeln!(out, "note: {note}");
    }
    let _ = writeln!(out, "machine: {}", r.machine.summary());
    let _ = writeln!(out, "verdict: {}", r.verdict);
    out
}

fn markdown(r: &AbReport) -> String {
    let mut out = format!(
        "A = `serve {}`, B = `serve {}`; {} clients × {} in flight; {} pairs.\n\n| figure | A median | B median | B/A | 95% CI |\n|---|---:|---:|---:|---:|\n",
        r.a, r.b, r.clients, r.pipeline, r.pairs
    );
    for f in &r.figures {
        let _ = writeln!(
            out,
            "| {} | {:.3} | {:.3} | {:.3} | {} |",
            f.figure,
            f.a_median,
            f.b_median,
            f.ratio,
            ci(f)
        );
    }
    for c in &r.counts {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | counted |",
            c.count,
            count(c.a),
            count(c.b),
            count(c.ratio)
        );
    }
    for note in notes(r) {
        let _ = writeln!(out, "\nNote: {note}.");
    }
    let _ = writeln!(out, "\nMachine: {}.", r.machine.summary());
    let _ = writeln!(out, "\n**Verdict:** {}.", r.verdict);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(cpu: f64) -> Sample {
        Sample {
            cpu_us_per_req: cpu,
            req_per_s: 1000.0 / cpu,
            p50_us: 100.0,
            p99_us: 200.0,
            ctx_switches_per_req: 0.0,
        }
    }

    #[test]
    fn equal_ratios_give_a_point_and_a_clear_verdict() {
        let pairs: Vec<_> = (0..6)
            .map(|i| (sample(1.0 + i as f64), sample((1.0 + i as f64) * 1.5)))
            .collect();
        let cpu = compare("cpu", &pairs, |s| s.cpu_us_per_req);
        assert!((cpu.ratio - 1.5).abs() < 1e-9);
        let (low, high) = (cpu.ratio_low.unwrap(), cpu.ratio_high.unwrap());
        assert!((low - 1.5).abs() < 1e-9 && (high - 1.5).abs() < 1e-9);
        assert_eq!(
            verdict(&cpu, pairs.len()),
            "B costs 50.0% more CPU per request, 95% CI 50.0–50.0%"
        );
    }

    #[test]
    fn noise_around_no_difference_is_said_as_such() {
        let noise = [1.02, 0.97, 1.01, 0.99, 1.03, 0.98, 1.0, 1.01];
        let pairs: Vec<_> = noise
            .iter()
            .map(|&n| (sample(10.0), sample(10.0 * n)))
            .collect();
        let cpu = compare("cpu", &pairs, |s| s.cpu_us_per_req);
        assert!(
            cpu.ratio_low < Some(1.0) && cpu.ratio_high > Some(1.0),
            "{cpu:?}"
        );
        assert!(
            verdict(&cpu, pairs.len()).starts_with("no difference detected"),
            "{}",
            verdict(&cpu, pairs.len())
        );
        // And a cheaper B is said so.
        let pairs: Vec<_> = noise
            .iter()
            .map(|&n| (sample(10.0), sample(8.0 * n)))
            .collect();
        let cpu = compare("cpu", &pairs, |s| s.cpu_us_per_req);
        assert!((cpu.ratio - 0.8).abs() < 0.01, "{cpu:?}");
        assert!(
            verdict(&cpu, pairs.len()).starts_with("B costs 19.9% less"),
            "{}",
            verdict(&cpu, pairs.len())
        );
    }

    #[test]
    fn one_pair_has_no_interval_and_says_so() {
        let cpu = compare("cpu", &[(sample(1.0), sample(2.0))], |s| s.cpu_us_per_req);
        assert_eq!((cpu.ratio_low, cpu.ratio_high), (None, None));
        assert_eq!(
            verdict(&cpu, 1),
            "1 pair is too few for an interval: B/A of CPU per request is 2.000"
        );
    }
}
