//! `h2lab load`: the built-in load generator. One thread, a mio loop, `c`
//! connections with up to `m` requests in flight each, our own HTTP/2 client
//! (`client.rs`) and rustls on memory buffers, so that the main job needs no
//! external tool. Like h2load: a total of `-n` requests split evenly over the
//! clients, or `-D` seconds after `--warm-up` seconds.

pub mod client;
pub mod command;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use client::{ClientConnection, Finished};

/// When to stop issuing requests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stop {
    /// This many requests in all.
    Requests(u64),
    /// Measure for this long after the warm-up.
    Duration(Duration),
}

#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub url: String,
    pub clients: usize,
    pub streams: usize,
    pub stop: Stop,
    /// Responses finished during the warm-up are not counted (`-D` only).
    pub warm_up: Duration,
    /// Accept any certificate (`-k`).
    pub insecure: bool,
    /// Trust this CA (PEM) for `https://`.
    pub cacert: Option<PathBuf>,
    /// Requests still open this long after the last one was due are failed.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("bad URL {0:?}: expected http://HOST:PORT/ or https://HOST:PORT/")]
    Url(String),
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, io::Error),
    #[error("https:// needs --cacert FILE or -k (no system roots are used)")]
    NoTrust,
    #[error("cannot read the CA {}: {reason}", path.display())]
    Ca { path: PathBuf, reason: String },
    #[error("{0}")]
    Setup(String),
}

/// What a run measured (`--json` writes it as it is).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LoadReport {
    pub clients: usize,
    pub streams: usize,
    /// Requests counted (started after the warm-up, or all with `-n`).
    pub requests: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Connections that failed (refused, reset, TLS or protocol errors) or
    /// were never served by the end.
    pub connection_errors: u64,
    pub seconds: f64,
    pub req_per_s: f64,
    /// Latency of succeeded requests, in µs.
    pub latency_us: Latency,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Latency {
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
    pub mean: f64,
}

struct Target {
    addr: SocketAddr,
    authority: String,
    host: String,
    https: bool,
}

fn parse_url(url: &str) -> Result<Target, LoadError> {
    let bad = || LoadError::Url(url.to_string());
    let uri: http::Uri = url.parse().map_err(|_| bad())?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(bad()),
    };
    let authority = uri.authority().ok_or_else(bad)?;
    // `[::1]` → `::1`: the brackets are URL syntax, not part of the address.
    let raw = authority.host();
    let host = match raw.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']').ok_or_else(bad)?,
        None => raw,
    };
    // `Uri` is lenient after the host (`[::1]x`, `h:x`): only `:PORT` may follow.
    let port = match authority.as_str().strip_prefix(raw).ok_or_else(bad)? {
        "" => match https {
            true => 443,
            false => 80,
        },
        rest => rest
            .strip_prefix(':')
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or_else(bad)?,
    };
    if host.is_empty() {
        return Err(bad());
    }
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| LoadError::Resolve(authority.to_string(), e))?
        .next()
        .ok_or_else(|| LoadError::Resolve(authority.to_string(), io::ErrorKind::NotFound.into()))?;
    Ok(Target {
        addr,
        authority: authority.to_string(),
        host: host.to_string(),
        https,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_and_without_ports() {
        let t = parse_url("https://127.0.0.1:8443/").unwrap();
        assert_eq!(
            (t.addr.port(), t.https, t.host.as_str()),
            (8443, true, "127.0.0.1")
        );
        assert_eq!(t.authority, "127.0.0.1:8443");
        let t = parse_url("http://[::1]:8080").unwrap();
        assert_eq!((t.addr.port(), t.host.as_str()), (8080, "::1"));
        assert_eq!(parse_url("http://[::1]/").unwrap().addr.port(), 80);
        assert_eq!(parse_url("https://localhost/x").unwrap().addr.port(), 443);
        for bad in [
            "ftp://h/",
            "http://",
            "http:///",
            "http://h:x/",
            "http://[::1/",
            "http://[::1]x/",
            "http://h:99999/",
        ] {
            assert!(matches!(parse_url(bad), Err(LoadError::Url(_))), "{bad}");
        }
    }
}

/// Accepts any certificate: `-k`, for self-signed development servers.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config(config: &LoadConfig) -> Result<Arc<rustls::ClientConfig>, LoadError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| LoadError::Setup(e.to_string()))?;
    let mut tls = if config.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else if let Some(path) = &config.cacert {
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| LoadError::Ca {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        for cert in certs {
            roots.add(cert).map_err(|e| LoadError::Ca {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        return Err(LoadError::NoTrust);
    };
    tls.alpn_protocols = vec![crate::tls::ALPN_H2.to_vec()];
    Ok(Arc::new(tls))
}

/// One connection of the run.
struct Conn {
    sock: TcpStream,
    tls: Option<rustls::ClientConnection>,
    h2: ClientConnection,
    /// Plaintext to send, and ciphertext (or h2c bytes) not yet written.
    plain: Vec<u8>,
    wire: Vec<u8>,
    writable: bool,
    /// Requests still to start (`-n`).
    quota: u64,
    started: std::collections::HashMap<u32, Instant>,
    closed: bool,
}

struct Tally {
    hist: hdrhistogram::Histogram<u64>,
    succeeded: u64,
    failed: u64,
    connection_errors: u64,
    /// Only requests started at or after this count.
    from: Instant,
}

impl Tally {
    fn record(&mut self, started: Instant, ok: bool, now: Instant) {
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

/// Runs the load and reports. Bounded: it ends by `timeout` after the last
/// request was due, whatever the server does.
pub fn run(config: &LoadConfig) -> Result<LoadReport, LoadError> {
    if config.clients == 0 || config.streams == 0 {
        return Err(LoadError::Setup(
            "clients and streams must be at least 1".into(),
        ));
    }
    let target = parse_url(&config.url)?;
    let tls = match target.https {
        true => Some(tls_config(config)?),
        false => None,
    };
    let setup_err = |e: io::Error| LoadError::Setup(e.to_string());
    let mut poll = Poll::new().map_err(setup_err)?;
    let start = Instant::now();
    let (measure_from, due) = match config.stop {
        Stop::Requests(_) => (start, None),
        Stop::Duration(d) => (start + config.warm_up, Some(start + config.warm_up + d)),
    };
    let mut tally = Tally {
        hist: hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
            .map_err(|e| LoadError::Setup(e.to_string()))?,
        succeeded: 0,
        failed: 0,
        connection_errors: 0,
        from: measure_from,
    };
    let mut conns = Vec::with_capacity(config.clients);
    for i in 0..config.clients {
        let quota = match config.stop {
            Stop::Requests(n) => {
                let c = config.clients as u64;
                n / c + u64::from((i as u64) < n % c)
            }
            Stop::Duration(_) => u64::MAX,
        };
        let sock = match std::net::TcpStream::connect(target.addr)
            .and_then(|s| s.set_nodelay(true).map(|()| s))
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
        {
            Ok(s) => s,
            Err(_) => {
                tally.connection_errors += 1;
                if let Stop::Requests(_) = config.stop {
                    tally.failed += quota;
                }
                continue;
            }
        };
        let mut sock = TcpStream::from_std(sock);
        poll.registry()
            .register(
                &mut sock,
                Token(conns.len()),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(setup_err)?;
        let tls = match &tls {
            Some(cfg) => {
                let name = ServerName::try_from(target.host.clone())
                    .map_err(|e| LoadError::Setup(format!("server name {}: {e}", target.host)))?;
                Some(
                    rustls::ClientConnection::new(cfg.clone(), name)
                        .map_err(|e| LoadError::Setup(e.to_string()))?,
                )
            }
            None => None,
        };
        let mut plain = Vec::new();
        let h2 = ClientConnection::new(&target.authority, target.https, &mut plain);
        conns.push(Conn {
            sock,
            tls,
            h2,
            plain,
            wire: Vec::new(),
            writable: false,
            quota,
            started: Default::default(),
            closed: false,
        });
    }
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    let mut plain_in = Vec::with_capacity(64 * 1024);
    let counted_quota = due.is_none();
    let mut last_progress = Instant::now();
    loop {
        let now = Instant::now();
        let issuing = due.is_none_or(|d| now < d);
        let mut busy = false;
        for c in conns.iter_mut().filter(|c| !c.closed) {
            let mut fresh = false;
            while issuing
                && c.quota > 0
                && c.h2.in_flight() < config.streams
                && c.h2.can_send()
                && c.handshake_done()
            {
                let stream = c.h2.send_request(&mut c.plain);
                c.started.insert(stream, now);
                if counted_quota {
                    c.quota -= 1;
                }
                fresh = true;
            }
            if (fresh || !c.plain.is_empty() || !c.wire.is_empty()) && c.flush().is_err() {
                c.fail(&mut tally, now, counted_quota);
                continue;
            }
            if counted_quota && c.quota > 0 && c.h2.in_flight() == 0 && !c.h2.can_send() {
                // GOAWAY before its share was done: the rest fails.
                tally.failed += c.quota;
                c.quota = 0;
            }
            busy |= c.h2.in_flight() > 0 || (issuing && c.quota > 0);
        }
        let now = Instant::now();
        let out_of_time = match due {
            Some(d) => now > d + config.timeout,
            None => now > last_progress + config.timeout,
        };
        if !busy || out_of_time {
            break;
        }
        // Wakes at least every 50 ms, for the deadlines.
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(50))) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(setup_err(e));
            }
        }
        let now = Instant::now();
        let before = tally.succeeded + tally.failed;
        for event in events.iter() {
            let Some(c) = conns.get_mut(event.token().0) else {
                continue;
            };
            if c.closed {
                continue;
            }
            if event.is_writable() {
                c.writable = true;
            }
            if c.receive(&mut buf, &mut plain_in, &mut tally, now).is_err() || c.flush().is_err() {
                tally.connection_errors += 1;
                c.fail(&mut tally, now, counted_quota);
            }
        }
        if tally.succeeded + tally.failed != before {
            last_progress = now;
        }
    }
    let end = Instant::now();
    for c in conns.iter_mut().filter(|c| !c.closed) {
        // Never served (a server that takes one client at a time): that is
        // a connection error, even with nothing in flight to fail.
        if !c.h2.is_established() {
            tally.connection_errors += 1;
        }
        // Still open at the end: timed out.
        c.fail(&mut tally, end, counted_quota);
    }
    let seconds = match due {
        Some(d) => d
            .min(end)
            .saturating_duration_since(measure_from)
            .as_secs_f64(),
        None => end.duration_since(start).as_secs_f64(),
    };
    let h = &tally.hist;
    let latency_us = match h.len() {
        0 => Latency::default(),
        _ => Latency {
            min: h.min(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
            mean: h.mean(),
        },
    };
    Ok(LoadReport {
        clients: config.clients,
        streams: config.streams,
        requests: tally.succeeded + tally.failed,
        succeeded: tally.succeeded,
        failed: tally.failed,
        connection_errors: tally.connection_errors,
        seconds,
        req_per_s: if seconds > 0.0 {
            tally.succeeded as f64 / seconds
        } else {
            0.0
        },
        latency_us,
    })
}

impl Conn {
    fn handshake_done(&self) -> bool {
        self.tls.as_ref().is_none_or(|t| !t.is_handshaking())
    }

    /// Encrypts what is queued and writes until the socket is full.
    fn flush(&mut self) -> io::Result<()> {
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
    fn receive(
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

    /// The connection is done for: what it had open fails, and with `-n`,
    /// so does the rest of its share.
    fn fail(&mut self, tally: &mut Tally, now: Instant, counted_quota: bool) {
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

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = &self.latency_us;
        writeln!(
            f,
            "requests: {} total, {} succeeded, {} failed; {} connection errors ({} clients, {} streams each)",
            self.requests, self.succeeded, self.failed, self.connection_errors, self.clients, self.streams
        )?;
        writeln!(
            f,
            "finished in {:.3} s, {:.0} req/s",
            self.seconds, self.req_per_s
        )?;
        writeln!(
            f,
            "latency µs: min {} p50 {} p90 {} p99 {} max {} mean {:.1}",
            l.min, l.p50, l.p90, l.p99, l.max, l.mean
        )
    }
}
