//! The poll loop's run-queue delay, read from `/proc/thread-self/schedstat`.

use std::time::{Duration, Instant};

/// The run-queue delay of the loop's thread (`/proc/thread-self/schedstat`,
/// read with one system call), so that its wait slice tells idle time from
/// time it was ready but not running.
pub(super) struct RunQueue {
    file: std::fs::File,
    last: u64,
    read_at: Instant,
}

impl RunQueue {
    /// A wait at least this long slept (returning at once takes ~1 µs).
    pub(super) const SLEPT: Duration = Duration::from_micros(20);
    /// Readings at most this often.
    pub(super) const EVERY: Duration = Duration::from_millis(1);

    pub(super) fn open() -> Option<Self> {
        let file = std::fs::File::open("/proc/thread-self/schedstat").ok()?;
        let mut rq = RunQueue {
            file,
            last: 0,
            read_at: Instant::now(),
        };
        rq.last = rq.read()?;
        Some(rq)
    }

    fn read(&mut self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 96];
        let n = self.file.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        // "time on CPU, time waiting on a run queue, timeslices" in ns.
        text.split_whitespace().nth(1)?.parse().ok()
    }

    /// Whether the interval since the last reading has passed by `now`.
    pub(super) fn due(&self, now: Instant) -> bool {
        now - self.read_at >= Self::EVERY
    }

    /// Nanoseconds spent runnable but not running since the last call
    /// (made at `now`).
    pub(super) fn delay(&mut self, now: Instant) -> Option<u64> {
        self.read_at = now;
        let waited = self.read()?;
        let delay = waited.saturating_sub(self.last);
        self.last = waited;
        Some(delay)
    }
}
