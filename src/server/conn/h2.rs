//! The driver of the `h2` engine: the crate runs on a tokio socket, straight
//! on it for h2c, otherwise through our own TLS session ([`TlsStream`]), so
//! it gets exactly the mini engine's certificate, ALPN and suites. The
//! tokio dispatch awaits [`serve`]; the blocking ones give each connection
//! a current-thread runtime of its own ([`serve_blocking`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};

use super::idle::{self, Limit, Progress};
use super::socket::{SocketTrace, TokioSocket};
use super::{ConnError, TlsStream};
use crate::engine::h2 as engine;
use crate::engine::Handler;
use crate::server::trim::Trim;
use crate::tls::{TlsProvider, TlsSession};
use crate::trace::{self, Name, NO_STATE};

/// What the `h2` driver takes from the server it runs in (a dispatch makes
/// it from its `Shared`: the connection stack imports nothing above it).
pub struct Settings<'a> {
    pub provider: TlsProvider,
    pub limits: idle::Limits,
    /// The server's count of socket writes.
    pub writes: &'a std::sync::atomic::AtomicU64,
    pub trim: &'a Trim,
    pub handler: Handler,
    /// `--offload`: `cpu:` and `sleep:` work on the runtime's blocking pool.
    pub offload: bool,
}

/// Serves one connection until the client goes; `responses` counts what
/// was answered, also when it ends in an error.
pub async fn serve(
    client: u64,
    sock: tokio::net::TcpStream,
    tls: Box<dyn TlsSession>,
    shared: &Settings<'_>,
    responses: &mut u64,
) -> Result<(), ConnError> {
    let h2c = shared.provider == TlsProvider::None;
    // With an idle timeout, the frames the client sends are watched where
    // the plaintext passes: the socket on h2c, the TLS adapter otherwise.
    let progress = shared.limits.idle.map(|_| Arc::new(Progress::new()));
    // On h2c the socket carries the frames themselves: trace them there.
    let mut sock = TokioSocket {
        sock,
        trace: SocketTrace::new(client, shared.writes, h2c),
    };
    match h2c {
        true => {
            if let Some(p) = &progress {
                sock.trace.watch(p.clone());
            }
            drive(client, sock, shared, progress, responses).await
        }
        false => {
            let mut io = TlsStream::new(client, sock, tls);
            if let Some(p) = &progress {
                io.watch(p.clone());
            }
            drive(client, io, shared, progress, responses).await
        }
    }
}

/// The handshake within its deadline, then the connection, ended if the
/// client makes no progress for the idle timeout.
async fn drive<T>(
    client: u64,
    io: T,
    shared: &Settings<'_>,
    progress: Option<Arc<Progress>>,
    responses: &mut u64,
) -> Result<(), ConnError>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let handshaken = engine_slices(client, engine::handshake(io, shared.handler.max_streams));
    let limits = shared.limits;
    let deadline = match &progress {
        Some(p) => p.next_deadline(limits, false),
        None => limits
            .handshake
            .map(|t| (Instant::now() + t, Limit::Handshake(t))),
    };
    let handshaken = idle::within(deadline, async { Ok(handshaken.await?) }).await?;
    shared.trim.note();
    let handler = shared.handler.clone();
    let offload = shared.offload;
    // Each request's work (its route's): done here, or waited for (a
    // timer for `delay:`, the runtime's blocking pool with `--offload`).
    let mut work = move |work: crate::engine::Work| -> Option<engine::Wait> {
        if let Some(d) = work.delay() {
            return Some(Box::pin(tokio::time::sleep(d)));
        }
        if offload && work.holds_a_thread() {
            let task = tokio::task::spawn_blocking(move || super::do_work(client, &work));
            return Some(Box::pin(async {
                let _ = task.await;
            }));
        }
        super::do_work(client, &work);
        None
    };
    let serve = async {
        let served = engine::serve(handshaken, responses, &mut work, handler);
        Ok(engine_slices(client, served).await?)
    };
    match (progress, limits.idle) {
        (Some(p), Some(t)) => idle::watch(serve, t, &p).await,
        _ => serve.await,
    }
}

/// Runs `fut` with every poll of it in an `engine` slice: the time spent
/// driving the h2 connection and the service, with the socket and TLS steps
/// it makes nested inside, and the frame events inside it.
async fn engine_slices<F: Future>(client: u64, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        let _span = trace::action(client, Name::Engine, NO_STATE);
        fut.as_mut().poll(cx)
    })
    .await
}

/// [`serve`] on a blocking socket, in a current-thread runtime made for it.
pub fn serve_blocking(
    client: u64,
    sock: std::net::TcpStream,
    tls: Box<dyn TlsSession>,
    shared: &Settings<'_>,
    responses: &mut u64,
) -> Result<(), ConnError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    sock.set_nonblocking(true)?;
    runtime.block_on(async {
        let sock = tokio::net::TcpStream::from_std(sock)?;
        serve(client, sock, tls, shared, responses).await
    })
}
