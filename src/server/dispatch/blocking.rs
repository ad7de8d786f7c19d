//! The blocking dispatches: `single` serves each connection on the accept
//! thread itself; `thread` gives each connection a thread of its own.
//! The `h2` engine gets a current-thread tokio runtime per connection.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::server::conn::{self, ConnError, MiniConn};
use crate::server::io::{interrupted, SocketTrace, StdSocket, ACCEPT_ERROR_PAUSE};
use crate::server::shared::Shared;
use crate::server::Engine;

/// Accepts until the server stops. `threaded`: a thread per connection
/// (`thread`); otherwise served one after the other on this thread (`single`).
pub fn accept_loop(listener: TcpListener, threaded: bool, shared: Arc<Shared>) {
    let mut next_id = 0u64;
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    loop {
        let sock = match listener.accept() {
            Ok((sock, _peer)) => sock,
            Err(e) if interrupted(&e) => continue,
            Err(e) => {
                if shared.is_stopping() {
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
        shared.accepted();
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
    let writes = &shared.counters.writes;
    let result = shared
        .accept(id, |nodelay| sock.set_nodelay(nodelay))
        .and_then(|tls| match shared.engine {
            Engine::Mini => {
                let sock = StdSocket {
                    sock,
                    trace: SocketTrace::new(id, writes, false),
                };
                serve_mini(sock, MiniConn::new(tls, id), &mut responses)
            }
            Engine::H2 => {
                let provider = shared.acceptor.provider();
                conn::h2::serve_blocking(id, sock, tls, provider, &mut responses, writes)
            }
        });
    shared.finish(id, responses, result);
    shared.unregister(id);
}

fn serve_mini(
    mut sock: StdSocket,
    mut conn: MiniConn,
    responses: &mut u64,
) -> Result<(), ConnError> {
    let result = run_mini(&mut sock, &mut conn);
    if result.is_err() {
        // Send what is due (a GOAWAY, a TLS alert) before closing; the
        // client may be gone already, so errors here change nothing.
        let _ = flush(&mut sock, &mut conn);
    }
    *responses = conn.responses();
    result
}

fn run_mini(sock: &mut StdSocket, conn: &mut MiniConn) -> Result<(), ConnError> {
    loop {
        flush(sock, conn)?;
        if conn.is_done() {
            return Ok(());
        }
        let n = sock.read(conn.read_buf())?;
        conn.handle_read(n)?;
    }
}

/// Writes everything due: one write per chunk read, however many
/// responses it holds.
fn flush(sock: &mut StdSocket, conn: &mut MiniConn) -> Result<(), ConnError> {
    let out = conn.output()?;
    if !out.is_empty() {
        sock.write_all(out)?;
    }
    conn.written();
    Ok(())
}
