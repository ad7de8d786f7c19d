//! The `poll` dispatch (the seed's `:async-custom`): one thread, a mio loop,
//! clients in a slab. Each client's next step is chosen by the pure
//! [`state::select_next_action`] from its flags until none is possible; then
//! the next ready client; then poll. TLS works on memory buffers only.
//! With `--threads N`, N such loops ([`reactors`]). The `uring` dispatch
//! drives the same clients on io_uring completions ([`uring`]).

mod client;
mod inbox;
mod offload;
mod place;
mod reactors;
mod run_queue;
pub mod state;
mod uring;

use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::buffers::BufPool;
use crate::server::conn::{ConnError, Pipeline};
use crate::server::io::{interrupted, would_block, ACCEPT_ERROR_PAUSE};
use crate::server::shared::Shared;
use crate::server::trim;
use crate::trace::{self, Flags, Name, NO_STATE};
use client::{Client, Turn};
pub use inbox::Inbox;
use place::Reactor;
pub use reactors::spawn;
use run_queue::{RunQueue, Sweep};
pub use uring::{skip_test as uring_skip_test, unavailable as uring_unavailable};

pub const LISTENER: Token = Token(0);
pub const WAKER: Token = Token(1);
/// Client tokens are slab keys shifted past the two above.
const FIRST_CLIENT: usize = 2;
/// Events handled per poll call.
const EVENTS_CAPACITY: usize = 1024;
/// Actions one client may take before the others get their turn.
const MAX_ACTIONS_PER_TURN: usize = 256;

/// Limits and switches of the loop.
pub struct Options {
    pub max_clients: Option<usize>,
    pub idle_timeout: Option<Duration>,
    pub handshake_timeout: Option<Duration>,
    /// `--offload N`: the workers that do the requests' work.
    pub offload: Option<offload::Pool>,
}

/// The loop's own state.
pub struct PollLoop {
    poll: Poll,
    /// None on a reactor that is handed its connections.
    listener: Option<TcpListener>,
    reactor: Reactor,
    /// `handoff`: the inbox the next connection goes to.
    next_inbox: usize,
    /// After an accept error (EMFILE and the like), when to try again: the
    /// listener is edge-triggered, so no new event comes for the
    /// connections already waiting.
    accept_again_at: Option<Instant>,
    /// Said once per run of accept errors, not every pause.
    accept_failing: bool,
    clients: Slab<Client>,
    ready: VecDeque<usize>,
    /// `delay:`: when a client's engine wants the time (its next held
    /// answer is due), with the client's key and id.
    timers: BTreeSet<(Instant, usize, u64)>,
    pool: BufPool,
    shared: Arc<Shared>,
    options: Options,
}

impl PollLoop {
    /// Registers the listener, if this reactor has one; the reactor's
    /// inbox must have been made from `poll`'s registry.
    fn new(
        poll: Poll,
        listener: Option<std::net::TcpListener>,
        reactor: Reactor,
        shared: Arc<Shared>,
        options: Options,
    ) -> io::Result<Self> {
        let listener = match listener {
            Some(listener) => {
                listener.set_nonblocking(true)?;
                let mut listener = TcpListener::from_std(listener);
                poll.registry()
                    .register(&mut listener, LISTENER, Interest::READABLE)?;
                Some(listener)
            }
            None => None,
        };
        Ok(Self {
            poll,
            listener,
            next_inbox: reactor.index,
            accept_again_at: None,
            accept_failing: false,
            reactor,
            clients: Slab::new(),
            ready: VecDeque::new(),
            timers: BTreeSet::new(),
            pool: BufPool::default(),
            shared,
            options,
        })
    }

    /// Runs until the server stops; then every client is closed.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        let mut sweep = Sweep::new(self.options.idle_timeout, self.options.handshake_timeout);
        // The quiet spell the heap trim waits for.
        let mut quiet = trim::Quiet::new(&self.shared.trim);
        // Traced only: how long the loop was runnable but not running.
        let mut run_queue = trace::frames_enabled().then(RunQueue::open).flatten();
        while !self.shared.is_stopping() {
            let mut timeout = sweep.timeout(self.accept_again_at, self.timers.first().map(|t| t.0));
            // After connections came or went, a quiet spell gives the
            // freed heap back (see `trim`). Quiet since the turn that last
            // saw one come or go: a wait a timer cut short counts, but the
            // timers do not restart the spell.
            let trim_at = quiet.trim_at(&self.shared.trim, &mut timeout);
            let wait = trace::action(0, Name::PollWait, NO_STATE);
            let began = run_queue.as_ref().map(|_| Instant::now());
            let polled = self.poll.poll(&mut events, timeout);
            if let (Some(run_queue), Some(began)) = (&mut run_queue, began) {
                wait.bytes(events.iter().count());
                run_queue.after_wait(&wait, began);
            }
            drop(wait);
            if let Err(e) = polled {
                if interrupted(&e) {
                    continue;
                }
                eprintln!("h2lab: poll: {e}");
                break;
            }
            if trim_at.is_some_and(|at| events.is_empty() && Instant::now() >= at) {
                self.shared.trim.release();
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(),
                    // A stop (checked by the loop), connections handed over,
                    // or offloaded work done.
                    WAKER => {
                        self.take_handed();
                        self.take_finished();
                    }
                    Token(t) => {
                        let key = t - FIRST_CLIENT;
                        // A stale event for a closed client is harmless.
                        if let Some(c) = self.clients.get_mut(key) {
                            // Errors and hang-ups show up as a failing read.
                            if event.is_readable() || event.is_read_closed() || event.is_error() {
                                c.flags.set(Flags::CAN_READ, true);
                            }
                            if event.is_writable() || event.is_write_closed() {
                                c.flags.set(Flags::CAN_WRITE, true);
                            }
                            self.enqueue(key);
                        }
                    }
                }
            }
            if self.accept_again_at.is_some_and(|at| Instant::now() >= at) {
                self.accept_all();
            }
            self.fire_timers(Instant::now());
            self.run_ready();
            if sweep.due() {
                self.close_idle();
            }
        }
        for key in self.clients.iter().map(|(k, _)| k).collect::<Vec<_>>() {
            self.close(key);
        }
        // Handed over but never served.
        for (id, sock) in self.reactor.inbox.take() {
            drop(sock);
            self.reactor.common.closed();
            self.shared.finish(id, 0, Ok(()));
        }
    }

    /// Serves the connections another reactor handed over.
    fn take_handed(&mut self) {
        for (id, sock) in self.reactor.inbox.take() {
            self.serve(id, sock);
        }
    }

    /// Offloaded work done: those answers may go.
    fn take_finished(&mut self) {
        let finished = self.reactor.inbox.take_finished();
        client::release_finished(finished, &mut self.clients, &mut self.ready);
    }

    /// Clients whose held answers are due by `now` get the time and a turn.
    fn fire_timers(&mut self, now: Instant) {
        client::fire_timers(&mut self.timers, &mut self.clients, &mut self.ready, now);
    }

    /// After a client's turn: its engine's next due time, and the work of
    /// its new requests to the workers.
    fn after_turn(&mut self, key: usize) {
        let Some(c) = self.clients.get_mut(key) else {
            return;
        };
        c.after_turn(
            key,
            &mut self.timers,
            self.options.offload.as_ref(),
            &self.reactor.inbox,
        );
    }

    fn enqueue(&mut self, key: usize) {
        client::enqueue(&mut self.clients, &mut self.ready, key);
    }

    fn run_ready(&mut self) {
        while let Some(key) = self.ready.pop_front() {
            let Some(c) = self.clients.get_mut(key) else {
                continue;
            };
            c.queued = false;
            let turn = c.take_turn(&self.shared.counters.writes, &mut self.pool);
            if c.newly_established() {
                self.shared.trim.note();
            }
            match turn {
                Turn::Idle => self.after_turn(key),
                Turn::More => {
                    self.after_turn(key);
                    self.enqueue(key);
                }
                Turn::Closed => self.close(key),
            }
        }
    }

    fn accept_all(&mut self) {
        self.accept_again_at = None;
        loop {
            // Stopping: what is not accepted now is not half-served after.
            let Some(listener) = self
                .listener
                .as_ref()
                .filter(|_| !self.shared.is_stopping())
            else {
                return;
            };
            let (sock, _peer) = match listener.accept() {
                Ok(s) => s,
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => continue,
                Err(e) => {
                    // EMFILE and the like: try again after a pause, without
                    // waiting for an event (none comes for who waits).
                    if !self.accept_failing {
                        eprintln!("h2lab: accept: {e} (trying again every {ACCEPT_ERROR_PAUSE:?})");
                    }
                    self.accept_failing = true;
                    self.accept_again_at = Some(Instant::now() + ACCEPT_ERROR_PAUSE);
                    return;
                }
            };
            self.accept_failing = false;
            let id = self.reactor.common.next_id();
            self.shared.accepted();
            if !self.reactor.common.try_open(self.options.max_clients) {
                // Explicit refusal: closed at once, counted.
                let _span = trace::action(id, Name::Refuse, NO_STATE);
                self.shared.refused();
                drop(sock);
                continue;
            }
            match self.reactor.handoff.len() {
                0 => self.serve(id, sock),
                n => {
                    let to = self.next_inbox;
                    self.next_inbox = (to + 1) % n;
                    match to == self.reactor.index {
                        true => self.serve(id, sock),
                        false => self.reactor.handoff[to].push(id, sock),
                    }
                }
            }
        }
    }

    /// Takes on a connection counted open.
    fn serve(&mut self, id: u64, sock: TcpStream) {
        if let Err(e) = self.add_client(id, sock) {
            self.reactor.common.closed();
            self.shared.finish(id, 0, Err(e));
        }
    }

    fn add_client(&mut self, id: u64, mut sock: TcpStream) -> Result<(), ConnError> {
        let tls = self
            .shared
            .accept(id, |nodelay| sock.set_nodelay(nodelay))?;
        let entry = self.clients.vacant_entry();
        let key = entry.key();
        self.poll.registry().register(
            &mut sock,
            Token(key + FIRST_CLIENT),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        entry.insert(Client::new(
            id,
            sock,
            Pipeline::new(
                tls,
                id,
                self.shared.handler.clone(),
                self.options.offload.is_some(),
            ),
        ));
        // Our SETTINGS (h2c) can go out before the first event.
        self.enqueue(key);
        Ok(())
    }

    fn close(&mut self, key: usize) {
        let mut c = self.clients.remove(key);
        self.reactor.common.closed();
        let _ = self.poll.registry().deregister(&mut c.sock);
        c.finish(&self.shared);
    }

    /// Closes clients past the handshake deadline (no TLS handshake,
    /// preface and SETTINGS yet) or idle past the idle timeout.
    fn close_idle(&mut self) {
        let (idle, handshake) = (self.options.idle_timeout, self.options.handshake_timeout);
        for key in client::late(&self.clients, idle, handshake) {
            self.shared
                .counters
                .timed_out
                .fetch_add(1, Ordering::Relaxed);
            self.close(key);
        }
    }
}
