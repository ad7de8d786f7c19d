//! Per-request work (`serve --work SPEC`): what a handler does before it
//! answers, done on the serving thread (or with `--offload`, on a worker),
//! in one place for both engines (the mini engine's pipeline and the `h2`
//! service call [`Work::run`] once per request, inside a `work` slice of
//! the trace). `delay:` is not done by anyone: the answer becomes due that
//! much later, which the engines keep as a due time.
//!
//! This is the one part of an engine that touches the clock and the
//! thread, on purpose: the point of `sleep` is that it blocks the thread
//! that serves the connection, as a synchronous database or file call
//! would.

use std::time::Duration;

/// What each request costs the thread that serves it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Work {
    /// The seed's answer: nothing.
    #[default]
    None,
    /// Computation on the serving thread until it has had this much CPU
    /// time (its own CPU clock, so that a busy machine makes it take
    /// longer, not count less).
    Cpu(Duration),
    /// A blocking sleep on the serving thread: it stalls a `poll` loop or a
    /// current-thread tokio runtime, which is the point.
    Sleep(Duration),
    /// The answer is due this much later, without holding the thread (a
    /// wait for a remote service, done asynchronously).
    Delay(Duration),
}

impl std::str::FromStr for Work {
    type Err = String;

    /// `cpu:DURATION`, `sleep:DURATION`, `delay:DURATION` or `none`; a
    /// duration is a number
    /// with a unit, `ns`, `us` (or `µs`), `ms` or `s` (`50us`, `1.5ms`): the
    /// form [`Work`]'s `Display` writes, so that a bench CSV reads back.
    fn from_str(spec: &str) -> Result<Self, String> {
        if spec.trim() == "none" {
            return Ok(Work::None);
        }
        let (kind, value) = spec.split_once(':').ok_or_else(|| {
            format!(
                "'{spec}' is not a work spec (cpu:DURATION, sleep:DURATION, delay:DURATION or none)"
            )
        })?;
        let d = duration(value)?;
        match kind.trim() {
            "cpu" => Ok(Work::Cpu(d)),
            "sleep" => Ok(Work::Sleep(d)),
            "delay" => Ok(Work::Delay(d)),
            other => Err(format!(
                "'{other}' is not a kind of work (cpu, sleep, delay; or none)"
            )),
        }
    }
}

/// A number with a unit, more than 0 and at most a minute.
pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_alphabetic()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale = match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        _ => {
            return Err(format!(
                "'{text}' is not a duration (a number with ns, us, ms or s)"
            ))
        }
    };
    match number.parse::<f64>().map(|n| n * scale) {
        Ok(secs) if secs > 0.0 && secs <= 60.0 => {
            Ok(Duration::from_nanos((secs * 1e9).round() as u64))
        }
        Ok(_) => Err(format!("'{text}' is not between 0 and 60 seconds")),
        Err(_) => Err(format!(
            "'{text}' is not a duration (a number with ns, us, ms or s)"
        )),
    }
}

impl Work {
    pub fn is_none(&self) -> bool {
        *self == Work::None
    }

    /// Work a thread does (`cpu:`, `sleep:`): what `--offload` moves to
    /// workers. `none` and `delay:` hold no thread.
    pub fn holds_a_thread(&self) -> bool {
        matches!(self, Work::Cpu(_) | Work::Sleep(_))
    }

    /// `delay:`: how much later each answer is due.
    pub fn delay(&self) -> Option<Duration> {
        match *self {
            Work::Delay(d) => Some(d),
            _ => None,
        }
    }

    /// Times the machine's steps for a short `cpu:` (once per process),
    /// so that the first request does not pay for it.
    pub fn prepare(&self) {
        if matches!(self, Work::Cpu(d) if *d < COUNTED_BELOW) {
            steps_per_ns();
        }
    }

    /// Does the work of one request on this thread (nothing for `delay:`,
    /// which the engine keeps as a due time).
    pub fn run(&self) {
        match *self {
            Work::None | Work::Delay(_) => {}
            Work::Cpu(d) => burn(d),
            Work::Sleep(d) => std::thread::sleep(d),
        }
    }
}

impl std::fmt::Display for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Work::None => f.write_str("none"),
            Work::Cpu(d) => write!(f, "cpu:{d:?}"),
            Work::Sleep(d) => write!(f, "sleep:{d:?}"),
            Work::Delay(d) => write!(f, "delay:{d:?}"),
        }
    }
}

/// This thread's CPU time so far.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Below this, `cpu:` runs a counted number of steps instead of reading
/// the clock: a read of a thread's CPU clock is a system call (0.3 to 1 µs
/// on a virtual machine), which made `cpu:200ns` cost about 1 µs.
pub const COUNTED_BELOW: Duration = Duration::from_micros(20);

/// `n` steps of a dependent chain of xorshifts (which no compiler folds
/// away).
fn steps(n: u64) {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    std::hint::black_box(x);
}

/// Steps per ns of this thread's CPU time: the median of 11 timings of
/// 2^18 steps (a quarter of a millisecond each), taken once per process.
/// The median, so that the work costs what it says at the machine's usual
/// pace: with the fastest of 5 timings, `cpu:397ns` cost the poll server
/// about 0.6 µs (`ab` measured +8% where 5% was meant, docs/bench.md).
pub fn steps_per_ns() -> f64 {
    static RATE: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *RATE.get_or_init(|| {
        const N: u64 = 1 << 18;
        let mut rates: Vec<f64> = (0..11)
            .map(|_| {
                let t = thread_cpu();
                steps(N);
                N as f64 / (thread_cpu() - t).as_nanos().max(1) as f64
            })
            .collect();
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    })
}

/// `d` of this thread's CPU time in computation: below
/// [`COUNTED_BELOW`], as many steps as the calibration says take `d`;
/// above, steps until the thread's CPU clock has advanced by `d` (read
/// every 64 steps, which cost about as much as a read).
fn burn(d: Duration) {
    if d < COUNTED_BELOW {
        steps((d.as_nanos() as f64 * steps_per_ns()).round() as u64);
        return;
    }
    let until = thread_cpu() + d;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    loop {
        for _ in 0..64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        std::hint::black_box(x);
        if thread_cpu() >= until {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short `cpu:` costs about what it says, not the ~1 µs floor of
    /// reading the clock: 10,000 × cpu:200ns take 2 ms of CPU give or take
    /// what the machine's pace does (checked loosely here: speed is for
    /// benchmarks, docs/bench.md has the figure).
    #[test]
    fn a_short_cpu_work_is_counted_in_steps() {
        assert!(steps_per_ns() > 0.0);
        let work = Work::Cpu(Duration::from_nanos(200));
        work.prepare();
        let t = thread_cpu();
        for _ in 0..10_000 {
            work.run();
        }
        let took = thread_cpu() - t;
        assert!(took >= Duration::from_millis(1), "{took:?}");
        assert!(took < Duration::from_millis(8), "{took:?}");
    }

    #[test]
    fn specs_parse_and_print_back() {
        assert_eq!("none".parse(), Ok(Work::None));
        assert_eq!("cpu:2ms".parse(), Ok(Work::Cpu(Duration::from_millis(2))));
        assert_eq!(
            "sleep:1ms".parse(),
            Ok(Work::Sleep(Duration::from_millis(1)))
        );
        assert_eq!("cpu:50us".parse(), Ok(Work::Cpu(Duration::from_micros(50))));
        assert_eq!(Work::Cpu(Duration::from_micros(50)).to_string(), "cpu:50µs");
        for work in [
            Work::None,
            Work::Cpu(Duration::from_nanos(400)),
            Work::Cpu(Duration::from_micros(50)),
            Work::Sleep(Duration::from_micros(1500)),
            Work::Sleep(Duration::from_secs(2)),
            Work::Delay(Duration::from_millis(5)),
        ] {
            assert_eq!(work.to_string().parse(), Ok(work), "{work}");
        }
        for bad in [
            "cpu", "cpu:", "cpu:x", "cpu:5", "cpu:0ms", "cpu:2m", "nap:1ms", "",
        ] {
            assert!(bad.parse::<Work>().is_err(), "{bad}");
        }
        assert!("nap:1ms".parse::<Work>().unwrap_err().contains("'nap'"));
    }

    /// CPU work is CPU time on this thread, at least what was asked and
    /// not much more (the clock is read every 64 steps).
    #[test]
    fn cpu_work_takes_its_cpu_time() {
        let before = thread_cpu();
        Work::Cpu(Duration::from_millis(20)).run();
        let used = thread_cpu() - before;
        assert!(used >= Duration::from_millis(20), "{used:?}");
        assert!(used < Duration::from_millis(40), "{used:?}");
        let before = thread_cpu();
        Work::Sleep(Duration::from_millis(20)).run();
        assert!(
            thread_cpu() - before < Duration::from_millis(5),
            "a sleep takes no CPU"
        );
    }
}
