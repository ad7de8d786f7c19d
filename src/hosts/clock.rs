//! A remote host's clock offset from samples taken over one session,
//! sans-IO: each sample is our clock before asking, the host's answer, and
//! our clock after (nanoseconds since the Unix epoch). As NTP does, the
//! sample with the shortest round trip bounds the offset best: the host
//! read its clock somewhere inside that round trip, so the offset is the
//! host's reading minus the round trip's midpoint, within half of it.

/// One exchange: our clock when we asked, the host's reading, our clock
/// when its answer came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub sent: u64,
    pub remote: u64,
    pub received: u64,
}

/// The host's clock minus ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Offset {
    /// Add to our clock to get the host's, ns (negative: the host is behind).
    pub ns: i64,
    /// The offset is within this of `ns` (half the best round trip), ns.
    pub within_ns: u64,
}

impl Offset {
    /// The host's clock at our instant `ours` (ns since the epoch).
    pub fn theirs(&self, ours: u64) -> u64 {
        ours.saturating_add_signed(self.ns)
    }
}

/// The offset from `samples`; `None` with no usable sample (none, or
/// only ones whose answer came before the question: our clock stepped).
pub fn estimate(samples: &[Sample]) -> Option<Offset> {
    let best = samples
        .iter()
        .filter(|s| s.received >= s.sent)
        .min_by_key(|s| s.received - s.sent)?;
    let rtt = best.received - best.sent;
    let mid = best.sent + rtt / 2;
    Some(Offset {
        ns: best.remote as i64 - mid as i64,
        within_ns: rtt.div_ceil(2),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shortest_round_trip_gives_the_offset() {
        let samples = [
            // 1,000 ns there and back; the host 500 ns ahead of the midpoint.
            Sample {
                sent: 10_000,
                remote: 11_000,
                received: 11_000,
            },
            // 200 ns: the best one. The host reads 5,100 at our 1,000_100.
            Sample {
                sent: 1_000_000,
                remote: 5_100,
                received: 1_000_200,
            },
            // A longer one, later.
            Sample {
                sent: 2_000_000,
                remote: 1_000_000,
                received: 2_000_900,
            },
        ];
        let o = estimate(&samples).unwrap();
        assert_eq!(o.ns, 5_100 - 1_000_100);
        assert_eq!(o.within_ns, 100);
        assert_eq!(o.theirs(1_000_100), 5_100);
    }

    #[test]
    fn an_odd_round_trip_rounds_its_bound_up() {
        let o = estimate(&[Sample {
            sent: 100,
            remote: 200,
            received: 103,
        }])
        .unwrap();
        assert_eq!(o.within_ns, 2);
        assert_eq!(o.ns, 200 - 101);
    }

    #[test]
    fn a_host_behind_has_a_negative_offset() {
        let o = estimate(&[Sample {
            sent: 1_000,
            remote: 400,
            received: 1_000,
        }])
        .unwrap();
        assert_eq!(o.ns, -600);
        assert_eq!(o.within_ns, 0);
        assert_eq!(o.theirs(1_000), 400);
        assert_eq!(o.theirs(100), 0, "saturates at the epoch");
    }

    #[test]
    fn no_usable_sample_is_no_offset() {
        assert_eq!(estimate(&[]), None);
        let stepped = Sample {
            sent: 2_000,
            remote: 1,
            received: 1_000,
        };
        assert_eq!(estimate(&[stepped]), None);
        let good = Sample {
            sent: 5_000,
            remote: 5_000,
            received: 5_010,
        };
        assert_eq!(estimate(&[stepped, good]).unwrap().within_ns, 5);
    }
}
