//! The dispatches: how connections are accepted and scheduled. Each one
//! owns sockets and scheduling only, drives the connection stack of
//! [`super::conn`] through the helpers of [`super::io`], and shares state
//! through [`super::shared::Shared`]; none imports another.

mod blocking;
mod poll;
mod tokio;

use std::net::{Shutdown, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::shared::Shared;
use super::{Dispatch, ServerConfig, ServerError};
pub use poll::{uring_skip_test, uring_unavailable};

/// How `stop` wakes a dispatch's thread once the stop flag is set.
pub enum Wake {
    /// A blocking `accept()`: its listener, shut down to end it.
    Accept(Arc<TcpListener>),
    /// Every reactor's inbox (its waker).
    Poll(Vec<Arc<poll::Inbox>>),
    Tokio(::tokio::sync::watch::Sender<bool>),
}

impl Wake {
    pub fn wake(&self) {
        match self {
            Wake::Accept(listener) => {
                // Linux ends a blocked accept() on a listener shut down (with
                // EINVAL), and the loop sees `stopping`. Unlike connecting
                // to it, this needs no new descriptor, which a server at
                // its fd limit does not have.
                let _ = socket2::SockRef::from(&**listener).shutdown(Shutdown::Both);
            }
            Wake::Poll(inboxes) => {
                for inbox in inboxes {
                    inbox.wake();
                }
            }
            Wake::Tokio(tx) => {
                let _ = tx.send(true);
            }
        }
    }
}

/// Starts `config.dispatch` on `listeners` (one, or one per reactor for
/// `poll` with `SO_REUSEPORT`) in a thread of its own, or a thread per
/// reactor.
pub fn spawn(
    config: &ServerConfig,
    mut listeners: Vec<TcpListener>,
    shared: Arc<Shared>,
) -> Result<(Wake, Vec<JoinHandle<()>>), ServerError> {
    let dispatch = config.dispatch;
    let thread = std::thread::Builder::new().name(format!("h2lab-{dispatch}"));
    let listener = listeners.remove(0);
    let (wake, handle) = match dispatch {
        Dispatch::Single | Dispatch::Thread => {
            let listener = Arc::new(listener);
            let wake = Wake::Accept(listener.clone());
            let threaded = dispatch == Dispatch::Thread;
            let run = move || {
                let s = shared.clone();
                s.traced(|| blocking::accept_loop(listener, threaded, shared))
            };
            (wake, thread.spawn(run))
        }
        Dispatch::Tokio => {
            let runtime = tokio::runtime(config.threads, config.offload, shared.dispatch.clone())
                .map_err(ServerError::Spawn)?;
            listener.set_nonblocking(true).map_err(ServerError::Spawn)?;
            let (tx, rx) = ::tokio::sync::watch::channel(false);
            let run = move || {
                let s = shared.clone();
                s.traced(|| tokio::run(runtime, listener, shared, rx))
            };
            (Wake::Tokio(tx), thread.spawn(run))
        }
        Dispatch::Poll | Dispatch::Uring => {
            listeners.insert(0, listener);
            return poll::spawn(config, listeners, shared);
        }
    };
    Ok((wake, vec![handle.map_err(ServerError::Spawn)?]))
}
