//! No TLS: plaintext passes through, so h2c runs on the same driver code.

use super::{TlsError, TlsSession};

#[derive(Default)]
pub(super) struct PlainSession {
    received: Vec<u8>,
    to_send: Vec<u8>,
}

impl TlsSession for PlainSession {
    fn handle_ciphertext(&mut self, input: &[u8]) -> Result<usize, TlsError> {
        self.received.extend_from_slice(input);
        Ok(input.len())
    }

    fn poll_plaintext(&mut self, out: &mut Vec<u8>) -> Result<usize, TlsError> {
        let n = self.received.len();
        out.append(&mut self.received);
        Ok(n)
    }

    fn handle_plaintext(&mut self, input: &[u8]) -> Result<(), TlsError> {
        self.to_send.extend_from_slice(input);
        Ok(())
    }

    fn poll_ciphertext(&mut self, out: &mut Vec<u8>) -> Result<usize, TlsError> {
        let n = self.to_send.len();
        out.append(&mut self.to_send);
        Ok(n)
    }

    fn wants_write(&self) -> bool {
        !self.to_send.is_empty()
    }

    fn is_handshaking(&self) -> bool {
        false
    }

    fn alpn_protocol(&self) -> Option<Vec<u8>> {
        None
    }

    fn is_plain(&self) -> bool {
        true
    }
}
