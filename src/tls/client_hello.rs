//! The client-hello hook: a callback that sees a TLS client's server name
//! and ALPN offer before the provider does, and may refuse the client.
//!
//! Both providers get the very same hook because it runs in front of them:
//! the ClientHello is parsed here from the buffered ciphertext (sans-IO,
//! RFC 8446 §4.1.2, RFC 6066 §3, RFC 7301 §3.1), then handed on untouched.

use std::fmt;
use std::sync::Arc;

use super::{TlsError, TlsSession};

/// What a client said in its ClientHello.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// The SNI host name, if sent.
    pub server_name: Option<String>,
    /// The ALPN protocols offered, in the client's order (empty: no ALPN).
    pub alpn: Vec<Vec<u8>>,
}

type HookFn = dyn Fn(&ClientHello) -> Result<(), String> + Send + Sync;

/// Sees each ClientHello; `Err(reason)` refuses the client.
#[derive(Clone)]
pub struct ClientHelloHook(Arc<HookFn>);

impl ClientHelloHook {
    pub fn new(f: impl Fn(&ClientHello) -> Result<(), String> + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    pub fn check(&self, hello: &ClientHello) -> Result<(), String> {
        (self.0)(hello)
    }
}

impl fmt::Debug for ClientHelloHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientHelloHook")
    }
}

/// A ClientHello larger than this (over all its records) is refused.
const MAX_HELLO: usize = 64 * 1024;
/// Content type of a TLS handshake record; a ClientHello's handshake type.
const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
/// A fatal handshake_failure alert record (RFC 8446 §6), sent on refusal.
const HANDSHAKE_FAILURE_ALERT: [u8; 7] = [21, 3, 3, 0, 2, 2, 40];

/// The outcome of parsing the start of a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More octets are needed.
    Partial,
    Hello(ClientHello),
    /// Not a well-formed ClientHello: left to the provider to reject.
    Malformed,
}

/// Reads the ClientHello from the first records of a connection.
pub fn parse(data: &[u8]) -> Parsed {
    // Gather the handshake message from as many records as it spans.
    let mut message = Vec::new();
    let mut rest = data;
    loop {
        let Some(header) = rest.get(..5) else {
            return Parsed::Partial;
        };
        if header[0] != HANDSHAKE {
            return Parsed::Malformed;
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        let Some(fragment) = rest.get(5..5 + len) else {
            return Parsed::Partial;
        };
        message.extend_from_slice(fragment);
        rest = &rest[5 + len..];
        if message.len() >= 4 {
            if message[0] != CLIENT_HELLO {
                return Parsed::Malformed;
            }
            let body_len = u32::from_be_bytes([0, message[1], message[2], message[3]]) as usize;
            if message.len() >= 4 + body_len {
                return match parse_body(&message[4..4 + body_len]) {
                    Some(hello) => Parsed::Hello(hello),
                    None => Parsed::Malformed,
                };
            }
        }
    }
}

/// A cursor over a ClientHello body; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A vector with a 1- or 2-octet length prefix.
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(n.into())
    }

    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n.into())
    }
}

fn parse_body(body: &[u8]) -> Option<ClientHello> {
    let mut r = Reader(body);
    r.take(2 + 32)?; // legacy_version, random
    r.vec8()?; // legacy_session_id
    r.vec16()?; // cipher_suites
    r.vec8()?; // legacy_compression_methods
    let mut hello = ClientHello::default();
    if r.0.is_empty() {
        return Some(hello); // no extensions at all
    }
    let mut exts = Reader(r.vec16()?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let mut data = Reader(exts.vec16()?);
        match kind {
            EXT_SERVER_NAME => {
                let mut list = Reader(data.vec16()?);
                while !list.0.is_empty() {
                    let name_type = list.u8()?;
                    let name = list.vec16()?;
                    if name_type == 0 {
                        hello.server_name = Some(String::from_utf8_lossy(name).into_owned());
                    }
                }
            }
            EXT_ALPN => {
                let mut list = Reader(data.vec16()?);
                while !list.0.is_empty() {
                    hello.alpn.push(list.vec8()?.to_vec());
                }
            }
            _ => {}
        }
    }
    Some(hello)
}

/// A session that holds the first ciphertext until the ClientHello is
/// complete, asks the hook, then hands everything to the real session.
pub(super) struct HookedSession {
    inner: Box<dyn TlsSession>,
    hook: ClientHelloHook,
    /// Ciphertext held while the ClientHello is incomplete; `None` once decided.
    held: Option<Vec<u8>>,
    /// The alert to send after a refusal.
    alert: Vec<u8>,
}

impl HookedSession {
    pub(super) fn new(inner: Box<dyn TlsSession>, hook: ClientHelloHook) -> Self {
        Self {
            inner,
            hook,
            held: Some(Vec::new()),
            alert: Vec::new(),
        }
    }

    fn refuse(&mut self, reason: String) -> TlsError {
        self.alert.extend_from_slice(&HANDSHAKE_FAILURE_ALERT);
        TlsError::Refused(reason)
    }
}

impl TlsSession for HookedSession {
    fn handle_ciphertext(&mut self, input: &[u8]) -> Result<usize, TlsError> {
        let Some(held) = self.held.as_mut() else {
            return self.inner.handle_ciphertext(input);
        };
        let room = MAX_HELLO.saturating_sub(held.len());
        let n = room.min(input.len());
        held.extend_from_slice(&input[..n]);
        let verdict = match parse(held) {
            Parsed::Partial if held.len() < MAX_HELLO => return Ok(n),
            Parsed::Partial => Err("ClientHello larger than 64 KiB".to_string()),
            Parsed::Hello(hello) => self.hook.check(&hello),
            Parsed::Malformed => Ok(()), // the provider rejects it, with its own alert
        };
        let held = self.held.take().unwrap_or_default();
        if let Err(reason) = verdict {
            return Err(self.refuse(reason));
        }
        // The provider takes all of it or keeps the rest in its own buffer:
        // neither rustls nor our OpenSSL pipe refuses a first flight this small.
        let mut rest = &held[..];
        while !rest.is_empty() {
            let used = self.inner.handle_ciphertext(rest)?;
            if used == 0 {
                return Err(TlsError::Session(
                    "ClientHello not taken by the provider".into(),
                ));
            }
            rest = &rest[used..];
        }
        Ok(n)
    }

    fn poll_plaintext(&mut self, out: &mut Vec<u8>) -> Result<usize, TlsError> {
        self.inner.poll_plaintext(out)
    }

    fn handle_plaintext(&mut self, input: &[u8]) -> Result<(), TlsError> {
        self.inner.handle_plaintext(input)
    }

    fn poll_ciphertext(&mut self, out: &mut Vec<u8>) -> Result<usize, TlsError> {
        if !self.alert.is_empty() {
            let n = self.alert.len();
            out.append(&mut self.alert);
            return Ok(n);
        }
        self.inner.poll_ciphertext(out)
    }

    fn wants_write(&self) -> bool {
        !self.alert.is_empty() || self.inner.wants_write()
    }

    fn is_handshaking(&self) -> bool {
        self.inner.is_handshaking()
    }

    fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.inner.alpn_protocol()
    }
}

impl fmt::Debug for HookedSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookedSession")
            .field("deciding", &self.held.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ClientHello: SNI "localhost", ALPN ["h2", "http/1.1"].
    fn hello_record() -> Vec<u8> {
        let sni: Vec<u8> = [&[0, 0][..], &[0, 14], &[0, 12], &[0, 0, 9], b"localhost"].concat();
        let alpn: Vec<u8> = [
            &[0, 16][..],
            &[0, 14],
            &[0, 12],
            &[2],
            b"h2",
            &[8],
            b"http/1.1",
        ]
        .concat();
        let exts = [sni, alpn].concat();
        let body: Vec<u8> = [
            &[3, 3][..],
            &[7; 32],
            &[0],                // session id
            &[0, 2, 0x13, 0x01], // one suite
            &[1, 0],             // null compression
            &(exts.len() as u16).to_be_bytes(),
            &exts,
        ]
        .concat();
        let len = (body.len() as u32).to_be_bytes();
        let message = [&[CLIENT_HELLO, len[1], len[2], len[3]][..], &body].concat();
        let rlen = (message.len() as u16).to_be_bytes();
        [&[HANDSHAKE, 3, 1, rlen[0], rlen[1]][..], &message].concat()
    }

    fn expected() -> ClientHello {
        ClientHello {
            server_name: Some("localhost".into()),
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        }
    }

    /// A hooked session says whether it is still deciding, and nothing of
    /// the session it wraps.
    #[test]
    fn a_hooked_session_says_whether_it_is_deciding() {
        let plain = Box::new(super::super::plain::PlainSession::default());
        let mut s = HookedSession::new(plain, ClientHelloHook::new(|_| Ok(())));
        assert_eq!(format!("{s:?}"), "HookedSession { deciding: true, .. }");
        // Not TLS at all: left to the session it wraps, and decided.
        assert_eq!(s.handle_ciphertext(b"GET / HTTP/1.1").unwrap(), 14);
        assert_eq!(format!("{s:?}"), "HookedSession { deciding: false, .. }");
    }

    #[test]
    fn parses_sni_and_alpn() {
        assert_eq!(parse(&hello_record()), Parsed::Hello(expected()));
    }

    #[test]
    fn every_prefix_is_partial() {
        let record = hello_record();
        for cut in 0..record.len() {
            assert_eq!(parse(&record[..cut]), Parsed::Partial, "cut at {cut}");
        }
    }

    #[test]
    fn a_hello_split_over_two_records_is_joined() {
        let record = hello_record();
        let message = &record[5..];
        let (a, b) = message.split_at(20);
        let rec = |part: &[u8]| {
            let len = (part.len() as u16).to_be_bytes();
            [&[HANDSHAKE, 3, 1, len[0], len[1]][..], part].concat()
        };
        let two = [rec(a), rec(b)].concat();
        assert_eq!(parse(&two), Parsed::Hello(expected()));
    }

    #[test]
    fn garbage_is_malformed_never_a_panic() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Parsed::Malformed);
        let mut record = hello_record();
        // An extension length running past the end.
        let last = record.len() - 1;
        record[last - 12] = 0xff;
        assert!(matches!(
            parse(&record),
            Parsed::Malformed | Parsed::Hello(_)
        ));
        let mut seed = 1u32;
        for len in 0..300 {
            let mut bytes = hello_record();
            for b in bytes.iter_mut().skip(5).take(len % 60) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                *b ^= (seed >> 16) as u8;
            }
            let _ = parse(&bytes);
        }
    }

    mod props {
        use std::sync::Arc;

        use proptest::prelude::*;

        use super::super::*;

        /// The first flight of a real rustls client: its ClientHello, in
        /// one record.
        fn rustls_hello(name: &str, alpn: &[Vec<u8>]) -> Vec<u8> {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            config.alpn_protocols = alpn.to_vec();
            let name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
            let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
            let mut out = Vec::new();
            conn.write_tls(&mut out).unwrap();
            out
        }

        /// The handshake message of `record`, sent again in records cut at
        /// `cuts`.
        fn resplit(record: &[u8], cuts: &[usize]) -> Vec<u8> {
            let message = &record[5..];
            let mut at: Vec<usize> = cuts.iter().map(|c| c % message.len()).collect();
            at.push(0);
            at.push(message.len());
            at.sort_unstable();
            at.dedup();
            at.windows(2)
                .flat_map(|w| {
                    let part = &message[w[0]..w[1]];
                    let len = (part.len() as u16).to_be_bytes();
                    [&[HANDSHAKE, 3, 1, len[0], len[1]][..], part].concat()
                })
                .collect()
        }

        proptest! {
            /// What a real client says is read back exactly, however its
            /// message is spread over records, and every prefix asks for
            /// more.
            #[test]
            fn a_real_hello_reads_back_however_it_is_split(
                name in "[a-z][a-z0-9]{0,15}(\\.[a-z][a-z0-9]{0,9}){0,3}",
                alpn in proptest::collection::vec("[a-z0-9/.]{1,12}", 0..4),
                cuts in proptest::collection::vec(any::<usize>(), 0..6),
            ) {
                let alpn: Vec<Vec<u8>> = alpn.into_iter().map(String::into_bytes).collect();
                let record = rustls_hello(&name, &alpn);
                let expected = Parsed::Hello(ClientHello {
                    server_name: Some(name.clone()),
                    alpn: alpn.clone(),
                });
                let split = resplit(&record, &cuts);
                prop_assert_eq!(parse(&record), expected);
                let hello = parse(&split);
                prop_assert_eq!(&hello, &parse(&record));
                for cut in [0, 1, 4, 5, split.len() / 2, split.len() - 1] {
                    prop_assert_eq!(parse(&split[..cut]), Parsed::Partial, "cut at {}", cut);
                }
            }

            /// Any octets, or a real hello with octets changed: an answer,
            /// never a panic.
            #[test]
            fn arbitrary_octets_never_panic(
                junk in proptest::collection::vec(any::<u8>(), 0..2048),
                flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
            ) {
                let _ = parse(&junk);
                let mut hello = rustls_hello("localhost", &[b"h2".to_vec()]);
                for (at, x) in flips {
                    let i = 5 + at % (hello.len() - 5);
                    hello[i] ^= x;
                }
                let _ = parse(&hello);
            }
        }
    }
}
