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
fn duration(text: &str) -> Result<Duration, String> {
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

/// Computes (a dependent chain of xorshifts, which no compiler folds away)
/// until this thread has had `d` more CPU time; the clock is read every
/// 64 steps (a read costs about as much as 64 steps).
fn burn(d: Duration) {
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
