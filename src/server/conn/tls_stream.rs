//! An async byte stream over a socket and one of our sans-IO TLS sessions,
//! so that the `h2` engine gets exactly the TLS (certificate, ALPN, suites)
//! of the mini engine instead of a second TLS stack of its own.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{feed_traced, Frames};
use crate::buffers::{HIGH_WATER, READ_BUF};
use crate::tls::{TlsError, TlsSession};
use crate::trace::{self, Name, NO_STATE};

pub struct TlsStream<S> {
    client: u64,
    sock: S,
    tls: Box<dyn TlsSession>,
    /// Decrypted plaintext not yet read by the caller, from `plain_pos`.
    plain: Vec<u8>,
    plain_pos: usize,
    /// Ciphertext not yet written to the socket, from `wire_pos`.
    wire: Vec<u8>,
    wire_pos: usize,
    read_buf: Box<[u8]>,
    eof: bool,
    frames: Frames,
}

fn io_error(err: TlsError) -> io::Error {
    io::Error::other(err)
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream<S> {
    pub fn new(client: u64, sock: S, tls: Box<dyn TlsSession>) -> Self {
        Self {
            client,
            sock,
            tls,
            plain: Vec::new(),
            plain_pos: 0,
            wire: Vec::new(),
            wire_pos: 0,
            read_buf: vec![0; READ_BUF].into_boxed_slice(),
            eof: false,
            frames: Frames::new(client),
        }
    }

    /// Notes the client's progress (whole frames) in `progress`, for the
    /// idle timeout.
    pub fn watch(&mut self, progress: std::sync::Arc<super::idle::Progress>) {
        self.frames.watch(progress);
    }

    /// Writes out all ciphertext the session has. What the session has is
    /// moved to `wire` first, even behind unsent octets, so that `wire`
    /// holds everything unsent and [`HIGH_WATER`] bounds it: a session
    /// left to gather ciphertext behind a full socket grew without bound
    /// (a client not reading 64 MiB bodies: 650 MB).
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.tls.wants_write() {
                if self.wire_pos > 0 {
                    self.wire.drain(..self.wire_pos);
                    self.wire_pos = 0;
                }
                let span = trace::action(self.client, Name::MoveEncrypted, NO_STATE);
                let n = self.tls.poll_ciphertext(&mut self.wire).map_err(io_error)?;
                span.bytes(n);
            }
            if self.wire_pos == self.wire.len() {
                self.wire.clear();
                self.wire_pos = 0;
                return Poll::Ready(Ok(()));
            }
            let n = ready!(Pin::new(&mut self.sock).poll_write(cx, &self.wire[self.wire_pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.wire_pos += n;
        }
    }

    /// Feeds one chunk of ciphertext, collecting the plaintext.
    fn feed(&mut self, n: usize) -> io::Result<()> {
        if self.plain_pos == self.plain.len() {
            self.plain.clear();
            self.plain_pos = 0;
        }
        let before = self.plain.len();
        let mut input = &self.read_buf[..n];
        while !input.is_empty() {
            let used = feed_traced(self.client, self.tls.as_mut(), input, &mut self.plain)
                .map_err(io::Error::other)?;
            input = &input[used..];
        }
        self.frames.seen_in(&self.plain[before..]);
        Ok(())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.plain_pos < this.plain.len() {
                let n = buf.remaining().min(this.plain.len() - this.plain_pos);
                buf.put_slice(&this.plain[this.plain_pos..this.plain_pos + n]);
                this.plain_pos += n;
                return Poll::Ready(Ok(()));
            }
            // Handshake replies must go out before the peer sends more. A
            // full socket is no reason not to read.
            if let Poll::Ready(Err(e)) = this.poll_send(cx) {
                return Poll::Ready(Err(e));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut rb = ReadBuf::new(&mut this.read_buf);
            ready!(Pin::new(&mut this.sock).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                this.eof = true;
                continue;
            }
            if let Err(e) = this.feed(n) {
                // Best effort: the alert, if the socket takes it now.
                let _ = this.poll_send(cx);
                return Poll::Ready(Err(e));
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.wire.len() - this.wire_pos > HIGH_WATER {
            ready!(this.poll_send(cx))?;
        }
        {
            let span = trace::action(this.client, Name::Encrypt, NO_STATE);
            this.tls.handle_plaintext(data).map_err(io_error)?;
            span.bytes(data.len());
        }
        this.frames.seen_out(data);
        if let Poll::Ready(Err(e)) = this.poll_send(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.sock).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.sock).poll_shutdown(cx)
    }
}
