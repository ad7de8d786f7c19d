//! One connection's stack, the same under every dispatch (docs/DESIGN.md,
//! "One connection's data flow"): [`Pipeline`] (TLS session + mini engine,
//! sans-IO, one step at a time or in bulk), [`TlsStream`] (the async adapter that puts our TLS
//! sessions under the `h2` crate), and [`h2`] (the driver of the `h2`
//! engine). Here too: the `feed` step every stack shares (ciphertext in,
//! plaintext out, with its trace name and stall check), frame events, and
//! the accept step.
//!
//! A dispatch owns sockets and scheduling; everything here is the same for
//! all of them.

pub mod h2;
pub mod idle;
mod pipeline;
pub mod socket;
mod tls_stream;

use std::sync::Arc;

use crate::tls::{TlsAcceptor, TlsError, TlsSession};
use crate::trace::{self, FrameScanner, Name, NO_STATE};

pub use pipeline::{MiniConn, Pipeline, PipelineError};
pub use tls_stream::TlsStream;

/// Why one connection ended badly.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("h2: {0}")]
    H2(#[from] ::h2::Error),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// No TLS handshake, preface (and, on `mini`, SETTINGS) within the
    /// handshake deadline: counted as timed out, not as a failure.
    #[error("no handshake within {0:?}")]
    HandshakeTimeout(std::time::Duration),
    /// No progress (a whole frame outside an open header block) within
    /// the idle timeout: counted as timed out too.
    #[error("idle for {0:?}")]
    IdleTimeout(std::time::Duration),
}

impl ConnError {
    /// Closed by a deadline of ours rather than by a fault.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::HandshakeTimeout(_) | Self::IdleTimeout(_))
    }
}

/// The accept step of a new connection, traced as `accept`: its socket
/// options (`configure`) and a TLS session from `acceptor`.
pub fn accept(
    client: u64,
    acceptor: &TlsAcceptor,
    configure: impl FnOnce() -> std::io::Result<()>,
) -> Result<Box<dyn TlsSession>, ConnError> {
    let _span = trace::action(client, Name::Accept, NO_STATE);
    configure()?;
    Ok(acceptor.session()?)
}

/// The trace name of the next [`feed`]: `handshake` until the session is
/// established, then `decrypt`.
pub fn feed_name(tls: &dyn TlsSession) -> Name {
    match tls.is_handshaking() {
        true => Name::Handshake,
        false => Name::Decrypt,
    }
}

/// ② One feed step: gives `input` to TLS and appends the plaintext it yields
/// to `plain`, so that `decrypt` is where ciphertext becomes plaintext for
/// every provider. Returns the octets of `input` taken. A session that takes
/// nothing of a non-empty input and yields nothing would spin: `Stalled`.
pub fn feed(
    tls: &mut dyn TlsSession,
    input: &[u8],
    plain: &mut Vec<u8>,
) -> Result<usize, FeedError> {
    let used = tls.handle_ciphertext(input)?;
    let got = tls.poll_plaintext(plain)?;
    if used == 0 && got == 0 && !input.is_empty() {
        return Err(FeedError::Stalled);
    }
    Ok(used)
}

/// [`feed`] in a span named by [`feed_name`], for drivers without a state
/// machine of their own.
pub fn feed_traced(
    client: u64,
    tls: &mut dyn TlsSession,
    input: &[u8],
    plain: &mut Vec<u8>,
) -> Result<usize, FeedError> {
    let span = trace::action(client, feed_name(tls), NO_STATE);
    let used = feed(tls, input, plain)?;
    span.bytes(used);
    Ok(used)
}

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("TLS session takes no more input and has nothing to give")]
    Stalled,
}

/// One request's work (`--work`), in a `work` slice of its own: the one
/// place both engines do it (the mini engine's pipeline, and the `h2`
/// service before each answer).
pub fn do_work(client: u64, work: &crate::engine::Work) {
    if work.is_none() {
        return;
    }
    let _span = trace::action(client, Name::Work, NO_STATE);
    work.run();
}

/// Frame events of one connection: the frame boundaries of its plaintext
/// each way, reported as they are seen. Scans only while tracing is on, or
/// inbound when it watches the client's progress for the idle timeout.
#[derive(Debug)]
pub struct Frames {
    client: u64,
    enabled: bool,
    inbound: FrameScanner,
    outbound: FrameScanner,
    /// Where the client's progress is noted, and whether a header block is
    /// open (see [`idle`]).
    progress: Option<(Arc<idle::Progress>, bool)>,
}

impl Frames {
    /// Asks once whether this thread traces: a connection's thread (and so
    /// its dispatcher) does not change under it, and tracing off then costs
    /// one branch per scan.
    pub fn new(client: u64) -> Self {
        Self {
            client,
            enabled: trace::frames_enabled(),
            inbound: FrameScanner::inbound(),
            outbound: FrameScanner::outbound(),
            progress: None,
        }
    }

    /// Notes the client's progress in `progress` from now on.
    pub fn watch(&mut self, progress: Arc<idle::Progress>) {
        self.progress = Some((progress, false));
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Plaintext from the client (its preface first).
    pub fn seen_in(&mut self, data: &[u8]) {
        if let Some(progress) = self.scan_in(data) {
            progress.note();
        }
    }

    /// [`Frames::seen_in`] at `now` (time as an argument, for tests).
    #[cfg(test)]
    pub fn seen_in_at(&mut self, data: &[u8], now: std::time::Instant) {
        if let Some(progress) = self.scan_in(data) {
            progress.note_at(now);
        }
    }

    /// Reports the frames in `data`; the progress to note, if the client
    /// made some (a whole frame that left no header block open).
    fn scan_in(&mut self, data: &[u8]) -> Option<&idle::Progress> {
        let (client, enabled) = (self.client, self.enabled);
        match &mut self.progress {
            None if enabled => {
                self.inbound.scan(data, |h| trace::frame(client, false, h));
                None
            }
            None => None,
            Some((progress, open)) => {
                let mut moved = false;
                self.inbound.scan(data, |h| {
                    if enabled {
                        trace::frame(client, false, h);
                    }
                    *open = idle::header_block_open(*open, &h);
                    moved |= !*open;
                });
                moved.then_some(&**progress)
            }
        }
    }

    /// Plaintext to the client.
    pub fn seen_out(&mut self, data: &[u8]) {
        if self.enabled {
            let client = self.client;
            self.outbound.scan(data, |h| trace::frame(client, true, h));
        }
    }
}
