//! The generic server interface (the seed's CREATE-SERVER family): a config,
//! [`start`] that binds and returns a [`Server`] handle knowing its real URL,
//! [`Server::stop`] (KILL-SERVER) and [`with_server`] (CALLBACK-ON-SERVER).
//!
//! A dispatch owns sockets and scheduling only; the engine and TLS session it
//! drives are the same for every dispatch.

mod blocking;
mod connection;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::certs::{CertError, Identity};
use crate::tls::{TlsAcceptor, TlsError, TlsProvider};

/// How connections are accepted and scheduled: the `dispatch` axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Dispatch {
    /// One client at a time; the next waits until the current one has gone
    /// (seed `:none`).
    Single,
    /// A thread per connection (seed `:thread`).
    Thread,
    /// A task per connection on a tokio runtime (seed `:async`). Not built yet.
    Tokio,
    /// A hand-written mio loop with explicit client state (seed
    /// `:async-custom`). Not built yet.
    Poll,
}

/// Who speaks HTTP/2: the `engine` axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Engine {
    /// The simplified sans-IO engine (seed TLS-SERVER/MINI-HTTP2).
    Mini,
    /// The `h2` crate (seed `:none/http2`). Not built yet.
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
display_as_value_name!(Dispatch, Engine);

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
        for dispatch in [Dispatch::Single, Dispatch::Thread] {
            for tls in TlsProvider::ALL {
                v.push(Setup {
                    dispatch,
                    engine: Engine::Mini,
                    tls,
                });
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
    #[error("cannot start the accept thread: {0}")]
    Spawn(std::io::Error),
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
        }
    }
}

impl ServerConfig {
    pub fn setup(&self) -> Setup {
        Setup {
            dispatch: self.dispatch,
            engine: self.engine,
            tls: self.tls,
        }
    }
}

/// Counters a server keeps while it runs; read them with [`Server::stats`].
#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    failed: AtomicU64,
    responses: AtomicU64,
}

/// A snapshot of the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections that ended in an error (protocol, TLS or I/O).
    pub failed: u64,
    /// Responses sent (one per request).
    pub responses: u64,
}

/// State shared by the accept loop, the connections and the handle.
struct Shared {
    acceptor: TlsAcceptor,
    stopping: AtomicBool,
    /// A clone of every open connection's socket, so that `stop` can shut
    /// them down and unblock their threads.
    open: Mutex<Vec<(u64, TcpStream)>>,
    counters: Counters,
}

impl Shared {
    /// Registers a new connection unless the server is stopping. Checked
    /// under the same lock `stop` takes, so no connection slips past it.
    fn register(&self, id: u64, stream: &TcpStream) -> bool {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if self.stopping.load(Ordering::SeqCst) {
            return false;
        }
        if let Ok(clone) = stream.try_clone() {
            open.push((id, clone));
        }
        true
    }

    fn unregister(&self, id: u64) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|(i, _)| *i != id);
    }

    fn begin_stop(&self) {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        self.stopping.store(true, Ordering::SeqCst);
        for (_, stream) in open.iter() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// A running server. Dropping it stops it too.
pub struct Server {
    addr: SocketAddr,
    url: String,
    setup: Setup,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

/// Binds, builds the TLS configuration and starts accepting.
pub fn start(config: &ServerConfig) -> Result<Server, ServerError> {
    let setup = config.setup();
    if !setup.is_supported() {
        return Err(ServerError::UnsupportedSetup { setup });
    }
    let identity = match config.tls {
        TlsProvider::None => Identity::development(), // unused
        _ => Identity::load(config.cert.as_deref(), config.key.as_deref())?,
    };
    let acceptor = TlsAcceptor::new(config.tls, &identity)?;
    let bind = SocketAddr::new(config.host, config.port);
    let listener =
        TcpListener::bind(bind).map_err(|source| ServerError::Bind { addr: bind, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr: bind, source })?;
    let shared = Arc::new(Shared {
        acceptor,
        stopping: AtomicBool::new(false),
        open: Mutex::new(Vec::new()),
        counters: Counters::default(),
    });
    let thread_shared = shared.clone();
    let dispatch = config.dispatch;
    let threaded = dispatch == Dispatch::Thread;
    let accept_thread = std::thread::Builder::new()
        .name(format!("h2lab-{dispatch}-accept"))
        .spawn(move || blocking::accept_loop(listener, threaded, thread_shared))
        .map_err(ServerError::Spawn)?;
    Ok(Server {
        url: url_for(addr, config.tls),
        addr,
        setup,
        shared,
        accept_thread: Some(accept_thread),
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
            failed: c.failed.load(Ordering::Relaxed),
            responses: c.responses.load(Ordering::Relaxed),
        }
    }

    /// Closes the listener, ends open connections, joins every thread the
    /// server started, and returns the final counters (the seed's KILL-SERVER).
    pub fn stop(mut self) -> ServerStats {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
        let Some(thread) = self.accept_thread.take() else {
            return;
        };
        self.shared.begin_stop();
        // Wake the blocking accept(): connect once; the loop sees `stopping`.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                SocketAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, std::time::Duration::from_millis(500));
        let _ = thread.join();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
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
