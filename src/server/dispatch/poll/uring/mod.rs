//! The `uring` dispatch: the `poll` dispatch's client state machine
//! (its [`Client`], its actions, its buffers) driven by io_uring
//! completions instead of readiness. One loop per reactor over
//! completions keyed by `user_data` (the operation, the client's slab key
//! and the low half of its id, so that a completion for a client gone
//! meanwhile is recognised): a multishot accept, a multishot receive per
//! client into the provided buffer ring ([`bufs`]), and one send per
//! client per turn with everything its turn wrote. `submit_and_wait`
//! submits the turn's sends and waits in one system call.
//!
//! What the kernel reads or writes stays alive until its completion: the
//! provided buffers and the ring's entries live as long as the ring (it
//! is dropped first); a send's buffer is the client's (`Conn::sending`)
//! or, once the client has closed, the loop's (`orphans`) until the
//! send completes; the eventfd counter the wake read fills is the
//! loop's. At the end the loop waits (at most 2 s) for every operation to
//! complete and leaks what it could not wait for rather than free it.

mod bufs;
mod conn;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use slab::Slab;

use super::client::{self, Client, Turn};
use super::place::Reactor;
use super::run_queue::{RunQueue, Sweep};
use super::Options;
use crate::buffers::{BufPool, READ_BUF};
use crate::server::conn::{ConnError, Pipeline};
use crate::server::io::ACCEPT_ERROR_PAUSE;
use crate::server::shared::Shared;
use crate::server::trim;
use crate::server::uring::{builder, explain, Unavailable, UringFeatures};
use crate::trace::{self, Flags, Name, NO_STATE};
use bufs::BufRing;
use conn::Conn;

/// Submission queue entries; the completion queue has four times as many
/// (and the kernel keeps what overflows it).
const ENTRIES: u32 = 1024;
/// Provided buffers: each is lent to its client only until that client's
/// turn in the same pass of the loop, so the ring needs only as many as
/// one drain of completions holds.
const BUFFERS: u16 = 512;
/// How long the end waits for the operations still in the kernel.
const END_WAIT: Duration = Duration::from_secs(2);

/// What a completion is for: the low 3 bits of its `user_data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Accept = 0,
    Recv = 1,
    Send = 2,
    Wake = 3,
    Cancel = 4,
}

/// `user_data`: the operation, the client's slab key, its id's low half.
fn token(op: Op, key: usize, id: u64) -> u64 {
    (op as u64) | ((key as u64 & 0x1FFF_FFFF) << 3) | ((id & 0xFFFF_FFFF) << 32)
}

fn untoken(data: u64) -> (Option<Op>, usize, u32) {
    let op = match data & 7 {
        0 => Op::Accept,
        1 => Op::Recv,
        2 => Op::Send,
        3 => Op::Wake,
        4 => Op::Cancel,
        _ => return (None, 0, 0),
    };
    (
        Some(op),
        ((data >> 3) & 0x1FFF_FFFF) as usize,
        (data >> 32) as u32,
    )
}

/// Why io_uring cannot serve here (a ring with `features` and a provided
/// buffer ring are set up and dropped), or nothing.
pub fn unavailable(features: UringFeatures) -> Option<Unavailable> {
    let ring = match builder(features).build(8) {
        Ok(ring) => ring,
        Err(e) => return Some(explain(&e)),
    };
    let registered = BufRing::register(&ring.submitter(), 2, 64);
    drop(ring);
    registered.err().map(|e| explain(&e))
}

/// For the test suites: whether the calling test (named by its thread,
/// as the test harness names it) must not run here because the system
/// refuses io_uring; a fault of our own ring fails it
/// (`server::uring::skip_test`).
#[doc(hidden)]
pub fn skip_test() -> bool {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a uring test");
    crate::server::uring::skip_test(test, unavailable(UringFeatures::default()))
}

/// Pushes `entry` to the submission queue; false if it is full.
#[expect(unsafe_code, reason = "a submission names memory the kernel uses")]
fn push_entry(ring: &mut IoUring, entry: &squeue::Entry) -> bool {
    // SAFETY: every entry the loop makes names memory that outlives its
    // operation, and each place that makes one says whose it is: the
    // listener and the eventfd counter are the loop's, a send's buffer is
    // its client's then the orphans', receives name the provided ring.
    unsafe { ring.submission().push(entry).is_ok() }
}

/// The descriptor a completed accept returned (`result` ≥ 0).
#[expect(unsafe_code, reason = "taking ownership of an accepted descriptor")]
fn accepted_fd(result: i32) -> OwnedFd {
    // SAFETY: a completed accept's result is a new descriptor that nothing
    // else owns or closes.
    unsafe { OwnedFd::from_raw_fd(result as RawFd) }
}

pub struct UringLoop {
    ring: IoUring,
    bufs: BufRing,
    features: UringFeatures,
    /// None on a reactor with no listener of its own.
    listener: Option<TcpListener>,
    accepting: bool,
    accept_again_at: Option<Instant>,
    accept_failing: bool,
    reactor: Reactor,
    /// The eventfd counter the wake read fills (the kernel writes it).
    wake_count: Box<u64>,
    clients: Slab<Client<Conn>>,
    ready: VecDeque<usize>,
    timers: BTreeSet<(Instant, usize, u64)>,
    pool: BufPool,
    /// Sends of clients that closed before they completed, by token.
    orphans: HashMap<u64, Vec<u8>>,
    /// Operations submitted whose last completion has not come.
    outstanding: usize,
    /// Completions of one drain, copied out of the queue, and the vector
    /// the previous drain used.
    completions: Vec<(u64, i32, u32)>,
    spare: Vec<(u64, i32, u32)>,
    /// Clients whose turn ended them while their last send was in the
    /// kernel: closed when it completes.
    closing: Vec<bool>,
    shared: Arc<Shared>,
    options: Options,
}

impl UringLoop {
    /// Made on the loop's own thread: with `single-issuer` the thread that
    /// makes a ring is the only one that may submit to it.
    pub fn new(
        listener: Option<std::net::TcpListener>,
        reactor: Reactor,
        shared: Arc<Shared>,
        options: Options,
        features: UringFeatures,
    ) -> io::Result<Self> {
        let mut b = builder(features);
        b.setup_cqsize(ENTRIES * 4);
        let ring = b
            .build(ENTRIES)
            .map_err(|e| io::Error::other(explain(&e).why))?;
        let bufs = BufRing::register(&ring.submitter(), BUFFERS, READ_BUF)?;
        Ok(Self {
            ring,
            bufs,
            features,
            listener,
            accepting: false,
            accept_again_at: None,
            accept_failing: false,
            reactor,
            wake_count: Box::new(0),
            clients: Slab::new(),
            ready: VecDeque::new(),
            timers: BTreeSet::new(),
            pool: BufPool::default(),
            orphans: HashMap::new(),
            outstanding: 0,
            completions: Vec::with_capacity(ENTRIES as usize),
            spare: Vec::with_capacity(ENTRIES as usize),
            closing: Vec::new(),
            shared,
            options,
        })
    }

    /// Runs until the server stops; then every client is closed and every
    /// operation waited for.
    pub fn run(mut self) {
        let mut sweep = Sweep::new(self.options.idle_timeout, self.options.handshake_timeout);
        let mut quiet = trim::Quiet::new(&self.shared.trim);
        let mut run_queue = trace::frames_enabled().then(RunQueue::open).flatten();
        self.arm_accept();
        self.arm_wake();
        while !self.shared.is_stopping() {
            let mut timeout = sweep.timeout(self.accept_again_at, self.timers.first().map(|t| t.0));
            // As `poll`: a quiet spell after connections came or went
            // gives the freed heap back (see `trim`).
            let trim_at = quiet.trim_at(&self.shared.trim, &mut timeout);
            let wait = trace::action(0, Name::PollWait, NO_STATE);
            let began = run_queue.as_ref().map(|_| Instant::now());
            let waited = self.submit_and_wait(timeout);
            self.take_completions();
            if let (Some(run_queue), Some(began)) = (&mut run_queue, began) {
                wait.bytes(self.completions.len());
                run_queue.after_wait(&wait, began);
            }
            drop(wait);
            if let Err(e) = waited {
                eprintln!("h2lab: io_uring: {e}");
                break;
            }
            if trim_at.is_some_and(|at| self.completions.is_empty() && Instant::now() >= at) {
                self.shared.trim.release();
            }
            self.drain();
            // (After the cancelled accept's last completion.)
            if self.accept_again_at.is_some_and(|at| Instant::now() >= at) && !self.accepting {
                self.accept_again_at = None;
                self.arm_accept();
            }
            self.fire_timers(Instant::now());
            self.run_ready();
            if sweep.due() {
                self.close_idle();
            }
        }
        self.end();
    }

    /// Submits what the turns queued and waits for one completion, or
    /// until `timeout`.
    fn submit_and_wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let submitted = match timeout {
            Some(t) => {
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
            None => self.ring.submit_and_wait(1),
        };
        match submitted {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Handles the completions taken, and those taken meanwhile (a full
    /// submission queue takes them while the first ones are handled).
    fn drain(&mut self) {
        while !self.completions.is_empty() {
            let mut batch =
                std::mem::replace(&mut self.completions, std::mem::take(&mut self.spare));
            for &(data, result, flags) in &batch {
                self.complete(data, result, flags);
            }
            batch.clear();
            self.spare = batch;
        }
    }

    fn take_completions(&mut self) {
        for cqe in self.ring.completion() {
            self.completions
                .push((cqe.user_data(), cqe.result(), cqe.flags()));
        }
    }

    /// Queues `entry`; a full queue is submitted first.
    fn push(&mut self, entry: squeue::Entry) {
        self.outstanding += 1;
        loop {
            if push_entry(&mut self.ring, &entry) {
                return;
            }
            if let Err(e) = self.ring.submit() {
                if e.raw_os_error() != Some(libc::EBUSY) {
                    eprintln!("h2lab: io_uring submit: {e}");
                    return;
                }
                // The completion queue is full: take what is there first.
                self.take_completions();
            }
        }
    }

    fn arm_accept(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        if self.accepting || self.shared.is_stopping() {
            return;
        }
        let fd = types::Fd(listener.as_raw_fd());
        // The listener is the loop's and lives past the end's wait.
        let entry = match self.features.multishot_accept {
            true => opcode::AcceptMulti::new(fd)
                .flags(libc::SOCK_CLOEXEC)
                .build(),
            false => opcode::Accept::new(fd, std::ptr::null_mut(), std::ptr::null_mut())
                .flags(libc::SOCK_CLOEXEC)
                .build(),
        };
        self.accepting = true;
        self.push(entry.user_data(token(Op::Accept, 0, 0)));
    }

    fn arm_wake(&mut self) {
        let Some(fd) = self.reactor.inbox.event_fd() else {
            return;
        };
        let fd = types::Fd(fd.as_raw_fd());
        // `wake_count` is the loop's, boxed so it does not move, and the
        // read ends (or is waited for) before the loop is dropped.
        let count: *mut u64 = &mut *self.wake_count;
        let entry = opcode::Read::new(fd, count.cast(), 8).build();
        self.push(entry.user_data(token(Op::Wake, 0, 0)));
    }

    /// Receives for client `key`: multishot, or one at a time.
    fn arm_recv(&mut self, key: usize) {
        let c = &mut self.clients[key];
        let fd = types::Fd(c.sock.sock.as_raw_fd());
        c.sock.receiving = true;
        let data = token(Op::Recv, key, c.id);
        // The buffer is picked from the provided ring at completion.
        let entry = match self.features.multishot_recv {
            true => opcode::RecvMulti::new(fd, bufs::GROUP).build(),
            false => opcode::Recv::new(fd, std::ptr::null_mut(), READ_BUF as u32)
                .buf_group(bufs::GROUP)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT),
        };
        self.push(entry.user_data(data));
    }

    /// Submits the send client `key`'s turn handed over.
    fn submit_send(&mut self, key: usize) {
        let c = &mut self.clients[key];
        let fd = types::Fd(c.sock.sock.as_raw_fd());
        let rest = &c.sock.sending[c.sock.sent..];
        // `sending` is the client's until the completion; a client that
        // closes before it hands it to `orphans` (see `close`).
        let entry = opcode::Send::new(fd, rest.as_ptr(), rest.len() as u32).build();
        c.sock.to_submit = false;
        c.sock.in_flight = true;
        let data = token(Op::Send, key, c.id);
        self.push(entry.user_data(data));
    }

    fn cancel(&mut self, data: u64) {
        let entry = opcode::AsyncCancel::new(data).build();
        self.push(entry.user_data(token(Op::Cancel, 0, 0)));
    }

    fn complete(&mut self, data: u64, result: i32, flags: u32) {
        if !cqueue::more(flags) {
            self.outstanding = self.outstanding.saturating_sub(1);
        }
        let (op, key, id) = untoken(data);
        match op {
            Some(Op::Accept) => self.accepted(result, flags),
            Some(Op::Recv) => self.received(key, id, result, flags),
            Some(Op::Send) => self.sent(data, key, id, result),
            Some(Op::Wake) => {
                // A stop (checked by the loop), or offloaded work done.
                self.take_finished();
                if !self.shared.is_stopping() {
                    self.arm_wake();
                }
            }
            Some(Op::Cancel) | None => {}
        }
    }

    /// The client at `key` if it is still the one with this id.
    fn client(&mut self, key: usize, id: u32) -> Option<&mut Client<Conn>> {
        self.clients.get_mut(key).filter(|c| c.id as u32 == id)
    }

    fn accepted(&mut self, result: i32, flags: u32) {
        let more = cqueue::more(flags);
        if !more {
            self.accepting = false;
        }
        if result >= 0 {
            self.accept_failing = false;
            self.accept_one(TcpStream::from(accepted_fd(result)));
        } else {
            match -result {
                // Asked for after an error (below), or at the end.
                libc::ECANCELED => {}
                libc::EAGAIN | libc::EINTR | libc::ECONNABORTED => {}
                errno => {
                    // EMFILE and the like: try again after a pause. A
                    // multishot accept that goes on after the error would
                    // wait for the next connection to come, not take the
                    // ones already waiting: it is cancelled, and submitted
                    // again after the pause.
                    if !self.accept_failing {
                        let e = io::Error::from_raw_os_error(errno);
                        eprintln!("h2lab: accept: {e} (trying again every {ACCEPT_ERROR_PAUSE:?})");
                    }
                    self.accept_failing = true;
                    if more {
                        self.cancel(token(Op::Accept, 0, 0));
                    }
                    self.accept_again_at = Some(Instant::now() + ACCEPT_ERROR_PAUSE);
                    return;
                }
            }
        }
        if self.accept_again_at.is_none() {
            self.arm_accept();
        }
    }

    fn accept_one(&mut self, sock: TcpStream) {
        if self.shared.is_stopping() {
            return;
        }
        let id = self.reactor.common.next_id();
        self.shared.accepted();
        if !self.reactor.common.try_open(self.options.max_clients) {
            let _span = trace::action(id, Name::Refuse, NO_STATE);
            self.shared.refused();
            return;
        }
        if let Err(e) = self.add_client(id, sock) {
            self.reactor.common.closed();
            self.shared.finish(id, 0, Err(e));
        }
    }

    fn add_client(&mut self, id: u64, sock: TcpStream) -> Result<(), ConnError> {
        let tls = self
            .shared
            .accept(id, |nodelay| sock.set_nodelay(nodelay))?;
        let key = self.clients.insert(Client::new(
            id,
            Conn::new(sock),
            Pipeline::new(
                tls,
                id,
                self.shared.handler.clone(),
                self.options.offload.is_some(),
            ),
        ));
        // Our SETTINGS go out at once; the receives start after the turn.
        self.enqueue(key);
        Ok(())
    }

    fn received(&mut self, key: usize, id: u32, result: i32, flags: u32) {
        let bid = cqueue::buffer_select(flags);
        let more = cqueue::more(flags);
        let Some(c) = self.clients.get_mut(key).filter(|c| c.id as u32 == id) else {
            if let Some(bid) = bid {
                self.bufs.recycle(bid);
            }
            return;
        };
        if !more {
            c.sock.receiving = false;
        }
        match result {
            n if n > 0 => {
                if let Some(bid) = bid {
                    // Until the end of its turn (`run_ready`), or its close.
                    c.sock.lend(self.bufs.view(), bid, n as usize);
                }
            }
            0 => c.sock.end(Ok(())),
            e if -e == libc::ENOBUFS => {} // submitted again after the turn
            e if -e == libc::ECANCELED => c.sock.cancelling = false,
            e => c.sock.end(Err(io::Error::from_raw_os_error(-e))),
        }
        self.enqueue(key);
    }

    fn sent(&mut self, data: u64, key: usize, id: u32, result: i32) {
        // (Nearly always empty: a lookup per send cost 0.25% of the loop's
        // CPU at 5 × 100, hashing for nothing.)
        if let Some(buffer) = (!self.orphans.is_empty())
            .then(|| self.orphans.remove(&data))
            .flatten()
        {
            // Its client is gone; the kernel is done with the buffer.
            drop(buffer);
            return;
        }
        let Some(c) = self.client(key, id) else {
            return;
        };
        c.sock.in_flight = false;
        if result < 0 {
            c.error
                .get_or_insert(io::Error::from_raw_os_error(-result).into());
            self.close(key);
            return;
        }
        c.sock.sent += result as usize;
        if c.sock.sent < c.sock.sending.len() {
            // A short send: the rest, as `poll` writes again when the
            // socket has room.
            self.shared.counters.writes.fetch_add(1, Ordering::Relaxed);
            self.submit_send(key);
            return;
        }
        c.sock.sending.clear();
        c.sock.sent = 0;
        match self.closing.get(key).copied().unwrap_or(false) {
            true => self.close(key),
            false => self.enqueue(key),
        }
    }

    /// Closes client `key` once its send completes.
    fn close_after_send(&mut self, key: usize) {
        if self.closing.len() <= key {
            self.closing.resize(key + 1, false);
        }
        self.closing[key] = true;
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

    fn enqueue(&mut self, key: usize) {
        client::enqueue(&mut self.clients, &mut self.ready, key);
    }

    fn run_ready(&mut self) {
        while let Some(key) = self.ready.pop_front() {
            let Some(c) = self.clients.get_mut(key) else {
                continue;
            };
            c.queued = false;
            // What completed before the turn is what it may act on.
            c.flags.set(Flags::CAN_READ, c.sock.has_input());
            c.flags.set(Flags::CAN_WRITE, c.sock.can_send());
            let turn = c.take_turn(&self.shared.counters.writes, &mut self.pool);
            c.sock.give_back_lent(&mut self.bufs, &mut self.pool);
            c.sock.give_back(&mut self.pool);
            if c.newly_established() {
                self.shared.trim.note();
            }
            match turn {
                Turn::Idle => self.after_turn(key),
                Turn::More => {
                    self.after_turn(key);
                    self.enqueue(key);
                }
                Turn::Closed => {
                    // What the turn handed over still goes (a GOAWAY, an
                    // alert) before the socket is shut.
                    if self.clients[key].sock.to_submit {
                        self.submit_send(key);
                    }
                    match self.clients[key].sock.in_flight {
                        true => self.close_after_send(key),
                        false => self.close(key),
                    }
                }
            }
        }
    }

    /// After a client's turn: its send, its receives, its engine's next due
    /// time, and the work of its new requests to the workers.
    fn after_turn(&mut self, key: usize) {
        let c = &mut self.clients[key];
        if c.sock.to_submit {
            self.submit_send(key);
        }
        let c = &mut self.clients[key];
        if !c.sock.receiving && c.sock.wants_receive() && !c.flags.contains(Flags::CLOSING) {
            self.arm_recv(key);
        } else if c.sock.receiving && !c.sock.cancelling && !c.sock.wants_receive() {
            // Backed up: stop receiving until the turns take it.
            c.sock.cancelling = true;
            let data = token(Op::Recv, key, c.id);
            self.cancel(data);
        }
        let c = &mut self.clients[key];
        c.after_turn(
            key,
            &mut self.timers,
            self.options.offload.as_ref(),
            &self.reactor.inbox,
        );
    }

    fn close(&mut self, key: usize) {
        if let Some(closing) = self.closing.get_mut(key) {
            *closing = false;
        }
        let mut c = self.clients.remove(key);
        c.sock.drop_lent(&mut self.bufs);
        self.reactor.common.closed();
        // Ends its receive and any send the kernel still holds (their
        // completions come later and find no client).
        let _ = c.sock.sock.shutdown(Shutdown::Both);
        if c.sock.in_flight {
            let data = token(Op::Send, key, c.id);
            self.orphans
                .insert(data, std::mem::take(&mut c.sock.sending));
        }
        if c.sock.receiving {
            self.cancel(token(Op::Recv, key, c.id));
        }
        c.finish(&self.shared);
    }

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

    /// Closes every client, cancels the accept and the wake read, and waits
    /// for every operation's last completion (at most [`END_WAIT`]); what
    /// the kernel may still use after that is leaked, not freed.
    fn end(mut self) {
        for key in self.clients.iter().map(|(k, _)| k).collect::<Vec<_>>() {
            self.close(key);
        }
        if self.accepting {
            self.cancel(token(Op::Accept, 0, 0));
        }
        self.cancel(token(Op::Wake, 0, 0));
        let deadline = Instant::now() + END_WAIT;
        while self.outstanding > 0 && Instant::now() < deadline {
            if self
                .submit_and_wait(Some(Duration::from_millis(50)))
                .is_err()
            {
                break;
            }
            self.take_completions();
            let completions = std::mem::take(&mut self.completions);
            for &(data, result, flags) in &completions {
                // (Nothing here submits, so nothing is taken meanwhile.)
                if !cqueue::more(flags) {
                    self.outstanding = self.outstanding.saturating_sub(1);
                }
                match untoken(data) {
                    (Some(Op::Send), ..) => {
                        self.orphans.remove(&data);
                    }
                    (Some(Op::Recv), ..) if result > 0 => {
                        if let Some(bid) = cqueue::buffer_select(flags) {
                            self.bufs.recycle(bid);
                        }
                    }
                    _ => {}
                }
            }
        }
        let Self {
            ring,
            bufs,
            orphans,
            wake_count,
            outstanding,
            ..
        } = self;
        drop(ring);
        if outstanding > 0 {
            eprintln!("h2lab: io_uring: {outstanding} operations did not end in {END_WAIT:?}; their buffers are left allocated");
            std::mem::forget(bufs);
            std::mem::forget(orphans);
            std::mem::forget(wake_count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_the_operation_the_client_and_its_id() {
        for op in [Op::Accept, Op::Recv, Op::Send, Op::Wake, Op::Cancel] {
            let t = token(op, 12345, 0x1_0000_0007);
            assert_eq!(untoken(t), (Some(op), 12345, 7));
        }
        assert_eq!(untoken(7).0, None);
    }
}
