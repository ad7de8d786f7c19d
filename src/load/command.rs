//! `h2lab load`: its options and its run.

use std::path::PathBuf;
use std::time::Duration;

use super::{LoadConfig, Stop};
use crate::cli::{self, bad_input, values, CmdResult, Exit};

/// Load an HTTP/2 server like h2load: CLIENTS connections with up to
/// STREAMS requests in flight each, for -n requests in all or for -D
/// seconds; reports successes, failures, req/s and latency percentiles.
///
/// h2c with prior knowledge for http://, TLS with ALPN h2 for https://
/// (with --cacert FILE, or -k to accept any certificate). Exit status: 0
/// when every request succeeded, 1 when some failed, 2 on bad arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
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
    #[arg(short = 'D', long, value_name = "SECS", value_parser = values::secs)]
    pub duration: Option<Duration>,
    /// With -D: load for SECS first without counting.
    #[arg(long, value_name = "SECS", requires = "duration", value_parser = values::secs)]
    pub warm_up: Option<Duration>,
    /// Accept any server certificate.
    #[arg(short = 'k', long)]
    pub insecure: bool,
    /// Trust this CA (PEM) for https://, e.g. certs/ca.pem.
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub cacert: Option<PathBuf>,
    /// Requests still open SECS after the last one was due (-D), or after
    /// the last progress (-n), fail as timed out.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = values::secs)]
    pub timeout: Duration,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> CmdResult {
    let stop = match (args.requests, args.duration) {
        (_, Some(d)) => Stop::Duration(d),
        (n, None) => Stop::Requests(n.unwrap_or(1)),
    };
    let config = LoadConfig {
        url: args.url,
        clients: args.clients as usize,
        streams: args.streams as usize,
        stop,
        warm_up: args.warm_up.unwrap_or_default(),
        insecure: args.insecure,
        cacert: args.cacert,
        timeout: args.timeout,
    };
    let report = super::run(&config).map_err(bad_input)?;
    match args.json {
        true => cli::out(format!("{}\n", serde_json::to_string(&report)?)),
        false => cli::out(report.to_string()),
    }
    match report.failed + report.connection_errors {
        0 => Ok(Exit::Success),
        _ => Ok(Exit::Failure),
    }
}
