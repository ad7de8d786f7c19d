//! `h2lab serve`: one server until SIGINT or SIGTERM.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::cli::{bad_input, values, CmdResult, Exit};
use crate::engine::{Body, Work};
use crate::server::{self, Dispatch, Engine, ServerConfig, Spread, UringFeatures};
use crate::tls::TlsProvider;
use crate::trace::TraceConfig;

/// Serve "Hello World\n" over HTTP/2 until SIGINT or SIGTERM.
///
/// Every request is read (HPACK-decoded and checked, RFC 9113 §8.2–8.3)
/// and answered by its method and path: the routes are listed below.
///
/// The first signal stops the server cleanly (every connection ended,
/// every thread joined, the trace written); a second one exits at once.
///
/// Prints exactly one line, `listening on URL`, to stdout once it accepts
/// connections. Without TLS it speaks h2c with prior knowledge
/// (`curl --http2-prior-knowledge`); with TLS it negotiates `h2` by ALPN.
#[derive(Debug, clap::Args)]
#[command(after_long_help = crate::engine::route::TABLE)]
pub struct Args {
    /// Address to bind (an IP address, or `localhost` for 127.0.0.1).
    #[arg(long, default_value = "127.0.0.1", value_parser = values::host)]
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
    /// Close a client that has sent no whole frame for this long (e.g. 30s,
    /// 0.5), counted as timed out. Octets that make no frame do not count,
    /// nor do frames inside a header block that has not ended (the
    /// header-read deadline), so a client cannot hold its place by trickling
    /// them. Off unless given.
    #[arg(long, value_name = "DURATION", value_parser = values::secs)]
    pub idle_timeout: Option<Duration>,
    /// Close a client that has not finished its TLS handshake, HTTP/2
    /// preface and first SETTINGS (`h2` engine: TLS handshake and preface)
    /// this long after it was accepted, so that silent or trickling clients
    /// cannot hold connections (default 10s; 0 turns it off).
    #[arg(long, value_name = "DURATION", value_parser = values::secs_or_zero)]
    pub handshake_timeout: Option<Duration>,
    /// `tokio`: run a multi-thread runtime with N worker threads instead of
    /// the default current-thread runtime. `poll` and `uring`: run N
    /// reactors, each a loop (a ring) of its own on a thread of its own
    /// (see --spread, --pin).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: Option<u64>,
    /// `poll` with --threads N: how connections reach the reactors:
    /// `reuseport` gives each its own listener on the port (SO_REUSEPORT;
    /// the kernel picks a reactor per connection by a hash of its
    /// addresses), `handoff` has the first reactor accept them all and hand
    /// each to the next reactor in turn (`poll` only).
    #[arg(long, value_enum, default_value_t = Spread::Reuseport, requires = "threads")]
    pub spread: Spread,
    /// `poll` and `uring` only: pin reactor i to CPU number i of this
    /// comma-separated list (taken in turn when there are more reactors),
    /// e.g. `--pin 0,1`.
    #[arg(long, value_name = "CPUS", value_delimiter = ',',
          value_parser = clap::value_parser!(u16).range(0..1024))]
    pub pin: Vec<u16>,
    /// `uring` only: the io_uring features to use, to measure what each
    /// one is worth: `all` (the default), `none`, a comma list of
    /// single-issuer, defer-taskrun (needs single-issuer),
    /// multishot-accept, multishot-recv, or a comma list of no-FEATURE
    /// to leave those out of all, e.g. `--uring-features no-multishot-recv`.
    #[arg(long, value_name = "FEATURES", default_value = "all")]
    pub uring_features: UringFeatures,
    /// Record every action and frame of every client to PREFIX.json (Chrome
    /// trace, opens in Perfetto), PREFIX.csv (action log) and
    /// PREFIX.meta.json (what was traced, and what was lost), e.g.
    /// `--trace traces/run1`. All are complete once the server stops.
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
    /// Format the trace files as the records come, so that even a killed
    /// server leaves files Perfetto loads, at the cost of the writer's CPU
    /// during the run. By default records are kept in PREFIX.spool (see
    /// --trace-memory) and formatted at stop; a killed server leaves the
    /// spool, which `h2lab trace-convert PREFIX` formats.
    #[arg(long, requires = "trace")]
    pub trace_live: bool,
    /// Without --trace-live: MiB of records held during the run in
    /// PREFIX.spool's shared mapping, sized and touched at start (the kernel
    /// keeps it if the server dies); past it they are appended to the file
    /// (file system work that competes with the server).
    #[arg(long, value_name = "MIB", requires = "trace", default_value_t = (crate::trace::DEFAULT_MEMORY >> 20) as u64,
          value_parser = clap::value_parser!(u64).range(0..=1 << 20))]
    pub trace_memory: u64,
    /// Work each request costs before it is answered, on the thread that
    /// serves its connection: `cpu:DURATION` (computation until the thread
    /// has had that much CPU time), `sleep:DURATION` (a blocking sleep, as a
    /// synchronous database or file call: it stalls a `poll` loop or a
    /// current-thread tokio runtime), `delay:DURATION` (the answer is due
    /// that much later without holding the thread, as an asynchronous call
    /// to another service), or `none`. Traced as a `work` slice per request
    /// (cpu, sleep). E.g. `cpu:50us`, `sleep:1ms`, `delay:1ms`.
    #[arg(long, value_name = "SPEC", default_value = "none")]
    pub work: Work,
    /// Each response's body: SIZE octets of `Hello World\n` repeated (so
    /// `12`, the default, is the seed's answer, and any body can be
    /// checked: `h2lab load --expect-body SIZE`). 0 to 64MiB, with B, KiB
    /// or MiB (`1MiB`). Bodies larger than the client's windows go out as
    /// it opens them, the streams taking turns frame by frame.
    #[arg(long, value_name = "SIZE", default_value = "12")]
    pub body: Body,
    /// `poll` and `tokio`: do the `cpu:` and `sleep:` work on N worker
    /// threads instead of the serving thread; the answer goes back to the
    /// connection's loop (`poll`: through the loop's inbox and waker;
    /// `tokio`: its blocking pool, N threads at most).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub offload: Option<u64>,
    /// SETTINGS_MAX_CONCURRENT_STREAMS: requests a connection may have open
    /// at once (h2o's and nghttpd's default, 100); a stream past it is
    /// refused with RST_STREAM REFUSED_STREAM, which a client may retry.
    #[arg(long, value_name = "N", default_value_t = crate::engine::mini::DEFAULT_MAX_STREAMS,
          value_parser = clap::value_parser!(u32).range(1..=crate::engine::mini::MAX_STREAMS_LIMIT as i64))]
    pub max_streams: u32,
    /// `--engine mini` only: the seed's engine, which reads no request:
    /// no HPACK decoding, no field checks, every request answered as `/`
    /// with the seed's two header fields (no date, no content-length).
    /// For measuring what reading costs (`h2lab ab`); every output of a
    /// blind server says so.
    #[arg(long)]
    pub blind: bool,
    /// Answer `/` (and its work routes) with this file's octets, read from
    /// the file for every request with one pread, as h2o's and nghttpd's
    /// file handlers do: to compare servers on the same body source (the
    /// bench counts the reads). Its length is taken at start; at most
    /// 64MiB.
    #[arg(long, value_name = "PATH", conflicts_with = "body")]
    pub body_file: Option<PathBuf>,
}

/// The deadline for a client's handshake, preface and SETTINGS.
const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Args {
    fn config(self) -> ServerConfig {
        ServerConfig {
            host: self.host,
            port: self.port,
            dispatch: self.dispatch,
            engine: self.engine,
            tls: self.tls,
            cert: self.cert,
            key: self.key,
            nodelay: self.nodelay,
            max_clients: self.max_clients.map(|n| n as usize),
            idle_timeout: self.idle_timeout,
            handshake_timeout: match self.handshake_timeout {
                Some(d) if d.is_zero() => None,
                Some(d) => Some(d),
                None => Some(DEFAULT_HANDSHAKE_TIMEOUT),
            },
            threads: self.threads.unwrap_or(0) as usize,
            spread: self.spread,
            pin: self.pin.into_iter().map(usize::from).collect(),
            uring: self.uring_features,
            client_hello: None, // a library hook: no CLI form
            trace: self.trace.map(|prefix| TraceConfig {
                limit: self.trace_limit,
                queue: self.trace_queue as usize,
                live: self.trace_live,
                memory: (self.trace_memory as usize) << 20,
                process_wide: true,
                ..TraceConfig::new(prefix)
            }),
            work: self.work,
            body: self.body,
            offload: self.offload.unwrap_or(0) as usize,
            max_streams: self.max_streams,
            blind: self.blind,
            body_file: self.body_file,
        }
    }
}

/// A server holds a descriptor per client (two on `thread`, to stop it),
/// so the soft limit, often 1024, would cap it near 500–1000 clients: it is
/// raised to the hard limit, as Go's runtime does for every program.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

pub fn run(args: Args) -> CmdResult {
    // Registered before the server starts, so that no signal is missed.
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("cannot watch for signals")?;
    let config = args.config();
    // An option the chosen setup does not have is a usage error (exit 2),
    // like clap's own, not a failure to serve.
    config.validate().map_err(bad_input)?;
    // So is a dispatch this machine cannot run (io_uring refused here).
    if config.dispatch == Dispatch::Uring {
        if let Some(why) = server::uring_unavailable(config.uring) {
            return Err(bad_input(server::ServerError::UringUnavailable(why.why)));
        }
    }
    config.work.prepare();
    raise_fd_limit();
    let server = server::start(&config)?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", server.url()).context("stdout")?;
        out.flush().context("stdout")?;
    }
    let signal = signals.forever().next();
    if let Some(s) = signal {
        eprintln!("h2lab: signal {s}: stopping (a second signal exits at once)");
    }
    // A second signal does not wait for the stop (a trace being written,
    // a stop that hangs): it ends the process at once.
    std::thread::spawn(move || {
        if let Some(s) = signals.forever().next() {
            eprintln!("h2lab: signal {s} again: exiting without finishing the stop");
            std::process::exit(1);
        }
    });
    let setup = server.setup();
    let stats = server.stop();
    // A blind server's figures are not of the same work: said on its line.
    let blind = match config.blind {
        true => " (blind: no request read)",
        false => "",
    };
    eprintln!(
        "h2lab: {setup}{blind} stopped{}: {} connections, {} responses, {} writes, {} failed, {} refused, {} timed out",
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
            Err(e) => return Err(anyhow::anyhow!("trace: {e}").into()),
        }
    }
    Ok(Exit::Success)
}
