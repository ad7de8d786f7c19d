//! What a running server's threads share: the TLS acceptor, the engine
//! choice, the stop flag, the open connections and the counters. Every
//! dispatch takes an `Arc<Shared>`; the [`super::Server`] handle keeps one
//! to stop them and read the counters.

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use super::conn::idle::Limits;
use super::conn::{self, ConnError};
use super::errlog::ClientErrors;
use super::trim::Trim;
use super::Engine;
use crate::engine::Handler;
use crate::tls::{TlsAcceptor, TlsSession};
use crate::trace::{self, Name, NO_STATE};

/// Counters a server keeps while it runs; read them with
/// [`super::Server::stats`].
#[derive(Debug, Default)]
pub struct Counters {
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub timed_out: AtomicU64,
    pub failed: AtomicU64,
    pub responses: AtomicU64,
    pub writes: AtomicU64,
}

pub struct Shared {
    /// The trace's dispatcher, installed in every thread the server starts.
    pub dispatch: Option<tracing::Dispatch>,
    pub acceptor: TlsAcceptor,
    pub engine: Engine,
    pub nodelay: bool,
    /// The handshake deadline and the idle timeout (`poll` keeps its own
    /// copy of these in its options).
    pub limits: Limits,
    /// Each request's work and response (`--work`, `--body`).
    pub handler: Handler,
    /// `--offload N`: the work goes to N workers (0: none).
    pub offload: usize,
    pub stopping: AtomicBool,
    /// A clone of every open connection's socket (blocking dispatches), so
    /// that `stop` can shut them down and unblock their threads.
    open: Mutex<Vec<(u64, TcpStream)>>,
    pub counters: Counters,
    /// Per-client errors for stderr, rate-limited.
    pub errors: ClientErrors,
    /// Connections come and gone, for giving freed heap back.
    pub trim: Trim,
}

impl Shared {
    /// What the `h2` driver takes from the server.
    pub fn h2_settings(&self) -> conn::h2::Settings<'_> {
        conn::h2::Settings {
            provider: self.acceptor.provider(),
            limits: self.limits,
            writes: &self.counters.writes,
            trim: &self.trim,
            handler: self.handler.clone(),
            offload: self.offload > 0,
        }
    }

    pub fn new(
        dispatch: Option<tracing::Dispatch>,
        acceptor: TlsAcceptor,
        engine: Engine,
        nodelay: bool,
        limits: Limits,
        handler: Handler,
        offload: usize,
    ) -> Self {
        Self {
            dispatch,
            acceptor,
            engine,
            nodelay,
            limits,
            handler,
            offload,
            stopping: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
            counters: Counters::default(),
            errors: ClientErrors::default(),
            trim: Trim::default(),
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Runs `f` with the server's trace dispatcher (if any) as the thread's.
    pub fn traced<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.dispatch {
            Some(d) => tracing::dispatcher::with_default(d, f),
            None => f(),
        }
    }

    /// Counts a new connection.
    pub fn accepted(&self) {
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        self.trim.note();
    }

    /// Counts a connection closed at once for want of room.
    pub fn refused(&self) {
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// The `accept` step of a new connection: its socket options
    /// (`configure` gets the TCP_NODELAY choice) and its TLS session.
    pub fn accept(
        &self,
        client: u64,
        configure: impl FnOnce(bool) -> std::io::Result<()>,
    ) -> Result<Box<dyn TlsSession>, ConnError> {
        conn::accept(client, &self.acceptor, || configure(self.nodelay))
    }

    /// Registers a new connection unless the server is stopping (false).
    /// Checked under the same lock `stop` takes, so no connection slips
    /// past it. An error: no descriptor for the clone `stop` needs (at the
    /// fd limit); the connection must not be served.
    pub fn register(&self, id: u64, stream: &TcpStream) -> std::io::Result<bool> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_stopping() {
            return Ok(false);
        }
        open.push((id, stream.try_clone()?));
        Ok(true)
    }

    pub fn unregister(&self, id: u64) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|(i, _)| *i != id);
    }

    /// Accounts for a connection that has ended.
    pub fn finish(&self, id: u64, responses: u64, result: Result<(), ConnError>) {
        let _span = trace::action(id, Name::Close, NO_STATE);
        self.trim.note();
        let c = &self.counters;
        c.responses.fetch_add(responses, Ordering::Relaxed);
        if result.as_ref().is_err_and(ConnError::is_timeout) {
            c.timed_out.fetch_add(1, Ordering::Relaxed);
        } else if let Err(e) = result {
            c.failed.fetch_add(1, Ordering::Relaxed);
            // A stop ends connections on purpose: not the client's fault.
            if !self.is_stopping() {
                self.errors.report(id, &e);
            }
        }
    }

    /// Sets the stop flag and shuts every registered socket down.
    pub fn begin_stop(&self) {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        self.stopping.store(true, Ordering::SeqCst);
        for (_, stream) in open.iter() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}
