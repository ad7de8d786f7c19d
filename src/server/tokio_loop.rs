//! The `tokio` dispatch (the seed's cl-async/libuv `:async`): a task per
//! connection on a current-thread runtime, or a multi-thread one with
//! `threads > 0`. The mini engine runs through the same [`Pipeline`] as the
//! blocking dispatches; the `h2` engine over [`TlsStream`].

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::blocking::{ACCEPT_ERROR_PAUSE, READ_BUF};
use super::pipeline::Pipeline;
use super::tls_stream::TlsStream;
use super::{ConnError, Engine, Shared};
use crate::tls::{TlsProvider, TlsSession};
use crate::trace::{self, FrameScanner, Name, NO_STATE};

/// A runtime for the dispatch: current-thread for `threads == 0`. Worker
/// threads get the trace dispatcher, if any.
pub(super) fn runtime(
    threads: usize,
    dispatch: Option<tracing::Dispatch>,
) -> io::Result<tokio::runtime::Runtime> {
    match threads {
        0 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .thread_name("h2lab-tokio")
            .on_thread_start(move || {
                if let Some(d) = &dispatch {
                    // Kept for the thread's life: the guard is never dropped.
                    std::mem::forget(tracing::dispatcher::set_default(d));
                }
            })
            .enable_all()
            .build(),
    }
}

/// Accepts until `stop` changes, then lets every connection end and returns.
pub(super) fn run(
    runtime: tokio::runtime::Runtime,
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    runtime.block_on(async move {
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => return eprintln!("h2lab: tokio listener: {e}"),
        };
        let mut tasks = JoinSet::new();
        let mut next_id = 0u64;
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((sock, _peer)) => {
                        next_id += 1;
                        shared.counters.accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tasks.spawn(connection(next_id, sock, shared.clone(), stop.clone()));
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        eprintln!("h2lab: accept: {e}");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                },
            }
        }
        drop(listener);
        // Every connection watches `stop` too: they end promptly.
        while tasks.join_next().await.is_some() {}
    });
}

async fn connection(id: u64, sock: TcpStream, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let mut responses = 0;
    let result = async {
        let tls = {
            let _span = trace::action(id, Name::Accept, NO_STATE);
            sock.set_nodelay(shared.nodelay)?;
            shared.acceptor.session()?
        };
        let writes = &shared.counters.writes;
        match shared.engine {
            Engine::Mini => {
                let sock = Traced::new(id, sock, writes, false);
                serve_mini(sock, tls, &mut responses, stop).await
            }
            Engine::H2 => {
                let mut stop = stop;
                let provider = shared.acceptor.provider();
                tokio::select! {
                    r = serve_h2_on(id, sock, tls, provider, &mut responses, writes) => r,
                    _ = stop.changed() => Ok(()),
                }
            }
        }
    }
    .await;
    shared.finish(id, responses, result);
}

async fn serve_mini(
    mut sock: Traced<'_>,
    tls: Box<dyn TlsSession>,
    responses: &mut u64,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ConnError> {
    let mut pipeline = Pipeline::new(tls, sock.client);
    let mut read = vec![0; READ_BUF].into_boxed_slice();
    let mut wire = Vec::with_capacity(READ_BUF);
    let result = async {
        loop {
            flush(&mut sock, &mut pipeline, &mut wire).await?;
            if pipeline.is_closed() {
                return Ok(());
            }
            tokio::select! {
                ready = sock.sock.readable() => ready?,
                _ = stop.changed() => return Ok(()),
            };
            let n = match sock.try_read(&mut read) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                pipeline.handle_eof()?;
                return flush(&mut sock, &mut pipeline, &mut wire).await;
            }
            pipeline.handle_read(&read[..n])?;
        }
    }
    .await;
    if result.is_err() {
        // Send what is due (a GOAWAY, a TLS alert) before closing.
        let _ = flush(&mut sock, &mut pipeline, &mut wire).await;
    }
    *responses = pipeline.responses();
    result
}

async fn flush(
    sock: &mut Traced<'_>,
    pipeline: &mut Pipeline,
    wire: &mut Vec<u8>,
) -> Result<(), ConnError> {
    pipeline.poll_output(wire)?;
    if !wire.is_empty() {
        sock.write_all(wire).await?;
        wire.clear();
    }
    Ok(())
}

/// The `h2` engine on a tokio socket: straight on it for h2c, otherwise
/// through our TLS session.
pub(super) async fn serve_h2_on(
    client: u64,
    sock: TcpStream,
    tls: Box<dyn TlsSession>,
    provider: TlsProvider,
    responses: &mut u64,
    writes: &AtomicU64,
) -> Result<(), ConnError> {
    if provider == TlsProvider::None {
        // The socket carries the frames themselves: trace them there.
        let sock = Traced::new(client, sock, writes, true);
        return Ok(crate::engine::h2::serve(sock, responses).await?);
    }
    let sock = Traced::new(client, sock, writes, false);
    Ok(crate::engine::h2::serve(TlsStream::new(client, sock, tls), responses).await?)
}

/// A tokio socket whose read and write calls are traced (one span per
/// system call, never across an `.await`) and whose writes are counted.
pub(super) struct Traced<'a> {
    sock: TcpStream,
    client: u64,
    writes: &'a AtomicU64,
    /// For h2c under the `h2` engine: frame events from the raw bytes.
    frames: Option<Box<(FrameScanner, FrameScanner)>>,
}

impl<'a> Traced<'a> {
    fn new(client: u64, sock: TcpStream, writes: &'a AtomicU64, scan_frames: bool) -> Self {
        let frames =
            scan_frames.then(|| Box::new((FrameScanner::inbound(), FrameScanner::outbound())));
        Self {
            sock,
            client,
            writes,
            frames,
        }
    }

    /// One read system call; `WouldBlock` when the socket has nothing.
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let span = trace::action(self.client, Name::ReadSocket, NO_STATE);
        let n = self.sock.try_read(buf)?;
        span.bytes(n);
        if let Some(frames) = self.frames.as_mut().filter(|_| trace::frames_enabled()) {
            let client = self.client;
            frames.0.scan(&buf[..n], |h| trace::frame(client, false, h));
        }
        Ok(n)
    }

    /// One write system call; `WouldBlock` when the socket is full.
    fn try_write(&mut self, data: &[u8]) -> io::Result<usize> {
        let span = trace::action(self.client, Name::WriteSocket, NO_STATE);
        let n = self.sock.try_write(data)?;
        span.bytes(n);
        self.writes.fetch_add(1, Ordering::Relaxed);
        if let Some(frames) = self.frames.as_mut().filter(|_| trace::frames_enabled()) {
            let client = self.client;
            frames.1.scan(&data[..n], |h| trace::frame(client, true, h));
        }
        Ok(n)
    }

    async fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            self.sock.writable().await?;
            match self.try_write(data) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl AsyncRead for Traced<'_> {
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
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Traced<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            ready!(this.sock.poll_write_ready(cx))?;
            match this.try_write(data) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
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
