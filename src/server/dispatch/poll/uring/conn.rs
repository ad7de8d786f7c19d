//! A client's socket as the ring sees it: the octets its receives brought
//! (copied out of the provided buffers as they complete), how its input
//! ended, and the one send the ring may hold for it.

use std::io;
use std::net::TcpStream;

use super::super::client::Socket;
use crate::buffers::BufPool;

/// Past this much received and not yet taken, the client's receive is
/// cancelled until its turns take it (as `poll` stops reading a client
/// whose answers back up): the kernel's socket buffer, then TCP's
/// window, hold the rest.
pub const RECEIVED_HIGH: usize = 64 * 1024;

pub struct Conn {
    pub sock: TcpStream,
    /// Received octets not yet taken by `read_socket`.
    received: Vec<u8>,
    taken: usize,
    /// The receives ended: at the end of input (`Ok`), or with an error.
    ended: Option<io::Result<()>>,
    /// A receive is submitted and has not ended.
    pub receiving: bool,
    /// A cancel of it has been asked for (the client's input backed up).
    pub cancelling: bool,
    /// The send handed over by the last turn, or in flight: the ring
    /// reads it until its completion, so it stays here (or, if the
    /// client closes first, with the loop's orphans) until then.
    pub sending: Vec<u8>,
    /// Octets of `sending` the kernel has sent so far.
    pub sent: usize,
    /// A send was handed over and not submitted yet.
    pub to_submit: bool,
    /// A send is submitted and has not completed.
    pub in_flight: bool,
}

impl Conn {
    pub fn new(sock: TcpStream) -> Self {
        Self {
            sock,
            received: Vec::new(),
            taken: 0,
            ended: None,
            receiving: false,
            cancelling: false,
            sending: Vec::new(),
            sent: 0,
            to_submit: false,
            in_flight: false,
        }
    }

    /// A receive completed with `data`, kept in a buffer from `pool` (the
    /// turn gives it back once taken: a fresh vector per receive cost the
    /// loop a malloc, a realloc and a free, ~1.8% of its CPU at 5 × 100).
    pub fn received(&mut self, pool: &mut BufPool, data: &[u8]) {
        if self.taken == self.received.len() {
            self.received.clear();
            self.taken = 0;
        }
        pool.fill(&mut self.received);
        self.received.extend_from_slice(data);
    }

    /// The receives ended: 0 octets (the end of input) or an error.
    pub fn end(&mut self, how: io::Result<()>) {
        self.ended.get_or_insert(how);
    }

    /// Something for `read_socket`: octets, or how the input ended.
    pub fn has_input(&self) -> bool {
        self.taken < self.received.len() || self.ended.is_some()
    }

    /// Received and not taken yet.
    pub fn backlog(&self) -> usize {
        self.received.len() - self.taken
    }

    /// The receives should go on: not ended, not backed up.
    pub fn wants_receive(&self) -> bool {
        self.ended.is_none() && self.backlog() < RECEIVED_HIGH
    }

    /// A send may be handed over.
    pub fn can_send(&self) -> bool {
        !self.to_submit && !self.in_flight
    }

    /// An empty buffer and no send: the turn's buffers go back to the pool.
    pub fn give_back(&mut self, pool: &mut BufPool) {
        if self.taken == self.received.len() {
            self.received.clear();
            self.taken = 0;
            pool.give_vec(&mut self.received);
        }
        if self.can_send() {
            self.sending.clear();
            self.sent = 0;
            pool.give_vec(&mut self.sending);
        }
    }
}

impl Socket for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.taken < self.received.len() {
            let n = buf.len().min(self.received.len() - self.taken);
            buf[..n].copy_from_slice(&self.received[self.taken..self.taken + n]);
            self.taken += n;
            return Ok(n);
        }
        match self.ended.take() {
            None => Err(io::ErrorKind::WouldBlock.into()),
            Some(Ok(())) => {
                // Said once like `read` says it every time after.
                self.ended = Some(Ok(()));
                Ok(0)
            }
            Some(Err(e)) => {
                self.ended = Some(Err(io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        }
    }

    /// Takes the whole of `out[start..]` as the next send (the buffer
    /// itself, not a copy), or none while one is pending.
    fn write_out(&mut self, out: &mut Vec<u8>, start: usize) -> io::Result<usize> {
        if !self.can_send() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if start > 0 {
            out.drain(..start);
        }
        self.sending.clear();
        std::mem::swap(out, &mut self.sending);
        self.sent = 0;
        self.to_submit = true;
        Ok(self.sending.len())
    }

    fn can_write_more(&self) -> bool {
        self.can_send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Conn {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let sock = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        Conn::new(sock)
    }

    #[test]
    fn received_octets_are_read_in_order_then_the_end() {
        let mut c = conn();
        let mut buf = [0u8; 4];
        assert_eq!(
            c.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        let mut pool = BufPool::default();
        c.received(&mut pool, b"hello");
        c.received(&mut pool, b" you");
        assert!(c.has_input());
        assert_eq!(c.read(&mut buf).unwrap(), 4);
        assert_eq!(&buf, b"hell");
        assert_eq!(c.backlog(), 5);
        assert_eq!(c.read(&mut buf).unwrap(), 4);
        assert_eq!(c.read(&mut buf).unwrap(), 1);
        assert!(!c.has_input());
        c.end(Ok(()));
        assert_eq!(c.read(&mut buf).unwrap(), 0);
        assert_eq!(c.read(&mut buf).unwrap(), 0, "the end, every time");
        assert!(!c.wants_receive());
    }

    #[test]
    fn an_error_ends_the_input_and_is_said_again() {
        let mut c = conn();
        c.end(Err(io::ErrorKind::ConnectionReset.into()));
        let mut buf = [0u8; 4];
        for _ in 0..2 {
            assert_eq!(
                c.read(&mut buf).unwrap_err().kind(),
                io::ErrorKind::ConnectionReset
            );
        }
    }

    #[test]
    fn one_send_at_a_time_and_the_buffer_moves_without_a_copy() {
        let mut c = conn();
        let mut out = b"xxframes".to_vec();
        let ptr = out.as_ptr();
        assert_eq!(c.write_out(&mut out, 0).unwrap(), 8);
        assert!(out.is_empty());
        assert_eq!(c.sending.as_ptr(), ptr, "the same buffer");
        assert!(!c.can_write_more());
        let mut more = b"more".to_vec();
        assert_eq!(
            c.write_out(&mut more, 0).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        c.to_submit = false;
        c.in_flight = false;
        let mut rest = b"xxrest".to_vec();
        assert_eq!(c.write_out(&mut rest, 2).unwrap(), 4);
        assert_eq!(c.sending, b"rest");
    }

    /// Received octets wait in a pooled buffer, which goes back to the
    /// pool once taken and is the one the next receive uses.
    #[test]
    fn received_octets_wait_in_a_pooled_buffer() {
        let mut c = conn();
        let mut pool = BufPool::default();
        c.received(&mut pool, &[7; 1000]);
        let ptr = c.received.as_ptr();
        let mut buf = vec![0; 2000];
        assert_eq!(c.read(&mut buf).unwrap(), 1000);
        c.give_back(&mut pool);
        assert_eq!(c.received.capacity(), 0, "given back");
        c.received(&mut pool, b"next");
        assert_eq!(c.received.as_ptr(), ptr, "the same buffer, from the pool");
    }

    #[test]
    fn a_backed_up_input_stops_the_receives() {
        let mut c = conn();
        c.received(&mut BufPool::default(), &vec![0; RECEIVED_HIGH]);
        assert!(!c.wants_receive());
        let mut buf = vec![0; 1024];
        c.read(&mut buf).unwrap();
        assert!(c.wants_receive());
    }
}
