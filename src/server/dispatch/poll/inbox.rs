//! A reactor's inbox: what reaches its loop from other threads (the
//! connections another reactor hands over, the requests whose offloaded
//! work a worker has done), and the waker that tells it so (also how a
//! stop reaches it).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;

use mio::net::TcpStream;

use super::WAKER;

/// How the loop is woken: mio's waker, or an eventfd the ring reads.
enum Waker {
    Mio(mio::Waker),
    Event(OwnedFd),
}

/// Connections handed to a reactor, requests whose offloaded work is done,
/// and its waker (also how a stop reaches it).
pub struct Inbox {
    queue: Mutex<Vec<(u64, TcpStream)>>,
    /// `--offload`: (client key, client id, stream) of finished work.
    done: Mutex<Vec<(usize, u64, u32)>>,
    waker: Waker,
}

impl Inbox {
    pub fn new(registry: &mio::Registry) -> std::io::Result<Self> {
        Ok(Self {
            queue: Mutex::new(Vec::new()),
            done: Mutex::new(Vec::new()),
            waker: Waker::Mio(mio::Waker::new(registry, WAKER)?),
        })
    }

    /// For a ring: woken through an eventfd the ring keeps a read on.
    pub fn with_eventfd() -> std::io::Result<Self> {
        use rustix::event::{eventfd, EventfdFlags};
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(Self {
            queue: Mutex::new(Vec::new()),
            done: Mutex::new(Vec::new()),
            waker: Waker::Event(fd),
        })
    }

    /// The eventfd, for an inbox made [`Inbox::with_eventfd`].
    pub fn event_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.waker {
            Waker::Event(fd) => Some(fd.as_fd()),
            Waker::Mio(_) => None,
        }
    }

    pub fn wake(&self) {
        match &self.waker {
            Waker::Mio(waker) => {
                let _ = waker.wake();
            }
            // The counter only grows: a full one (never, at one wake per
            // event) would say EAGAIN, and the loop is awake anyway.
            Waker::Event(fd) => {
                let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
            }
        }
    }

    /// Hands a connection over and wakes the reactor.
    pub fn push(&self, id: u64, sock: TcpStream) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, sock));
        self.wake();
    }

    pub fn take(&self) -> Vec<(u64, TcpStream)> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A worker finished the work of `stream` of client `key` (`id`).
    pub fn finished(&self, key: usize, id: u64, stream: u32) {
        self.done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((key, id, stream));
        self.wake();
    }

    pub fn take_finished(&self) -> Vec<(usize, u64, u32)> {
        std::mem::take(&mut *self.done.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
