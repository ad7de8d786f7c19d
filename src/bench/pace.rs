//! The machine's own pace: a fixed piece of work timed on the bench's CPUs
//! between runs. On a shared machine the CPUs themselves speed up and slow
//! down: another tenant on the host's core contends for its caches, and
//! the host delays system calls. Pure arithmetic hardly notices (a chain of
//! xorshifts varies 1.04× over 1 s windows on this project's VM); work like
//! a server's does (a walk through 256 KiB, 1.57×; system calls, 1.30×).
//! So the work is that: a walk through a core's L2-sized ring of memory
//! and a system call per step block. When a cell's repeats spread as wide
//! as the pace around them did, the machine changed under the server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::system;

/// Entries of the ring (4 octets each: 256 KiB, a core's L2 cache).
const RING: usize = 64 * 1024;
/// Steps of the walk per block, each block ending in one system call.
const BLOCK: u32 = 1_000;

/// Times the work on `cpus`, all at once, `length` each.
#[derive(Clone, Debug, PartialEq)]
pub struct Pace {
    pub cpus: Vec<usize>,
    pub length: Duration,
    /// One random cycle through every entry: each step's load depends on
    /// the last, in an order no prefetcher guesses.
    ring: Arc<Vec<u32>>,
}

impl Pace {
    pub fn new(cpus: Vec<usize>, length: Duration) -> Pace {
        // Sattolo's shuffle: a single cycle through all entries.
        let mut ring: Vec<u32> = (0..RING as u32).collect();
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for i in (1..RING).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ring.swap(i, (x % i as u64) as usize);
        }
        Pace {
            cpus,
            length,
            ring: Arc::new(ring),
        }
    }

    /// Nanoseconds per block (1,000 steps of the walk and one system
    /// call), the mean over the CPUs, each timed by a thread pinned to it
    /// while the others run.
    pub fn measure(&self) -> f64 {
        let per_cpu: Vec<f64> = std::thread::scope(|s| {
            let threads: Vec<_> = self
                .cpus
                .iter()
                .map(|&cpu| s.spawn(move || self.on_cpu(cpu)))
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().expect("the walk does not panic"))
                .collect()
        });
        per_cpu.iter().sum::<f64>() / per_cpu.len().max(1) as f64
    }

    /// Nanoseconds per block on `cpu` (unpinned if it cannot be used).
    fn on_cpu(&self, cpu: usize) -> f64 {
        if cpu < rustix::thread::CpuSet::MAX_CPU {
            let mut set = rustix::thread::CpuSet::new();
            set.set(cpu);
            let _ = rustix::thread::sched_setaffinity(None, &set);
        }
        let ring = &self.ring[..];
        let start = Instant::now();
        let (mut at, mut blocks) = (0u32, 0u64);
        while blocks == 0 || start.elapsed() < self.length {
            for _ in 0..BLOCK {
                at = ring[at as usize];
            }
            std::hint::black_box(rustix::process::getppid());
            blocks += 1;
        }
        std::hint::black_box(at);
        start.elapsed().as_nanos() as f64 / blocks as f64
    }
}

/// The CPUs the bench runs on: its two pinning lists, or with none every
/// CPU this process may use.
pub fn bench_cpus(pin_server: Option<&str>, pin_client: Option<&str>) -> Vec<usize> {
    let lists: Vec<&str> = [pin_server, pin_client].into_iter().flatten().collect();
    if lists.is_empty() {
        return system::allowed_cpus();
    }
    let mut cpus: Vec<usize> = lists
        .iter()
        .filter_map(|l| system::cpu_list(l))
        .flatten()
        .collect();
    cpus.sort_unstable();
    cpus.dedup();
    cpus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bench_cpus_are_both_lists_or_every_allowed_one() {
        assert_eq!(bench_cpus(Some("1"), Some("0-1")), vec![0, 1]);
        assert!(!bench_cpus(None, None).is_empty());
    }

    #[test]
    fn the_ring_is_one_cycle_and_the_walk_is_timed() {
        let cpus: Vec<usize> = bench_cpus(None, None).into_iter().take(2).collect();
        let pace = Pace::new(cpus, Duration::from_millis(20));
        let (mut at, mut steps) = (pace.ring[0], 1);
        while at != 0 {
            at = pace.ring[at as usize];
            steps += 1;
        }
        assert_eq!(steps, RING);
        let ns = pace.measure();
        // 1,000 dependent loads (at least ~1 ns each, from L1) and a
        // system call: well under 1 ms even in a debug build.
        assert!((1_000.0..1_000_000.0).contains(&ns), "{ns} ns per block");
    }
}
