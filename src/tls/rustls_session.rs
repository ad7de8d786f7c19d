//! rustls 0.23, buffered API on memory buffers (`read_tls` from a slice,
//! `write_tls` into a `Vec`), as in rustls's `tlsserver-mio` example.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, ServerConnection};

use super::{TlsError, TlsProvider, TlsSession, ALPN_H2};
use crate::identity::Identity;

pub(super) struct Acceptor {
    config: Arc<ServerConfig>,
}

fn config_error(reason: impl ToString) -> TlsError {
    TlsError::Config {
        provider: TlsProvider::Rustls,
        reason: reason.to_string(),
    }
}

impl Acceptor {
    pub(super) fn new(identity: &Identity) -> Result<Self, TlsError> {
        let certs = CertificateDer::pem_slice_iter(&identity.cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| config_error(format!("certificate PEM: {e}")))?;
        if certs.is_empty() {
            return Err(config_error("no certificate in the certificate PEM"));
        }
        let key = PrivateKeyDer::from_pem_slice(&identity.key_pem)
            .map_err(|e| config_error(format!("private key PEM: {e}")))?;
        // ring's suites are all AEAD; rustls has no renegotiation nor
        // compression. TLS 1.3 and 1.2 both.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(config_error)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(config_error)?;
        // With ALPN configured, rustls refuses a client whose offer has no
        // overlap (alert no_application_protocol) and serves one with no offer.
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(Self {
            config: Arc::new(config),
        })
    }

    pub(super) fn session(&self) -> Result<RustlsSession, TlsError> {
        let mut conn = ServerConnection::new(self.config.clone())
            .map_err(|e| TlsError::Session(e.to_string()))?;
        // The driver bounds what it queues; rustls must not drop or refuse it.
        conn.set_buffer_limit(None);
        Ok(RustlsSession { conn })
    }
}

pub(super) struct RustlsSession {
    conn: ServerConnection,
}

fn session_error(err: rustls::Error) -> TlsError {
    match err {
        rustls::Error::NoApplicationProtocol => TlsError::NoH2,
        other => TlsError::Session(other.to_string()),
    }
}

impl TlsSession for RustlsSession {
    fn handle_ciphertext(&mut self, input: &[u8]) -> Result<usize, TlsError> {
        let mut rest = input;
        while !rest.is_empty() {
            match self.conn.read_tls(&mut rest) {
                Ok(0) => break,
                Ok(_) => {}
                // From a slice the only error is "buffer full": decrypted
                // plaintext must be polled first.
                Err(_) => break,
            }
            self.conn.process_new_packets().map_err(session_error)?;
        }
        Ok(input.len() - rest.len())
    }

    fn poll_plaintext(&mut self, out: &mut Vec<u8>) -> Result<usize, TlsError> {
        let before = out.len();
        match self.conn.reader().read_to_end(out) {
            // Ok: the peer sent close_notify; the socket's EOF follows.
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(TlsError::Session(e.to_string())),
        }
        Ok(out.len() - before)
    }

    fn handle_plaintext(&mut self, input: &[u8]) -> Result<(), TlsError> {
        self.conn
            .writer()
            .write_all(input)
            .map_err(|e| TlsError::Session(e.to_string()))
    }

    fn poll_ciphertext(&mut self, out: &mut Vec<u8>) -> Result<usize, TlsError> {
        let before = out.len();
        while self.conn.wants_write() {
            self.conn
                .write_tls(out)
                .map_err(|e| TlsError::Session(e.to_string()))?;
        }
        Ok(out.len() - before)
    }

    fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.conn.alpn_protocol().map(<[u8]>::to_vec)
    }
}
