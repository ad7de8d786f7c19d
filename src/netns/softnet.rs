//! What each CPU's network softirqs did: `/proc/net/softnet_stat`, one line
//! a CPU (of the whole machine, whatever the namespace): the packets its
//! receive processing took from its backlog (the first column), and the
//! steering interrupts it received, packets another CPU handed it by RPS
//! or RFS (the tenth).

use std::collections::BTreeMap;

/// One CPU's counts so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuNet {
    pub processed: u64,
    pub steered_in: u64,
}

/// Every CPU's counts at one moment, by CPU number.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Softnet(pub BTreeMap<usize, CpuNet>);

impl Softnet {
    /// Reads `/proc/net/softnet_stat`.
    pub fn read() -> std::io::Result<Softnet> {
        let text = std::fs::read_to_string("/proc/net/softnet_stat")?;
        parse(&text).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "/proc/net/softnet_stat: not the kernel's format",
            )
        })
    }

    /// What `cpus` did from `self` to `later`, summed.
    pub fn since(&self, later: &Softnet, cpus: &[usize]) -> CpuNet {
        let mut sum = CpuNet::default();
        for cpu in cpus {
            let (Some(a), Some(b)) = (self.0.get(cpu), later.0.get(cpu)) else {
                continue;
            };
            sum.processed += b.processed.wrapping_sub(a.processed) & 0xffff_ffff;
            sum.steered_in += b.steered_in.wrapping_sub(a.steered_in) & 0xffff_ffff;
        }
        sum
    }
}

/// The kernel prints 32-bit hexadecimal counters (they wrap), ten or more
/// a line; since Linux 5.10 the thirteenth is the CPU's number (an
/// offline CPU has no line), before that the line's place is.
fn parse(text: &str) -> Option<Softnet> {
    let mut cpus = BTreeMap::new();
    for (place, line) in text.lines().enumerate() {
        let cols: Vec<u64> = line
            .split_whitespace()
            .map(|c| u64::from_str_radix(c, 16).ok())
            .collect::<Option<_>>()?;
        if cols.len() < 10 {
            return None;
        }
        let cpu = cols.get(12).map_or(place, |&c| c as usize);
        cpus.insert(
            cpu,
            CpuNet {
                processed: cols[0],
                steered_in: cols[9],
            },
        );
    }
    (!cpus.is_empty()).then_some(Softnet(cpus))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "\
0466c747 00000104 00000016 00000000 00000000 00000000 00000000 00000000 00000000 00000003 00000000 00000000 00000000 00000000 00000000
044b13d4 00000095 0000001e 00000000 00000000 00000000 00000000 00000000 00000000 0000000a 00000000 00000000 00000002 00000000 00000000
";

    #[test]
    fn lines_are_read_by_the_cpu_they_name() {
        let s = parse(TWO).unwrap();
        assert_eq!(
            s.0[&0],
            CpuNet {
                processed: 0x0466c747,
                steered_in: 3
            }
        );
        // The second line names CPU 2 (CPU 1 offline).
        assert_eq!(s.0[&2].steered_in, 10);
        assert!(!s.0.contains_key(&1));
    }

    #[test]
    fn old_kernels_number_by_place() {
        let s = parse("00000010 0 0 0 0 0 0 0 0 00000001\n00000020 0 0 0 0 0 0 0 0 00000002\n")
            .unwrap();
        assert_eq!(s.0[&1].processed, 0x20);
    }

    #[test]
    fn what_is_not_the_format_is_refused() {
        for bad in ["", "zz 0 0 0 0 0 0 0 0 0\n", "1 2 3\n"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn differences_are_summed_over_the_cpus_asked_and_wrap() {
        let a = parse("fffffff0 0 0 0 0 0 0 0 0 00000001 0 0 00000000\n00000005 0 0 0 0 0 0 0 0 0 0 0 00000001\n").unwrap();
        let b = parse("00000010 0 0 0 0 0 0 0 0 00000004 0 0 00000000\n00000009 0 0 0 0 0 0 0 0 0 0 0 00000001\n").unwrap();
        assert_eq!(
            a.since(&b, &[0]),
            CpuNet {
                processed: 0x20,
                steered_in: 3
            }
        );
        assert_eq!(a.since(&b, &[0, 1]).processed, 0x24);
        assert_eq!(a.since(&b, &[1]).processed, 4);
        assert_eq!(a.since(&b, &[7]), CpuNet::default());
    }

    #[test]
    fn this_machine_has_a_line_per_cpu() {
        let s = Softnet::read().unwrap();
        assert!(!s.0.is_empty());
    }
}
