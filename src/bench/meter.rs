//! What a server did over the measured part of a run: its CPU time, read
//! from /proc at the end of the load's warm-up and after the load (the
//! connections' ends included); its context switches, read per thread
//! every 10 ms from the end of the warm-up to the end of the measured time
//! (a thread's count ends with it, and a thread-per-connection server's
//! threads end with their connections); and in a counting run its system calls
//! (perf, enabled at the end of the warm-up, disabled after the load:
//! perf keeps an ended thread's counts).

use std::time::{Duration, Instant};

use super::counts::{CtxWindow, Perf, Syscalls};
use super::system;

/// How often the threads' context switches are read in the window.
const CTX_READING: Duration = Duration::from_millis(10);

/// The server over the measured window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Metered {
    pub cpu_s: f64,
    pub ctx_switches: u64,
    /// Counting runs only.
    pub syscalls: Option<Syscalls>,
}

/// Runs `load` (which loads for `warm_up` without counting, then
/// measures for `measured`) and meters the server's processes `pids` over
/// the measured part; with `count_syscalls`, perf counts their system
/// calls too.
pub fn around<T>(
    pids: &[u32],
    warm_up: Duration,
    measured: Duration,
    count_syscalls: bool,
    load: impl FnOnce() -> T,
) -> (T, Result<Metered, String>) {
    let ticks = system::clock_ticks();
    let perf = match count_syscalls {
        true => match Perf::attach(pids) {
            Ok(p) => Some(p),
            Err(e) => return (load(), Err(e)),
        },
        false => None,
    };
    let (out, before) = std::thread::scope(|s| {
        let before = s.spawn(|| {
            let started = Instant::now();
            std::thread::sleep(warm_up);
            let mut perf = perf;
            if let Some(p) = perf.as_mut() {
                p.enable()?;
            }
            let cpu = system::cpu_of(pids, ticks)?;
            let mut ctx = CtxWindow::start(pids)?;
            let end = warm_up + measured;
            while started.elapsed() < end {
                std::thread::sleep(CTX_READING.min(end.saturating_sub(started.elapsed())));
                ctx.read(pids)?;
            }
            Ok::<_, String>((cpu, ctx.total(), perf))
        });
        let out = load();
        (out, before.join().expect("the meter does not panic"))
    });
    let metered = (|| {
        let (cpu0, ctx_switches, perf) = before?;
        let cpu1 = system::cpu_of(pids, ticks)?;
        let syscalls = perf.map(Perf::finish).transpose()?;
        Ok(Metered {
            cpu_s: cpu1 - cpu0,
            ctx_switches,
            syscalls,
        })
    })();
    (out, metered)
}
