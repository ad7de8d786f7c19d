//! Socket plumbing shared by every dispatch: the would-block and
//! interrupted helpers, the pause after a failed accept, and listeners
//! bound with `SO_REUSEPORT`. Imports nothing of the crate: the buffer
//! sizes are in [`crate::buffers`], the traced socket of one connection in
//! `conn::socket`.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

/// Pause after an accept error such as EMFILE, so a loop does not spin.
pub const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// The socket has nothing to read, or no room to write, right now.
pub fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// A signal interrupted the call: try again.
pub fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

/// `n` listeners on one address, each with `SO_REUSEPORT`, so that the
/// kernel spreads new connections over them. Port 0: the first picks a
/// free port and the others take the same.
pub fn bind_reuseport(addr: SocketAddr, n: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let mut addr = addr;
    let mut listeners = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        sock.set_reuse_address(true)?;
        sock.set_reuse_port(true)?;
        sock.bind(&addr.into())?;
        sock.listen(1024)?;
        let listener = std::net::TcpListener::from(sock);
        addr = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}
