//! `h2lab bench`: its options, and the run from options to outputs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::export::{Csv, Exporter, Json, Table};
use super::{matrix, system, BenchConfig, LoadClient, Peer, Results};
use crate::cli::{self, values, CmdError, CmdResult, Exit};
use crate::engine::{Body, Work};
use crate::netns::link::Link;
use crate::netns::{Net, NetSpec, Topology};
use crate::server::{Dispatch, Engine};
use crate::tls::TlsProvider;

/// Run a matrix of experiments: every dispatch × engine × TLS × clients
/// × pipeline depth given, each run against its own `h2lab serve` child
/// (so that its CPU time is read from /proc for it alone), repeats
/// interleaved across cells. Prints a table of medians; --out and --json
/// write every run and the medians.
///
/// With no arguments: every dispatch but `uring` (`--dispatch
/// single,thread,tokio,poll,uring` adds it) with mini and TLS none/rustls, at
/// 1 and 5 clients and pipeline depths 1, 10 and 100, each run 0.5 s of
/// warm-up then 1 s measured, 3 repeats or more (see --precision), then
/// a counting run per cell (6 to 10 minutes on a 2-core machine); servers on one CPU and the load on another. A setup that is
/// not built is skipped with a note. A cell whose server cannot serve
/// every client (single with 5 clients) is recorded as it is, with
/// failures.
///
/// Every cell gets a 95% confidence interval of its req/s and of its CPU
/// per request (Student's t over its runs' logarithms). A cell whose
/// interval is wider than ± --precision is run again, interleaved with the
/// other unsettled cells, until it narrows or has --max-repeat runs; the
/// table marks the cells that never settled `!`. Then each cell runs once
/// more with `perf stat` counting the server's system calls (tracing them
/// slows it, so that run's times are not kept): system calls, reads and
/// writes per request, octets per write and requests per read go beside
/// each cell's context switches per request (from every run).
///
/// SIGINT or SIGTERM stops the bench, its servers and peers at once; the
/// runs finished so far stay in --out and --json, which are written after
/// every run.
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
    /// Server threads, comma-separated: an axis, e.g. `1,2,4`. Each is
    /// given to tokio (worker threads), poll (reactors) and the peers
    /// (nginx worker_processes, h2o num-threads, nghttpd -n); single and
    /// thread run once, as they are. h2load gets as many threads (-t, at
    /// most one per connection); the built-in client runs on one. Default:
    /// each server as it comes (tokio current-thread, one reactor, one
    /// peer worker).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: Vec<u64>,
    /// Each request's work, comma-separated: an axis, e.g.
    /// `none,cpu:50us,sleep:1ms` (see `serve --work`). Our servers only: a
    /// peer serves a file and runs once, without work. Default: none.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub work: Vec<Work>,
    /// Each response's body, comma-separated: an axis, e.g. `12,64KiB,1MiB`
    /// (see `serve --body`); peers serve it as a file. The load client
    /// checks every body; the table shows goodput (MiB/s of DATA) when a
    /// body is not the default 12 octets.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub body: Vec<Body>,
    /// Worker threads for each request's work, comma-separated: an axis
    /// (`0,8` compares doing the work on the serving thread with 8
    /// workers; see `serve --offload`). Only poll and tokio cells whose
    /// work is `cpu:` or `sleep:`; the others run once, without.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = clap::value_parser!(u64).range(0..=1024))]
    pub offload: Vec<u64>,
    /// How our servers read and answer, comma-separated: an axis.
    /// `reading` (every request HPACK-decoded, checked and routed, the
    /// body from memory), `blind` (the seed's engine: nothing read; the
    /// mini engine only), `file` (reading, and the body read from a file
    /// per request, as h2o's and nghttpd's file handlers do). Peers run
    /// once. Every row says what the server put in each response and its
    /// file reads per request, so the work compared is stated.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        value_enum,
        default_value = "reading"
    )]
    pub source: Vec<super::matrix::Source>,
    /// Request mixes, comma-separated: an axis. A mix is paths joined by
    /// `+`, each `PATH` or `PATH@WEIGHT` (the routes of `serve --help`):
    /// `/,/@99+/cpu/1ms@1` compares `/` alone with one `/cpu/1ms` in a
    /// hundred. Each client takes the paths in turn, a weight repeating
    /// its path (h2load: the same, as several URIs). Ours only: a peer
    /// serves one file and runs once, at `/`.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = super::matrix::Mix::parse)]
    pub mix: Vec<super::matrix::Mix>,
    /// The load client's connection and stream receive windows, e.g.
    /// `64KiB` or `16MiB` (see `load --window`); with h2load, -w and -W of
    /// the power of two at or above it. Default: the built-in client's
    /// 1 GiB, h2load's own.
    #[arg(long, value_name = "SIZE", value_parser = values::window)]
    pub window: Option<u32>,
    /// Requests in flight per connection, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub pipeline: Vec<u64>,
    /// Seconds of load measured per run.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = values::secs)]
    pub duration: Duration,
    /// Seconds of load before each measured run, counted neither in its
    /// requests nor in the server's CPU (caches, TCP windows, TLS sessions
    /// and the CPU's clock settle first).
    #[arg(long, value_name = "SECS", default_value = "0.5", value_parser = values::secs_or_zero)]
    pub warm_up: Duration,
    /// Runs per cell at least, interleaved across cells (see --precision).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub repeat: u64,
    /// Run a cell again while the 95% interval of its req/s or of its CPU
    /// per request is wider than ± PCT% (0: never; run --repeat times).
    #[arg(long, value_name = "PCT", default_value = "10", value_parser = values::pct)]
    pub precision: f64,
    /// Runs per cell at most, --precision's runs again included.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub max_repeat: u64,
    /// No counting run: no system calls per request (context switches are
    /// still counted, in every run). Without a usable `perf` (Debian's
    /// linux-perf, allowed to read the syscall tracepoints), the bench
    /// says so and counts none.
    #[arg(long)]
    pub no_count: bool,
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
    /// Default, on a machine with two CPUs or more: the first CPU this
    /// process may use (the load on the second), unless --no-pin.
    #[arg(long, value_name = "CPUS", value_parser = system::check_cpu_list)]
    pub pin_server: Option<String>,
    /// Run the load on these CPUs (the built-in client's threads, or
    /// h2load). Default: the second CPU this process may use.
    #[arg(long, value_name = "CPUS", value_parser = system::check_cpu_list)]
    pub pin_client: Option<String>,
    /// Pin nothing: servers and load share every CPU as the scheduler likes.
    #[arg(long, conflicts_with_all = ["pin_server", "pin_client"])]
    pub no_pin: bool,
    /// Also run each of our setups with `--trace` (deferred mode),
    /// interleaved with the untraced runs, and report what tracing costs:
    /// the traced/untraced ratio of server CPU per request (the whole
    /// process, the trace writer included), records per request, and the
    /// recorder's own measured cost per action and per frame event.
    #[arg(long)]
    pub trace_cost: bool,
    /// Seconds the machine's own pace is timed before the first run and
    /// after each: a walk through 256 KiB of memory and a system call per
    /// 1,000 steps, on every CPU the bench uses, all at once.
    /// On a shared machine the CPUs themselves speed up and slow down; the
    /// table's footer says how much, and around how many cells' repeats
    /// (0: not timed).
    #[arg(long, value_name = "SECS", default_value = "0.1", value_parser = values::secs_or_zero)]
    pub pace: Duration,
    #[command(flatten)]
    pub net: NetArgs,
}

/// `--net` and `--link`, for `bench` and `ab`.
#[derive(Debug, clap::Args)]
pub struct NetArgs {
    /// How the server and the load are joined. `loopback`: 127.0.0.1,
    /// where each side's send runs the other side's receive on the
    /// sender's CPU. `rfs`: loopback with receive flow steering to the
    /// reading thread's CPU, set for the run and restored after. `veth`:
    /// the server and the load each in a network namespace the run makes,
    /// joined by a veth pair (198.18.0.1 and .2, addresses that exist only
    /// inside them), each end's receive steered to its side's pinned CPU;
    /// removed after the run, and a killed run's leftovers at the next
    /// start. `rfs` and `veth` need root (CAP_NET_ADMIN and
    /// CAP_SYS_ADMIN) and pinned sides; without them they are refused at
    /// once. Every bench row says, per request, the packets each side's
    /// CPUs processed, the steering interrupts they took, and each side's
    /// own segments (docs/net.md); `ab` names the network it ran on.
    #[arg(long, value_enum, default_value_t = Topology::Loopback)]
    pub net: Topology,
    /// Shape both directions of the veth pair (with --net veth):
    /// `rate=1gbit` (the kernel's token bucket, tbf; bit, kbit, mbit,
    /// gbit), `delay=20ms` and `loss=0.1%` (netem, which some kernels lack:
    /// then refused at once, naming the module).
    #[arg(long, value_name = "SPEC", value_parser = Link::parse)]
    pub link: Option<Link>,
    /// The address the servers listen on and the load reaches them at
    /// (default 127.0.0.1, or 198.18.0.1 with --net veth). With other
    /// hosts: an address the load reaches, of this machine, or of
    /// --server-host's.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::IpAddr>,
    /// The load from other hosts, over ssh (`--load-hosts`), and how to
    /// reach them. The server runs here, metered as always, and the hosts
    /// start each run's load at the same instant: the meter's window is
    /// set from it. Built-in load client only; --net stays loopback (the
    /// network is the hosts' own); a lost host fails the run, naming it.
    #[command(flatten)]
    pub hosts: crate::load::remote::HostArgs,
    /// Run each server (bench: ours and the peers; ab: each side's) on
    /// this host instead of here: an ssh destination, as --load-hosts
    /// takes, running this very h2lab version (and the peers' binaries;
    /// ab's --a-exe and --b-exe at the same path there). It listens on
    /// --listen (an address of that host that the load reaches), pinned
    /// to --pin-server's CPUs there, and is metered there (CPU, context
    /// switches, system calls) over the load's window, named in that
    /// host's clock; a traced one's files (--trace-cost) come back here.
    /// The load runs here, or from --load-hosts.
    #[arg(long, value_name = "HOST")]
    pub server_host: Option<crate::hosts::Host>,
}

/// `--load-hosts` and `--server-host`, reached.
#[derive(Default)]
pub struct Reached {
    pub load: Option<std::sync::Arc<crate::load::remote::Hosts>>,
    pub server: Option<std::sync::Arc<crate::load::remote::Hosts>>,
}

impl NetArgs {
    /// `--load-hosts`, reached (each host's version checked, its clock
    /// offset measured), after the checks that need no host; `None`
    /// without it. A refusal is input the command cannot use: exit 2.
    pub fn hosts(&self, client: LoadClient) -> Result<Reached, CmdError> {
        let refuse = |why: &str| Err(cli::bad_input(anyhow::anyhow!("{why}")));
        if self.listen.is_some() && self.net != Topology::Loopback {
            return refuse("--listen is for --net loopback (the veth server's address is its own)");
        }
        let (load, server) = (
            !self.hosts.load_hosts.is_empty(),
            self.server_host.is_some(),
        );
        let flag = match (load, server) {
            (false, false) => {
                if self.hosts.remote_bin.is_some() || self.hosts.ssh_config.is_some() {
                    return refuse(
                        "--remote-bin and --ssh-config are for --load-hosts and --server-host",
                    );
                }
                return Ok(Reached::default());
            }
            (true, _) => "--load-hosts",
            (false, true) => "--server-host",
        };
        if self.net != Topology::Loopback {
            return refuse(&format!(
                "{flag}: the network is the hosts' own; leave --net loopback"
            ));
        }
        if load && client != LoadClient::Builtin {
            return refuse("--load-hosts runs the built-in load client, not --client h2load");
        }
        match self.listen {
            None => {
                return refuse(&format!(
                    "{flag} needs --listen ADDR: the server's address that the load reaches"
                ))
            }
            Some(a) if a.is_loopback() => {
                return refuse(&format!(
                    "{flag}: another host cannot reach a loopback --listen address"
                ))
            }
            Some(_) => {}
        }
        let reach = |hosts: &[crate::hosts::Host]| {
            crate::load::remote::Hosts::reach_these(hosts, &self.hosts)
                .map(|h| Some(std::sync::Arc::new(h)))
                .map_err(cli::bad_input)
        };
        Ok(Reached {
            load: match load {
                true => reach(&self.hosts.load_hosts)?,
                false => None,
            },
            server: match &self.server_host {
                Some(host) => reach(std::slice::from_ref(host))?,
                None => None,
            },
        })
    }

    /// Makes the topology for servers on `server` CPUs and the load on
    /// `client` CPUs. A refusal (no privilege, no pins, no netem) is input
    /// the command cannot use: exit 2.
    pub fn set_up(
        &self,
        server: Option<&str>,
        client: Option<&str>,
    ) -> Result<std::sync::Arc<Net>, CmdError> {
        let cpus = |list: Option<&str>| list.and_then(system::cpu_list).unwrap_or_default();
        let spec = NetSpec {
            topology: self.net,
            link: self.link.unwrap_or_default(),
            server_cpus: cpus(server),
            client_cpus: cpus(client),
        };
        match Net::set_up(spec) {
            Ok(net) => Ok(std::sync::Arc::new(net)),
            Err(e) if e.is_refusal() => Err(cli::bad_input(e)),
            Err(e) => Err(CmdError::Failed(e.into())),
        }
    }
}

pub fn run(args: Args) -> CmdResult {
    let mut config = config(&args)?;
    config.listen = args.net.listen;
    let reached = args.net.hosts(args.client)?;
    config.hosts = reached.load;
    config.server = reached.server;
    config.net = args
        .net
        .set_up(config.pin_server.as_deref(), config.pin_client.as_deref())?;
    type Output = dyn Exporter<Results, Error = super::export::ExportError>;
    let files: Vec<(&PathBuf, &Output)> = [(&args.out, &Csv as &Output), (&args.json, &Json)]
        .into_iter()
        .filter_map(|(path, exporter)| path.as_ref().map(|p| (p, exporter)))
        .collect();
    // Every output is writable before the first run, not after the last.
    let none = Results {
        client: config.client,
        machine: None,
        runs: Vec::new(),
        counted: Vec::new(),
        medians: Vec::new(),
    };
    for &(path, exporter) in &files {
        write_file(path, &exporter.export(&none)?).map_err(CmdError::Input)?;
    }
    // A signal kills every child the bench owns, so the run in progress
    // ends at once; what was written stays.
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("cannot watch for signals")?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            system::interrupt();
        }
    });
    if let (Some(cpus), LoadClient::Builtin) = (&config.pin_client, args.client) {
        system::pin_self(cpus).map_err(anyhow::Error::msg)?;
    }
    eprintln!(
        "h2lab: bench: network: {}",
        super::network_line(
            &config.net,
            config.listen,
            config.hosts.as_deref(),
            config.server.as_deref()
        )
    );
    if let Err(why) = config.net.counted() {
        eprintln!("h2lab: bench: whose packets each CPU processed is not counted: {why}");
    }
    eprintln!(
        "h2lab: bench: servers on CPUs {}, load on CPUs {}; {} s warm-up, {} s measured, {} repeats{}{}",
        config.pin_server.as_deref().unwrap_or("any"),
        config.pin_client.as_deref().unwrap_or("any"),
        config.warm_up.as_secs_f64(),
        config.duration.as_secs_f64(),
        config.repeat,
        match config.precision {
            Some(p) => format!(", up to {} until ±{p}%", config.max_repeat),
            None => String::new(),
        },
        match config.count_syscalls {
            true => ", then a counting run per cell",
            false => "",
        }
    );
    if !args.no_count {
        if let Err(why) = super::counts::perf_usable() {
            eprintln!("h2lab: bench: system calls not counted: {why}");
        }
    }
    let bar = indicatif::ProgressBar::new((config.cells().len() * config.repeat) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} runs, {elapsed} elapsed, ~{eta} left  {msg}",
        )
        .expect("a valid template"),
    );
    let mut write_error = None;
    let results = super::run(&config, |r, so_far, planned| {
        bar.set_length(planned as u64);
        bar.set_message(format!(
            "{} c={} m={}: {:.0} req/s",
            r.cell, r.cell.clients, r.cell.pipeline, r.req_per_s
        ));
        bar.inc(1);
        for &(path, exporter) in &files {
            let written = exporter
                .export(so_far)
                .map_err(anyhow::Error::from)
                .and_then(|text| write_file(path, &text));
            if let Err(e) = written {
                write_error.get_or_insert(e);
            }
        }
    });
    if config.trace_cost {
        let _ = std::fs::remove_dir_all(&config.trace_dir);
    }
    bar.finish_and_clear();
    if let Some(e) = write_error {
        return Err(e.into());
    }
    let results = match results {
        Ok(results) => results,
        Err(super::BenchError::Interrupted { runs }) => {
            eprintln!("h2lab: bench: interrupted after {runs} runs");
            for (path, _) in &files {
                eprintln!("h2lab: bench: the runs so far are in {}", path.display());
            }
            return Ok(Exit::Failure);
        }
        Err(e) => {
            // A lost load host, a server that did not start: what was
            // measured before stays (written after every run).
            for (path, _) in &files {
                eprintln!("h2lab: bench: the runs so far are in {}", path.display());
            }
            return Err(e.into());
        }
    };
    cli::out(Table.export(&results)?);
    for (path, _) in &files {
        eprintln!("h2lab: bench: wrote {}", path.display());
    }
    Ok(Exit::Success)
}

/// Writes `text` to `path` whole or not at all (a temporary file renamed).
fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The matrix the options ask for: unsupported setups and missing peers
/// left out with a note (a missing peer is an error with --require-peers).
fn config(args: &Args) -> anyhow::Result<BenchConfig> {
    let (mut setups, skipped) = matrix::setups(&args.dispatch, &args.engine, &args.tls);
    for setup in skipped {
        eprintln!("h2lab: bench: skipping {setup}: not a supported setup");
    }
    if setups.iter().any(|s| s.dispatch == Dispatch::Uring) {
        if let Some(why) = crate::server::uring_unavailable(Default::default()) {
            setups.retain(|s| s.dispatch != Dispatch::Uring);
            eprintln!("h2lab: bench: skipping the uring setups: {why}");
        }
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
    let (pin_server, pin_client) = match (&args.pin_server, &args.pin_client) {
        _ if args.no_pin => (None, None),
        (None, None) => system::default_pins().unzip(),
        (server, client) => (server.clone(), client.clone()),
    };
    anyhow::ensure!(
        !setups.is_empty() || !peers.is_empty(),
        "no supported setup in the matrix"
    );
    Ok(BenchConfig {
        setups,
        peers,
        clients: args.clients.iter().map(|&c| c as usize).collect(),
        pipelines: args.pipeline.iter().map(|&m| m as usize).collect(),
        threads: args.threads.iter().map(|&n| n as usize).collect(),
        work: args.work.clone(),
        bodies: args.body.clone(),
        offload: args.offload.iter().map(|&n| n as usize).collect(),
        sources: args.source.clone(),
        mixes: args.mix.clone(),
        window: args.window,
        duration: args.duration,
        warm_up: args.warm_up,
        repeat: args.repeat as usize,
        precision: (args.precision > 0.0).then_some(args.precision),
        max_repeat: args.max_repeat.max(args.repeat) as usize,
        count_syscalls: !args.no_count && super::counts::perf_usable().is_ok(),
        client: args.client,
        exe: std::env::current_exe().context("cannot find the h2lab binary")?,
        timeout: args.timeout,
        trace_cost: args.trace_cost,
        trace_dir: std::env::temp_dir().join(format!("h2lab-bench-trace-{}", std::process::id())),
        pace: (!args.pace.is_zero()).then(|| {
            super::pace::Pace::new(
                super::pace::bench_cpus(pin_server.as_deref(), pin_client.as_deref()),
                args.pace,
            )
        }),
        pin_server,
        pin_client,
        // Made in `run`, once the options are known to be good.
        net: std::sync::Arc::new(Net::set_up(NetSpec::default())?),
        hosts: None,
        listen: None,
        server: None,
    })
}
