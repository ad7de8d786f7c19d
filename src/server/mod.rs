//! The generic server interface (the seed's CREATE-SERVER family): a config,
//! [`start`] that binds and returns a [`Server`] handle knowing its real URL,
//! [`Server::stop`] (KILL-SERVER) and [`with_server`] (CALLBACK-ON-SERVER).
//!
//! A dispatch owns sockets and scheduling only; the engine and TLS session it
//! drives are the same for every dispatch.

mod conn;
mod dispatch;
mod errlog;
mod io;
mod shared;
mod trim;
mod uring;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::engine::file::BodyFile;
use crate::engine::{Body, Handler, Work};
use crate::identity::{CertError, Identity};
use crate::tls::{ClientHelloHook, TlsAcceptor, TlsError, TlsProvider};
use crate::trace::{TraceConfig, TraceError, TraceMeta, TraceSummary, Tracer};
use dispatch::Wake;
use shared::Shared;

pub use conn::ConnError;
pub use dispatch::{uring_skip_test, uring_unavailable};
pub use uring::UringFeatures;

/// How connections are accepted and scheduled: the `dispatch` axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Dispatch {
    /// One client at a time; the next waits until the current one has gone
    /// (seed `:none`).
    Single,
    /// A thread per connection (seed `:thread`).
    Thread,
    /// A task per connection on a tokio runtime (seed `:async`).
    Tokio,
    /// One thread, a hand-written mio loop with an explicit client state
    /// machine (seed `:async-custom`).
    Poll,
    /// The same client state machine on an io_uring instance: completions
    /// instead of readiness (multishot accept and receive, one send per
    /// client per turn).
    Uring,
}

impl Dispatch {
    /// The explicit state-machine loops: `poll` and `uring` (reactors,
    /// `--max-clients`, `--pin`).
    pub fn is_state_machine(self) -> bool {
        matches!(self, Dispatch::Poll | Dispatch::Uring)
    }
}

/// Who speaks HTTP/2: the `engine` axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Engine {
    /// The simplified sans-IO engine (seed TLS-SERVER/MINI-HTTP2).
    Mini,
    /// The `h2` crate (seed `:none/http2`); not on `poll`.
    H2,
}

macro_rules! display_as_value_name {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                use clap::ValueEnum;
                let value = self.to_possible_value().expect("no skipped variants");
                f.write_str(value.get_name())
            }
        }
    )*};
}
/// How `poll --threads N` spreads connections over its N reactors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Spread {
    /// A listener per reactor on the same port (`SO_REUSEPORT`): the kernel
    /// picks a reactor per connection by a hash of its addresses; no
    /// thread hands anything to another.
    #[default]
    Reuseport,
    /// One listener on the first reactor, which accepts and hands each
    /// connection to the next reactor in turn: an even spread, at the cost
    /// of a hand-over and a wake-up per connection.
    Handoff,
}

display_as_value_name!(Dispatch, Engine, Spread);

/// One dispatch × engine × TLS combination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Setup {
    pub dispatch: Dispatch,
    pub engine: Engine,
    pub tls: TlsProvider,
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.dispatch, self.engine, self.tls)
    }
}

impl Setup {
    /// Every combination that is built, in a stable order.
    pub fn supported() -> Vec<Setup> {
        let mut v = Vec::new();
        for dispatch in [
            Dispatch::Single,
            Dispatch::Thread,
            Dispatch::Tokio,
            Dispatch::Poll,
            Dispatch::Uring,
        ] {
            // The h2 crate needs an async runtime to drive it; the state
            // machine loops drive sans-IO engines only.
            let engines: &[Engine] = match dispatch {
                Dispatch::Poll | Dispatch::Uring => &[Engine::Mini],
                _ => &[Engine::Mini, Engine::H2],
            };
            for &engine in engines {
                for tls in TlsProvider::ALL {
                    v.push(Setup {
                        dispatch,
                        engine,
                        tls,
                    });
                }
            }
        }
        v
    }

    pub fn is_supported(&self) -> bool {
        Self::supported().contains(self)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "unsupported setup {setup} (dispatch/engine/tls); supported: {}",
        supported_list()
    )]
    UnsupportedSetup { setup: Setup },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("{option} is only for --dispatch {only}")]
    OptionNotForDispatch {
        option: &'static str,
        only: &'static str,
    },
    #[error("--threads is only for --dispatch tokio, poll and uring")]
    ThreadsNotForDispatch,
    #[error("--offload is only for --dispatch poll, uring and tokio: `single` and `thread` already do each request's work on the connection's own thread, with nothing else to keep serving")]
    OffloadNotForDispatch,
    #[error("--offload with --blind needs work that holds a thread to move (--work cpu:DURATION or sleep:DURATION), not `{0}`: a blind server answers every request as `/`, so no route brings work")]
    OffloadWithoutWork(Work),
    #[error("--body-file {0}")]
    BodyFile(String),
    #[error("--blind is the mini engine's (the seed's engine, which reads no request); the h2 crate always reads them")]
    BlindNotForEngine,

    #[error("cannot start the server: {0}")]
    Spawn(std::io::Error),
    #[error("--dispatch uring: io_uring is not available here: {0}")]
    UringUnavailable(String),
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error("this build has tracing compiled out: rebuild with the `trace` cargo feature")]
    TraceCompiledOut,
}

fn supported_list() -> String {
    let names: Vec<String> = Setup::supported().iter().map(|s| s.to_string()).collect();
    names.join(", ")
}

/// What to serve and how.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to bind; loopback by default.
    pub host: IpAddr,
    /// 0 picks a free port (see [`Server::url`]).
    pub port: u16,
    pub dispatch: Dispatch,
    pub engine: Engine,
    pub tls: TlsProvider,
    /// PEM certificate chain and key; both `None`: the development pair.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// TCP_NODELAY on every connection (the seed's Nagle switch, inverted).
    pub nodelay: bool,
    /// `poll` only: clients past this many are accepted and closed at once.
    pub max_clients: Option<usize>,
    /// A client that sends no whole frame for this long is closed and
    /// counted as timed out. Frames inside a header block that has not
    /// ended do not count (the header-read deadline).
    pub idle_timeout: Option<Duration>,
    /// A client that has not finished its TLS handshake, its preface and
    /// its first SETTINGS (with the `h2` engine: its TLS handshake and
    /// preface) this long after its accept is closed and counted as timed
    /// out (`h2lab serve` sets 10 s unless told). On `single` the time a
    /// client waits in the accept queue does not count.
    pub handshake_timeout: Option<Duration>,
    /// `tokio`: 0 for a current-thread runtime, N for N worker threads.
    /// `poll`: N reactors, each a mio loop on a thread of its own (0 or 1:
    /// one).
    pub threads: usize,
    /// `poll` with N reactors: how connections reach them.
    pub spread: Spread,
    /// `poll` with N reactors: reactor i runs on CPU `pin[i % len]`.
    pub pin: Vec<usize>,
    /// `uring`: the io_uring features it uses (each can be switched off
    /// to measure its share).
    pub uring: UringFeatures,
    /// With TLS: sees each client's server name and ALPN offer first, and
    /// may refuse the client.
    pub client_hello: Option<ClientHelloHook>,
    /// Record every action and frame to `PREFIX.json` and `PREFIX.csv`.
    pub trace: Option<TraceConfig>,
    /// Each request's work before it is answered (`--work`).
    pub work: Work,
    /// Each response's body (`--body`).
    pub body: Body,
    /// `poll` and `tokio`: N worker threads do the requests' `cpu:` and
    /// `sleep:` work, the answers going back to the connection's loop
    /// (0: the serving thread does it).
    pub offload: usize,
    /// SETTINGS_MAX_CONCURRENT_STREAMS (`--max-streams`): a stream past it
    /// is refused (REFUSED_STREAM).
    pub max_streams: u32,
    /// The mini engine reads no request and answers every one as `/`
    /// (`--blind`, the seed's engine).
    pub blind: bool,
    /// `/` is answered with this file, read per request (`--body-file`).
    pub body_file: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            dispatch: Dispatch::Single,
            engine: Engine::Mini,
            tls: TlsProvider::None,
            cert: None,
            key: None,
            nodelay: true,
            max_clients: None,
            idle_timeout: None,
            handshake_timeout: None,
            threads: 0,
            spread: Spread::default(),
            pin: Vec::new(),
            uring: UringFeatures::default(),
            client_hello: None,
            trace: None,
            work: Work::None,
            body: Body::default(),
            offload: 0,
            max_streams: crate::engine::mini::DEFAULT_MAX_STREAMS,
            blind: false,
            body_file: None,
        }
    }
}

impl ServerConfig {
    /// What a trace of this server says about it.
    fn trace_meta(&self) -> TraceMeta {
        let (start_unix_ns, start_utc) = crate::wall_clock::wall_clock_now();
        TraceMeta {
            generator: format!("h2lab {}", env!("CARGO_PKG_VERSION")),
            setup: self.setup().to_string(),
            dispatch: self.dispatch.to_string(),
            engine: self.engine.to_string(),
            tls: self.tls.to_string(),
            nodelay: self.nodelay,
            threads: self.threads,
            max_clients: self.max_clients,
            idle_timeout_s: self.idle_timeout.map(|d| d.as_secs_f64()),
            command_line: std::env::args().collect::<Vec<_>>().join(" "),
            start_unix_ns,
            start_utc,
            ..TraceMeta::default()
        }
    }

    pub fn setup(&self) -> Setup {
        Setup {
            dispatch: self.dispatch,
            engine: self.engine,
            tls: self.tls,
        }
    }

    /// A built setup, and options only where the dispatch has them.
    pub fn validate(&self) -> Result<(), ServerError> {
        let setup = self.setup();
        if !setup.is_supported() {
            return Err(ServerError::UnsupportedSetup { setup });
        }
        let state_machine = |set: bool, option| match set && !self.dispatch.is_state_machine() {
            true => Err(ServerError::OptionNotForDispatch {
                option,
                only: "poll and uring",
            }),
            false => Ok(()),
        };
        if self.trace.is_some() && !cfg!(feature = "trace") {
            return Err(ServerError::TraceCompiledOut);
        }
        state_machine(self.max_clients.is_some(), "--max-clients")?;
        if self.blind && self.engine != Engine::Mini {
            return Err(ServerError::BlindNotForEngine);
        }
        if self.threads > 0
            && !(self.dispatch.is_state_machine() || self.dispatch == Dispatch::Tokio)
        {
            return Err(ServerError::ThreadsNotForDispatch);
        }
        if self.offload > 0 {
            if !(self.dispatch.is_state_machine() || self.dispatch == Dispatch::Tokio) {
                return Err(ServerError::OffloadNotForDispatch);
            }
            if self.blind && !self.work.holds_a_thread() {
                return Err(ServerError::OffloadWithoutWork(self.work));
            }
        }
        state_machine(!self.pin.is_empty(), "--pin")?;
        if self.dispatch == Dispatch::Uring && self.spread == Spread::Handoff && self.threads > 1 {
            return Err(ServerError::OptionNotForDispatch {
                option: "--spread handoff",
                only: "poll",
            });
        }
        if self.uring != UringFeatures::default() && self.dispatch != Dispatch::Uring {
            return Err(ServerError::OptionNotForDispatch {
                option: "--uring-features",
                only: "uring",
            });
        }
        Ok(())
    }

    /// How many reactors a `poll` server runs.
    pub fn reactors(&self) -> usize {
        self.threads.max(1)
    }
}

/// A snapshot of the counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerStats {
    /// Connections accepted (refused ones included).
    pub accepted: u64,
    /// Connections closed at once because of `max_clients` (`poll`) or, on
    /// `thread` and `single`, for want of a descriptor to register them.
    pub refused: u64,
    /// Connections closed because of `idle_timeout` or `handshake_timeout`.
    pub timed_out: u64,
    /// Connections that ended in an error (protocol, TLS or I/O).
    pub failed: u64,
    /// Responses sent (one per request).
    pub responses: u64,
    /// Socket write calls: responses per write shows how well a design
    /// coalesces pipelined answers.
    pub writes: u64,
    /// From `stop()` of a traced server: what the trace holds and lost, or
    /// why it could not be completed.
    pub trace: Option<Result<TraceSummary, String>>,
}

/// A running server. Dropping it stops it too.
pub struct Server {
    addr: SocketAddr,
    url: String,
    setup: Setup,
    shared: Arc<Shared>,
    wake: Wake,
    /// The dispatch's threads (one, or a reactor each); empty once stopped.
    threads: Vec<JoinHandle<()>>,
    tracer: Option<Tracer>,
}

/// Binds, builds the TLS configuration and starts accepting.
pub fn start(config: &ServerConfig) -> Result<Server, ServerError> {
    config.validate()?;
    if config.dispatch == Dispatch::Uring {
        if let Some(why) = dispatch::uring_unavailable(config.uring) {
            return Err(ServerError::UringUnavailable(why.why));
        }
    }
    trim::keep_heap_top();
    let file = match &config.body_file {
        Some(path) => Some(BodyFile::open(path).map_err(ServerError::BodyFile)?),
        None => None,
    };
    let identity = match config.tls {
        TlsProvider::None => Identity::development(), // unused
        _ => Identity::load(config.cert.as_deref(), config.key.as_deref())?,
    };
    let acceptor = TlsAcceptor::new(config.tls, &identity)?
        .with_client_hello_hook(config.client_hello.clone());
    let (tracer, dispatch) = match &config.trace {
        Some(t) => {
            let (tracer, dispatch) = Tracer::start(t, config.trace_meta())?;
            (Some(tracer), dispatch)
        }
        None => (None, None),
    };
    let bind = SocketAddr::new(config.host, config.port);
    let listeners =
        match config.dispatch.is_state_machine() && config.spread == Spread::Reuseport {
            true => io::bind_reuseport(bind, config.reactors()),
            false => TcpListener::bind(bind).map(|l| vec![l]),
        }
        .map_err(|source| ServerError::Bind { addr: bind, source })?;
    let addr = listeners[0]
        .local_addr()
        .map_err(|source| ServerError::Bind { addr: bind, source })?;
    let shared = Arc::new(Shared::new(
        dispatch,
        acceptor,
        config.engine,
        config.nodelay,
        conn::idle::Limits {
            handshake: config.handshake_timeout,
            idle: config.idle_timeout,
        },
        Handler {
            work: config.work,
            body: config.body,
            max_streams: config.max_streams,
            blind: config.blind,
            file,
        },
        config.offload,
    ));
    let (wake, threads) = dispatch::spawn(config, listeners, shared.clone())?;
    Ok(Server {
        url: url_for(addr, config.tls),
        addr,
        setup: config.setup(),
        shared,
        wake,
        threads,
        tracer,
    })
}

/// `http://127.0.0.1:PORT/`, `https://[::1]:PORT/` (the seed's URL-FROM-SOCKET).
pub fn url_for(addr: SocketAddr, tls: TlsProvider) -> String {
    let scheme = if tls.is_tls() { "https" } else { "http" };
    format!("{scheme}://{addr}/")
}

impl Server {
    /// The URL the server answers on, with the real port.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn setup(&self) -> Setup {
        self.setup
    }

    pub fn stats(&self) -> ServerStats {
        let c = &self.shared.counters;
        ServerStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            timed_out: c.timed_out.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            responses: c.responses.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            trace: None,
        }
    }

    /// Closes the listener, ends open connections, joins every thread the
    /// server started, completes the trace if there is one, and returns the
    /// final counters (the seed's KILL-SERVER).
    pub fn stop(mut self) -> ServerStats {
        self.shutdown();
        let mut stats = self.stats();
        stats.trace = self.tracer.take().map(|t| {
            t.finish_with(Some(stats.responses))
                .map_err(|e| e.to_string())
        });
        stats
    }

    fn shutdown(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        self.shared.begin_stop();
        self.wake.wake();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        self.shared.errors.flush();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
        if let Some(tracer) = self.tracer.take() {
            let _ = tracer.finish();
        }
    }
}

/// Runs `f` against a started server and always stops the server afterwards,
/// also when `f` panics (the panic then continues). The seed's
/// CALLBACK-ON-SERVER.
pub fn with_server<R>(
    config: &ServerConfig,
    f: impl FnOnce(&Server) -> R,
) -> Result<R, ServerError> {
    let server = start(config)?;
    let result = panic::catch_unwind(AssertUnwindSafe(|| f(&server)));
    server.stop();
    match result {
        Ok(r) => Ok(r),
        Err(panic) => panic::resume_unwind(panic),
    }
}
