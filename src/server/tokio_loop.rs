//! The `tokio` dispatch (the seed's cl-async/libuv `:async`): a task per
//! connection on a current-thread runtime, or a multi-thread one with
//! `threads > 0`. The mini engine runs through the same [`Pipeline`] as the
//! blocking dispatches; the `h2` engine over [`TlsStream`].

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::blocking::{ACCEPT_ERROR_PAUSE, READ_BUF};
use super::pipeline::Pipeline;
use super::tls_stream::TlsStream;
use super::{ConnError, Engine, Shared};
use crate::tls::{TlsProvider, TlsSession};

/// A runtime for the dispatch: current-thread for `threads == 0`.
pub(super) fn runtime(threads: usize) -> io::Result<tokio::runtime::Runtime> {
    match threads {
        0 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .thread_name("h2lab-tokio")
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
        sock.set_nodelay(shared.nodelay)?;
        let tls = shared.acceptor.session()?;
        let writes = &shared.counters.writes;
        match shared.engine {
            Engine::Mini => {
                serve_mini(Counted { io: sock, writes }, tls, &mut responses, stop).await
            }
            Engine::H2 => {
                let mut stop = stop;
                let provider = shared.acceptor.provider();
                tokio::select! {
                    r = serve_h2_on(sock, tls, provider, &mut responses, writes) => r,
                    _ = stop.changed() => Ok(()),
                }
            }
        }
    }
    .await;
    shared.finish(id, responses, result);
}

async fn serve_mini(
    mut sock: Counted<'_, TcpStream>,
    tls: Box<dyn TlsSession>,
    responses: &mut u64,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ConnError> {
    let mut pipeline = Pipeline::new(tls);
    let mut read = vec![0; READ_BUF].into_boxed_slice();
    let mut wire = Vec::with_capacity(READ_BUF);
    let result = async {
        loop {
            flush(&mut sock, &mut pipeline, &mut wire).await?;
            if pipeline.is_closed() {
                return Ok(());
            }
            let n = tokio::select! {
                n = sock.read(&mut read) => n?,
                _ = stop.changed() => return Ok(()),
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
    sock: &mut Counted<'_, TcpStream>,
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
    sock: TcpStream,
    tls: Box<dyn TlsSession>,
    provider: TlsProvider,
    responses: &mut u64,
    writes: &AtomicU64,
) -> Result<(), ConnError> {
    let sock = Counted { io: sock, writes };
    if provider == TlsProvider::None {
        return Ok(crate::engine::h2::serve(sock, responses).await?);
    }
    Ok(crate::engine::h2::serve(TlsStream::new(sock, tls), responses).await?)
}

/// An async socket whose write calls are counted in the server's `writes`.
pub(super) struct Counted<'a, T> {
    io: T,
    writes: &'a AtomicU64,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<'_, T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<'_, T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, data);
        if let Poll::Ready(Ok(_)) = polled {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
