//! The blocking dispatches: `single` serves each connection on the accept
//! thread itself; `thread` gives each connection a thread of its own.
//! The `h2` engine gets a current-thread tokio runtime per connection.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::pipeline::Pipeline;
use super::{ConnError, Engine, Shared};
use crate::tls::{TlsProvider, TlsSession};
use crate::trace::{self, Name, NO_STATE};

/// Octets read from a socket at once.
pub const READ_BUF: usize = 16 * 1024;
/// Pause after an accept error such as EMFILE, so the loop does not spin.
pub(super) const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// Accepts until the server stops. `threaded`: a thread per connection
/// (`thread`); otherwise served one after the other on this thread (`single`).
pub(super) fn accept_loop(listener: TcpListener, threaded: bool, shared: Arc<Shared>) {
    let mut next_id = 0u64;
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    loop {
        let sock = match listener.accept() {
            Ok((sock, _peer)) => sock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if shared.stopping.load(Ordering::SeqCst) {
                    break;
                }
                eprintln!("h2lab: accept: {e}");
                std::thread::sleep(ACCEPT_ERROR_PAUSE);
                continue;
            }
        };
        next_id += 1;
        let id = next_id;
        if !shared.register(id, &sock) {
            break; // stopping: this was the wake-up connection or a late client
        }
        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        if !threaded {
            handle(id, sock, &shared);
            continue;
        }
        workers.retain(|w| !w.is_finished());
        let conn_shared = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("h2lab-conn-{id}"))
            .spawn(move || conn_shared.traced(|| handle(id, sock, &conn_shared)));
        match spawned {
            Ok(w) => workers.push(w),
            Err(e) => {
                // The socket went with the failed closure: it is closed.
                shared.finish(id, 0, Err(ConnError::Io(e)));
                shared.unregister(id);
            }
        }
    }
    drop(listener);
    for w in workers {
        let _ = w.join();
    }
}

/// Serves one client and accounts for it.
fn handle(id: u64, sock: TcpStream, shared: &Shared) {
    let mut responses = 0;
    let accepted = {
        let _span = trace::action(id, Name::Accept, NO_STATE);
        sock.set_nodelay(shared.nodelay)
            .map_err(ConnError::from)
            .and_then(|()| Ok(shared.acceptor.session()?))
    };
    let result = accepted.and_then(|tls| {
        let writes = &shared.counters.writes;
        match shared.engine {
            Engine::Mini => serve_mini(id, sock, tls, &mut responses, writes),
            Engine::H2 => {
                let provider = shared.acceptor.provider();
                serve_h2(id, sock, tls, provider, &mut responses, writes)
            }
        }
    });
    shared.finish(id, responses, result);
    shared.unregister(id);
}

/// A socket whose reads and writes are traced, and whose write calls are
/// counted in the server's `writes`.
struct Traced<'a> {
    client: u64,
    sock: TcpStream,
    writes: &'a AtomicU64,
}

impl Traced<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let span = trace::action(self.client, Name::ReadSocket, NO_STATE);
        let n = self.sock.read(buf)?;
        span.bytes(n);
        Ok(n)
    }

    fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let span = trace::action(self.client, Name::WriteSocket, NO_STATE);
            match self.sock.write(data) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    span.bytes(n);
                    data = &data[n..];
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

fn serve_mini(
    client: u64,
    sock: TcpStream,
    tls: Box<dyn TlsSession>,
    responses: &mut u64,
    writes: &AtomicU64,
) -> Result<(), ConnError> {
    let mut sock = Traced {
        client,
        sock,
        writes,
    };
    let mut pipeline = Pipeline::new(tls, client);
    let mut read = vec![0; READ_BUF].into_boxed_slice();
    let mut wire = Vec::with_capacity(READ_BUF);
    let result = run_mini(&mut sock, &mut pipeline, &mut read, &mut wire);
    if result.is_err() {
        // Send what is due (a GOAWAY, a TLS alert) before closing; the
        // client may be gone already, so errors here change nothing.
        let _ = flush(&mut sock, &mut pipeline, &mut wire);
    }
    *responses = pipeline.responses();
    result
}

fn run_mini(
    sock: &mut Traced,
    pipeline: &mut Pipeline,
    read: &mut [u8],
    wire: &mut Vec<u8>,
) -> Result<(), ConnError> {
    loop {
        flush(sock, pipeline, wire)?;
        if pipeline.is_closed() {
            return Ok(());
        }
        let n = match sock.read(read) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            pipeline.handle_eof()?;
            return flush(sock, pipeline, wire);
        }
        pipeline.handle_read(&read[..n])?;
    }
}

/// Encrypts what the engine queued and writes it all to the socket: one
/// write per chunk read, however many responses it holds.
fn flush(sock: &mut Traced, pipeline: &mut Pipeline, wire: &mut Vec<u8>) -> Result<(), ConnError> {
    pipeline.poll_output(wire)?;
    if !wire.is_empty() {
        sock.write_all(wire)?;
        wire.clear();
    }
    Ok(())
}

fn serve_h2(
    client: u64,
    sock: TcpStream,
    tls: Box<dyn TlsSession>,
    provider: TlsProvider,
    responses: &mut u64,
    writes: &AtomicU64,
) -> Result<(), ConnError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    sock.set_nonblocking(true)?;
    runtime.block_on(async {
        let sock = tokio::net::TcpStream::from_std(sock)?;
        super::tokio_loop::serve_h2_on(client, sock, tls, provider, responses, writes).await
    })
}
