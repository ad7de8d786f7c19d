//! One connection on a blocking socket: read, decrypt, engine, encrypt,
//! write, until the client leaves. Used by the `single` and `thread`
//! dispatches (they differ only in who calls it).

use std::io::{self, Read, Write};
use std::net::TcpStream;

use crate::engine::{EngineError, MiniConnection, Status};
use crate::tls::{TlsError, TlsSession};

/// Octets read from the socket at once.
pub const READ_BUF: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    #[error("TLS session takes no more input and has nothing to give")]
    Stalled,
}

/// Per-connection buffers, cleared and reused for every read.
struct Buffers {
    read: Box<[u8]>,
    plain_in: Vec<u8>,
    plain_out: Vec<u8>,
    wire_out: Vec<u8>,
}

/// Serves one connection until the client closes it, sends GOAWAY, or breaks
/// the protocol; `responses` gets the number of responses sent either way.
pub fn serve(
    mut sock: TcpStream,
    mut tls: Box<dyn TlsSession>,
    responses: &mut u64,
) -> Result<(), ConnError> {
    sock.set_nodelay(true)?;
    let mut buf = Buffers {
        read: vec![0; READ_BUF].into_boxed_slice(),
        plain_in: Vec::with_capacity(READ_BUF),
        plain_out: Vec::with_capacity(READ_BUF),
        wire_out: Vec::with_capacity(READ_BUF),
    };
    let mut engine = MiniConnection::accept(&mut buf.plain_out);
    let result = run(&mut sock, tls.as_mut(), &mut engine, &mut buf);
    *responses = engine.responses();
    if result.is_err() {
        // Send what is due (a GOAWAY, a TLS alert) before closing; the
        // client may be gone already, so errors here change nothing.
        let _ = flush(&mut sock, tls.as_mut(), &mut buf);
    }
    result
}

fn run(
    sock: &mut TcpStream,
    tls: &mut dyn TlsSession,
    engine: &mut MiniConnection,
    buf: &mut Buffers,
) -> Result<(), ConnError> {
    loop {
        flush(sock, tls, buf)?;
        if engine.is_closed() {
            return Ok(());
        }
        let n = match sock.read(&mut buf.read) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            engine.handle_eof(&mut buf.plain_out)?;
            return Ok(());
        }
        let mut input = &buf.read[..n];
        while !input.is_empty() {
            let used = tls.handle_ciphertext(input)?;
            input = &input[used..];
            let got = tls.poll_plaintext(&mut buf.plain_in)?;
            if used == 0 && got == 0 {
                return Err(ConnError::Stalled);
            }
            if got > 0 {
                let status = engine.handle_input(&buf.plain_in, &mut buf.plain_out);
                buf.plain_in.clear();
                if status? == Status::Closed {
                    break;
                }
            }
        }
    }
}

/// Encrypts what the engine queued and writes it all to the socket.
fn flush(
    sock: &mut TcpStream,
    tls: &mut dyn TlsSession,
    buf: &mut Buffers,
) -> Result<(), ConnError> {
    if !buf.plain_out.is_empty() {
        tls.handle_plaintext(&buf.plain_out)?;
        buf.plain_out.clear();
    }
    tls.poll_ciphertext(&mut buf.wire_out)?;
    if !buf.wire_out.is_empty() {
        sock.write_all(&buf.wire_out)?;
        buf.wire_out.clear();
    }
    Ok(())
}
