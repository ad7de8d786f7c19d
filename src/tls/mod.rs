//! TLS sessions, sans-IO: ciphertext in, plaintext out and back, on memory
//! buffers only (the seed's memory BIOs). Every dispatch drives the very same
//! sessions, so dispatches differ in scheduling and I/O alone.
//!
//! Driver order, after every chunk read from the socket:
//! [`TlsSession::handle_ciphertext`] (it may take only part of the chunk:
//! call again with the rest after draining), [`TlsSession::poll_plaintext`];
//! then, with what the engine answered, [`TlsSession::handle_plaintext`] and
//! [`TlsSession::poll_ciphertext`] to get the bytes for the socket. After an
//! error, still send what `poll_ciphertext` gives (the alert), then close.

pub mod client_hello;
mod openssl_session;
mod plain;
mod rustls_session;

use std::fmt;

use crate::buffers::BufPool;
use crate::identity::Identity;
pub use client_hello::{ClientHello, ClientHelloHook};

/// The only application protocol served.
pub const ALPN_H2: &[u8] = b"h2";

/// Who encrypts: the `tls` axis of an experiment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum TlsProvider {
    /// No TLS: h2c with prior knowledge.
    None,
    /// rustls 0.23 (ring), buffered API on memory buffers.
    Rustls,
    /// The system's OpenSSL through an `SslStream` over an in-memory pipe.
    Openssl,
}

impl TlsProvider {
    pub const ALL: [Self; 3] = [Self::None, Self::Rustls, Self::Openssl];

    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Rustls => "rustls",
            Self::Openssl => "openssl",
        }
    }

    pub fn is_tls(self) -> bool {
        self != Self::None
    }
}

impl fmt::Display for TlsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The client's ALPN list lacks `h2`; a `no_application_protocol` alert
    /// is queued.
    #[error("client refused: its ALPN offer lacks h2")]
    NoH2,
    /// The client-hello hook refused the client; a handshake_failure alert
    /// is queued.
    #[error("client refused by the client-hello hook: {0}")]
    Refused(String),
    #[error("TLS session failed: {0}")]
    Session(String),
    #[error("TLS configuration ({provider}): {reason}")]
    Config {
        provider: TlsProvider,
        reason: String,
    },
}

/// One server-side TLS (or plaintext) session. See the module doc for the
/// order in which a driver calls these.
pub trait TlsSession: Send {
    /// Takes ciphertext from the socket and processes it; returns how many
    /// octets were taken (fewer than offered when decrypted plaintext is
    /// waiting to be polled).
    fn handle_ciphertext(&mut self, input: &[u8]) -> Result<usize, TlsError>;

    /// Appends the decrypted plaintext available now to `out`; returns its length.
    fn poll_plaintext(&mut self, out: &mut Vec<u8>) -> Result<usize, TlsError>;

    /// Queues plaintext to encrypt. Before the handshake ends it is held and
    /// sent once the session is established. Never drops data: the caller
    /// bounds what it queues.
    fn handle_plaintext(&mut self, input: &[u8]) -> Result<(), TlsError>;

    /// Appends the ciphertext to send to `out`; returns its length.
    fn poll_ciphertext(&mut self, out: &mut Vec<u8>) -> Result<usize, TlsError>;

    /// Ciphertext is waiting for `poll_ciphertext`.
    fn wants_write(&self) -> bool;

    /// The handshake has not finished yet.
    fn is_handshaking(&self) -> bool;

    /// The protocol chosen by ALPN, once the handshake has finished.
    fn alpn_protocol(&self) -> Option<Vec<u8>>;

    /// No TLS at all (h2c): the session only passes bytes through, so
    /// drivers leave its steps out of traces instead of calling copies
    /// `decrypt` and `encrypt`.
    fn is_plain(&self) -> bool {
        false
    }

    /// Takes the buffers a turn of reading and writing needs from `pool`
    /// (for a connection that has data).
    fn borrow_buffers(&mut self, _pool: &mut BufPool) {}

    /// Gives the buffers that are empty back to `pool`, for a connection
    /// about to wait for its client: an idle connection should hold its
    /// session's state only.
    fn return_buffers(&mut self, _pool: &mut BufPool) {}
}

/// Makes sessions for one server: the configuration is built once, at start.
pub struct TlsAcceptor {
    inner: Inner,
    hook: Option<ClientHelloHook>,
}

enum Inner {
    Plain,
    Rustls(rustls_session::Acceptor),
    Openssl(openssl_session::Acceptor),
}

impl TlsAcceptor {
    pub fn new(provider: TlsProvider, identity: &Identity) -> Result<Self, TlsError> {
        let inner = match provider {
            TlsProvider::None => Inner::Plain,
            TlsProvider::Rustls => Inner::Rustls(rustls_session::Acceptor::new(identity)?),
            TlsProvider::Openssl => Inner::Openssl(openssl_session::Acceptor::new(identity)?),
        };
        Ok(Self { inner, hook: None })
    }

    /// Every TLS session asks `hook` about its ClientHello first (ignored
    /// without TLS: h2c has no ClientHello).
    pub fn with_client_hello_hook(mut self, hook: Option<ClientHelloHook>) -> Self {
        self.hook = hook;
        self
    }

    pub fn provider(&self) -> TlsProvider {
        match self.inner {
            Inner::Plain => TlsProvider::None,
            Inner::Rustls(_) => TlsProvider::Rustls,
            Inner::Openssl(_) => TlsProvider::Openssl,
        }
    }

    /// A session for a newly accepted connection.
    pub fn session(&self) -> Result<Box<dyn TlsSession>, TlsError> {
        let session: Box<dyn TlsSession> = match &self.inner {
            Inner::Plain => return Ok(Box::new(plain::PlainSession::default())),
            Inner::Rustls(a) => Box::new(a.session()?),
            Inner::Openssl(a) => Box::new(a.session()?),
        };
        Ok(match &self.hook {
            Some(hook) => Box::new(client_hello::HookedSession::new(session, hook.clone())),
            None => session,
        })
    }
}

#[cfg(test)]
mod tests;
