//! What the `h2` crate writes, held until the connection's work for one
//! wake-up is done, then written at once: one socket write (and under TLS
//! one encryption) per batch of responses, as the mini engine does, instead
//! of one per response.
//!
//! The crate flushes at the end of every poll of its connection, and the
//! server polls it once per request it accepts; only the accept loop knows
//! when a wake-up's requests are all taken. So the loop holds the [`Gate`]
//! while it accepts, and lets it open for one more poll of the connection
//! when the connection has nothing more (`Pending`): that poll's flush
//! writes everything held.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Past this much held output a flush writes even while the gate is held,
/// and a write waits for the stream to take what is held.
pub const HOLD_AT_MOST: usize = 64 * 1024;

/// Shared by the accept loop and its [`Coalesce`] stream.
#[derive(Debug, Default)]
pub struct Gate {
    hold: AtomicBool,
    /// Output held by a flush that did not write.
    held: AtomicBool,
}

impl Gate {
    /// Flushes hold what they can from now on.
    pub fn hold(&self) {
        self.hold.store(true, Ordering::Relaxed);
    }

    /// Flushes write again; whether output is held (then poll the
    /// connection once more: its flush writes it).
    pub fn open(&self) -> bool {
        self.hold.store(false, Ordering::Relaxed);
        self.held.load(Ordering::Relaxed)
    }
}

/// A byte stream whose writes are gathered while its [`Gate`] is held.
pub struct Coalesce<S> {
    inner: S,
    gate: Arc<Gate>,
    /// Held output, written to `inner` from `pos`.
    out: Vec<u8>,
    pos: usize,
}

impl<S: AsyncWrite + Unpin> Coalesce<S> {
    pub fn new(inner: S, gate: Arc<Gate>) -> Self {
        Self {
            inner,
            gate,
            out: Vec::new(),
            pos: 0,
        }
    }

    /// Writes all held output to the inner stream.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pos < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pos += n;
        }
        self.out.clear();
        self.pos = 0;
        self.gate.held.store(false, Ordering::Relaxed);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesce<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesce<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.out.len() >= HOLD_AT_MOST {
            ready!(this.poll_drain(cx))?;
        }
        this.out.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos == this.out.len() {
            return Pin::new(&mut this.inner).poll_flush(cx);
        }
        if this.gate.hold.load(Ordering::Relaxed) && this.out.len() < HOLD_AT_MOST {
            this.gate.held.store(true, Ordering::Relaxed);
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
