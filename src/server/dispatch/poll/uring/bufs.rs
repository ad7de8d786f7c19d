//! The provided buffer ring: buffers the kernel picks from when a receive
//! completes, so that a connection waiting for input holds none. A
//! completion's buffer is lent to its client until the end of the
//! client's next turn, which reads it where the kernel wrote it (see
//! [`BufView`]); then it goes back to the kernel. So the ring only runs
//! short while one drain of completions holds more receives than it has
//! buffers (the receives that found none end with ENOBUFS and are
//! submitted again).

use std::alloc::{self, Layout};
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::Submitter;

/// The buffer group all receives select from.
pub const GROUP: u16 = 0;

pub struct BufRing {
    /// `count` entries the kernel reads (page-aligned, as it requires).
    entries: Alloc,
    /// `count` buffers of `size` octets, one allocation. Raw memory, not
    /// a `Box<[u8]>`: the kernel writes into buffers it owns while we read
    /// others, so no reference to the whole may exist.
    buffers: Alloc,
    size: usize,
    count: u16,
    /// Our tail: entries up to it have been given to the kernel.
    tail: u16,
}

impl BufRing {
    /// Allocates `count` (a power of two) buffers of `size` octets and
    /// registers them with the ring under [`GROUP`].
    ///
    /// The ring must be dropped before this (its registration refers to
    /// this memory): [`super::UringLoop`] drops its ring first.
    pub fn register(submitter: &Submitter<'_>, count: u16, size: usize) -> io::Result<Self> {
        assert!(
            count.is_power_of_two(),
            "a buffer ring's size is a power of two"
        );
        assert!(size > 0, "a provided buffer holds something");
        let entries_layout =
            Layout::from_size_align(usize::from(count) * size_of::<BufRingEntry>(), 4096)
                .map_err(io::Error::other)?;
        let buffers_layout =
            Layout::from_size_align(usize::from(count) * size, 4096).map_err(io::Error::other)?;
        let mut ring = Self {
            entries: Alloc::zeroed(entries_layout)?,
            buffers: Alloc::zeroed(buffers_layout)?,
            size,
            count,
            tail: 0,
        };
        for bid in 0..count {
            ring.push(bid);
        }
        ring.publish();
        register(submitter, &ring)?;
        Ok(ring)
    }

    /// Where the buffers lie, for the clients they are lent to.
    pub fn view(&self) -> BufView {
        BufView {
            base: self.buffers.ptr,
            size: self.size,
            count: self.count,
        }
    }

    /// Gives buffer `bid` back to the kernel (its octets have been taken).
    pub fn recycle(&mut self, bid: u16) {
        self.push(bid);
        self.publish();
    }

    /// Puts `data` in buffer `bid` as a receive would, and says how many
    /// octets it holds (tests of what reads the buffers; no receive may
    /// have been submitted).
    #[cfg(test)]
    #[expect(unsafe_code, reason = "writing a buffer no kernel writes")]
    pub fn put(&mut self, bid: u16, data: &[u8]) -> usize {
        assert!(bid < self.count && data.len() <= self.size);
        // SAFETY: within buffer `bid` (checked above); with no receive
        // submitted the kernel writes none, and `&mut self` excludes our
        // own readers.
        unsafe {
            let at = self.buffers.ptr.add(usize::from(bid) * self.size);
            std::ptr::copy_nonoverlapping(data.as_ptr(), at, data.len());
        }
        data.len()
    }

    /// Our tail: how many entries have been given to the kernel.
    #[cfg(test)]
    pub fn given(&self) -> u16 {
        self.tail
    }

    /// Writes buffer `bid`'s entry at our tail.
    fn push(&mut self, bid: u16) {
        let slot = usize::from(self.tail & (self.count - 1));
        assert!(bid < self.count);
        let addr = self.buffers.ptr as u64 + (usize::from(bid) * self.size) as u64;
        let len = self.size as u32;
        let entry = entry_mut(self, slot);
        entry.set_addr(addr);
        entry.set_len(len);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes the entries written so far visible to the kernel.
    fn publish(&self) {
        tail_of(self).store(self.tail, Ordering::Release);
    }
}

/// Where a ring's buffers lie: what a client holds to read the buffers
/// lent to it during its turn, without a borrow of the ring (which the
/// loop keeps using meanwhile).
#[derive(Clone, Copy, Debug)]
pub struct BufView {
    base: *const u8,
    size: usize,
    count: u16,
}

impl BufView {
    /// Octets `from..to` of buffer `bid`.
    ///
    /// # Safety
    ///
    /// A completion has handed buffer `bid` back and it has not been
    /// recycled since, and the [`BufRing`] this view came from is alive:
    /// then the kernel has finished writing it and will not write it
    /// again until [`BufRing::recycle`] gives it back.
    #[expect(unsafe_code, reason = "a buffer the kernel wrote and handed back")]
    pub unsafe fn get(&self, bid: u16, from: usize, to: usize) -> &[u8] {
        assert!(bid < self.count && from <= to && to <= self.size);
        // SAFETY: buffer `bid` lies within the allocation (bid < count,
        // to ≤ size), which is alive and which the kernel does not write
        // (the caller's contract). The slice covers this buffer only, not
        // the others the kernel may be writing.
        unsafe {
            std::slice::from_raw_parts(
                self.base.add(usize::from(bid) * self.size + from),
                to - from,
            )
        }
    }
}

/// Zeroed memory of a layout the kernel needs (page-aligned), freed when
/// dropped.
struct Alloc {
    ptr: *mut u8,
    layout: Layout,
}

impl Alloc {
    #[expect(unsafe_code, reason = "page-aligned memory shared with the kernel")]
    fn zeroed(layout: Layout) -> io::Result<Self> {
        assert!(layout.size() > 0);
        // SAFETY: the layout's size is not zero. Zeroed memory is a valid
        // array of BufRingEntry (plain integers) and of octets. Freed in
        // Drop with the same layout.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        match ptr.is_null() {
            true => Err(io::Error::from(io::ErrorKind::OutOfMemory)),
            false => Ok(Self { ptr, layout }),
        }
    }
}

impl Drop for Alloc {
    #[expect(unsafe_code, reason = "freeing what Alloc::zeroed allocated")]
    fn drop(&mut self) {
        // SAFETY: allocated by Alloc::zeroed with this layout, freed once.
        unsafe { alloc::dealloc(self.ptr, self.layout) }
    }
}

#[expect(unsafe_code, reason = "an entry of the memory shared with the kernel")]
fn entry_mut(ring: &mut BufRing, slot: usize) -> &mut BufRingEntry {
    assert!(slot < usize::from(ring.count));
    // SAFETY: `entries` holds `count` entries and slot < count. The kernel
    // reads an entry only between our tail's publication and its head,
    // and the slot at our tail is past its head (the buffer it named was
    // handed back to us by a completion), so nothing else touches it now.
    unsafe { &mut *ring.entries.ptr.cast::<BufRingEntry>().add(slot) }
}

#[expect(unsafe_code, reason = "the tail shared with the kernel")]
fn tail_of(ring: &BufRing) -> &AtomicU16 {
    // SAFETY: the ring's tail is the u16 the kernel reads in the first
    // entry's `resv` field (io_uring_buf_ring); it is aligned for a u16 and
    // lives as long as `entries`. The kernel only reads it; we write it
    // with a release store after the entries it covers.
    unsafe { &*BufRingEntry::tail(ring.entries.ptr.cast()).cast::<AtomicU16>() }
}

#[expect(unsafe_code, reason = "registering memory the kernel writes into")]
fn register(submitter: &Submitter<'_>, ring: &BufRing) -> io::Result<()> {
    // SAFETY: the entries and every buffer they name live in `ring` until
    // it is dropped, and the owner drops the io_uring (which ends the
    // registration) before it (see `BufRing::register`).
    unsafe { submitter.register_buf_ring_with_flags(ring.entries.ptr as u64, ring.count, GROUP, 0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring to register buffers with, unless the system refuses
    /// io_uring (a skip, logged); a fault of ours fails the test.
    fn ring() -> Option<io_uring::IoUring> {
        match crate::server::uring_skip_test() {
            true => None,
            false => Some(io_uring::IoUring::new(8).unwrap()),
        }
    }

    /// The ring's buffers go round: registered, read back by id, recycled
    /// past the end of the entries without touching another's memory.
    #[test]
    fn buffers_are_registered_and_go_round() {
        let Some(ring) = ring() else { return };
        let mut bufs = BufRing::register(&ring.submitter(), 4, 64).unwrap();
        assert_eq!(bufs.tail, 4);
        assert_eq!(tail_of(&bufs).load(Ordering::Acquire), 4);
        for round in 0..10u16 {
            bufs.recycle(round % 4);
        }
        assert_eq!(tail_of(&bufs).load(Ordering::Acquire), 14);
        drop(ring);
    }

    /// A view reads one buffer's octets, and never past its end.
    #[test]
    #[expect(unsafe_code, reason = "reading a buffer no kernel writes")]
    fn a_view_reads_within_one_buffer() {
        let Some(ring) = ring() else { return };
        let bufs = BufRing::register(&ring.submitter(), 4, 64).unwrap();
        let view = bufs.view();
        // SAFETY: no receive was submitted, so the kernel writes no buffer.
        assert_eq!(unsafe { view.get(3, 10, 64) }, &[0; 54][..]);
        let past = std::panic::catch_unwind(|| unsafe { view.get(3, 0, 65).len() });
        assert!(past.is_err(), "never past its buffer");
        let other = std::panic::catch_unwind(|| unsafe { view.get(4, 0, 1).len() });
        assert!(other.is_err(), "never past the last buffer");
        drop(ring);
    }
}
