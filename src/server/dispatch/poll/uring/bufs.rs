//! The provided buffer ring: buffers the kernel picks from when a receive
//! completes, so that a connection waiting for input holds none. The loop
//! copies each completion's octets out at once and gives the buffer back,
//! so the ring only runs short while one drain of completions holds more
//! receives than it has buffers (the receives that found none end with
//! ENOBUFS and are submitted again).

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

    /// The octets the kernel put in buffer `bid`, which a completion has
    /// just handed back (and which stays ours until [`Self::recycle`]).
    pub fn get(&self, bid: u16, len: usize) -> &[u8] {
        buffer(self, bid, len.min(self.size))
    }

    /// Gives buffer `bid` back to the kernel (its octets have been copied).
    pub fn recycle(&mut self, bid: u16) {
        self.push(bid);
        self.publish();
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

#[expect(unsafe_code, reason = "a buffer the kernel wrote and handed back")]
fn buffer(ring: &BufRing, bid: u16, len: usize) -> &[u8] {
    assert!(bid < ring.count && len <= ring.size);
    // SAFETY: buffer `bid` lies within the allocation (bid < count, len ≤
    // size). A completion named it, so the kernel has finished writing it
    // and will not write it again before `recycle` gives it back, which
    // needs `&mut BufRing` and so ends this borrow first. The slice covers
    // this buffer only, not the others the kernel may be writing.
    unsafe { std::slice::from_raw_parts(ring.buffers.ptr.add(usize::from(bid) * ring.size), len) }
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

    /// The ring's buffers go round: registered, read back by id, recycled
    /// past the end of the entries without touching another's memory.
    #[test]
    fn buffers_are_registered_and_go_round() {
        let ring = match io_uring::IoUring::new(8) {
            Ok(ring) => ring,
            Err(e) => return eprintln!("io_uring is not available here ({e}): not tested"),
        };
        let mut bufs = BufRing::register(&ring.submitter(), 4, 64).unwrap();
        assert_eq!(bufs.tail, 4);
        assert_eq!(tail_of(&bufs).load(Ordering::Acquire), 4);
        for round in 0..10u16 {
            bufs.recycle(round % 4);
        }
        assert_eq!(tail_of(&bufs).load(Ordering::Acquire), 14);
        assert_eq!(bufs.get(3, 64).len(), 64);
        assert_eq!(bufs.get(3, 1000).len(), 64, "never past its buffer");
        drop(ring);
    }
}
