//! The whole pipeline without sockets: a rustls client and our server session
//! plus the mini engine, stepped in memory until idle (quinn's `Pair`).

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use super::*;
use crate::engine::MiniConnection;
use crate::frame::CLIENT_PREFACE;
use crate::identity::DEV_CA_PEM;

/// A step loop must end: "driver loops have an upper bound".
const MAX_ITERATIONS: usize = 100;

fn client(alpn: &[&[u8]]) -> ClientConnection {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(DEV_CA_PEM) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = ServerName::try_from("localhost").unwrap();
    ClientConnection::new(Arc::new(config), name).unwrap()
}

struct Pair {
    client: ClientConnection,
    server: Box<dyn TlsSession>,
    engine: MiniConnection,
    /// Plaintext the client received.
    received: Vec<u8>,
}

impl Pair {
    fn new(provider: TlsProvider, alpn: &[&[u8]]) -> Self {
        Self::hooked(provider, alpn, None)
    }

    /// A pair whose server asks `hook` about each ClientHello.
    fn hooked(provider: TlsProvider, alpn: &[&[u8]], hook: Option<ClientHelloHook>) -> Self {
        let acceptor = TlsAcceptor::new(provider, &Identity::development())
            .unwrap()
            .with_client_hello_hook(hook);
        let mut server = acceptor.session().unwrap();
        let mut settings = Vec::new();
        let engine = MiniConnection::accept(&mut settings);
        server.handle_plaintext(&settings).unwrap();
        Self {
            client: client(alpn),
            server,
            engine,
            received: Vec::new(),
        }
    }

    /// Moves bytes both ways until neither side has anything to say.
    fn run(&mut self) -> Result<(), TlsError> {
        for _ in 0..MAX_ITERATIONS {
            let mut wire = Vec::new();
            while self.client.wants_write() {
                self.client.write_tls(&mut wire).unwrap();
            }
            let mut rest = &wire[..];
            let mut plain = Vec::new();
            let mut answer = Vec::new();
            while !rest.is_empty() {
                let n = self.server.handle_ciphertext(rest)?;
                rest = &rest[n..];
                self.server.poll_plaintext(&mut plain)?;
                let _ = self.engine.handle_input(&plain, &mut answer);
                self.engine.poll_transmit(&mut answer, usize::MAX);
                plain.clear();
            }
            self.server.handle_plaintext(&answer)?;
            let mut back = Vec::new();
            self.server.poll_ciphertext(&mut back)?;
            if wire.is_empty() && back.is_empty() {
                return Ok(());
            }
            let mut back = &back[..];
            while !back.is_empty() {
                self.client.read_tls(&mut back).unwrap();
                if let Err(e) = self.client.process_new_packets() {
                    return Err(TlsError::Session(format!("client: {e}")));
                }
            }
            let _ = self.client.reader().read_to_end(&mut self.received);
        }
        panic!("no quiescence after {MAX_ITERATIONS} iterations");
    }
}

const GET: [u8; 12] = [0, 0, 3, 1, 5, 0, 0, 0, 1, 0x82, 0x87, 0x84];

fn request_over(provider: TlsProvider, alpn: &[&[u8]]) -> Pair {
    let mut pair = Pair::new(provider, alpn);
    let mut hello = CLIENT_PREFACE.to_vec();
    hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    hello.extend_from_slice(&GET);
    pair.client.writer().write_all(&hello).unwrap();
    pair.run().unwrap();
    pair
}

#[test]
fn h2_request_over_each_tls_provider_in_memory() {
    for provider in [TlsProvider::Rustls, TlsProvider::Openssl] {
        let pair = request_over(provider, &[b"h2"]);
        assert!(
            pair.received.ends_with(b"Hello World\n"),
            "{provider}: {:?}",
            pair.received
        );
        assert_eq!(pair.engine.responses(), 1);
        assert_eq!(pair.server.alpn_protocol().as_deref(), Some(&b"h2"[..]));
        assert_eq!(pair.client.alpn_protocol(), Some(&b"h2"[..]));
    }
}

#[test]
fn plain_session_passes_bytes_through() {
    let acceptor = TlsAcceptor::new(TlsProvider::None, &Identity::development()).unwrap();
    let mut s = acceptor.session().unwrap();
    assert!(!s.is_handshaking());
    assert_eq!(s.handle_ciphertext(b"abc").unwrap(), 3);
    let mut out = b"x".to_vec();
    assert_eq!(s.poll_plaintext(&mut out).unwrap(), 3);
    assert_eq!(out, b"xabc");
    s.handle_plaintext(b"def").unwrap();
    assert!(s.wants_write());
    out.clear();
    assert_eq!(s.poll_ciphertext(&mut out).unwrap(), 3);
    assert_eq!(out, b"def");
    assert!(!s.wants_write());
}

#[test]
fn client_without_alpn_is_served_as_h2() {
    for provider in [TlsProvider::Rustls, TlsProvider::Openssl] {
        let pair = request_over(provider, &[]);
        assert!(pair.received.ends_with(b"Hello World\n"), "{provider}");
        assert_eq!(pair.server.alpn_protocol(), None);
    }
}

#[test]
fn client_offering_only_http11_is_refused_with_an_alert() {
    for provider in [TlsProvider::Rustls, TlsProvider::Openssl] {
        let mut pair = Pair::new(provider, &[b"http/1.1"]);
        let mut wire = Vec::new();
        pair.client.write_tls(&mut wire).unwrap();
        let err = pair.server.handle_ciphertext(&wire).unwrap_err();
        assert!(matches!(err, TlsError::NoH2), "{provider}: {err}");
        let mut alert = Vec::new();
        pair.server.poll_ciphertext(&mut alert).unwrap();
        pair.client.read_tls(&mut &alert[..]).unwrap();
        let client_err = pair.client.process_new_packets().unwrap_err();
        assert_eq!(
            client_err,
            rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol),
            "{provider}"
        );
    }
}

#[test]
fn garbage_instead_of_client_hello_is_an_error() {
    for provider in [TlsProvider::Rustls, TlsProvider::Openssl] {
        let acceptor = TlsAcceptor::new(provider, &Identity::development()).unwrap();
        let mut server = acceptor.session().unwrap();
        let garbage: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
        let err = server.handle_ciphertext(&garbage).unwrap_err();
        assert!(matches!(err, TlsError::Session(_)), "{provider}: {err}");
    }
}

#[test]
fn bad_pem_is_a_config_error() {
    let identity = Identity {
        cert_pem: b"not a pem".to_vec(),
        key_pem: b"nor this".to_vec(),
    };
    for provider in [TlsProvider::Rustls, TlsProvider::Openssl] {
        let err = TlsAcceptor::new(provider, &identity).err().unwrap();
        assert!(matches!(err, TlsError::Config { .. }), "{provider}: {err}");
    }
}

/// OpenSSL sends records of at most 4 KiB of plaintext (its write buffer
/// is sized by it), and 40 KiB written at once still arrive whole, also
/// when the session lends its buffers back between writes.
#[test]
fn openssl_records_hold_at_most_4_kib_and_big_writes_arrive_whole() {
    let mut pool = crate::buffers::BufPool::default();
    let mut pair = request_over(TlsProvider::Openssl, &[b"h2"]);
    pair.server.return_buffers(&mut pool);
    let data: Vec<u8> = (0..40 * 1024u32).map(|i| (i % 251) as u8).collect();
    pair.server.handle_plaintext(&data).unwrap();
    let mut wire = Vec::new();
    pair.server.poll_ciphertext(&mut wire).unwrap();
    pair.server.return_buffers(&mut pool);
    pair.server.borrow_buffers(&mut pool);
    // Records: type, version, 2-octet length; AEAD adds 22 octets (TLS 1.3
    // inner type and tag).
    let mut records = 0;
    let mut rest = &wire[..];
    while !rest.is_empty() {
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        assert!(len <= 4096 + 22, "a record of {len} octets");
        rest = &rest[5 + len..];
        records += 1;
    }
    assert!(records >= 10, "{records} records for 40 KiB");
    let mut back = &wire[..];
    let mut got = Vec::new();
    while !back.is_empty() {
        pair.client.read_tls(&mut back).unwrap();
        pair.client.process_new_packets().unwrap();
        // WouldBlock once all that arrived is read.
        let _ = pair.client.reader().read_to_end(&mut got);
    }
    assert_eq!(got, data);
}

/// A hook that records every ClientHello it sees and refuses the ones
/// whose server name is not `allowed`.
fn recording_hook(
    allowed: &'static str,
) -> (ClientHelloHook, Arc<std::sync::Mutex<Vec<ClientHello>>>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let hook = ClientHelloHook::new(move |hello| {
        log.lock().unwrap().push(hello.clone());
        match hello.server_name.as_deref() == Some(allowed) {
            true => Ok(()),
            false => Err(format!("not {allowed}")),
        }
    });
    (hook, seen)
}

/// The hook sees the client's name and ALPN offer once, before the
/// provider; a yes lets the handshake and the request go on, even when the
/// first flight arrives one octet at a time.
#[test]
fn the_hook_sees_each_hello_once_and_a_yes_serves() {
    for provider in [TlsProvider::Rustls, TlsProvider::Openssl] {
        let (hook, seen) = recording_hook("localhost");
        let mut pair = Pair::hooked(provider, &[b"h2", b"http/1.1"], Some(hook));
        let mut wire = Vec::new();
        pair.client.write_tls(&mut wire).unwrap();
        for octet in wire.chunks(1) {
            assert_eq!(
                pair.server.handle_ciphertext(octet).unwrap(),
                1,
                "{provider}"
            );
        }
        assert!(pair.server.is_handshaking());
        let mut hello = CLIENT_PREFACE.to_vec();
        hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        hello.extend_from_slice(&GET);
        pair.client.writer().write_all(&hello).unwrap();
        let mut back = Vec::new();
        pair.server.poll_ciphertext(&mut back).unwrap();
        pair.client.read_tls(&mut &back[..]).unwrap();
        pair.client.process_new_packets().unwrap();
        pair.run().unwrap();
        assert!(pair.received.ends_with(b"Hello World\n"), "{provider}");
        assert!(!pair.server.is_handshaking(), "{provider}");
        assert!(!pair.server.wants_write(), "{provider}");
        assert_eq!(pair.server.alpn_protocol().as_deref(), Some(&b"h2"[..]));
        let seen = seen.lock().unwrap();
        assert_eq!(
            *seen,
            [ClientHello {
                server_name: Some("localhost".into()),
                alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            }],
            "{provider}"
        );
    }
}

/// A no is a refusal with the hook's reason, and the client gets a fatal
/// handshake_failure alert before anything of the provider's.
#[test]
fn a_hook_that_says_no_refuses_with_an_alert() {
    for provider in [TlsProvider::Rustls, TlsProvider::Openssl] {
        let (hook, seen) = recording_hook("elsewhere");
        let mut pair = Pair::hooked(provider, &[b"h2"], Some(hook));
        let mut wire = Vec::new();
        pair.client.write_tls(&mut wire).unwrap();
        assert!(!pair.server.wants_write(), "{provider}");
        let err = pair.server.handle_ciphertext(&wire).unwrap_err();
        assert!(
            matches!(&err, TlsError::Refused(why) if why == "not elsewhere"),
            "{provider}: {err}"
        );
        assert!(pair.server.wants_write(), "{provider}: the alert waits");
        let mut alert = Vec::new();
        assert_eq!(pair.server.poll_ciphertext(&mut alert).unwrap(), 7);
        assert_eq!(alert, [21, 3, 3, 0, 2, 2, 40], "{provider}");
        assert!(!pair.server.wants_write(), "{provider}");
        pair.client.read_tls(&mut &alert[..]).unwrap();
        assert_eq!(
            pair.client.process_new_packets().unwrap_err(),
            rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure),
            "{provider}"
        );
        assert_eq!(seen.lock().unwrap().len(), 1);
    }
}

fn acceptor_hook() -> ClientHelloHook {
    recording_hook("localhost").0
}

/// A ClientHello that never ends is refused at 64 KiB, without the hook;
/// one that is no ClientHello is left to the provider, which rejects it.
#[test]
fn an_endless_or_malformed_hello_never_reaches_the_hook() {
    let (hook, seen) = recording_hook("localhost");
    let acceptor = TlsAcceptor::new(TlsProvider::Rustls, &Identity::development())
        .unwrap()
        .with_client_hello_hook(Some(hook));
    let mut endless = acceptor.session().unwrap();
    // A ClientHello header promising 16 MiB, then full records of it.
    let mut record = vec![22, 3, 1, 0x40, 0];
    record.extend_from_slice(&[1, 0xff, 0xff, 0xff]);
    record.resize(5 + 0x4000, 0);
    let mut taken = 0;
    let mut refused = None;
    for _ in 0..8 {
        match endless.handle_ciphertext(&record) {
            Ok(n) => taken += n,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
        record = [&[22, 3, 1, 0x40, 0][..], &[0; 0x4000]].concat();
    }
    let err = refused.unwrap_or_else(|| panic!("never refused: {taken} octets taken"));
    assert!(
        matches!(&err, TlsError::Refused(why) if why.contains("larger than 64 KiB")),
        "{err}"
    );
    // Three whole records taken (16,389 octets each); the fourth would
    // pass 64 KiB held.
    assert_eq!(taken, 3 * (5 + 0x4000), "refused at 64 KiB, not before");
    assert_eq!(format!("{:?}", acceptor_hook()), "ClientHelloHook");
    let mut malformed = acceptor.session().unwrap();
    let err = malformed
        .handle_ciphertext(&[23, 3, 3, 0, 1, 0])
        .unwrap_err();
    assert!(matches!(err, TlsError::Session(_)), "the provider's: {err}");
    assert!(seen.lock().unwrap().is_empty());
}
