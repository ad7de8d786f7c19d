//! One connection of a load run, and the tally of what finished.

use std::io::{self, Read, Write};
use std::time::Instant;

use mio::net::TcpStream;

use super::client::{ClientConnection, Finished};

/// One connection of the run.
pub struct Conn {
    pub sock: TcpStream,
    pub tls: Option<rustls::ClientConnection>,
    pub h2: ClientConnection,
    /// Plaintext to send, and ciphertext (or h2c bytes) not yet written.
    pub plain: Vec<u8>,
    pub wire: Vec<u8>,
    pub writable: bool,
    /// Requests still to start (`-n`).
    pub quota: u64,
    pub started: std::collections::HashMap<u32, Instant>,
    pub closed: bool,
}

pub struct Tally {
    pub hist: hdrhistogram::Histogram<u64>,
    pub succeeded: u64,
    pub failed: u64,
    pub connection_errors: u64,
    /// Only requests started at or after this count.
    pub from: Instant,
}

impl Tally {
    pub fn record(&mut self, started: Instant, ok: bool, now: Instant) {
        if started < self.from {
            return;
        }
        if ok {
            self.succeeded += 1;
            let us = now.duration_since(started).as_micros().max(1) as u64;
            let _ = self.hist.record(us.min(self.hist.high()));
        } else {
            self.failed += 1;
        }
    }
}

impl Conn {
    pub fn handshake_done(&self) -> bool {
        self.tls.as_ref().is_none_or(|t| !t.is_handshaking())
    }

    /// Encrypts what is queued and writes until the socket is full.
    pub fn flush(&mut self) -> io::Result<()> {
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
        while self.writable && !self.wire.is_empty() {
            match self.sock.write(&self.wire) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.wire.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads until the socket is empty, handing the plaintext to the client.
    pub fn receive(
        &mut self,
        buf: &mut [u8],
        plain: &mut Vec<u8>,
        tally: &mut Tally,
        now: Instant,
    ) -> io::Result<()> {
        loop {
            let n = match self.sock.read(buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            plain.clear();
            match &mut self.tls {
                Some(tls) => {
                    let mut rest = &buf[..n];
                    while !rest.is_empty() {
                        tls.read_tls(&mut rest)?;
                        tls.process_new_packets().map_err(io::Error::other)?;
                        match tls.reader().read_to_end(plain) {
                            Ok(_) => {}
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            Err(e) => return Err(e),
                        }
                    }
                    if !tls.is_handshaking() && tls.alpn_protocol() != Some(crate::tls::ALPN_H2) {
                        return Err(io::Error::other("the server did not select h2 by ALPN"));
                    }
                }
                None => plain.extend_from_slice(&buf[..n]),
            }
            let started = &mut self.started;
            self.h2
                .handle_input(plain, &mut self.plain, |f: Finished| {
                    if let Some(t) = started.remove(&f.stream) {
                        tally.record(t, f.ok, now);
                    }
                })
                .map_err(io::Error::other)?;
        }
    }

    /// The server never served it (with `-D`): its share of requests in
    /// flight, `streams`, fails whether it could write them or not (h2c
    /// writes them blind at once, TLS nothing before its handshake), so
    /// that both count a starved connection alike.
    pub fn starve(&mut self, tally: &mut Tally, streams: usize) {
        if !self.closed {
            self.closed = true;
            self.started.clear();
            self.h2.fail_all(|_| {});
            tally.failed += streams as u64;
        }
    }

    /// The connection is done for: what it had open fails, and with `-n`,
    /// so does the rest of its share.
    pub fn fail(&mut self, tally: &mut Tally, now: Instant, counted_quota: bool) {
        if !self.closed {
            self.closed = true;
            let started = &mut self.started;
            self.h2.fail_all(|f| {
                if let Some(t) = started.remove(&f.stream) {
                    tally.record(t, false, now);
                }
            });
            if counted_quota && self.quota > 0 {
                tally.failed += self.quota;
                self.quota = 0;
            }
        }
    }
}
