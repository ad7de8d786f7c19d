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
    tls: Box<dyn TlsSession>,
    engine: MiniConnection,
    /// ③ decrypted plaintext for the engine; emptied by every `run_engine`.
    plain_in: Vec<u8>,
    /// ⓤ what the engine answered, waiting to be encrypted.
    plain_out: Vec<u8>,
    /// The TLS session failed: only what it still has (its alert) may be sent.
    broken: bool,
}

impl Pipeline {
    /// A new connection; the engine's SETTINGS wait in ⓤ.
    pub fn new(tls: Box<dyn TlsSession>) -> Self {
        let mut plain_out = Vec::with_capacity(4096);
        let engine = MiniConnection::accept(&mut plain_out);
        Self {
            tls,
            engine,
            plain_in: Vec::with_capacity(4096),
            plain_out,
            broken: false,
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
            let result = self
                .engine
                .handle_input(&self.plain_in, &mut self.plain_out);
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
        Ok(self.engine.handle_eof(&mut self.plain_out)?)
    }

    /// Decrypts and runs the engine on one chunk read from the socket.
    pub fn handle_read(&mut self, mut input: &[u8]) -> Result<(), PipelineError> {
        while !input.is_empty() && !self.is_closed() {
            let used = self.decrypt(input)?;
            input = &input[used..];
            let got = self.run_engine()?;
            if used == 0 && got == 0 {
                return Err(PipelineError::Stalled);
            }
        }
        Ok(())
    }

    /// Encrypts ⓤ and appends everything ready to send to `out`.
    pub fn poll_output(&mut self, out: &mut Vec<u8>) -> Result<usize, PipelineError> {
        self.encrypt()?;
        self.move_encrypted(out)
    }
}
