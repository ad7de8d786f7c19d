//! `h2lab bench`: its options, and the run from options to outputs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use super::export::{Csv, Exporter, Json, Table};
use super::{matrix, system, BenchConfig, LoadClient, Peer};
use crate::cli::{self, values, CmdResult, Exit};
use crate::server::{Dispatch, Engine};
use crate::tls::TlsProvider;

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
#[derive(Debug, clap::Args)]
pub struct Args {
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
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = values::secs)]
    pub duration: Duration,
    /// Runs per cell, interleaved across cells.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub repeat: u64,
    /// Who makes the load.
    #[arg(long, value_enum, default_value_t = LoadClient::Builtin)]
    pub client: LoadClient,
    /// Requests still open this long after a run's end fail.
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = values::secs)]
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
    pub peers: Vec<Peer>,
    /// A missing peer binary is an error instead.
    #[arg(long, requires = "peers")]
    pub require_peers: bool,
    /// Run every server on these CPUs (`taskset -c` list, e.g. 0 or 0-1).
    #[arg(long, value_name = "CPUS", value_parser = system::check_cpu_list)]
    pub pin_server: Option<String>,
    /// Run the load on these CPUs (the built-in client's threads, or h2load).
    #[arg(long, value_name = "CPUS", value_parser = system::check_cpu_list)]
    pub pin_client: Option<String>,
    /// Also run each of our setups with `--trace` (deferred mode),
    /// interleaved with the untraced runs, and report what tracing costs:
    /// the traced/untraced ratio of server CPU per request (the whole
    /// process, the trace writer included), records per request, and the
    /// recorder's own measured cost per span and per frame event.
    #[arg(long)]
    pub trace_cost: bool,
}

pub fn run(args: Args) -> CmdResult {
    let config = config(&args)?;
    if let (Some(cpus), LoadClient::Builtin) = (&args.pin_client, args.client) {
        system::pin_self(cpus).map_err(anyhow::Error::msg)?;
    }
    if args.pin_server.is_some() || args.pin_client.is_some() {
        eprintln!(
            "h2lab: bench: servers on CPUs {}, load on CPUs {}",
            args.pin_server.as_deref().unwrap_or("any"),
            args.pin_client.as_deref().unwrap_or("any")
        );
    }
    let bar = indicatif::ProgressBar::new((config.cells().len() * config.repeat) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} runs, {elapsed} elapsed, ~{eta} left  {msg}",
        )
        .expect("a valid template"),
    );
    let results = super::run(&config, |r| {
        bar.set_message(format!(
            "{} c={} m={}: {:.0} req/s",
            r.cell, r.cell.clients, r.cell.pipeline, r.req_per_s
        ));
        bar.inc(1);
    });
    if config.trace_cost {
        let _ = std::fs::remove_dir_all(&config.trace_dir);
    }
    let results = results?;
    bar.finish_and_clear();
    cli::out(Table.export(&results)?);
    let files: [(&Option<PathBuf>, &dyn Exporter); 2] = [(&args.out, &Csv), (&args.json, &Json)];
    for (path, exporter) in files {
        if let Some(path) = path {
            std::fs::write(path, exporter.export(&results)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("h2lab: bench: wrote {}", path.display());
        }
    }
    Ok(Exit::Success)
}

/// The matrix the options ask for: unsupported setups and missing peers
/// left out with a note (a missing peer is an error with --require-peers).
fn config(args: &Args) -> anyhow::Result<BenchConfig> {
    let (setups, skipped) = matrix::setups(&args.dispatch, &args.engine, &args.tls);
    for setup in skipped {
        eprintln!("h2lab: bench: skipping {setup}: not a supported setup");
    }
    let mut peers = Vec::new();
    for &peer in &args.peers {
        if peer.find().is_some() {
            peers.push(peer);
            continue;
        }
        let missing = format!(
            "`{}` not found (Debian: apt-get install {})",
            peer.name(),
            peer.package()
        );
        anyhow::ensure!(!args.require_peers, "peer {missing}");
        eprintln!("h2lab: bench: leaving out {}: {missing}", peer.name());
    }
    let peers = matrix::peer_targets(&peers, &args.tls);
    anyhow::ensure!(
        !setups.is_empty() || !peers.is_empty(),
        "no supported setup in the matrix"
    );
    Ok(BenchConfig {
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
        trace_cost: args.trace_cost,
        trace_dir: std::env::temp_dir().join(format!("h2lab-bench-trace-{}", std::process::id())),
    })
}
