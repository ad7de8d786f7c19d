//! One connection of a load run: its socket, TLS and HTTP/2 state, the
//! requests it has in flight, and the I/O that moves its bytes.

use std::io::{self, Read, Write};
use std::time::Instant;

use mio::net::TcpStream;

use super::client::{ClientConnection, ClientError, Finished, State};
use super::tally::{Problem, TlsInfo};
use crate::frame::Reason;

/// A request on the wire: when it started (or was due, with `--rps`),
/// which of the run's requests it is, and how often it was sent again.
#[derive(Clone, Copy, Debug)]
pub struct InFlight {
    pub started: Instant,
    pub request: usize,
    pub retries: u8,
}

pub struct Conn {
    pub sock: TcpStream,
    pub tls: Option<rustls::ClientConnection>,
    /// Each request in flight is tagged with its [`InFlight`].
    pub h2: ClientConnection<InFlight>,
    /// Plaintext to send, and ciphertext (or h2c bytes) not yet written.
    pub plain: Vec<u8>,
    pub wire: Vec<u8>,
    pub writable: bool,
    pub opened: Instant,
    /// TCP connected (the first writable event without an error).
    pub connected: bool,
    pub first_byte: bool,
    /// Octets through the socket, not yet added to the tally.
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Why a connection's I/O ended.
pub enum Broken {
    Io(io::Error),
    Tls(rustls::Error),
    Alpn(Option<Vec<u8>>),
    H2(ClientError),
}

impl Broken {
    pub fn problem(&self) -> Problem {
        match self {
            Broken::Io(e) => Problem::io(e),
            Broken::Tls(e) => Problem::new("TLS failure", e.to_string()),
            Broken::Alpn(p) => Problem::new(
                "ALPN refused",
                match p {
                    Some(p) => format!(
                        "the server chose {:?} by ALPN, not h2",
                        String::from_utf8_lossy(p)
                    ),
                    None => "the server chose no protocol by ALPN (h2 not offered)".into(),
                },
            ),
            Broken::H2(e @ ClientError::NotHttp2(_)) => Problem::new("not HTTP/2", e.to_string()),
            Broken::H2(e) => Problem::new("protocol error", e.to_string()),
        }
    }
}

impl From<io::Error> for Broken {
    fn from(e: io::Error) -> Self {
        Broken::Io(e)
    }
}

impl Conn {
    /// A connection whose receive windows are `window` octets.
    pub fn new(
        sock: TcpStream,
        tls: Option<rustls::ClientConnection>,
        opened: Instant,
        window: u32,
    ) -> Self {
        let mut plain = Vec::new();
        let h2 = ClientConnection::with_window(&mut plain, window);
        Conn {
            sock,
            tls,
            h2,
            plain,
            wire: Vec::new(),
            writable: false,
            opened,
            connected: false,
            first_byte: false,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    pub fn handshake_done(&self) -> bool {
        self.tls.as_ref().is_none_or(|t| !t.is_handshaking())
    }

    /// Whether the TCP connect has finished: `Ok(true)` once, with an
    /// error if it failed.
    pub fn check_connected(&mut self) -> io::Result<bool> {
        if self.connected {
            return Ok(false);
        }
        if let Some(e) = self.sock.take_error()? {
            return Err(e);
        }
        match self.sock.peer_addr() {
            Ok(_) => {
                self.connected = true;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The server's GOAWAY, if it carried an error code.
    pub fn goaway_error(&self) -> Option<Problem> {
        match self.h2.state() {
            State::GoingAway { reason, .. } if reason != Reason::NO_ERROR => {
                Some(Problem::goaway(reason))
            }
            _ => None,
        }
    }

    pub fn tls_info(&self) -> Option<TlsInfo> {
        let t = self.tls.as_ref().filter(|t| !t.is_handshaking())?;
        Some(TlsInfo {
            version: t
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default(),
            cipher: t
                .negotiated_cipher_suite()
                .map(|c| format!("{:?}", c.suite()))
                .unwrap_or_default(),
            alpn: t
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
        })
    }

    /// Encrypts what is queued and writes until the socket is full.
    pub fn flush(&mut self) -> Result<(), Broken> {
        match &mut self.tls {
            Some(tls) => {
                if !self.plain.is_empty() {
                    tls.writer().write_all(&self.plain)?;
                    self.plain.clear();
                }
                while tls.wants_write() {
                    tls.write_tls(&mut self.wire)?;
                }
            }
            None => self.wire.append(&mut self.plain),
        }
        while self.writable && self.connected && !self.wire.is_empty() {
            match self.sock.write(&self.wire) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(n) => {
                    self.bytes_out += n as u64;
                    self.wire.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Reads until the socket is empty, handing the plaintext to the
    /// client; `done` hears of every request that ended.
    pub fn receive(
        &mut self,
        buf: &mut [u8],
        plain: &mut Vec<u8>,
        mut done: impl FnMut(Finished<InFlight>),
    ) -> Result<(), Broken> {
        loop {
            let n = match self.sock.read(buf) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            self.bytes_in += n as u64;
            plain.clear();
            match &mut self.tls {
                Some(tls) => {
                    let mut rest = &buf[..n];
                    while !rest.is_empty() {
                        tls.read_tls(&mut rest)?;
                        if let Err(e) = tls.process_new_packets() {
                            // Tell the server why, as a TLS client would.
                            let _ = tls.write_tls(&mut self.wire);
                            let _ = self.sock.write(&self.wire);
                            return Err(Broken::Tls(e));
                        }
                        match tls.reader().read_to_end(plain) {
                            Ok(_) => {}
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                    if !tls.is_handshaking() && tls.alpn_protocol() != Some(crate::tls::ALPN_H2) {
                        return Err(Broken::Alpn(tls.alpn_protocol().map(<[u8]>::to_vec)));
                    }
                }
                None => plain.extend_from_slice(&buf[..n]),
            }
            self.h2
                .handle_input(plain, &mut self.plain, &mut done)
                .map_err(Broken::H2)?;
        }
    }
}
