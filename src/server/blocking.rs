//! The blocking dispatches: `single` serves each connection on the accept
//! thread itself; `thread` gives each connection a thread of its own.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{connection, Shared};

/// Pause after an accept error such as EMFILE, so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);

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
        match threaded {
            false => handle(id, sock, &shared),
            true => {
                workers.retain(|w| !w.is_finished());
                let conn_shared = shared.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("h2lab-conn-{id}"))
                    .spawn(move || handle(id, sock, &conn_shared));
                match spawned {
                    Ok(w) => workers.push(w),
                    Err(e) => {
                        // The socket went with the failed closure: it is closed.
                        eprintln!("h2lab: client {id}: cannot start its thread: {e}");
                        shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                        shared.unregister(id);
                    }
                }
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
    let result = shared
        .acceptor
        .session()
        .map_err(connection::ConnError::from)
        .and_then(|tls| connection::serve(sock, tls, &mut responses));
    shared
        .counters
        .responses
        .fetch_add(responses, Ordering::Relaxed);
    if let Err(e) = result {
        shared.counters.failed.fetch_add(1, Ordering::Relaxed);
        // A stop shuts sockets down on purpose: not the client's fault.
        if !shared.stopping.load(Ordering::SeqCst) {
            eprintln!("h2lab: client {id}: {e:#}");
        }
    }
    shared.unregister(id);
}
