//! One connection's protocol stack, sans-IO: a TLS session and the mini
//! engine, with the plaintext buffers between them (docs/DESIGN.md,
//! "One connection's data flow"):
//!
//! ```text
//! [in buf] ──feed (handshake/decrypt)──▶ ③ ──engine──▶ ⓤ ──encrypt──▶ TLS ──move_encrypted──▶ [out buf]
//!              ②                                           ④              ⑤                    Ⓔ
//! ```
//!
//! The `poll` dispatch calls each step as one action of its state machine;
//! drivers that read and write in bulk (blocking, tokio) use [`MiniConn`],
//! which runs the steps for each chunk read and hands back what to write.

use super::{feed, feed_traced, FeedError, Frames};
use crate::buffers::{HIGH_WATER, READ_BUF};
use std::time::Instant;

use crate::engine::mini::Config;
use crate::engine::{EngineError, Handler, MiniConnection};
use crate::tls::{TlsError, TlsSession};
use crate::trace::{self, Name, NO_STATE};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("TLS session takes no more input and has nothing to give")]
    Stalled,
}

impl From<FeedError> for PipelineError {
    fn from(e: FeedError) -> Self {
        match e {
            FeedError::Tls(e) => Self::Tls(e),
            FeedError::Stalled => Self::Stalled,
        }
    }
}

pub struct Pipeline {
    /// The connection's id, 1-based in accept order, for traces.
    client: u64,
    tls: Box<dyn TlsSession>,
    engine: MiniConnection,
    /// ③ decrypted plaintext for the engine; emptied by every `run_engine`.
    plain_in: Vec<u8>,
    /// ⓤ what the engine answered, waiting to be encrypted.
    plain_out: Vec<u8>,
    /// The TLS session failed: only what it still has (its alert) may be sent.
    broken: bool,
    /// No TLS (h2c): the session only copies.
    plain: bool,
    frames: Frames,
    /// How much of ③ and ⓤ has been scanned for frame events.
    in_seen: usize,
    out_seen: usize,
    /// The engine's frame count at the last [`Pipeline::progressed`].
    progress_frames: u64,
    /// `--body-file`: read for each answer that needs it.
    file: Option<crate::engine::file::BodyFile>,
}

impl Pipeline {
    /// A new connection; the engine's SETTINGS wait in ⓤ. `offloaded`:
    /// `cpu:` and `sleep:` work is done by the driver's workers, the
    /// engine holding each answer until [`Pipeline::release`].
    ///
    /// It allocates no buffer of its own beyond the SETTINGS: `poll` lends
    /// them from its pool for each turn, the async drivers grow them on
    /// first use. (Two 4 KiB buffers made at each accept and freed after
    /// the first turn lay between the connections' lasting allocations:
    /// after a burst of 10,000 accepts each idle `poll` connection kept
    /// 2–7 KiB of pages that only they pinned.)
    pub fn new(tls: Box<dyn TlsSession>, client: u64, handler: Handler, offloaded: bool) -> Self {
        let mut plain_out = Vec::new();
        let file = handler.file.clone();
        let config = Config {
            handler,
            offload: offloaded,
        };
        let engine = MiniConnection::new(&mut plain_out, config);
        Self {
            client,
            plain: tls.is_plain(),
            tls,
            engine,
            plain_in: Vec::new(),
            plain_out,
            broken: false,
            frames: Frames::new(client),
            in_seen: 0,
            out_seen: 0,
            progress_frames: 0,
            file,
        }
    }

    /// Lends ③ and ⓤ pooled buffers if they hold none (`poll`, which
    /// gives them back after each turn so that idle connections hold none).
    pub fn borrow_buffers(&mut self, pool: &mut crate::buffers::BufPool) {
        pool.fill(&mut self.plain_in);
        pool.fill(&mut self.plain_out);
        self.tls.borrow_buffers(pool);
    }

    /// Gives ③ and ⓤ back to `pool` if they are empty.
    pub fn return_buffers(&mut self, pool: &mut crate::buffers::BufPool) {
        pool.give_vec(&mut self.plain_in);
        pool.give_vec(&mut self.plain_out);
        self.tls.return_buffers(pool);
    }

    /// No TLS: feed, encrypt and move are copies, left out of traces.
    pub fn is_plain(&self) -> bool {
        self.plain
    }

    /// Reports the frames that have appeared in ③ and ⓤ since the last
    /// call. Call it after each step's span has closed, so that the scan
    /// and its events do not lengthen the step; the events are stamped
    /// inside that step's interval.
    pub fn trace_frames(&mut self) {
        if !self.frames.enabled() {
            return;
        }
        if self.in_seen < self.plain_in.len() {
            self.frames.seen_in(&self.plain_in[self.in_seen..]);
            self.in_seen = self.plain_in.len();
        }
        if self.out_seen < self.plain_out.len() {
            self.frames.seen_out(&self.plain_out[self.out_seen..]);
            self.out_seen = self.plain_out.len();
        }
    }

    pub fn tls(&self) -> &dyn TlsSession {
        self.tls.as_ref()
    }

    /// Responses the engine has queued so far.
    pub fn responses(&self) -> u64 {
        self.engine.responses()
    }

    /// Whether the client made progress since the last call: a whole
    /// frame that leaves no header block open (a frame inside an
    /// unfinished header block is no progress, so a request must be whole
    /// within the idle timeout: the header-read deadline).
    pub fn progressed(&mut self) -> bool {
        let frames = self.engine.frames();
        if frames == self.progress_frames {
            return false;
        }
        self.progress_frames = frames;
        !self.engine.in_header_block()
    }

    /// The handshake is over and the client's preface and SETTINGS came.
    pub fn is_established(&self) -> bool {
        self.engine.is_established()
    }

    /// Nothing more will be read: the client sent GOAWAY, the engine or TLS
    /// failed, or input ended. What is queued should still be sent.
    pub fn is_closed(&self) -> bool {
        self.broken || self.engine.is_closed()
    }

    /// ③ is not empty: the engine has work.
    pub fn has_decrypted(&self) -> bool {
        !self.plain_in.is_empty()
    }

    /// The engine has response frames it can send now (the client's
    /// windows allow them): [`Pipeline::run_engine`] pulls them as there
    /// is room. Not after a TLS failure, when nothing more is sent.
    pub fn wants_transmit(&self) -> bool {
        !self.broken && self.engine.wants_transmit()
    }

    /// `delay:`: when the next held answer is due (then call
    /// [`Pipeline::handle_timeout`]).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.engine.poll_timeout()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.engine.handle_timeout(now);
    }

    /// Some answer waits for its time or its work: the connection is not
    /// done even if the client has stopped sending.
    pub fn awaits_answers(&self) -> bool {
        !self.broken && self.engine.awaits_answers()
    }

    /// Offloaded: the requests whose work the driver has not started yet.
    pub fn take_held(&mut self, each: impl FnMut(u32, crate::engine::Work)) {
        self.engine.take_held(each);
    }

    /// Offloaded: the work for `stream` is done; its answer may go.
    pub fn release(&mut self, stream: u32) {
        self.engine.release(stream);
    }

    /// ⓤ is not empty.
    pub fn has_plaintext_out(&self) -> bool {
        !self.plain_out.is_empty()
    }

    /// Octets queued on the way out (ⓤ, not counting TLS's own buffer).
    pub fn plaintext_out_len(&self) -> usize {
        self.plain_out.len()
    }

    /// What the bulk drivers let the engine add to ⓤ: up to [`HIGH_WATER`].
    fn room(&self) -> usize {
        HIGH_WATER.saturating_sub(self.plain_out.len())
    }

    fn tls_failed(&mut self, err: impl Into<PipelineError>) -> PipelineError {
        self.broken = true;
        self.plain_out.clear();
        self.out_seen = 0;
        err.into()
    }

    /// ② Gives ciphertext to the TLS session (the handshake advances here
    /// too) and takes the plaintext it yields into ③; returns how much of
    /// `input` it took. Untraced: the caller's action span covers it.
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, PipelineError> {
        feed(self.tls.as_mut(), input, &mut self.plain_in).map_err(|e| self.tls_failed(e))
    }

    /// ③ Runs the engine on the decrypted plaintext, then pulls into ⓤ
    /// the responses' frames, up to `room` octets more than ⓤ holds.
    /// Returns the plaintext length taken, or when there was none, the
    /// octets of responses pulled.
    pub fn run_engine(&mut self, room: usize) -> Result<usize, PipelineError> {
        let n = self.plain_in.len();
        let before = self.plain_out.len();
        self.engine.set_date(crate::wall_clock::unix_secs());
        if n > 0 {
            let result = self
                .engine
                .handle_input_within(&self.plain_in, &mut self.plain_out, room);
            self.plain_in.clear();
            self.in_seen = 0;
            // Each request answered in this step has its work done here,
            // inside the caller's engine slice, before the answers go.
            if let Some(file) = &self.file {
                self.engine.fill_bodies(|buf| file.read(buf));
            }
            let client = self.client;
            self.engine.take_work(|w| super::do_work(client, &w));
            // A delayed answer is due from now.
            if self.engine.wants_time() {
                self.engine.handle_timeout(Instant::now());
            }
            // Status::Closed shows as `is_closed()`.
            let _status = result?;
        }
        if self.broken {
            return Ok(n);
        }
        // What the small answers took of the room, the queued ones do not.
        let left = room.saturating_sub(self.plain_out.len() - before);
        let pulled = self.engine.poll_transmit(&mut self.plain_out, left);
        Ok(if n > 0 { n } else { pulled })
    }

    /// ④ Hands ⓤ to the TLS session; returns its length.
    pub fn encrypt(&mut self) -> Result<usize, PipelineError> {
        let n = self.plain_out.len();
        if n == 0 || self.broken {
            return Ok(0);
        }
        if let Err(e) = self.tls.handle_plaintext(&self.plain_out) {
            return Err(self.tls_failed(e));
        }
        self.plain_out.clear();
        self.out_seen = 0;
        Ok(n)
    }

    /// ⑤ Appends the ciphertext ready to send to `out` (Ⓔ); returns its length.
    pub fn move_encrypted(&mut self, out: &mut Vec<u8>) -> Result<usize, PipelineError> {
        self.tls
            .poll_ciphertext(out)
            .map_err(|e| self.tls_failed(e))
    }

    /// The client sent FIN. A half-received frame is an error (GOAWAY queued).
    pub fn handle_eof(&mut self) -> Result<(), PipelineError> {
        if self.broken {
            return Ok(());
        }
        Ok(self.engine.handle_eof(&mut self.plain_out)?)
    }

    /// Feeds one chunk read from the socket and runs the engine on what it
    /// yields, one traced action per step.
    pub fn handle_read(&mut self, mut input: &[u8]) -> Result<(), PipelineError> {
        while !input.is_empty() && !self.is_closed() {
            let used = match self.is_plain() {
                true => self.feed(input)?,
                false => feed_traced(self.client, self.tls.as_mut(), input, &mut self.plain_in)
                    .map_err(|e| self.tls_failed(e))?,
            };
            input = &input[used..];
            self.trace_frames();
            if self.has_decrypted() {
                let span = trace::action(self.client, Name::Engine, NO_STATE);
                span.bytes(self.run_engine(self.room())?);
                drop(span);
                self.trace_frames();
            }
        }
        Ok(())
    }

    /// Encrypts ⓤ and appends everything ready to send to `out`, one traced
    /// action per step; when ⓤ is empty and the engine has more of its
    /// responses to send, pulls up to [`HIGH_WATER`] octets of them first.
    pub fn poll_output(&mut self, out: &mut Vec<u8>) -> Result<usize, PipelineError> {
        if !self.has_plaintext_out() && self.wants_transmit() {
            let span = trace::action(self.client, Name::Engine, NO_STATE);
            span.bytes(self.run_engine(self.room())?);
        }
        self.trace_frames();
        let traced = !self.is_plain();
        if self.has_plaintext_out() && !self.broken {
            let span = traced.then(|| trace::action(self.client, Name::Encrypt, NO_STATE));
            let n = self.encrypt()?;
            if let Some(span) = span {
                span.bytes(n);
            }
        }
        if !self.tls.wants_write() {
            return Ok(0);
        }
        let span = traced.then(|| trace::action(self.client, Name::MoveEncrypted, NO_STATE));
        let n = self.move_encrypted(out)?;
        if let Some(span) = span {
            span.bytes(n);
        }
        Ok(n)
    }
}

/// A mini-engine connection for drivers that read and write in bulk: a
/// [`Pipeline`] with its read buffer and its out buffer. The driver's loop
/// is: write [`MiniConn::output`], stop if [`MiniConn::is_done`], read into
/// [`MiniConn::read_buf`], pass the count to [`MiniConn::handle_read`].
pub struct MiniConn {
    pipeline: Pipeline,
    /// Allocated at the first read; `tokio` lends it from a pool instead
    /// and gives it back while the connection waits.
    read: Option<Box<[u8]>>,
    /// Ⓔ what is to be written.
    wire: Vec<u8>,
    eof: bool,
}

impl MiniConn {
    pub fn new(tls: Box<dyn TlsSession>, client: u64, handler: Handler, offloaded: bool) -> Self {
        Self {
            pipeline: Pipeline::new(tls, client, handler, offloaded),
            read: None,
            wire: Vec::new(),
            eof: false,
        }
    }

    /// What is due to the client now (its answers to all that was read,
    /// encrypted; of large responses, up to [`HIGH_WATER`] octets more):
    /// one write however many responses it holds. Call
    /// [`MiniConn::written`] once it is written, and ask again until it is
    /// empty: then the engine waits for the client (its windows, or more
    /// requests).
    pub fn output(&mut self) -> Result<&[u8], PipelineError> {
        self.pipeline.poll_output(&mut self.wire)?;
        Ok(&self.wire)
    }

    pub fn written(&mut self) {
        self.wire.clear();
    }

    /// Input ended or the connection is closing, and no answer waits for
    /// its time or its work: write the output, then end.
    pub fn is_done(&self) -> bool {
        (self.eof || self.pipeline.is_closed()) && !self.pipeline.awaits_answers()
    }

    /// Nothing more will be read (input ended, or the engine is closed),
    /// but answers are still due: wait for them instead of reading.
    pub fn reads_no_more(&self) -> bool {
        self.eof || self.pipeline.is_closed()
    }

    pub fn read_buf(&mut self) -> &mut [u8] {
        self.read
            .get_or_insert_with(|| vec![0; READ_BUF].into_boxed_slice())
    }

    /// Takes the buffers a read and its answer need from `pool`.
    pub fn borrow_buffers(&mut self, pool: &mut crate::buffers::BufPool) {
        if self.read.is_none() {
            self.read = Some(pool.take_read());
        }
        pool.fill(&mut self.wire);
        self.pipeline.borrow_buffers(pool);
    }

    /// Gives back every empty buffer, for a connection about to wait.
    pub fn return_buffers(&mut self, pool: &mut crate::buffers::BufPool) {
        if let Some(read) = self.read.take() {
            pool.give_read(read);
        }
        pool.give_vec(&mut self.wire);
        self.pipeline.return_buffers(pool);
    }

    /// `n` octets were read into the read buffer; 0 is the end of input.
    pub fn handle_read(&mut self, n: usize) -> Result<(), PipelineError> {
        if n == 0 {
            self.eof = true;
            return self.pipeline.handle_eof();
        }
        let read = self.read.as_deref().expect("read into read_buf");
        self.pipeline.handle_read(&read[..n])
    }

    pub fn responses(&self) -> u64 {
        self.pipeline.responses()
    }

    /// The handshake is over and the client's preface and SETTINGS came.
    pub fn is_established(&self) -> bool {
        self.pipeline.is_established()
    }

    /// See [`Pipeline::progressed`].
    pub fn progressed(&mut self) -> bool {
        self.pipeline.progressed()
    }

    /// The pipeline, for its timers and held requests.
    pub fn pipeline(&mut self) -> &mut Pipeline {
        &mut self.pipeline
    }
}
