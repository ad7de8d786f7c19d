//! A connection's buffers: their sizes and the pool that lends them.
//! Buffers are lent to connections while they have data and given back
//! when empty, so that an idle connection holds none (10,000 idle
//! connections on `poll` held ~21 KiB each, mostly empty buffers). One
//! pool per loop thread; taking and giving back are a pop and a push.
//! Imports nothing of the crate: the TLS sessions (sans-IO) and the
//! server's connections both take their buffers from here.

/// Octets read from a socket at once.
pub const READ_BUF: usize = 16 * 1024;
/// Past this much unsent output, a connection stops taking more: the poll
/// loop stops reading, the async TLS adapter waits for the socket.
pub const HIGH_WATER: usize = 256 * 1024;

/// Buffers kept for reuse, at most; more are freed.
const KEPT: usize = 256;
/// A growable buffer larger than this is freed rather than kept.
const LARGEST_KEPT: usize = 1 << 20;

#[derive(Default)]
pub struct BufPool {
    reads: Vec<Box<[u8]>>,
    vecs: Vec<Vec<u8>>,
}

impl BufPool {
    /// A read buffer of [`READ_BUF`] octets.
    pub fn take_read(&mut self) -> Box<[u8]> {
        self.reads
            .pop()
            .unwrap_or_else(|| vec![0; READ_BUF].into_boxed_slice())
    }

    pub fn give_read(&mut self, buf: Box<[u8]>) {
        if self.reads.len() < KEPT {
            self.reads.push(buf);
        }
    }

    /// An empty growable buffer (with room, if one was given back).
    pub fn take_vec(&mut self) -> Vec<u8> {
        self.vecs.pop().unwrap_or_default()
    }

    /// Gives `v` back if it is empty and holds memory: `v` is left empty
    /// and without capacity either way.
    pub fn give_vec(&mut self, v: &mut Vec<u8>) {
        if !v.is_empty() || v.capacity() == 0 {
            return;
        }
        let v = std::mem::take(v);
        if self.vecs.len() < KEPT && v.capacity() <= LARGEST_KEPT {
            self.vecs.push(v);
        }
    }

    /// Lends `v` a pooled buffer if it has none.
    pub fn fill(&mut self, v: &mut Vec<u8>) {
        if v.capacity() == 0 {
            *v = self.take_vec();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_go_round() {
        let mut pool = BufPool::default();
        let mut v = pool.take_vec();
        assert_eq!(v.capacity(), 0);
        v.extend_from_slice(b"data");
        pool.give_vec(&mut v);
        assert_eq!(v, b"data", "not empty: kept by its owner");
        v.clear();
        pool.give_vec(&mut v);
        assert_eq!(v.capacity(), 0, "given back");
        let mut w = Vec::new();
        pool.fill(&mut w);
        assert!(w.capacity() >= 4, "the same buffer, lent again");
        let r = pool.take_read();
        assert_eq!(r.len(), READ_BUF);
        pool.give_read(r);
        assert_eq!(pool.take_read().len(), READ_BUF);
    }
}
