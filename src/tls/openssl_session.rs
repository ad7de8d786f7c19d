//! OpenSSL through `SslStream` over an in-memory pipe that answers
//! `WouldBlock` when empty: the seed's memory-BIO design. `SslStream::new`
//! performs no I/O; progress shows as `WANT_READ`.

use std::io::{self, Read, Write};

use openssl::ex_data::Index;
use openssl::pkey::PKey;
use openssl::ssl::{
    select_next_proto, AlpnError, ErrorCode, Ssl, SslAcceptor, SslContext, SslContextBuilder,
    SslMethod, SslOptions, SslStream, SslVerifyMode,
};
use openssl::x509::X509;

use super::{TlsError, TlsProvider, TlsSession};
use crate::buffers::BufPool;
use crate::identity::Identity;

/// At most this much unprocessed ciphertext is held per session; the rest
/// stays with the caller until OpenSSL has consumed what it has.
const MAX_PENDING_CIPHERTEXT: usize = 64 * 1024;
/// Plaintext is read out of OpenSSL in chunks of one maximal TLS record.
const READ_CHUNK: usize = 16 * 1024;
/// ALPN list in wire format: length-prefixed `h2`.
const ALPN_WIRE: &[u8] = b"\x02h2";

fn config_error(reason: impl ToString) -> TlsError {
    TlsError::Config {
        provider: TlsProvider::Openssl,
        reason: reason.to_string(),
    }
}

pub(super) struct Acceptor {
    context: SslContext,
    /// Set on a session when the ALPN callback refused its client.
    no_h2: Index<Ssl, ()>,
}

/// Records of at most this much plaintext. OpenSSL sizes its write buffer
/// by it, and the 16 KiB default made each handshake allocate (and free) a
/// 17 KiB buffer between the allocations a connection keeps: 10,000 idle
/// connections on `poll` held 27 KiB each, 24 KiB with 4 KiB records (22
/// with the pipe buffers lent from the pool too). The responses here are tens of octets
/// and a batch of 100 a few KiB, so they rarely take a second record;
/// nginx's `ssl_buffer_size` advice is 4 KiB too, for the first byte's
/// sake.
const MAX_SEND_FRAGMENT: u16 = 4096;

/// `SSL_CTX_set_max_send_fragment`, a macro over `SSL_CTX_ctrl` that the
/// openssl crate does not wrap.
#[expect(
    unsafe_code,
    reason = "one FFI call: no safe wrapper exists for this control"
)]
fn set_max_send_fragment(builder: &mut SslContextBuilder, n: u16) -> Result<(), TlsError> {
    const SSL_CTRL_SET_MAX_SEND_FRAGMENT: std::ffi::c_int = 52;
    // SAFETY: `builder` owns a live SSL_CTX for the whole call; this
    // control reads the number only, and its pointer argument is unused.
    let set = unsafe {
        openssl_sys::SSL_CTX_ctrl(
            builder.as_ptr(),
            SSL_CTRL_SET_MAX_SEND_FRAGMENT,
            n.into(),
            std::ptr::null_mut(),
        )
    };
    match set {
        1 => Ok(()),
        _ => Err(config_error(format!("max send fragment {n} refused"))),
    }
}

impl Acceptor {
    pub(super) fn new(identity: &Identity) -> Result<Self, TlsError> {
        let no_h2 = Ssl::new_ex_index::<()>().map_err(config_error)?;
        // Mozilla "intermediate": TLS 1.2 and 1.3, AEAD suites only.
        let mut builder =
            SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(config_error)?;
        builder.set_options(SslOptions::NO_COMPRESSION | SslOptions::NO_RENEGOTIATION);
        // Asks OpenSSL to free a connection's record buffers while it has
        // nothing to read or write. On OpenSSL 3.0 it changed 10,000 idle
        // connections by under 1 KiB each: its own state is the cost.
        builder.set_mode(openssl::ssl::SslMode::RELEASE_BUFFERS);
        set_max_send_fragment(&mut builder, MAX_SEND_FRAGMENT)?;
        builder.set_verify(SslVerifyMode::NONE);
        let mut chain = X509::stack_from_pem(&identity.cert_pem)
            .map_err(|e| config_error(format!("certificate PEM: {e}")))?
            .into_iter();
        let leaf = chain
            .next()
            .ok_or_else(|| config_error("no certificate in the certificate PEM"))?;
        builder.set_certificate(&leaf).map_err(config_error)?;
        for cert in chain {
            builder.add_extra_chain_cert(cert).map_err(config_error)?;
        }
        let key = PKey::private_key_from_pem(&identity.key_pem)
            .map_err(|e| config_error(format!("private key PEM: {e}")))?;
        builder.set_private_key(&key).map_err(config_error)?;
        builder.check_private_key().map_err(config_error)?;
        // Not called when the client offers no ALPN: such a client is served.
        builder.set_alpn_select_callback(move |ssl, offered| {
            select_next_proto(ALPN_WIRE, offered).ok_or_else(|| {
                ssl.set_ex_data(no_h2, ());
                AlpnError::ALERT_FATAL
            })
        });
        Ok(Self {
            context: builder.build().into_context(),
            no_h2,
        })
    }

    pub(super) fn session(&self) -> Result<OpensslSession, TlsError> {
        let session_err = |e: openssl::error::ErrorStack| TlsError::Session(e.to_string());
        let mut ssl = Ssl::new(&self.context).map_err(session_err)?;
        ssl.set_accept_state();
        let stream = SslStream::new(ssl, MemPipe::default()).map_err(session_err)?;
        Ok(OpensslSession {
            stream,
            handshaking: true,
            early: Vec::new(),
            no_h2: self.no_h2,
        })
    }
}

/// The memory "BIO": ciphertext in, ciphertext out.
#[derive(Default)]
struct MemPipe {
    incoming: Vec<u8>,
    read_pos: usize,
    outgoing: Vec<u8>,
}

impl MemPipe {
    fn unread(&self) -> usize {
        self.incoming.len() - self.read_pos
    }

    fn push(&mut self, data: &[u8]) {
        // Compact first, so a record that is always half-read cannot make
        // the buffer grow.
        self.incoming.drain(..self.read_pos);
        self.read_pos = 0;
        self.incoming.extend_from_slice(data);
    }
}

impl Read for MemPipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let unread = &self.incoming[self.read_pos..];
        if unread.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = unread.len().min(buf.len());
        buf[..n].copy_from_slice(&unread[..n]);
        self.read_pos += n;
        if self.read_pos == self.incoming.len() {
            self.incoming.clear();
            self.read_pos = 0;
        }
        Ok(n)
    }
}

impl Write for MemPipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outgoing.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub(super) struct OpensslSession {
    stream: SslStream<MemPipe>,
    handshaking: bool,
    /// Plaintext queued before the handshake finished.
    early: Vec<u8>,
    no_h2: Index<Ssl, ()>,
}

impl OpensslSession {
    fn error(&self, err: openssl::ssl::Error) -> TlsError {
        if self.stream.ssl().ex_data(self.no_h2).is_some() {
            return TlsError::NoH2;
        }
        TlsError::Session(err.to_string())
    }

    fn advance_handshake(&mut self) -> Result<(), TlsError> {
        match self.stream.do_handshake() {
            Ok(()) => {
                self.handshaking = false;
                let early = std::mem::take(&mut self.early);
                self.write_all(&early)
            }
            Err(e) if matches!(e.code(), ErrorCode::WANT_READ | ErrorCode::WANT_WRITE) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    fn write_all(&mut self, mut data: &[u8]) -> Result<(), TlsError> {
        // The pipe takes every write, so OpenSSL never stops half-way.
        while !data.is_empty() {
            match self.stream.ssl_write(data) {
                Ok(n) => data = &data[n..],
                Err(e) => return Err(self.error(e)),
            }
        }
        Ok(())
    }
}

impl TlsSession for OpensslSession {
    fn handle_ciphertext(&mut self, input: &[u8]) -> Result<usize, TlsError> {
        let pipe = self.stream.get_mut();
        let n = MAX_PENDING_CIPHERTEXT
            .saturating_sub(pipe.unread())
            .min(input.len());
        pipe.push(&input[..n]);
        if self.handshaking {
            self.advance_handshake()?;
        }
        Ok(n)
    }

    fn poll_plaintext(&mut self, out: &mut Vec<u8>) -> Result<usize, TlsError> {
        if self.handshaking {
            return Ok(0);
        }
        let mut chunk = [0u8; READ_CHUNK];
        let before = out.len();
        loop {
            match self.stream.ssl_read(&mut chunk) {
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                // WANT_READ: the pipe is empty; ZERO_RETURN: close_notify
                // (the socket's EOF follows).
                Err(e) if matches!(e.code(), ErrorCode::WANT_READ | ErrorCode::ZERO_RETURN) => {
                    break
                }
                Err(e) => return Err(self.error(e)),
            }
        }
        Ok(out.len() - before)
    }

    fn handle_plaintext(&mut self, input: &[u8]) -> Result<(), TlsError> {
        if self.handshaking {
            self.early.extend_from_slice(input);
            return Ok(());
        }
        self.write_all(input)
    }

    fn poll_ciphertext(&mut self, out: &mut Vec<u8>) -> Result<usize, TlsError> {
        let pipe = self.stream.get_mut();
        let n = pipe.outgoing.len();
        out.append(&mut pipe.outgoing);
        Ok(n)
    }

    fn wants_write(&self) -> bool {
        !self.stream.get_ref().outgoing.is_empty()
    }

    fn is_handshaking(&self) -> bool {
        self.handshaking
    }

    /// The pipe's buffers would keep the capacity of the largest flight
    /// they carried (the handshake's, or up to 64 KiB of requests); they
    /// go back to the pool instead, which keeps them (freeing and taking
    /// 16 KiB each turn set glibc trimming and growing its heap).
    fn borrow_buffers(&mut self, pool: &mut BufPool) {
        let pipe = self.stream.get_mut();
        pool.fill(&mut pipe.incoming);
        pool.fill(&mut pipe.outgoing);
    }

    fn return_buffers(&mut self, pool: &mut BufPool) {
        let pipe = self.stream.get_mut();
        if pipe.unread() == 0 {
            pipe.incoming.clear();
            pipe.read_pos = 0;
            pool.give_vec(&mut pipe.incoming);
        }
        pool.give_vec(&mut pipe.outgoing);
    }

    fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.stream
            .ssl()
            .selected_alpn_protocol()
            .map(<[u8]>::to_vec)
    }
}
