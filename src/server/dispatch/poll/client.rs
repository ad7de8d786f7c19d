//! One client of a state-machine loop (`poll` or `uring`): its socket, its
//! pipeline, the buffers it borrows for a turn, and its turn: actions
//! chosen by [`super::state::select_next_action`] from its flags until none
//! is possible or the turn is over. The socket is what differs: a
//! non-blocking one read and written in the action (`poll`), or one whose
//! receives have completed before the turn and whose send is handed to the
//! ring (`uring`).

use std::collections::{BTreeSet, VecDeque};
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;

use mio::net::TcpStream;

use super::inbox::Inbox;
use super::offload;
use super::state::select_next_action;
use super::MAX_ACTIONS_PER_TURN;
use crate::buffers::{BufPool, HIGH_WATER};
use crate::server::conn::{ConnError, Pipeline};
use crate::server::io::{interrupted, would_block};
use crate::server::shared::Shared;
use crate::trace::{self, Flags, Name};

/// The least room an engine step is given: a full frame of the default size.
const MIN_PULL: usize = 16 * 1024 + 64;

/// What a client's `read_socket` and `write_socket` act on.
pub(super) trait Socket {
    /// Octets received, as `Read::read`: 0 at the end of input,
    /// `WouldBlock` when none are waiting.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes `out[start..]`, or takes it to send (then `out` is left
    /// empty); returns the octets written or taken.
    fn write_out(&mut self, out: &mut Vec<u8>, start: usize) -> io::Result<usize>;
    /// Another write could be taken now (a ring takes one send at a time).
    fn can_write_more(&self) -> bool {
        true
    }
}

impl Socket for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Read::read(self, buf)
    }

    fn write_out(&mut self, out: &mut Vec<u8>, start: usize) -> io::Result<usize> {
        self.write(&out[start..])
    }
}

pub(super) struct Client<S = TcpStream> {
    pub(super) id: u64,
    pub(super) sock: S,
    pub(super) pipeline: Pipeline,
    /// Stored flags; the others are derived from the buffers.
    pub(super) flags: Flags,
    /// ① → ②: ciphertext read, `input[in_start..in_end]` not yet
    /// decrypted. This and the other buffers are lent from the loop's pool
    /// for a turn and given back when empty: an idle client holds none.
    pub(super) input: Option<Box<[u8]>>,
    pub(super) in_start: usize,
    pub(super) in_end: usize,
    /// Ⓔ: `output[out_start..]` is still to be written.
    pub(super) output: Vec<u8>,
    pub(super) out_start: usize,
    /// When it was accepted (the handshake deadline counts from here).
    pub(super) accepted: Instant,
    /// When the engine last took a whole frame that left no header block
    /// open (the idle timeout counts from here: octets that make no frame,
    /// and CONTINUATIONs that never end a block, are no progress, so a
    /// client cannot hold its place by trickling them).
    pub(super) last_progress: Instant,
    /// In the ready queue already.
    pub(super) queued: bool,
    /// Its handshake, preface and SETTINGS are done and counted (a TLS
    /// handshake frees far more than the connection keeps: see `trim`).
    pub(super) established: bool,
    pub(super) error: Option<ConnError>,
}

/// What a client's turn ended with.
pub(super) enum Turn {
    /// Waiting for the socket.
    Idle,
    /// Out of turn with work left: queue it again.
    More,
    Closed,
}

impl<S> Client<S> {
    /// A client just accepted: no buffers, no flags, not queued.
    pub(super) fn new(id: u64, sock: S, pipeline: Pipeline) -> Self {
        Self {
            id,
            sock,
            pipeline,
            flags: Flags::empty(),
            input: None,
            in_start: 0,
            in_end: 0,
            output: Vec::new(),
            out_start: 0,
            accepted: Instant::now(),
            established: false,
            last_progress: Instant::now(),
            queued: false,
            error: None,
        }
    }

    /// True once, at the first turn that finds its handshake, preface and
    /// SETTINGS done (a finished handshake is worth a heap trim).
    pub(super) fn newly_established(&mut self) -> bool {
        let now = !self.established && self.pipeline.is_established();
        self.established |= now;
        now
    }

    /// After its turn (as slab key `key`): its engine's next due time into
    /// `timers`, and the work of its new requests to the workers (with
    /// `--offload`), which hand each answer back through `inbox`.
    pub(super) fn after_turn(
        &mut self,
        key: usize,
        timers: &mut BTreeSet<(Instant, usize, u64)>,
        offload: Option<&offload::Pool>,
        inbox: &Arc<Inbox>,
    ) {
        if let Some(at) = self.pipeline.poll_timeout() {
            timers.insert((at, key, self.id));
        }
        if let Some(pool) = offload {
            let client = self.id;
            self.pipeline.take_held(|stream, work| {
                pool.submit(offload::Job {
                    inbox: inbox.clone(),
                    key,
                    client,
                    stream,
                    work,
                })
            });
        }
    }

    /// The client is closed: tells `shared` what it answered and how it
    /// ended.
    pub(super) fn finish(mut self, shared: &Shared) {
        let result = self.error.take().map_or(Ok(()), Err);
        shared.finish(self.id, self.pipeline.responses(), result);
    }

    /// Past the idle timeout since its last progress, or past the
    /// handshake timeout since its accept without its handshake, preface
    /// and SETTINGS: to be closed by the sweep.
    pub(super) fn is_late(
        &self,
        now: Instant,
        idle: Option<Duration>,
        handshake: Option<Duration>,
    ) -> bool {
        idle.is_some_and(|t| now.duration_since(self.last_progress) >= t)
            || (!self.pipeline.is_established()
                && handshake.is_some_and(|t| now.duration_since(self.accepted) >= t))
    }
}

/// The keys of the clients past their deadlines ([`Client::is_late`]).
pub(super) fn late<S>(
    clients: &Slab<Client<S>>,
    idle: Option<Duration>,
    handshake: Option<Duration>,
) -> Vec<usize> {
    let now = Instant::now();
    clients
        .iter()
        .filter(|(_, c)| c.is_late(now, idle, handshake))
        .map(|(k, _)| k)
        .collect()
}

/// Queues client `key` for a turn unless it is queued already.
pub(super) fn enqueue<S>(clients: &mut Slab<Client<S>>, ready: &mut VecDeque<usize>, key: usize) {
    let c = &mut clients[key];
    if !c.queued {
        c.queued = true;
        ready.push_back(key);
    }
}

/// Clients whose held answers are due by `now` get the time and a turn
/// (`timers`: due time, client key and id).
pub(super) fn fire_timers<S>(
    timers: &mut BTreeSet<(Instant, usize, u64)>,
    clients: &mut Slab<Client<S>>,
    ready: &mut VecDeque<usize>,
    now: Instant,
) {
    while let Some(&(at, key, id)) = timers.first() {
        if at > now {
            break;
        }
        timers.pop_first();
        if let Some(c) = clients.get_mut(key).filter(|c| c.id == id) {
            c.pipeline.handle_timeout(now);
            enqueue(clients, ready, key);
        }
    }
}

/// Offloaded work done (client key, client id, stream): those answers may
/// go. A client gone meanwhile, its key maybe reused: not its answer.
pub(super) fn release_finished<S>(
    finished: Vec<(usize, u64, u32)>,
    clients: &mut Slab<Client<S>>,
    ready: &mut VecDeque<usize>,
) {
    for (key, id, stream) in finished {
        if let Some(c) = clients.get_mut(key).filter(|c| c.id == id) {
            c.pipeline.release(stream);
            enqueue(clients, ready, key);
        }
    }
}

impl<S: Socket> Client<S> {
    const STORED: Flags =
        Flags::from_bits(Flags::CAN_READ.bits() | Flags::CAN_WRITE.bits() | Flags::CLOSING.bits());

    /// The stored flags plus those read off the buffers.
    fn flags(&self) -> Flags {
        let tls = self.pipeline.tls();
        let pending_out = self.output.len() - self.out_start + self.pipeline.plaintext_out_len();
        let mut f = Flags::from_bits(self.flags.bits() & Self::STORED.bits());
        f.set(Flags::HAS_INPUT, self.in_start < self.in_end);
        f.set(Flags::HAS_DECRYPTED, self.pipeline.has_decrypted());
        f.set(Flags::HAS_PLAINTEXT, self.pipeline.has_plaintext_out());
        f.set(Flags::TLS_READY, !tls.is_handshaking());
        f.set(Flags::HAS_CIPHERTEXT, tls.wants_write());
        f.set(Flags::HAS_OUTPUT, self.out_start < self.output.len());
        f.set(Flags::BACKLOG, pending_out > HIGH_WATER);
        f.set(Flags::SENDING, self.pipeline.wants_transmit());
        f
    }

    /// Runs actions until none is possible or the turn is over; counts
    /// socket writes into `writes`. Each action is a traced span carrying
    /// the flags it was chosen from.
    pub(super) fn take_turn(&mut self, writes: &AtomicU64, pool: &mut BufPool) -> Turn {
        if self.input.is_none() {
            self.input = Some(pool.take_read());
        }
        pool.fill(&mut self.output);
        self.pipeline.borrow_buffers(pool);
        let turn = self.actions(writes);
        if self.in_start == self.in_end {
            if let Some(input) = self.input.take() {
                pool.give_read(input);
            }
        }
        if self.out_start == self.output.len() {
            self.output.clear();
            self.out_start = 0;
            pool.give_vec(&mut self.output);
        }
        self.pipeline.return_buffers(pool);
        turn
    }

    fn actions(&mut self, writes: &AtomicU64) -> Turn {
        for _ in 0..MAX_ACTIONS_PER_TURN {
            let flags = self.flags();
            match select_next_action(flags) {
                None => return Turn::Idle,
                Some(Name::Close) => return Turn::Closed,
                Some(action) => {
                    // Without TLS, feed, encrypt and move only copy: no slices.
                    let copy =
                        matches!(action, Name::Decrypt | Name::Encrypt | Name::MoveEncrypted);
                    let span = (!copy || !self.pipeline.is_plain())
                        .then(|| trace::action(self.id, action, flags.bits().into()));
                    let result = self.perform(action, writes);
                    if let (Some(span), Ok(bytes)) = (span, &result) {
                        span.bytes(*bytes);
                    }
                    self.pipeline.trace_frames();
                    if let Err(e) = result {
                        // The socket is unusable: nothing more can be sent.
                        self.error.get_or_insert(e.into());
                        return Turn::Closed;
                    }
                }
            }
        }
        Turn::More
    }

    /// One action; returns the octets it moved. An error means the socket
    /// failed; protocol and TLS errors only set CLOSING, so that their
    /// GOAWAY or alert still goes out.
    fn perform(&mut self, action: Name, writes: &AtomicU64) -> io::Result<usize> {
        let outcome = match action {
            Name::ReadSocket => return self.read_socket(),
            Name::WriteSocket => return self.write_socket(writes),
            Name::Handshake | Name::Decrypt => self.decrypt(),
            Name::Engine => {
                let ran = self.pipeline.run_engine(self.room());
                if self.pipeline.progressed() {
                    self.last_progress = Instant::now();
                }
                ran
            }
            Name::Encrypt => self.pipeline.encrypt(),
            Name::MoveEncrypted => {
                self.compact_output();
                self.pipeline.move_encrypted(&mut self.output)
            }
            Name::Close | Name::Accept | Name::Refuse | Name::PollWait | Name::Work => Ok(0),
        };
        let moved = match outcome {
            Ok(n) => n,
            Err(e) => {
                self.error.get_or_insert(e.into());
                self.flags.set(Flags::CLOSING, true);
                0
            }
        };
        if self.pipeline.is_closed() && !self.pipeline.awaits_answers() {
            self.flags.set(Flags::CLOSING, true);
        }
        if self.flags.contains(Flags::CLOSING) {
            // GOAWAY, EOF or an error: what is left to read is not worth it.
            self.in_start = self.in_end;
        }
        Ok(moved)
    }

    /// What the engine may add to the output: up to [`HIGH_WATER`]
    /// octets pending, and at least [`MIN_PULL`], so that a pull it is
    /// chosen for always makes progress.
    fn room(&self) -> usize {
        let pending = self.output.len() - self.out_start + self.pipeline.plaintext_out_len();
        HIGH_WATER.saturating_sub(pending).max(MIN_PULL)
    }

    fn decrypt(&mut self) -> Result<usize, crate::server::conn::PipelineError> {
        let input = self.input.as_deref().expect("lent for the turn");
        let used = self.pipeline.feed(&input[self.in_start..self.in_end])?;
        self.in_start += used;
        Ok(used)
    }

    fn read_socket(&mut self) -> io::Result<usize> {
        self.in_start = 0;
        self.in_end = 0;
        let input = self.input.as_deref_mut().expect("lent for the turn");
        match self.sock.read(input) {
            Ok(0) => {
                self.flags.set(Flags::CAN_READ, false);
                if let Err(e) = self.pipeline.handle_eof() {
                    self.error.get_or_insert(e.into());
                }
                // Answers still due (delay:, offloaded work) go out first.
                if !self.pipeline.awaits_answers() {
                    self.flags.set(Flags::CLOSING, true);
                }
            }
            Ok(n) => self.in_end = n,
            Err(e) if would_block(&e) => self.flags.set(Flags::CAN_READ, false),
            Err(e) if interrupted(&e) => {}
            Err(e) => return Err(e),
        }
        Ok(self.in_end)
    }

    fn write_socket(&mut self, writes: &AtomicU64) -> io::Result<usize> {
        match self.sock.write_out(&mut self.output, self.out_start) {
            Ok(n) => {
                writes.fetch_add(1, Ordering::Relaxed);
                self.out_start += n;
                if self.out_start >= self.output.len() {
                    self.output.clear();
                    self.out_start = 0;
                } else {
                    // A short write: the socket buffer is full.
                    self.flags.set(Flags::CAN_WRITE, false);
                }
                if !self.sock.can_write_more() {
                    self.flags.set(Flags::CAN_WRITE, false);
                }
                Ok(n)
            }
            Err(e) if would_block(&e) => {
                self.flags.set(Flags::CAN_WRITE, false);
                Ok(0)
            }
            Err(e) if interrupted(&e) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Drops what was written, so the buffer is reused instead of growing.
    fn compact_output(&mut self) {
        if self.out_start > 0 {
            self.output.drain(..self.out_start);
            self.out_start = 0;
        }
    }
}
