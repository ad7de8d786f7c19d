//! The blocking dispatches: `single` serves each connection on the accept
//! thread itself; `thread` gives each connection a thread of its own.
//! The `h2` engine gets a current-thread tokio runtime per connection.

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::server::conn::{self, ConnError, MiniConn};
use crate::server::io::{interrupted, would_block, SocketTrace, StdSocket, ACCEPT_ERROR_PAUSE};
use crate::server::shared::Shared;
use crate::server::Engine;
use crate::trace::{self, Name, NO_STATE};

/// Accepts until the server stops. `threaded`: a thread per connection
/// (`thread`); otherwise served one after the other on this thread
/// (`single`). A stop shuts the listener down, which ends `accept`.
pub fn accept_loop(listener: Arc<TcpListener>, threaded: bool, shared: Arc<Shared>) {
    let mut next_id = 0u64;
    let live = Arc::new(Live::default());
    // Said once per run of failures (EMFILE repeats every pause).
    let mut failing = false;
    loop {
        let sock = match listener.accept() {
            Ok((sock, _peer)) => sock,
            Err(e) if interrupted(&e) => continue,
            Err(e) => {
                if shared.is_stopping() {
                    break;
                }
                if !failing {
                    eprintln!("h2lab: accept: {e} (retrying every {ACCEPT_ERROR_PAUSE:?})");
                    failing = true;
                }
                std::thread::sleep(ACCEPT_ERROR_PAUSE);
                continue;
            }
        };
        next_id += 1;
        let id = next_id;
        shared.accepted();
        match shared.register(id, &sock) {
            Ok(true) => {}
            Ok(false) => break, // stopping: a late client
            Err(e) => {
                // No descriptor left to register it with, so a stop could
                // not end it: refused (closed at once), not served
                // unstoppably.
                if !failing {
                    eprintln!("h2lab: refusing clients: no descriptor to register them: {e}");
                    failing = true;
                }
                let _span = trace::action(id, Name::Refuse, NO_STATE);
                shared.refused();
                continue;
            }
        }
        failing = false;
        if !threaded {
            handle(id, sock, &shared);
            continue;
        }
        let conn_shared = shared.clone();
        let running = live.start();
        let spawned = std::thread::Builder::new()
            .name(format!("h2lab-conn-{id}"))
            .spawn(move || {
                conn_shared.traced(|| handle(id, sock, &conn_shared));
                drop(running);
            });
        // Not kept: a finished thread goes at once (its stack with it),
        // and `live` tells when all are done.
        if let Err(e) = spawned {
            // The socket went with the failed closure: it is closed.
            shared.finish(id, 0, Err(ConnError::Io(e)));
            shared.unregister(id);
        }
    }
    drop(listener);
    live.wait_all();
}

/// Connection threads still running: each holds a [`Running`] until its
/// very end.
#[derive(Default)]
struct Live {
    count: Mutex<usize>,
    done: Condvar,
}

struct Running(Arc<Live>);

impl Live {
    fn start(self: &Arc<Self>) -> Running {
        *self.count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Running(self.clone())
    }

    /// Returns once every connection thread has ended (a stop has shut
    /// their sockets down).
    fn wait_all(&self) {
        let count = self.count.lock().unwrap_or_else(|e| e.into_inner());
        let _none = self
            .done
            .wait_while(count, |n| *n > 0)
            .unwrap_or_else(|e| e.into_inner());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut count = self.0.count.lock().unwrap_or_else(|e| e.into_inner());
        *count -= 1;
        if *count == 0 {
            self.0.done.notify_all();
        }
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
                let conn = MiniConn::new(tls, id);
                serve_mini(sock, conn, shared.handshake_timeout, &mut responses)
            }
            Engine::H2 => conn::h2::serve_blocking(id, sock, tls, shared, &mut responses),
        });
    shared.finish(id, responses, result);
    shared.unregister(id);
}

fn serve_mini(
    mut sock: StdSocket,
    mut conn: MiniConn,
    handshake: Option<Duration>,
    responses: &mut u64,
) -> Result<(), ConnError> {
    let result = run_mini(&mut sock, &mut conn, handshake);
    if result.is_err() {
        // Send what is due (a GOAWAY, a TLS alert) before closing; the
        // client may be gone already, so errors here change nothing.
        let _ = flush(&mut sock, &mut conn);
    }
    *responses = conn.responses();
    result
}

/// Serves until the client is done. Until it is established, each read
/// waits at most until the handshake deadline (a receive timeout on the
/// socket, cleared once it is established).
fn run_mini(
    sock: &mut StdSocket,
    conn: &mut MiniConn,
    handshake: Option<Duration>,
) -> Result<(), ConnError> {
    let mut deadline = handshake.map(|t| (t, Instant::now() + t));
    loop {
        flush(sock, conn)?;
        if conn.is_done() {
            return Ok(());
        }
        if let Some((t, at)) = deadline {
            let left = at.saturating_duration_since(Instant::now());
            let established = conn.is_established();
            if !established && left.is_zero() {
                return Err(ConnError::HandshakeTimeout(t));
            }
            sock.sock.set_read_timeout((!established).then_some(left))?;
            if established {
                deadline = None;
            }
        }
        let n = match sock.read(conn.read_buf()) {
            Err(e)
                if deadline.is_some() && (would_block(&e) || e.kind() == ErrorKind::TimedOut) =>
            {
                let (t, _) = deadline.expect("checked");
                return Err(ConnError::HandshakeTimeout(t));
            }
            n => n?,
        };
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
