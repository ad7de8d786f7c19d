//! The poll loop's run-queue delay, read from `/proc/thread-self/schedstat`,
//! and the sweep for late clients: what both loops (`poll`, `uring`) do
//! around their wait.

use std::time::{Duration, Instant};

use crate::trace::{ActionSpan, Name};

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
    const SLEPT: Duration = Duration::from_micros(20);
    /// Readings at most this often.
    const EVERY: Duration = Duration::from_millis(1);

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
    fn due(&self, now: Instant) -> bool {
        now - self.read_at >= Self::EVERY
    }

    /// After the loop's wait `wait` that began at `began`: the run-queue
    /// delay onto it as its state. Only after a wait that slept (a thread
    /// waits on a run queue mostly when it is woken) and at most once per
    /// interval: reading costs a system call and a formatted /proc file,
    /// 1–2 µs. Delay met between readings is not lost: the next reading
    /// has it.
    pub(super) fn after_wait(&mut self, wait: &ActionSpan, began: Instant) {
        let now = Instant::now();
        if now - began >= Self::SLEPT && self.due(now) {
            if let Some(delay) = self.delay(now) {
                wait.state(Name::PollWait, delay);
            }
        }
    }

    /// Nanoseconds spent runnable but not running since the last call
    /// (made at `now`).
    fn delay(&mut self, now: Instant) -> Option<u64> {
        self.read_at = now;
        let waited = self.read()?;
        let delay = waited.saturating_sub(self.last);
        self.last = waited;
        Some(delay)
    }
}

/// When a loop sweeps for idle and unfinished clients: four times per
/// timeout, so a client is closed between 1 and 1.25 timeouts after its
/// last frame (or its accept). Never without a timeout.
pub(super) struct Sweep {
    every: Option<Duration>,
    next: Option<Instant>,
}

impl Sweep {
    pub(super) fn new(idle: Option<Duration>, handshake: Option<Duration>) -> Self {
        let every = [idle, handshake].into_iter().flatten().min().map(|t| t / 4);
        Self {
            every,
            next: every.map(|every| Instant::now() + every),
        }
    }

    /// How long the loop may wait: until the next sweep, the next accept
    /// after an accept error, or the next answer due, whichever comes
    /// first (no limit without any of them).
    pub(super) fn timeout(
        &self,
        accept_again_at: Option<Instant>,
        next_timer: Option<Instant>,
    ) -> Option<Duration> {
        [self.next, accept_again_at, next_timer]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// A sweep is due now; the next one is counted from here.
    pub(super) fn due(&mut self) -> bool {
        match (self.every, self.next) {
            (Some(every), Some(at)) if Instant::now() >= at => {
                self.next = Some(Instant::now() + every);
                true
            }
            _ => false,
        }
    }
}
