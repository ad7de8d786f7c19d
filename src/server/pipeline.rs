//! One connection's protocol stack, sans-IO: a TLS session and the mini
//! engine, with the plaintext buffers between them (DESIGN.md "Data flow"):
//!
//! ```text
//! [in buf] ──decrypt──▶ TLS ──run_engine──▶ engine ──▶ ⓤ ──encrypt──▶ TLS ──move_encrypted──▶ [out buf]
//!              ②           ③                                ④              ⑤                    Ⓔ
//! ```
//!
//! The `poll` dispatch calls each step as one action of its state machine;
//! the blocking and tokio drivers, which have no use for the single steps,
//! call [`Pipeline::handle_read`] and [`Pipeline::poll_output`].

use crate::engine::{EngineError, MiniConnection};
use crate::tls::{TlsError, TlsSession};
use crate::trace::{self, FrameScanner, Name, NO_STATE};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("TLS session takes no more input and has nothing to give")]
    Stalled,
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
    /// Frame boundaries of the plaintext each way, for frame events.
    frames_in: FrameScanner,
    frames_out: FrameScanner,
}

impl Pipeline {
    /// A new connection; the engine's SETTINGS wait in ⓤ.
    pub fn new(tls: Box<dyn TlsSession>, client: u64) -> Self {
        let mut plain_out = Vec::with_capacity(4096);
        let engine = MiniConnection::accept(&mut plain_out);
        let mut pipeline = Self {
            client,
            tls,
            engine,
            plain_in: Vec::with_capacity(4096),
            plain_out,
            broken: false,
            frames_in: FrameScanner::inbound(),
            frames_out: FrameScanner::outbound(),
        };
        pipeline.trace_frames_out(0);
        pipeline
    }

    /// Frame events for what the engine appended to ⓤ from `from` on.
    fn trace_frames_out(&mut self, from: usize) {
        if trace::frames_enabled() {
            let client = self.client;
            self.frames_out
                .scan(&self.plain_out[from..], |h| trace::frame(client, true, h));
        }
    }

    pub fn tls(&self) -> &dyn TlsSession {
        self.tls.as_ref()
    }

    /// Responses the engine has queued so far.
    pub fn responses(&self) -> u64 {
        self.engine.responses()
    }

    /// Nothing more will be read: the client sent GOAWAY, the engine or TLS
    /// failed, or input ended. What is queued should still be sent.
    pub fn is_closed(&self) -> bool {
        self.broken || self.engine.is_closed()
    }

    /// ⓤ is not empty.
    pub fn has_plaintext_out(&self) -> bool {
        !self.plain_out.is_empty()
    }

    /// Octets queued on the way out (ⓤ, not counting TLS's own buffer).
    pub fn plaintext_out_len(&self) -> usize {
        self.plain_out.len()
    }

    fn tls_failed(&mut self, err: TlsError) -> PipelineError {
        self.broken = true;
        self.plain_out.clear();
        err.into()
    }

    /// ② Gives ciphertext to the TLS session (the handshake advances here
    /// too); returns how much it took.
    pub fn decrypt(&mut self, input: &[u8]) -> Result<usize, PipelineError> {
        self.tls
            .handle_ciphertext(input)
            .map_err(|e| self.tls_failed(e))
    }

    /// ③ Runs the engine on the plaintext TLS has decrypted; returns its
    /// length (0: there was none).
    pub fn run_engine(&mut self) -> Result<usize, PipelineError> {
        let n = match self.tls.poll_plaintext(&mut self.plain_in) {
            Ok(n) => n,
            Err(e) => return Err(self.tls_failed(e)),
        };
        if n > 0 {
            if trace::frames_enabled() {
                let client = self.client;
                self.frames_in
                    .scan(&self.plain_in, |h| trace::frame(client, false, h));
            }
            let before = self.plain_out.len();
            let result = self
                .engine
                .handle_input(&self.plain_in, &mut self.plain_out);
            self.trace_frames_out(before);
            self.plain_in.clear();
            // Status::Closed shows as `is_closed()`.
            let _status = result?;
        }
        Ok(n)
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
        let before = self.plain_out.len();
        let result = self.engine.handle_eof(&mut self.plain_out);
        self.trace_frames_out(before);
        Ok(result?)
    }

    /// Decrypts and runs the engine on one chunk read from the socket, one
    /// traced action per step.
    pub fn handle_read(&mut self, mut input: &[u8]) -> Result<(), PipelineError> {
        while !input.is_empty() && !self.is_closed() {
            let name = match self.tls.is_handshaking() {
                true => Name::Handshake,
                false => Name::Decrypt,
            };
            let span = trace::action(self.client, name, NO_STATE);
            let used = self.decrypt(input)?;
            span.bytes(used);
            drop(span);
            input = &input[used..];
            let span = trace::action(self.client, Name::Engine, NO_STATE);
            let got = self.run_engine()?;
            span.bytes(got);
            drop(span);
            if used == 0 && got == 0 {
                return Err(PipelineError::Stalled);
            }
        }
        Ok(())
    }

    /// Encrypts ⓤ and appends everything ready to send to `out`, one traced
    /// action per step.
    pub fn poll_output(&mut self, out: &mut Vec<u8>) -> Result<usize, PipelineError> {
        if self.has_plaintext_out() && !self.broken {
            let span = trace::action(self.client, Name::Encrypt, NO_STATE);
            span.bytes(self.encrypt()?);
        }
        if !self.tls.wants_write() {
            return Ok(0);
        }
        let span = trace::action(self.client, Name::MoveEncrypted, NO_STATE);
        let n = self.move_encrypted(out)?;
        span.bytes(n);
        Ok(n)
    }
}
