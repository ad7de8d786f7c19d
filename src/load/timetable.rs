//! `--rps`: one client's timetable, when each of its requests is due.
//! Sans-IO: time is an argument, so the schedule's rules are tested on a
//! clock of the test's own; the worker asks it at each turn and arms its
//! timer for [`Timetable::next_due`].

use std::time::{Duration, Instant};

/// Requests due every `interval`, the first at `next`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timetable {
    next: Instant,
    interval: Duration,
}

impl Timetable {
    /// Client `client` of `clients`: its first request is due that
    /// fraction of an interval after `start`, so that the clients' requests
    /// interleave evenly.
    pub fn new(start: Instant, interval: Duration, client: usize, clients: usize) -> Self {
        let offset = interval.mul_f64(client as f64 / clients.max(1) as f64);
        Self {
            next: start + offset,
            interval,
        }
    }

    /// When the next request is due.
    pub fn next_due(&self) -> Instant {
        self.next
    }

    /// The next request, if it is due by `now`: its due time (the time its
    /// latency counts from), and the one after it becomes next. A late
    /// caller takes the requests it missed one call each, each with its
    /// own due time: the lag is measured, not forgiven.
    pub fn take(&mut self, now: Instant) -> Option<Instant> {
        if self.next > now {
            return None;
        }
        let due = self.next;
        self.next += self.interval;
        Some(due)
    }

    /// How many requests not taken fell due in `[from, until)`.
    pub fn missed(&self, from: Instant, until: Instant) -> u64 {
        let first = self.next.max(from);
        if first >= until {
            return 0;
        }
        // Due times are next + k·interval; the first k at or past `from`.
        let step = self.interval.as_nanos().max(1);
        let k0 = first.duration_since(self.next).as_nanos().div_ceil(step);
        let k1 = until.duration_since(self.next).as_nanos().div_ceil(step);
        (k1 - k0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> impl Fn(u64) -> Instant {
        let t0 = Instant::now();
        move |us| t0 + Duration::from_micros(us)
    }

    /// --rps 400 on one client for a simulated second, the loop turning
    /// every millisecond: 400 requests taken, each at most one turn late
    /// (the wall-clock test of this sent 390–410).
    #[test]
    fn a_second_at_400_per_second_takes_400() {
        let at = clock();
        let mut t = Timetable::new(at(0), Duration::from_micros(2500), 0, 1);
        let mut taken = Vec::new();
        for ms in 0..1000 {
            let now = at(ms * 1000);
            while let Some(due) = t.take(now) {
                assert!(now - due < Duration::from_millis(1), "{due:?} at {now:?}");
                taken.push(due);
            }
        }
        assert_eq!(taken.len(), 400);
        assert_eq!(taken[1] - taken[0], Duration::from_micros(2500));
        assert_eq!(t.next_due(), at(1_000_000));
    }

    /// Clients interleave: the first requests of 4 clients at 10 ms are
    /// 2.5 ms apart.
    #[test]
    fn clients_start_a_fraction_of_an_interval_apart() {
        let at = clock();
        let firsts: Vec<Instant> = (0..4)
            .map(|c| Timetable::new(at(0), Duration::from_millis(10), c, 4).next_due())
            .collect();
        assert_eq!(firsts, [at(0), at(2500), at(5000), at(7500)]);
    }

    /// A loop that stalls for 10 ms takes the 4 requests it missed at once,
    /// each with its own due time, so their lag shows.
    #[test]
    fn a_late_loop_catches_up_and_the_lag_shows() {
        let at = clock();
        let mut t = Timetable::new(at(0), Duration::from_micros(2500), 0, 1);
        assert_eq!(t.take(at(0)), Some(at(0)));
        assert_eq!(t.take(at(0)), None);
        let late = at(10_000);
        let caught: Vec<Instant> = std::iter::from_fn(|| t.take(late)).collect();
        assert_eq!(caught, [at(2500), at(5000), at(7500), at(10_000)]);
    }

    /// What was due and never taken, counted exactly: due times in
    /// `[from, until)`.
    #[test]
    fn missed_requests_are_counted_exactly() {
        let at = clock();
        let t = Timetable::new(at(0), Duration::from_millis(10), 0, 1);
        assert_eq!(t.missed(at(0), at(0)), 0);
        assert_eq!(t.missed(at(0), at(1)), 1, "due at 0");
        assert_eq!(
            t.missed(at(0), at(10_000)),
            1,
            "0; 10 ms is not before 10 ms"
        );
        assert_eq!(t.missed(at(0), at(25_000)), 3, "0, 10 and 20 ms");
        // Only what fell due from `from` on (the measured part).
        assert_eq!(t.missed(at(5_000), at(25_000)), 2, "10 and 20 ms");
        assert_eq!(t.missed(at(20_000), at(20_001)), 1, "20 ms");
        assert_eq!(t.missed(at(30_000), at(25_000)), 0);
    }
}
