//! `h2lab ab`: is B cheaper than A, by how much, and how sure are we?
//! Two servers run alternately in short paired runs (A B, then B A, so
//! that a drift of the machine falls on both sides), each pair giving the
//! ratio B/A of each figure; noise that hits both sides of a pair cancels
//! in its ratio. The ratios' geometric mean, with a 95% confidence
//! interval, says the difference; the run stops at `--pairs`, or once the
//! interval of CPU per request is as narrow as `--precision`, or at
//! `--max-time`.
//!
//! The interval is Student's t on the logarithms of the pairs' ratios
//! (mean ± t·s/√n), not a percentile bootstrap: at the 4 to 20 pairs a
//! run takes, the bootstrap's interval is too narrow (over 1,000 samples
//! of 10 from a uniform population, the 95% percentile bootstrap covered
//! the mean 91.0% of the time and t 94.4%), and it said "B costs 2.0%
//! less" of a server compared with itself.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::child::{serve_child, ServeFailure};
use super::system;
use crate::cli::{self, values, CmdError, CmdResult, Exit};
use crate::load::{self, LoadConfig, Stop};

/// Compare two servers, A and B, in paired runs: each pair runs A then B
/// (or B then A, in turn), each run a fresh `h2lab serve` child pinned to
/// one CPU with the built-in load on another, warmed up, then measured.
/// Reports, for server CPU per request, req/s, p50 and p99: each side's
/// median, the ratio B/A (the geometric mean of the pairs' ratios) with a
/// 95% confidence interval (Student's t over the pairs' log ratios), and a
/// verdict in words.
///
/// Example: `h2lab ab --a '--dispatch poll' --b '--dispatch poll --work
/// cpu:400ns'`. Exit status: 0, or 1 with --fail-if-slower PCT when the
/// whole interval of B's CPU per request lies more than PCT% above A's;
/// 2 on bad arguments or a server that does not start.
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
    /// Measured time of each run (after its warm-up).
    #[arg(long, value_name = "DURATION", default_value = "0.5", value_parser = values::secs)]
    pub duration: Duration,
    /// Load before each measured run, not counted.
    #[arg(long, value_name = "DURATION", default_value = "0.2", value_parser = values::secs_or_zero)]
    pub warm_up: Duration,
    /// Pairs at most (3 at least: with 2, Student's t is 12.7 and any
    /// interval is too wide to say anything).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(3..=10_000))]
    pub pairs: u64,
    /// Stop once the 95% interval of B/A's CPU per request is this narrow:
    /// ± PCT% around its estimate (after 4 pairs at least).
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
}

/// One run of one side.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Sample {
    pub cpu_us_per_req: f64,
    pub req_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// What a figure did between A and B.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Compared {
    pub figure: &'static str,
    pub a_median: f64,
    pub b_median: f64,
    /// B/A: the geometric mean of the pairs' ratios, and its 95% interval.
    pub ratio: f64,
    pub ratio_low: f64,
    pub ratio_high: f64,
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
    /// Every pair's two runs, A first.
    pub samples: Vec<(Sample, Sample)>,
}

pub fn run(args: Args) -> CmdResult {
    let exe = std::env::current_exe().map_err(|e| anyhow::anyhow!("cannot find h2lab: {e}"))?;
    let (pin_server, pin_client) = match (&args.pin_server, &args.pin_client) {
        (None, None) => system::default_pins().unzip(),
        (s, c) => (s.clone(), c.clone()),
    };
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
    let started = Instant::now();
    let mut samples: Vec<(Sample, Sample)> = Vec::new();
    while (samples.len() as u64) < args.pairs && started.elapsed() < args.max_time {
        // A B, then B A: a drift of the machine falls on both sides.
        let order: [usize; 2] = match samples.len() % 2 {
            0 => [0, 1],
            _ => [1, 0],
        };
        let mut pair = [None, None];
        for side in order {
            let (exe, serve_args) = &sides[side];
            pair[side] = Some(measure(
                &args,
                exe,
                serve_args,
                pin_server.as_deref(),
                side,
            )?);
        }
        samples.push((pair[0].expect("measured"), pair[1].expect("measured")));
        let cpu = compare("CPU µs/request", &samples, |s| s.cpu_us_per_req);
        let half = (cpu.ratio_high - cpu.ratio_low) / 2.0 / cpu.ratio * 100.0;
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            eprint!(
                "\rh2lab ab: {} pairs, B/A CPU per request {:.3} (±{half:.1}%)   ",
                samples.len(),
                cpu.ratio
            );
        }
        if samples.len() >= 4 && half <= args.precision {
            break;
        }
    }
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!();
    }
    let report = report(&args, samples);
    let text = match (args.json, args.markdown) {
        (true, _) => format!("{}\n", serde_json::to_string_pretty(&report)?),
        (_, true) => markdown(&report),
        _ => table(&report),
    };
    cli::out(text);
    let cpu = &report.figures[0];
    match args.fail_if_slower {
        Some(pct) if cpu.ratio_low > 1.0 + pct / 100.0 => Ok(Exit::Failure),
        _ => Ok(Exit::Success),
    }
}

/// A command line's options as words (split on white space).
fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// One run of side `side` (0: A, 1: B): a fresh server, warmed up, then
/// measured with its CPU time read around the measured part.
fn measure(
    args: &Args,
    exe: &std::path::Path,
    serve_args: &[String],
    pin: Option<&str>,
    side: usize,
) -> Result<Sample, CmdError> {
    let name = ["A", "B"][side];
    let (child, url) = serve_child(exe, serve_args, pin).map_err(|e| {
        let why = match e {
            ServeFailure::Spawn(e) => format!("cannot run {}: {e}", exe.display()),
            ServeFailure::NotServing(said) => said,
        };
        cli::bad_input(anyhow::anyhow!(
            "{name} (`serve {}`): {why}",
            serve_args.join(" ")
        ))
    })?;
    let pids = [child.id()];
    let ticks = system::clock_ticks();
    let (report, cpu_before) = std::thread::scope(|s| {
        let before = s.spawn(|| {
            std::thread::sleep(args.warm_up);
            system::cpu_of(&pids, ticks)
        });
        let report = load::run(&LoadConfig {
            url: url.clone(),
            clients: args.clients as usize,
            streams: args.pipeline as usize,
            stop: Stop::Duration(args.duration),
            warm_up: args.warm_up,
            insecure: true,
            ..LoadConfig::default()
        });
        (
            report,
            before.join().expect("the CPU reader does not panic"),
        )
    });
    let report = report.map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let cpu = system::cpu_of(&pids, ticks).map_err(|e| anyhow::anyhow!(e))?
        - cpu_before.map_err(|e| anyhow::anyhow!(e))?;
    drop(child);
    if report.succeeded == 0 {
        return Err(anyhow::anyhow!("{name}: no request succeeded ({report})").into());
    }
    let l = report.latency_us.unwrap_or_default();
    Ok(Sample {
        cpu_us_per_req: cpu * 1e6 / report.succeeded as f64,
        req_per_s: report.req_per_s,
        p50_us: l.p50 as f64,
        p99_us: l.p99 as f64,
    })
}

fn report(args: &Args, samples: Vec<(Sample, Sample)>) -> AbReport {
    let figures = vec![
        compare("CPU µs/request", &samples, |s| s.cpu_us_per_req),
        compare("req/s", &samples, |s| s.req_per_s),
        compare("p50 µs", &samples, |s| s.p50_us),
        compare("p99 µs", &samples, |s| s.p99_us),
    ];
    AbReport {
        a: args.a.clone(),
        b: args.b.clone(),
        clients: args.clients,
        pipeline: args.pipeline,
        pairs: samples.len(),
        verdict: verdict(&figures[0]),
        figures,
        samples,
    }
}

/// Figure `of` compared over the pairs.
fn compare(figure: &'static str, pairs: &[(Sample, Sample)], of: fn(&Sample) -> f64) -> Compared {
    let logs: Vec<f64> = pairs
        .iter()
        .map(|(a, b)| (of(b).max(1e-12) / of(a).max(1e-12)).ln())
        .collect();
    let (low, high) = t_interval(&logs);
    Compared {
        figure,
        a_median: median(pairs.iter().map(|(a, _)| of(a)).collect()),
        b_median: median(pairs.iter().map(|(_, b)| of(b)).collect()),
        ratio: mean(&logs).exp(),
        ratio_low: low.exp(),
        ratio_high: high.exp(),
    }
}

/// CPU per request, in words.
fn verdict(cpu: &Compared) -> String {
    let pct = |r: f64| (r - 1.0) * 100.0;
    let (low, high) = (pct(cpu.ratio_low), pct(cpu.ratio_high));
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

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
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

/// The 95% confidence interval of the mean of `v`: mean ± t·s/√n, t the
/// 97.5th percentile of Student's t with n−1 degrees of freedom.
pub fn t_interval(v: &[f64]) -> (f64, f64) {
    let n = v.len();
    let m = mean(v);
    if n < 2 {
        return (m, m);
    }
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1) as f64;
    let half = t_975(n - 1) * (var / n as f64).sqrt();
    (m - half, m + half)
}

/// Student's t, 97.5th percentile, for `df` degrees of freedom.
fn t_975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => T[df - 1],
        31..=60 => 2.00,
        61..=120 => 1.98,
        _ => 1.96,
    }
}

fn table(r: &AbReport) -> String {
    let mut out = format!(
        "h2lab ab: A = `serve {}`, B = `serve {}`; {} clients × {} in flight; {} pairs (A B, B A in turn)\n",
        r.a, r.b, r.clients, r.pipeline, r.pairs
    );
    let _ = writeln!(
        out,
        "{:<16} {:>12} {:>12} {:>8} {:>17}",
        "", "A median", "B median", "B/A", "95% CI"
    );
    for f in &r.figures {
        let _ = writeln!(
            out,
            "{:<16} {:>12.3} {:>12.3} {:>8.3} {:>17}",
            f.figure,
            f.a_median,
            f.b_median,
            f.ratio,
            format!("{:.3}–{:.3}", f.ratio_low, f.ratio_high)
        );
    }
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
            "| {} | {:.3} | {:.3} | {:.3} | {:.3}–{:.3} |",
            f.figure, f.a_median, f.b_median, f.ratio, f.ratio_low, f.ratio_high
        );
    }
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
        }
    }

    #[test]
    fn equal_ratios_give_a_point_and_a_clear_verdict() {
        let pairs: Vec<_> = (0..6)
            .map(|i| (sample(1.0 + i as f64), sample((1.0 + i as f64) * 1.5)))
            .collect();
        let cpu = compare("cpu", &pairs, |s| s.cpu_us_per_req);
        assert!((cpu.ratio - 1.5).abs() < 1e-9);
        assert!((cpu.ratio_low - 1.5).abs() < 1e-9 && (cpu.ratio_high - 1.5).abs() < 1e-9);
        assert_eq!(
            verdict(&cpu),
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
        assert!(cpu.ratio_low < 1.0 && cpu.ratio_high > 1.0, "{cpu:?}");
        assert!(
            verdict(&cpu).starts_with("no difference detected"),
            "{}",
            verdict(&cpu)
        );
        // And a cheaper B is said so.
        let pairs: Vec<_> = noise
            .iter()
            .map(|&n| (sample(10.0), sample(8.0 * n)))
            .collect();
        let cpu = compare("cpu", &pairs, |s| s.cpu_us_per_req);
        assert!((cpu.ratio - 0.8).abs() < 0.01, "{cpu:?}");
        assert!(
            verdict(&cpu).starts_with("B costs 19.9% less"),
            "{}",
            verdict(&cpu)
        );
    }

    /// The interval covers the mean of the population it was drawn from in
    /// about 95% of samples: checked over 400 samples of 10 from a fixed
    /// population (uniform: not even the normal the t assumes).
    #[test]
    fn the_interval_covers_the_mean_about_95_percent() {
        let mut state = 12345u64;
        let mut uniform = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let covered = (0..400)
            .filter(|_| {
                let v: Vec<f64> = (0..10).map(|_| uniform() - 0.5).collect();
                let (low, high) = t_interval(&v);
                low <= 0.0 && 0.0 <= high
            })
            .count();
        // 95% of 400 is 380; a fixed seed, so the count is exact.
        assert!((370..=392).contains(&covered), "{covered} of 400");
    }
}
