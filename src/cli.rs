//! The command line: argument parsing and the edge where errors become
//! one-line messages and exit codes.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::server::{self, Dispatch, Engine, ServerConfig};
use crate::tls::TlsProvider;
use crate::trace::TraceConfig;

#[derive(Debug, Parser)]
#[command(
    name = "h2lab",
    version,
    about = "A laboratory for HTTP/2 server architectures: one tiny service (\"Hello World\\n\" \
             for every request) on interchangeable server designs."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve "Hello World\n" over HTTP/2 until SIGINT or SIGTERM.
    ///
    /// Prints exactly one line, `listening on URL`, to stdout once it accepts
    /// connections. Without TLS it speaks h2c with prior knowledge
    /// (`curl --http2-prior-knowledge`); with TLS it negotiates `h2` by ALPN.
    Serve(ServeArgs),
    /// Write a fresh development certificate pair: a CA (ca.pem) and a leaf
    /// for localhost, 127.0.0.1 and ::1 (localhost.pem, localhost-key.pem).
    Certs(CertsArgs),
    /// Compare two action logs (the CSV of `serve --trace`): per-request
    /// action counts, bytes and mean durations, and each log's usual
    /// per-request action sequence.
    ///
    /// Exit status: 0 when B is within the thresholds of A, 1 when a
    /// per-request action count or mean duration in B exceeds A's by more,
    /// 2 when a log cannot be read (with the reason).
    Compare(CompareArgs),
    /// Load an HTTP/2 server like h2load: CLIENTS connections with up to
    /// STREAMS requests in flight each, for -n requests in all or for -D
    /// seconds; reports successes, failures, req/s and latency percentiles.
    ///
    /// h2c with prior knowledge for http://, TLS with ALPN h2 for https://
    /// (with --cacert FILE, or -k to accept any certificate). Exit status: 0
    /// when every request succeeded, 1 when some failed, 2 on bad arguments.
    Load(LoadArgs),
    /// Run a matrix of experiments: every dispatch × engine × TLS × clients
    /// × pipeline depth given, each run against its own `h2lab serve` child
    /// (so that its CPU time is read from /proc for it alone), repeats
    /// interleaved across cells. Prints a table of medians; --out and --json
    /// write every run and the medians.
    ///
    /// With no arguments: every dispatch with mini and TLS none/rustls, at
    /// 1 and 5 clients and pipeline depths 1, 10 and 100, 1 s per run, 3
    /// repeats (about 3 minutes on a 2-core machine). A setup that is not
    /// built is skipped with a note. A cell whose server cannot serve every
    /// client (single with 5 clients) is recorded as it is, with failures.
    Bench(BenchArgs),
    /// Markdown for write-ups from a bench CSV (`h2lab bench --out`): per
    /// clients × pipeline × h2c/TLS, every server's median req/s and CPU per
    /// request and its ratio to a baseline, then the machine's description
    /// (make the report where the bench ran).
    Report(ReportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to bind (an IP address, or `localhost` for 127.0.0.1).
    #[arg(long, default_value = "127.0.0.1", value_parser = parse_host)]
    pub host: IpAddr,
    /// Port to bind; 0 picks a free one (the URL printed tells which).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// How connections are scheduled: `single` serves one client at a time,
    /// `thread` gives each connection a thread, `tokio` a task, and `poll`
    /// runs every client on one thread through an explicit state machine.
    #[arg(long, value_enum, default_value_t = Dispatch::Single)]
    pub dispatch: Dispatch,
    /// Who speaks HTTP/2: `mini` is h2lab's simplified sans-IO engine, `h2`
    /// the h2 crate (not on `poll`).
    #[arg(long, value_enum, default_value_t = Engine::Mini)]
    pub engine: Engine,
    /// Who encrypts: `none` is h2c (prior knowledge); `rustls` and `openssl`
    /// negotiate h2 by ALPN and refuse clients that offer only other protocols.
    #[arg(long, value_enum, default_value_t = TlsProvider::None)]
    pub tls: TlsProvider,
    /// PEM certificate chain (leaf first). Without --cert and --key, the
    /// built-in development pair for localhost (certs/ in the source tree).
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// PEM private key for --cert.
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// TCP_NODELAY on every connection: `false` lets Nagle's algorithm
    /// coalesce small writes (the seed's Nagle switch).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub nodelay: bool,
    /// `poll` only: serve at most N clients at once; more are accepted and
    /// closed at once (counted as refused).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_clients: Option<u64>,
    /// `poll` only: close a client that has sent nothing for SECS seconds
    /// (fractions allowed, e.g. 0.5).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub idle_timeout: Option<Duration>,
    /// `tokio` only: run a multi-thread runtime with N worker threads
    /// instead of the default current-thread runtime.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: Option<u64>,
    /// Record every action and frame of every client to PREFIX.json (Chrome
    /// trace, opens in Perfetto) and PREFIX.csv (action log), e.g.
    /// `--trace traces/run1`. Both are complete once the server stops.
    #[arg(long, value_name = "PREFIX")]
    pub trace: Option<PathBuf>,
    /// Stop recording after N records; what is not recorded is counted and
    /// reported (so a long run cannot fill the disk).
    #[arg(long, value_name = "N", requires = "trace")]
    pub trace_limit: Option<u64>,
    /// Records the queue to the trace writer holds; when it is full, records
    /// are dropped and counted, never waited for.
    #[arg(long, value_name = "N", requires = "trace", default_value_t = crate::trace::DEFAULT_QUEUE as u64,
          value_parser = clap::value_parser!(u64).range(1..=1 << 24))]
    pub trace_queue: u64,
}

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// http://HOST:PORT/ or https://HOST:PORT/
    pub url: String,
    /// Connections.
    #[arg(short = 'c', long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub clients: u64,
    /// Requests in flight per connection.
    #[arg(short = 'm', long = "max-concurrent-streams", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub streams: u64,
    /// Requests in all, split evenly over the connections (default 1 without -D).
    #[arg(short = 'n', long, conflicts_with = "duration", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,
    /// Measure for SECS seconds (after --warm-up) instead of -n.
    #[arg(short = 'D', long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<Duration>,
    /// With -D: load for SECS first without counting.
    #[arg(long, value_name = "SECS", requires = "duration", value_parser = parse_secs)]
    pub warm_up: Option<Duration>,
    /// Accept any server certificate.
    #[arg(short = 'k', long)]
    pub insecure: bool,
    /// Trust this CA (PEM) for https://, e.g. certs/ca.pem.
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub cacert: Option<PathBuf>,
    /// Requests still open SECS after the last one was due (-D), or after
    /// the last progress (-n), fail as timed out.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub timeout: Duration,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Dispatches, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "single,thread,tokio,poll"
    )]
    pub dispatch: Vec<Dispatch>,
    /// Engines, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "mini")]
    pub engine: Vec<Engine>,
    /// TLS providers, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "none,rustls")]
    pub tls: Vec<TlsProvider>,
    /// Connection counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,5", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub clients: Vec<u64>,
    /// Requests in flight per connection, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub pipeline: Vec<u64>,
    /// Seconds of load per run.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs)]
    pub duration: Duration,
    /// Runs per cell, interleaved across cells.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub repeat: u64,
    /// Who makes the load.
    #[arg(long, value_enum, default_value_t = crate::bench::LoadClient::Builtin)]
    pub client: crate::bench::LoadClient,
    /// Requests still open this long after a run's end fail.
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_secs)]
    pub timeout: Duration,
    /// Write every run and the medians as CSV.
    #[arg(long, value_name = "FILE.csv")]
    pub out: Option<PathBuf>,
    /// Write every run and the medians as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Peer servers to measure in the same run, comma-separated, each with
    /// h2c and/or TLS as --tls asks (any TLS provider means the peer's own
    /// OpenSSL). A peer whose binary is missing is left out with a note.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIST")]
    pub peers: Vec<crate::peers::Peer>,
    /// A missing peer binary is an error instead.
    #[arg(long, requires = "peers")]
    pub require_peers: bool,
    /// Run every server on these CPUs (`taskset -c` list, e.g. 0 or 0-1).
    #[arg(long, value_name = "CPUS", value_parser = crate::bench::check_cpu_list)]
    pub pin_server: Option<String>,
    /// Run the load on these CPUs (the built-in client's threads, or h2load).
    #[arg(long, value_name = "CPUS", value_parser = crate::bench::check_cpu_list)]
    pub pin_client: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A CSV written by `h2lab bench --out`.
    pub csv: PathBuf,
    /// The server ratios are taken to, without its TLS provider, e.g.
    /// `h2o/peer` or `poll/mini` (default: the fastest peer present, else
    /// the fastest server).
    #[arg(long, value_name = "SERVER")]
    pub baseline: Option<String>,
    /// Write the markdown here instead of stdout.
    #[arg(long, value_name = "FILE.md")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The baseline action log.
    pub a: PathBuf,
    /// The action log to judge against the baseline.
    pub b: PathBuf,
    /// Percent by which B's per-request count of an action may exceed A's.
    #[arg(long, value_name = "PCT", default_value_t = 10.0, value_parser = parse_pct)]
    pub threshold: f64,
    /// Percent by which B's mean duration of an action may exceed A's
    /// (default: --threshold). Durations are noisier than counts on a shared
    /// machine.
    #[arg(long, value_name = "PCT", value_parser = parse_pct)]
    pub duration_threshold: Option<f64>,
}

fn parse_pct(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if p.is_finite() && p >= 0.0 => Ok(p),
        _ => Err(format!("'{s}' is not a percentage (a number, 0 or more)")),
    }
}

#[derive(Debug, clap::Args)]
pub struct CertsArgs {
    /// Directory to write into (created if missing).
    #[arg(long, default_value = "certs")]
    pub out: PathBuf,
    /// Replace files that exist already.
    #[arg(long)]
    pub force: bool,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!("'{s}' is not between 0 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_host(s: &str) -> Result<IpAddr, String> {
    if s == "localhost" {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    s.parse()
        .map_err(|_| format!("'{s}' is not an IP address (use e.g. 127.0.0.1 or ::1)"))
}

/// Runs the command line; the process's exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", one_line(&e.render().to_string()));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Certs(args) => certs(args),
        Command::Compare(args) => return compare(args),
        Command::Load(args) => return load(args),
        Command::Bench(args) => bench(args),
        Command::Report(args) => report(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("h2lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes to stdout. A reader that went away (`| head`) is no error to
/// report, and never a panic: the rest of the output is dropped.
fn out(text: impl AsRef<str>) {
    let _ = std::io::stdout().lock().write_all(text.as_ref().as_bytes());
}

/// clap's multi-line usage error as one line (the hint to try --help dropped).
fn one_line(rendered: &str) -> String {
    let parts: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .collect();
    parts.join(" ")
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Registered before the server starts, so that no signal is missed.
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("cannot watch for signals")?;
    let config = ServerConfig {
        host: args.host,
        port: args.port,
        dispatch: args.dispatch,
        engine: args.engine,
        tls: args.tls,
        cert: args.cert,
        key: args.key,
        nodelay: args.nodelay,
        max_clients: args.max_clients.map(|n| n as usize),
        idle_timeout: args.idle_timeout,
        threads: args.threads.unwrap_or(0) as usize,
        client_hello: None, // a library hook: no CLI form
        trace: args.trace.map(|prefix| TraceConfig {
            limit: args.trace_limit,
            queue: args.trace_queue as usize,
            ..TraceConfig::new(prefix)
        }),
    };
    let server = server::start(&config)?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", server.url()).context("stdout")?;
        out.flush().context("stdout")?;
    }
    let signal = signals.forever().next();
    let setup = server.setup();
    let stats = server.stop();
    eprintln!(
        "h2lab: {setup} stopped{}: {} connections, {} responses, {} writes, {} failed, {} refused, {} timed out",
        signal.map(|s| format!(" by signal {s}")).unwrap_or_default(),
        stats.accepted,
        stats.responses,
        stats.writes,
        stats.failed,
        stats.refused,
        stats.timed_out
    );
    if let (Some(result), Some(t)) = (&stats.trace, &config.trace) {
        match result {
            Ok(summary) => eprintln!(
                "h2lab: trace {} and {}: {summary}",
                t.json_path().display(),
                t.csv_path().display()
            ),
            Err(e) => anyhow::bail!("trace: {e}"),
        }
    }
    Ok(())
}

fn bench(args: BenchArgs) -> anyhow::Result<()> {
    use crate::bench;
    let mut setups = Vec::new();
    for &dispatch in &args.dispatch {
        for &engine in &args.engine {
            for &tls in &args.tls {
                let setup = crate::server::Setup {
                    dispatch,
                    engine,
                    tls,
                };
                match setup.is_supported() {
                    true if !setups.contains(&setup) => setups.push(setup),
                    true => {}
                    false => eprintln!("h2lab: bench: skipping {setup}: not a supported setup"),
                }
            }
        }
    }
    let mut peers = Vec::new();
    for &peer in &args.peers {
        if peer.find().is_none() {
            let missing = format!(
                "`{}` not found (Debian: apt-get install {})",
                peer.name(),
                peer.package()
            );
            anyhow::ensure!(!args.require_peers, "peer {missing}");
            eprintln!("h2lab: bench: leaving out {}: {missing}", peer.name());
            continue;
        }
        let mut tls_choices: Vec<bool> = args.tls.iter().map(|t| t.is_tls()).collect();
        tls_choices.dedup();
        for tls in tls_choices {
            if !peers.contains(&(peer, tls)) {
                peers.push((peer, tls));
            }
        }
    }
    anyhow::ensure!(
        !setups.is_empty() || !peers.is_empty(),
        "no supported setup in the matrix"
    );
    let config = bench::BenchConfig {
        setups,
        peers,
        clients: args.clients.iter().map(|&c| c as usize).collect(),
        pipelines: args.pipeline.iter().map(|&m| m as usize).collect(),
        duration: args.duration,
        repeat: args.repeat as usize,
        client: args.client,
        exe: std::env::current_exe().context("cannot find the h2lab binary")?,
        timeout: args.timeout,
        pin_server: args.pin_server.clone(),
        pin_client: args.pin_client.clone(),
    };
    if let (Some(cpus), bench::LoadClient::Builtin) = (&args.pin_client, args.client) {
        bench::pin_self(cpus).map_err(anyhow::Error::msg)?;
    }
    if args.pin_server.is_some() || args.pin_client.is_some() {
        eprintln!(
            "h2lab: bench: servers on CPUs {}, load on CPUs {}",
            args.pin_server.as_deref().unwrap_or("any"),
            args.pin_client.as_deref().unwrap_or("any")
        );
    }
    let cells = config.cells();
    let bar = indicatif::ProgressBar::new((cells.len() * config.repeat) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} runs, {elapsed} elapsed, ~{eta} left  {msg}",
        )
        .expect("a valid template"),
    );
    let runs = bench::run(&config, |r| {
        bar.set_message(format!(
            "{} c={} m={}: {:.0} req/s",
            r.cell.target, r.cell.clients, r.cell.pipeline, r.req_per_s
        ));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let medians = bench::medians(&cells, &runs);
    out(bench::table(&medians));
    if let Some(path) = &args.out {
        std::fs::write(path, bench::csv(config.client, &runs, &medians))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("h2lab: bench: wrote {}", path.display());
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&bench::json(config.client, &runs, &medians))?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("h2lab: bench: wrote {}", path.display());
    }
    Ok(())
}

fn report(args: ReportArgs) -> anyhow::Result<()> {
    let rows = crate::report::read(&args.csv)?;
    let markdown = crate::report::render(&rows, args.baseline.as_deref(), &args.csv)?;
    match &args.out {
        Some(path) => std::fs::write(path, markdown)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => out(markdown),
    }
    Ok(())
}

fn load(args: LoadArgs) -> ExitCode {
    let stop = match (args.requests, args.duration) {
        (_, Some(d)) => crate::load::Stop::Duration(d),
        (n, None) => crate::load::Stop::Requests(n.unwrap_or(1)),
    };
    let config = crate::load::LoadConfig {
        url: args.url,
        clients: args.clients as usize,
        streams: args.streams as usize,
        stop,
        warm_up: args.warm_up.unwrap_or_default(),
        insecure: args.insecure,
        cacert: args.cacert,
        timeout: args.timeout,
    };
    let report = match crate::load::run(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("h2lab: {e}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        out(format!("{}\n", report.to_json()));
    } else {
        out(report.to_string());
    }
    match report.failed + report.connection_errors {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

fn compare(args: CompareArgs) -> ExitCode {
    let logs =
        crate::compare::read_log(&args.a).and_then(|a| Ok((a, crate::compare::read_log(&args.b)?)));
    let (a, b) = match logs {
        Ok(logs) => logs,
        Err(e) => {
            eprintln!("h2lab: {e}");
            return ExitCode::from(2);
        }
    };
    let thresholds = crate::compare::Thresholds {
        count_pct: args.threshold,
        duration_pct: args.duration_threshold.unwrap_or(args.threshold),
    };
    let comparison = crate::compare::compare(&a, &b, thresholds);
    out(comparison.to_string());
    if comparison.regressions.is_empty() {
        out("\nno regression beyond the thresholds\n");
        return ExitCode::SUCCESS;
    }
    out("\nregressions:\n");
    for r in &comparison.regressions {
        out(format!("  {r}\n"));
    }
    ExitCode::FAILURE
}

fn certs(args: CertsArgs) -> anyhow::Result<()> {
    let written = crate::certs::write_pair(&args.out, args.force)?;
    for path in written {
        out(format!("wrote {}\n", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn usage_errors_are_one_line() {
        let err = Cli::try_parse_from(["h2lab", "serve", "--dispatch", "nope"]).unwrap_err();
        let line = one_line(&err.render().to_string());
        assert!(!line.contains('\n'));
        assert!(line.contains("invalid value 'nope'"), "{line}");
        assert!(line.contains("single"), "lists the values: {line}");
    }

    #[test]
    fn seconds_accept_fractions_and_refuse_nonsense() {
        assert_eq!(parse_secs("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_secs("2"), Ok(Duration::from_secs(2)));
        for bad in ["0", "-1", "nan", "inf", "1e9", "soon"] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_accepts_ips_and_localhost() {
        assert_eq!(parse_host("localhost"), Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(parse_host("::1"), Ok("::1".parse().unwrap()));
        assert!(parse_host("example.org").is_err());
    }
}
