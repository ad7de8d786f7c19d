//! Freed heap given back to the system after a burst of connections.
//!
//! A TLS handshake needs far more memory than the connection keeps (OpenSSL
//! 3.0: a 21 KiB handshake buffer and 16 KiB record buffers, against ~12
//! KiB it keeps), and glibc's malloc keeps the pages of freed memory that
//! lies between live allocations. After 3,000 OpenSSL handshakes a `poll`
//! server held 50 KiB of resident memory per idle connection, of which 17
//! KiB was in use. `malloc_trim` hands those pages back (27 KiB per idle
//! connection after it). It walks the heap, so it runs only when a
//! dispatch is quiet, never between the turns of a busy one: 50 ms after
//! a burst of connections came, finished their handshakes or went, and a
//! second after fewer (the tail of a burst that came after the last trim:
//! with glibc's own trimming raised out of the way, nothing else gives it
//! back). A finished handshake counts because it frees the most: a debug
//! `poll` shakes hands with 10,000 OpenSSL clients for seconds after the
//! last accept, and with only accepts and closes counted and a trim only
//! after a quiet spell, the handshakes after it kept 33 KiB each (19 KiB
//! with them counted).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Connections accepted, established or closed since the last trim that
/// make one worth its walk of the heap soon.
const AFTER: u64 = 256;
/// How long a dispatch must have been quiet before it trims, after at
/// least [`AFTER`] such events.
pub const QUIET: Duration = Duration::from_millis(50);
/// How long it must have been quiet after fewer.
pub const LINGER: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct Trim {
    events: AtomicU64,
    trimmed_at: AtomicU64,
}

impl Trim {
    /// A connection was accepted, established or closed.
    pub fn note(&self) {
        self.events.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections accepted, established or closed so far.
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// How long a quiet spell must last before a trim: `None` when no
    /// connection came, was established or went since the last one.
    pub fn due_after(&self) -> Option<Duration> {
        match self.events() - self.trimmed_at.load(Ordering::Relaxed) {
            0 => None,
            n if n < AFTER => Some(LINGER),
            _ => Some(QUIET),
        }
    }

    /// Gives the heap's free pages back to the system.
    pub fn release(&self) {
        self.trimmed_at.store(self.events(), Ordering::Relaxed);
        malloc_trim();
    }
}

/// A loop's view of the quiet spell: when it last saw a connection come,
/// be established or go (the turn that noticed it), so that the trim
/// comes after [`Trim::due_after`] of quiet from then. A wait a timer cut
/// short counts, but the timers do not restart the spell.
#[derive(Debug)]
pub struct Quiet {
    seen: u64,
    since: std::time::Instant,
}

impl Quiet {
    pub fn new(trim: &Trim) -> Self {
        Self {
            seen: trim.events(),
            since: std::time::Instant::now(),
        }
    }

    /// When the trim is due if nothing comes or goes before (none is due),
    /// and `timeout` shortened to wake for it.
    pub fn trim_at(
        &mut self,
        trim: &Trim,
        timeout: &mut Option<Duration>,
    ) -> Option<std::time::Instant> {
        let quiet = trim.due_after()?;
        let seen = trim.events();
        if seen != self.seen {
            (self.seen, self.since) = (seen, std::time::Instant::now());
        }
        let at = self.since + quiet;
        let left = at.saturating_duration_since(std::time::Instant::now());
        *timeout = Some(timeout.map_or(left, |t| t.min(left)));
        Some(at)
    }
}

/// glibc shrinks its heap whenever the free memory at its top passes a
/// threshold, and grows it again at the next allocation: with rustls at
/// 1 MiB answers on `poll` that was 128 page faults per answer and half
/// the throughput (1,250 against 2,900 answers/s). Freed memory is given
/// back here, by [`Trim::release`] when the dispatch is quiet, so the
/// automatic shrinking is raised out of the way (32 MiB). Once per process.
/// (`malloc_trim` gives back the free pages inside a thread's arena but not
/// the free memory at its top, which only that shrinking returns: up to
/// 32 MiB of a burst's peak can stay resident.)
pub fn keep_heap_top() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(set_trim_threshold);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(unsafe_code, reason = "glibc's mallopt has no safe binding")]
fn set_trim_threshold() {
    // SAFETY: mallopt takes two integers and changes a tunable of the
    // allocator under its own lock; it touches no allocation.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 32 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_trim_threshold() {}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(unsafe_code, reason = "glibc's malloc_trim has no safe binding")]
fn malloc_trim() {
    // SAFETY: malloc_trim takes no pointer and has no precondition: it
    // returns free pages to the system under the allocator's own locks and
    // touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators give memory back by themselves, or have no such call.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn malloc_trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soon_after_a_burst_later_after_a_few_and_never_after_none() {
        let trim = Trim::default();
        assert_eq!(trim.due_after(), None);
        trim.note();
        assert_eq!(trim.due_after(), Some(LINGER));
        for _ in 1..AFTER - 1 {
            trim.note();
        }
        assert_eq!(trim.due_after(), Some(LINGER));
        trim.note();
        assert_eq!(trim.due_after(), Some(QUIET));
        trim.release();
        assert_eq!(trim.due_after(), None);
        trim.note();
        assert_eq!(trim.due_after(), Some(LINGER));
    }
}
