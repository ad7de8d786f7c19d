//! What the machine adds to a request: the cross-CPU wake-up latency
//! between the server's CPU and the load's, timed by a ping-pong of two
//! threads, one pinned to each, over a pair of pipes (each side sleeps in
//! `read` until the other writes: the wake-up a server waiting in
//! `epoll_wait` gets when its client sends). On a virtual machine this is
//! the hypervisor's inter-processor interrupt and halt exit, and it can
//! cost more than the work a small request asks for.

use std::fs::File;
use std::io::{Read, Write};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// One-way wake-up latency (half a round trip), µs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WakeUp {
    pub median_us: f64,
    pub p99_us: f64,
    pub rounds: usize,
}

/// Pins the calling thread to `cpu`.
fn pin(cpu: usize) -> Result<(), String> {
    if cpu >= rustix::thread::CpuSet::MAX_CPU {
        return Err(format!("no CPU {cpu}"));
    }
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).map_err(|e| format!("CPU {cpu}: {e}"))
}

/// `rounds` round trips between a thread on CPU `a` and one on CPU `b`,
/// after 100 not counted; each one-way time is half its round trip.
pub fn ping_pong(a: usize, b: usize, rounds: usize) -> Result<WakeUp, String> {
    let pipe = || -> Result<(File, File), String> {
        let (rx, tx) = rustix::pipe::pipe().map_err(|e| e.to_string())?;
        Ok((File::from(rx), File::from(tx)))
    };
    let (mut to_b_rx, mut to_b_tx) = pipe()?;
    let (mut to_a_rx, mut to_a_tx) = pipe()?;
    let warm = 100;
    let echo = std::thread::spawn(move || -> Result<(), String> {
        pin(b)?;
        let mut byte = [0u8];
        for _ in 0..warm + rounds {
            to_b_rx.read_exact(&mut byte).map_err(|e| e.to_string())?;
            to_a_tx.write_all(&byte).map_err(|e| e.to_string())?;
        }
        Ok(())
    });
    let timed = std::thread::spawn(move || -> Result<Vec<f64>, String> {
        pin(a)?;
        let mut byte = [0u8];
        let mut one_way = Vec::with_capacity(rounds);
        for i in 0..warm + rounds {
            let t = Instant::now();
            to_b_tx.write_all(&byte).map_err(|e| e.to_string())?;
            to_a_rx.read_exact(&mut byte).map_err(|e| e.to_string())?;
            if i >= warm {
                one_way.push(t.elapsed().as_secs_f64() * 1e6 / 2.0);
            }
        }
        Ok(one_way)
    });
    let mut one_way = timed.join().map_err(|_| "the timing thread panicked")??;
    echo.join().map_err(|_| "the echo thread panicked")??;
    one_way.sort_by(f64::total_cmp);
    let at = |q: f64| one_way[((one_way.len() - 1) as f64 * q).round() as usize];
    Ok(WakeUp {
        median_us: at(0.5),
        p99_us: at(0.99),
        rounds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On any two CPUs (or the same one twice on a single-CPU machine) a
    /// wake-up takes some time, the p99 no less than the median.
    #[test]
    fn a_ping_pong_times_wake_ups() {
        let cpus = super::super::system::allowed_cpus();
        let (a, b) = (cpus[0], *cpus.get(1).unwrap_or(&cpus[0]));
        let w = ping_pong(a, b, 200).unwrap();
        assert!(w.median_us > 0.0 && w.p99_us >= w.median_us, "{w:?}");
        assert_eq!(w.rounds, 200);
        assert!(ping_pong(a, 100_000, 10).is_err());
    }
}
