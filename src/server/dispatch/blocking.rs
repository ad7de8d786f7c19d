//! The blocking dispatches: `single` serves each connection on the accept
//! thread itself; `thread` gives each connection a thread of its own.
//! The `h2` engine gets a current-thread tokio runtime per connection.

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::server::conn::idle::{Limit, Limits, Progress};
use crate::server::conn::socket::{SocketTrace, StdSocket};
use crate::server::conn::{self, ConnError, MiniConn};
use crate::server::io::{interrupted, would_block, ACCEPT_ERROR_PAUSE};
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
                conn_shared.traced(|| {
                    handle(id, sock, &conn_shared);
                    // Before `running` says this thread is done: its
                    // thread-local records would otherwise go only as the
                    // thread ends, after a stop may have finished the trace.
                    trace::flush_this_thread();
                });
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
                let conn = MiniConn::new(tls, id, shared.handler.clone(), false);
                serve_mini(sock, conn, shared.limits, &mut responses)
            }
            Engine::H2 => {
                conn::h2::serve_blocking(id, sock, tls, &shared.h2_settings(), &mut responses)
            }
        });
    shared.finish(id, responses, result);
    shared.unregister(id);
}

fn serve_mini(
    mut sock: StdSocket,
    mut conn: MiniConn,
    limits: Limits,
    responses: &mut u64,
) -> Result<(), ConnError> {
    let progress = Progress::new();
    let result = run_mini(&mut sock, &mut conn, limits, &progress);
    if matches!(&result, Err(e) if !e.is_timeout()) {
        // Send what is due (a GOAWAY, a TLS alert) before closing; the
        // client may be gone already, so errors here change nothing. One
        // that does not take it holds the thread until a deadline or a
        // stop at most.
        let due = progress.next_deadline(limits, true);
        let _ = arm(&sock.sock, due).and_then(|()| flush(&mut sock, &mut conn));
    }
    *responses = conn.responses();
    result
}

/// Serves until the client is done. Each write and each read waits at most
/// until the nearest deadline (the handshake's until the client is
/// established, the idle timeout's from its last progress), by timeouts on
/// the socket set before them: two system calls a turn while a deadline is
/// due.
fn run_mini(
    sock: &mut StdSocket,
    conn: &mut MiniConn,
    limits: Limits,
    progress: &Progress,
) -> Result<(), ConnError> {
    // Whether timeouts are set on the socket, to clear them when none is
    // due any more.
    let mut armed = false;
    // Once established, for good (a closing engine no longer says so).
    let mut established = false;
    loop {
        established |= conn.is_established();
        let due = progress.next_deadline(limits, established);
        if due.is_some() || armed {
            arm(&sock.sock, due)?;
            armed = due.is_some();
        }
        flush(sock, conn).map_err(|e| missed(e, due))?;
        if conn.is_done() {
            return Ok(());
        }
        // `delay:`: an answer comes due before any deadline. Wait for it,
        // reading meanwhile if the client can still send. The wait is a
        // poll(2) with the exact time left: a socket timeout would round
        // it up to the kernel's tick (4 ms here).
        let timer = conn.pipeline().poll_timeout();
        if let Some(at) = timer.filter(|&at| due.is_none_or(|(d, _)| at < d)) {
            let left = at.saturating_duration_since(Instant::now());
            if conn.reads_no_more() {
                std::thread::sleep(left);
            } else if readable_within(&sock.sock, left)? {
                let n = sock.read(conn.read_buf())?;
                conn.handle_read(n)?;
                if conn.progressed() {
                    progress.note();
                }
            }
            conn.pipeline().handle_timeout(Instant::now());
            continue;
        }
        let n = sock
            .read(conn.read_buf())
            .map_err(|e| missed(e.into(), due))?;
        conn.handle_read(n)?;
        if conn.progressed() {
            progress.note();
        }
    }
}

/// Waits at most `left` for `sock` to have input (or an error, or EOF).
fn readable_within(sock: &TcpStream, left: Duration) -> std::io::Result<bool> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let timeout = Timespec {
        tv_sec: left.as_secs() as i64,
        tv_nsec: i64::from(left.subsec_nanos()),
    };
    let mut fds = [PollFd::new(sock, PollFlags::IN)];
    match poll(&mut fds, Some(&timeout)) {
        Ok(n) => Ok(n > 0),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Sets the socket's read and write timeouts to what is left until `due`
/// (none without a deadline). A deadline already past is its error.
fn arm(sock: &TcpStream, due: Option<(Instant, Limit)>) -> Result<(), ConnError> {
    let left = match due {
        Some((at, limit)) => match at.saturating_duration_since(Instant::now()) {
            left if left.is_zero() => return Err(limit.into()),
            left => Some(left),
        },
        None => None,
    };
    sock.set_read_timeout(left)?;
    sock.set_write_timeout(left)?;
    Ok(())
}

/// A socket timeout while a deadline was set is that deadline's limit.
fn missed(e: ConnError, due: Option<(Instant, Limit)>) -> ConnError {
    match (e, due) {
        (ConnError::Io(e), Some((_, limit)))
            if would_block(&e) || e.kind() == ErrorKind::TimedOut =>
        {
            limit.into()
        }
        (e, _) => e,
    }
}

/// Writes everything due: one write per chunk read, however many
/// responses it holds, and for large responses one write per pull of the
/// engine, until it waits for the client.
fn flush(sock: &mut StdSocket, conn: &mut MiniConn) -> Result<(), ConnError> {
    loop {
        let out = conn.output()?;
        if out.is_empty() {
            return Ok(());
        }
        sock.write_all(out)?;
        conn.written();
    }
}
