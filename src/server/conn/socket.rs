//! The traced socket of one connection: one core ([`SocketTrace`]) that
//! spans each system call, counts writes and, where the socket carries the
//! frames themselves, reports them (and notes the client's progress for
//! the idle timeout); wrapped once for std sockets ([`StdSocket`]) and once
//! for tokio ones ([`TokioSocket`]).

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{idle, Frames};
use crate::server::io::{interrupted, would_block};
use crate::trace::{self, Name, NO_STATE};

/// What tracing adds to any socket of a connection.
pub struct SocketTrace<'a> {
    client: u64,
    writes: &'a AtomicU64,
    /// For h2c under the `h2` engine, where no pipeline sees the plaintext:
    /// frame events from the raw bytes.
    frames: Option<Box<Frames>>,
}

impl<'a> SocketTrace<'a> {
    pub fn new(client: u64, writes: &'a AtomicU64, scan_frames: bool) -> Self {
        Self {
            client,
            writes,
            frames: scan_frames.then(|| Box::new(Frames::new(client))),
        }
    }

    /// The connection's client id.
    pub fn client(&self) -> u64 {
        self.client
    }

    /// Notes the client's progress (whole frames) in `progress`: for the
    /// idle timeout where the socket carries the frames themselves.
    pub fn watch(&mut self, progress: std::sync::Arc<idle::Progress>) {
        let client = self.client;
        self.frames
            .get_or_insert_with(|| Box::new(Frames::new(client)))
            .watch(progress);
    }

    /// One read system call, `read`, in a `read_socket` span.
    pub fn read(
        &mut self,
        buf: &mut [u8],
        read: impl FnOnce(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let span = trace::action(self.client, Name::ReadSocket, NO_STATE);
        let n = read(buf)?;
        span.bytes(n);
        drop(span);
        if let Some(frames) = &mut self.frames {
            frames.seen_in(&buf[..n]);
        }
        Ok(n)
    }

    /// One write system call, `write`, in a `write_socket` span; counted.
    pub fn write(
        &mut self,
        data: &[u8],
        write: impl FnOnce(&[u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let span = trace::action(self.client, Name::WriteSocket, NO_STATE);
        let n = write(data)?;
        span.bytes(n);
        drop(span);
        self.writes.fetch_add(1, Ordering::Relaxed);
        if let Some(frames) = &mut self.frames {
            frames.seen_out(&data[..n]);
        }
        Ok(n)
    }
}

/// A blocking std socket, traced.
pub struct StdSocket<'a> {
    pub sock: std::net::TcpStream,
    pub trace: SocketTrace<'a>,
}

impl StdSocket<'_> {
    /// One read; a signal is retried.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.trace.read(buf, |b| self.sock.read(b)) {
                Err(e) if interrupted(&e) => continue,
                other => return other,
            }
        }
    }

    pub fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            match self.trace.write(data, |d| self.sock.write(d)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => data = &data[n..],
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A tokio socket, traced: one span per system call, never across an
/// `.await`.
pub struct TokioSocket<'a> {
    pub sock: tokio::net::TcpStream,
    pub trace: SocketTrace<'a>,
}

impl TokioSocket<'_> {
    /// One read system call; `WouldBlock` when the socket has nothing.
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.trace.read(buf, |b| self.sock.try_read(b))
    }

    pub async fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            self.sock.writable().await?;
            match self.trace.write(data, |d| self.sock.try_write(d)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => data = &data[n..],
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl AsyncRead for TokioSocket<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            ready!(this.sock.poll_read_ready(cx))?;
            match this.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // Readiness is cleared: the next poll registers the waker.
                Err(e) if would_block(&e) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for TokioSocket<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            ready!(this.sock.poll_write_ready(cx))?;
            match this.trace.write(data, |d| this.sock.try_write(d)) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if would_block(&e) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(())) // a socket has no buffer of ours to flush
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.sock).poll_shutdown(cx)
    }
}
