//! What a server did over the measured part of a run: its CPU time and
//! context switches, read per thread (/proc/PID/task/*/schedstat and
//! status) every 10 ms from the end of the load's warm-up to the end of
//! its measured time (a thread's counts end with it, and a
//! thread-per-connection server's threads end with their connections);
//! and in a counting run its system calls (perf, enabled at the end of the
//! warm-up, disabled after the load: perf keeps an ended thread's counts).
//!
//! The CPU time is the scheduler's, in ns: /proc/PID/stat's is in 10 ms
//! ticks, ±1 tick at each end, which is ±5% of a 0.2 s run of a busy
//! server (the spread of the log ratio of two alike 0.2 s runs was 0.069;
//! `ab` runs many short pairs, docs/bench.md).

use std::time::{Duration, Instant};

use super::counts::{Perf, Syscalls, ThreadWindow};
use crate::netns::attribution::Snapshot;
use crate::netns::Net;

/// How often the threads are read in the window.
const READING: Duration = Duration::from_millis(10);

/// The server over the measured window.
#[derive(Clone, Debug, PartialEq)]
pub struct Metered {
    pub cpu_s: f64,
    pub ctx_switches: u64,
    /// Counting runs only.
    pub syscalls: Option<Syscalls>,
    /// The network's counts at the window's start and near its end, and
    /// the time between ([`NetWindow`]).
    pub net: Option<(Snapshot, Snapshot, Duration)>,
}

/// The network counts of a run: read at the end of the warm-up and at 90%
/// of the measured time (the sockets' counts go with them, and a load
/// that ends may close them before a reading at the very end).
#[derive(Clone, Copy)]
pub struct NetWindow<'a> {
    pub net: &'a Net,
    /// The server's port.
    pub port: u16,
}

/// The share of the measured time the network window spans.
const NET_SPAN: f64 = 0.9;

/// Runs `load` (which begins loading `lead` from now, loads for `warm_up`
/// without counting, then measures for `measured`) and meters the
/// server's processes `pids` over the measured part; with
/// `count_syscalls`, perf counts their system calls too. `lead` is zero
/// for a load run here, and the instant the hosts were told to start for
/// one run from other hosts (`--load-hosts`).
#[allow(clippy::too_many_arguments)]
pub fn around<T>(
    pids: &[u32],
    lead: Duration,
    warm_up: Duration,
    measured: Duration,
    count_syscalls: bool,
    net: Option<NetWindow>,
    load: impl FnOnce() -> T,
) -> (T, Result<Metered, String>) {
    let perf = match count_syscalls {
        true => match Perf::attach(pids) {
            Ok(p) => Some(p),
            Err(e) => return (load(), Err(e)),
        },
        false => None,
    };
    let (out, window) = std::thread::scope(|s| {
        let window = s.spawn(|| {
            let started = Instant::now();
            let warm_up = lead + warm_up;
            std::thread::sleep(warm_up);
            let mut perf = perf;
            if let Some(p) = perf.as_mut() {
                p.enable()?;
            }
            let mut window = ThreadWindow::start(pids)?;
            let first = net.map(|n| n.net.snapshot(n.port)).transpose()?;
            let net_started = Instant::now();
            let net_end = warm_up + measured.mul_f64(NET_SPAN);
            let mut last = None;
            let end = warm_up + measured;
            while started.elapsed() < end {
                let next = match last {
                    None if first.is_some() => net_end.min(end),
                    _ => end,
                };
                std::thread::sleep(READING.min(next.saturating_sub(started.elapsed())));
                window.read(pids)?;
                if let (Some(n), None) = (net, &last) {
                    if started.elapsed() >= net_end {
                        last = Some((n.net.snapshot(n.port)?, net_started.elapsed()));
                    }
                }
            }
            let net = first
                .zip(last)
                .map(|(first, (last, span))| (first, last, span));
            Ok::<_, String>((window.total(), perf, net))
        });
        let out = load();
        (out, window.join().expect("the meter does not panic"))
    });
    let metered = (|| {
        let (used, perf, net) = window?;
        let syscalls = perf.map(Perf::finish).transpose()?;
        Ok(Metered {
            cpu_s: used.cpu_ns as f64 / 1e9,
            ctx_switches: used.ctx_switches,
            syscalls,
            net,
        })
    })();
    (out, metered)
}
