//! A client's socket as the ring sees it: the octets its receives brought
//! (in the provided buffers lent to it until the end of its next turn,
//! and what that turn left of them), how its input ended, and the one send
//! the ring may hold for it.

use std::io;
use std::net::TcpStream;

use super::super::client::Socket;
use super::bufs::{BufRing, BufView};
use crate::buffers::BufPool;

/// Past this much received and not yet taken, the client's receive is
/// cancelled until its turns take it (as `poll` stops reading a client
/// whose answers back up): the kernel's socket buffer, then TCP's
/// window, hold the rest.
pub const RECEIVED_HIGH: usize = 64 * 1024;

pub struct Conn {
    pub sock: TcpStream,
    /// Received octets not yet taken by `read_socket`, that a turn left
    /// in the buffers lent to it (read before `lent`).
    received: Vec<u8>,
    taken: usize,
    /// Provided buffers completions handed back, in order, not yet given
    /// back: the turn reads them where the kernel wrote them, one copy as
    /// `poll`'s `recv` makes (copying each out at its completion, then
    /// into the turn's buffer, cost `uring` 1.4% more `memmove` than
    /// `poll` at 5 × 100). Lent from the completion to the end of the
    /// client's next turn ([`Conn::give_back_lent`]) or its close
    /// ([`Conn::drop_lent`]), never longer.
    lent: Vec<Lent>,
    /// Where the lent buffers lie (set by the first [`Conn::lend`]).
    view: Option<BufView>,
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

/// The octets of lent buffer `l` not taken yet, up to `upto`.
#[expect(unsafe_code, reason = "a buffer lent to this client")]
fn lent_octets<'v>(view: &'v Option<BufView>, l: &Lent, upto: usize) -> &'v [u8] {
    let view = view.as_ref().expect("set by lend");
    // SAFETY: `l` is in a client's `lent`, so a completion handed its
    // buffer back and it has not been recycled: only `give_back_lent` and
    // `drop_lent` recycle, and they take it out of `lent` as they do (in
    // `give_back_lent`, after its octets are read here). The ring lives as
    // long as the loop's clients.
    unsafe { view.get(l.bid, l.taken, upto) }
}

/// A provided buffer lent to a client: its id, the octets the receive
/// put in it, and how many of them the turns have taken.
#[derive(Clone, Copy, Debug)]
struct Lent {
    bid: u16,
    len: usize,
    taken: usize,
}

impl Conn {
    pub fn new(sock: TcpStream) -> Self {
        Self {
            sock,
            received: Vec::new(),
            taken: 0,
            lent: Vec::new(),
            view: None,
            ended: None,
            receiving: false,
            cancelling: false,
            sending: Vec::new(),
            sent: 0,
            to_submit: false,
            in_flight: false,
        }
    }

    /// A receive completed with `len` octets in provided buffer `bid` of
    /// the ring `view` shows: the buffer is lent to this client until
    /// [`Self::give_back_lent`] or [`Self::drop_lent`], and nothing
    /// recycles it meanwhile.
    pub fn lend(&mut self, view: BufView, bid: u16, len: usize) {
        self.view = Some(view);
        self.lent.push(Lent { bid, len, taken: 0 });
    }

    /// After the client's turn: what it left of the lent buffers is copied
    /// into a buffer from `pool`, and they go back to the kernel.
    pub fn give_back_lent(&mut self, bufs: &mut BufRing, pool: &mut BufPool) {
        if self.lent.is_empty() {
            return;
        }
        for l in self.lent.drain(..) {
            if l.taken < l.len {
                if self.taken == self.received.len() {
                    self.received.clear();
                    self.taken = 0;
                }
                // (A pooled buffer: a fresh vector per receive cost the loop
                // a malloc, a realloc and a free, ~1.8% of its CPU at 5 × 100.)
                pool.fill(&mut self.received);
                self.received
                    .extend_from_slice(lent_octets(&self.view, &l, l.len));
            }
            bufs.recycle(l.bid);
        }
    }

    /// The client closes: its lent buffers go back to the kernel unread.
    pub fn drop_lent(&mut self, bufs: &mut BufRing) {
        for l in self.lent.drain(..) {
            bufs.recycle(l.bid);
        }
    }

    /// The receives ended: 0 octets (the end of input) or an error.
    pub fn end(&mut self, how: io::Result<()>) {
        self.ended.get_or_insert(how);
    }

    /// Something for `read_socket`: octets, or how the input ended.
    pub fn has_input(&self) -> bool {
        self.backlog() > 0 || self.ended.is_some()
    }

    /// Received and not taken yet.
    pub fn backlog(&self) -> usize {
        let lent: usize = self.lent.iter().map(|l| l.len - l.taken).sum();
        self.received.len() - self.taken + lent
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
        if let Some(l) = self.lent.iter_mut().find(|l| l.taken < l.len) {
            let n = buf.len().min(l.len - l.taken);
            buf[..n].copy_from_slice(lent_octets(&self.view, l, l.taken + n));
            l.taken += n;
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
    use crate::buffers::READ_BUF;

    fn conn() -> Conn {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let sock = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        Conn::new(sock)
    }

    /// A ring with four provided buffers of `READ_BUF` octets and no
    /// receive submitted (the ring drops first, as the loop's does).
    struct Ring {
        _ring: io_uring::IoUring,
        bufs: BufRing,
    }

    fn ring() -> Option<Ring> {
        // Skipped only where the system refuses io_uring; a fault fails.
        if crate::server::uring_skip_test() {
            return None;
        }
        let ring = io_uring::IoUring::new(8).unwrap();
        let bufs = BufRing::register(&ring.submitter(), 4, READ_BUF).unwrap();
        Some(Ring { _ring: ring, bufs })
    }

    impl Ring {
        /// `data` arrives in buffer `bid`, lent to `c`.
        fn arrive(&mut self, c: &mut Conn, bid: u16, data: &[u8]) {
            let n = self.bufs.put(bid, data);
            c.lend(self.bufs.view(), bid, n);
        }
    }

    #[test]
    fn received_octets_are_read_in_order_then_the_end() {
        let Some(mut r) = ring() else { return };
        let mut c = conn();
        let mut buf = [0u8; 4];
        assert_eq!(
            c.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        r.arrive(&mut c, 2, b"hello");
        r.arrive(&mut c, 0, b" you");
        assert!(c.has_input());
        assert_eq!(c.read(&mut buf).unwrap(), 4);
        assert_eq!(&buf, b"hell");
        assert_eq!(c.backlog(), 5);
        assert_eq!(c.read(&mut buf).unwrap(), 1, "one buffer a read");
        assert_eq!(&buf[..1], b"o");
        assert_eq!(c.read(&mut buf).unwrap(), 4);
        assert_eq!(&buf, b" you");
        assert!(!c.has_input());
        c.end(Ok(()));
        assert_eq!(c.read(&mut buf).unwrap(), 0);
        assert_eq!(c.read(&mut buf).unwrap(), 0, "the end, every time");
        assert!(!c.wants_receive());
    }

    /// After the turn, the lent buffers go back to the kernel, and what
    /// the turn left of them waits in a pooled buffer, read before what
    /// comes next; once taken, that buffer goes back to the pool and is
    /// the one the next leftover uses.
    #[test]
    fn what_a_turn_leaves_of_its_lent_buffers_is_kept_in_order() {
        let Some(mut r) = ring() else { return };
        let mut c = conn();
        let mut pool = BufPool::default();
        let given = r.bufs.given();
        r.arrive(&mut c, 1, &[7; 1000]);
        r.arrive(&mut c, 3, &[8; 10]);
        let mut buf = vec![0; 600];
        assert_eq!(c.read(&mut buf).unwrap(), 600);
        c.give_back_lent(&mut r.bufs, &mut pool);
        assert_eq!(r.bufs.given(), given.wrapping_add(2), "both back");
        assert_eq!(c.backlog(), 410);
        let ptr = c.received.as_ptr();
        r.arrive(&mut c, 1, b"next");
        let mut all = Vec::new();
        while let Ok(n) = c.read(&mut buf) {
            all.extend_from_slice(&buf[..n]);
        }
        let mut want = vec![7; 400];
        want.extend_from_slice(&[8; 10]);
        want.extend_from_slice(b"next");
        assert_eq!(all, want);
        c.give_back_lent(&mut r.bufs, &mut pool);
        c.give_back(&mut pool);
        assert_eq!(c.received.capacity(), 0, "given back");
        r.arrive(&mut c, 0, b"left");
        c.give_back_lent(&mut r.bufs, &mut pool);
        assert_eq!(c.received.as_ptr(), ptr, "the same buffer, from the pool");
        assert_eq!(&c.received[c.taken..], b"left");
    }

    /// A closing client's lent buffers go back to the kernel unread.
    #[test]
    fn a_closing_client_gives_its_buffers_back() {
        let Some(mut r) = ring() else { return };
        let mut c = conn();
        let given = r.bufs.given();
        r.arrive(&mut c, 0, b"unread");
        r.arrive(&mut c, 1, b"too");
        c.drop_lent(&mut r.bufs);
        assert_eq!(r.bufs.given(), given.wrapping_add(2));
        assert!(!c.has_input());
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

    #[test]
    fn a_backed_up_input_stops_the_receives() {
        let Some(mut r) = ring() else { return };
        let mut c = conn();
        for bid in 0..4 {
            r.arrive(&mut c, bid, &vec![0; READ_BUF]);
        }
        assert_eq!(c.backlog(), RECEIVED_HIGH);
        assert!(!c.wants_receive());
        let mut buf = vec![0; 1024];
        c.read(&mut buf).unwrap();
        assert!(c.wants_receive());
        c.give_back_lent(&mut r.bufs, &mut BufPool::default());
        assert_eq!(c.backlog(), RECEIVED_HIGH - 1024, "kept after the turn");
        assert!(c.wants_receive());
    }
}
