//! 95% confidence intervals, all from Student's t on logarithms (a ratio
//! of costs is symmetric in logs, and costs are skewed upwards):
//!
//! * [`paired_ratio`]: B/A from pairs of runs (`ab`): the 20% trimmed
//!   mean of the pairs' log ratios with its interval (Tukey and
//!   McLaughlin's, [`trimmed_interval`]), so that a pair the machine
//!   stalled does not decide the answer. On this VM a 0.2 s run now and
//!   then costs 70× the others (the host took the CPU away): in 190 pairs
//!   of a 5% difference, two such pairs made the mean's interval ±9% and
//!   left the trimmed mean's at ±2.3%;
//! * [`of_runs`]: one cell's repeats (`bench`): their geometric mean;
//! * [`ratio_of_runs`]: NEW/OLD from two cells' repeats (`bench-compare`),
//!   Welch's interval on the difference of their mean logs, since the two
//!   sides were not paired.
//!
//! Not a percentile bootstrap: at the 3 to 20 samples these see, its
//! interval is too narrow (over 1,000 samples of 10 from a uniform
//! population, the 95% percentile bootstrap covered the mean 91.0% of the
//! time, t 94.4%).

use serde::{Deserialize, Serialize};

/// An estimate and its 95% interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

impl Interval {
    /// Half the interval's width, as a percentage of the estimate.
    pub fn half_width_pct(&self) -> f64 {
        if self.estimate > 0.0 {
            (self.high - self.low) / 2.0 / self.estimate * 100.0
        } else {
            f64::INFINITY
        }
    }

    fn exp(m: f64, (low, high): (f64, f64)) -> Interval {
        Interval {
            estimate: m.exp(),
            low: low.exp(),
            high: high.exp(),
        }
    }
}

fn logs(v: impl IntoIterator<Item = f64>) -> Vec<f64> {
    v.into_iter().map(|x| x.max(1e-12).ln()).collect()
}

/// The ratio b/a over pairs `(a, b)`: the 20% trimmed mean of the pairs'
/// log ratios, as a ratio, and its interval (`None` for fewer than two
/// pairs: no spread to go by).
pub fn paired_ratio(pairs: impl IntoIterator<Item = (f64, f64)>) -> Option<Interval> {
    let l = logs(pairs.into_iter().map(|(a, b)| b.max(1e-12) / a.max(1e-12)));
    (l.len() >= 2).then(|| {
        let (m, interval) = trimmed_interval(&l);
        Interval::exp(m, interval)
    })
}

/// The share of the samples [`trimmed_interval`] sets aside at each end.
const TRIM: f64 = 0.2;

/// The 20% trimmed mean of `v` (the mean of what is left once the lowest
/// and highest fifth are set aside) and its 95% interval, Tukey and
/// McLaughlin's: ± t·s_w·√n / h, s_w the standard deviation of the
/// winsorized samples (each set-aside one replaced by the nearest kept),
/// h the samples kept, h − 1 degrees of freedom (as in Wilcox's
/// *Introduction to Robust Estimation and Hypothesis Testing*). Under
/// noise symmetric about the true value (alternating A B and B A makes a
/// pair's log ratio so) it estimates that value; against normal noise its
/// interval is about 5% wider than the mean's; against a few samples far
/// out it does not move. Below 5 samples nothing is set aside and it is
/// the mean's t interval.
pub fn trimmed_interval(v: &[f64]) -> (f64, (f64, f64)) {
    let n = v.len();
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let g = (TRIM * n as f64).floor() as usize;
    let h = n - 2 * g;
    let m = mean(&s[g..n - g]);
    if h < 2 {
        return (m, (m, m));
    }
    let (low, high) = (s[g], s[n - g - 1]);
    let winsorized: Vec<f64> = s.iter().map(|x| x.clamp(low, high)).collect();
    let se = variance(&winsorized).sqrt() * (n as f64).sqrt() / h as f64;
    let half = t_975(h - 1) * se;
    (m, (m - half, m + half))
}

/// The geometric mean of one cell's runs and its interval (`None` for a
/// single run).
pub fn of_runs(v: &[f64]) -> Option<Interval> {
    let l = logs(v.iter().copied());
    (l.len() >= 2).then(|| Interval::exp(mean(&l), t_interval(&l)))
}

/// new/old from two unpaired sets of runs: the ratio of their geometric
/// means, with Welch's interval (`None` with fewer than two runs a side:
/// no spread to go by).
pub fn ratio_of_runs(old: &[f64], new: &[f64]) -> Option<Interval> {
    if old.len() < 2 || new.len() < 2 {
        return None;
    }
    let (lo, ln) = (logs(old.iter().copied()), logs(new.iter().copied()));
    let (vo, vn) = (
        variance(&lo) / lo.len() as f64,
        variance(&ln) / ln.len() as f64,
    );
    let d = mean(&ln) - mean(&lo);
    let se = (vo + vn).sqrt();
    if se == 0.0 {
        // No spread on either side: the difference is exact.
        return Some(Interval::exp(d, (d, d)));
    }
    // Welch–Satterthwaite degrees of freedom.
    let df =
        (vo + vn).powi(2) / (vo * vo / (lo.len() - 1) as f64 + vn * vn / (ln.len() - 1) as f64);
    let half = t_975(df.floor().max(1.0) as usize) * se;
    Some(Interval::exp(d, (d - half, d + half)))
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn variance(v: &[f64]) -> f64 {
    let m = mean(v);
    v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len().max(2) - 1) as f64
}

/// The 95% confidence interval of the mean of `v`: mean ± t·s/√n, t the
/// 97.5th percentile of Student's t with n−1 degrees of freedom.
pub fn t_interval(v: &[f64]) -> (f64, f64) {
    let n = v.len();
    let m = mean(v);
    if n < 2 {
        return (m, m);
    }
    let half = t_975(n - 1) * (variance(v) / n as f64).sqrt();
    (m - half, m + half)
}

/// Student's t, 97.5th percentile, for `df` degrees of freedom.
fn t_975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => T[df - 1],
        31..=60 => 2.00,
        61..=120 => 1.98,
        _ => 1.96,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pseudo-random source with a fixed seed: the counts below are exact.
    fn rng(mut state: u64) -> impl FnMut() -> f64 {
        move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// The interval covers the mean of the population it was drawn from in
    /// about 95% of samples: 400 samples of 10 from a uniform population
    /// (not even the normal the t assumes).
    #[test]
    fn the_interval_covers_the_mean_about_95_percent() {
        let mut uniform = rng(12345);
        let covered = (0..400)
            .filter(|_| {
                let v: Vec<f64> = (0..10).map(|_| uniform() - 0.5).collect();
                let (low, high) = t_interval(&v);
                low <= 0.0 && 0.0 <= high
            })
            .count();
        // 95% of 400 is 380.
        assert!((370..=392).contains(&covered), "{covered} of 400");
    }

    /// A known ratio (B = 1.05 × A, each side with its own noise of ±3%)
    /// is covered in about 95% of 400 trials of 10 pairs.
    #[test]
    fn a_known_ratio_is_covered() {
        let mut u = rng(7);
        let covered = (0..400)
            .filter(|_| {
                let pairs: Vec<(f64, f64)> = (0..10)
                    .map(|_| {
                        let a = 10.0 * (1.0 + 0.06 * (u() - 0.5));
                        (a, 1.05 * 10.0 * (1.0 + 0.06 * (u() - 0.5)))
                    })
                    .collect();
                let r = paired_ratio(pairs).unwrap();
                r.low <= 1.05 && 1.05 <= r.high
            })
            .count();
        assert!((370..=395).contains(&covered), "{covered} of 400");
    }

    /// Heavy tails: runs now and then 3× slower (a machine's hiccup, 1 run
    /// in 10). Identical sides: the interval still holds 1 in at least
    /// 90% of 400 trials; the estimate is not pulled far by one outlier.
    #[test]
    fn heavy_tails_do_not_move_the_verdict() {
        let mut u = rng(99);
        let mut run = move || {
            let base = 10.0 * (1.0 + 0.04 * (u() - 0.5));
            if u() < 0.1 {
                base * 3.0
            } else {
                base
            }
        };
        let covered = (0..400)
            .filter(|_| {
                let pairs: Vec<(f64, f64)> = (0..10).map(|_| (run(), run())).collect();
                let r = paired_ratio(pairs).unwrap();
                r.low <= 1.0 && 1.0 <= r.high
            })
            .count();
        assert!(covered >= 360, "{covered} of 400");
    }

    /// The trimmed mean and its interval, by hand: [1, 2, 3, 4, 100] keeps
    /// 2, 3, 4 (mean 3); winsorized 2, 2, 3, 4, 4 (s = 1); se = 1·√5/3;
    /// t(2) = 4.303. Below 5 samples it is the mean's t interval.
    #[test]
    fn the_trimmed_interval_by_hand() {
        let (m, (low, high)) = trimmed_interval(&[100.0, 3.0, 1.0, 4.0, 2.0]);
        let half = 4.303 * 5f64.sqrt() / 3.0;
        assert!((m - 3.0).abs() < 1e-12, "{m}");
        assert!((low - (3.0 - half)).abs() < 1e-9 && (high - (3.0 + half)).abs() < 1e-9);
        let v = [1.0, 2.0, 4.0];
        assert_eq!(trimmed_interval(&v), (mean(&v), t_interval(&v)));
        // Two samples have a spread; one has none, and is its own interval.
        // (± 12.706 · √2 / √2, as the winsorized formula gives it.)
        let (m, (low, high)) = trimmed_interval(&[1.0, 3.0]);
        assert_eq!(m, 2.0);
        assert!(
            (low + 10.706).abs() < 1e-9 && (high - 14.706).abs() < 1e-9,
            "{low} {high}"
        );
        assert_eq!(trimmed_interval(&[5.0]), (5.0, (5.0, 5.0)));
    }

    /// A known ratio under this VM's stalls: B = 1.05 × A, ±3% noise a
    /// side, and 1 run in 20 taken 5 to 80 times dearer (a host that took
    /// the CPU away). Over 400 trials of 40 pairs the trimmed interval
    /// holds 1.05 about 95% of the time and excludes 1 almost always; the
    /// mean's interval, blown wide by the stalls, excludes 1 far less
    /// often: what the trimming is for.
    #[test]
    fn a_known_ratio_under_stalls() {
        let mut u = rng(2026);
        let (mut covered, mut resolved, mut mean_resolved) = (0, 0, 0);
        for _ in 0..400 {
            let mut run = |cost: f64| {
                let x = cost * (1.0 + 0.06 * (u() - 0.5));
                if u() < 0.05 {
                    x * (5.0 + 75.0 * u())
                } else {
                    x
                }
            };
            let pairs: Vec<(f64, f64)> = (0..40).map(|_| (run(10.0), run(10.5))).collect();
            let r = paired_ratio(pairs.iter().copied()).unwrap();
            covered += usize::from(r.low <= 1.05 && 1.05 <= r.high);
            resolved += usize::from(r.low > 1.0);
            let l = logs(pairs.iter().map(|(a, b)| b / a));
            mean_resolved += usize::from(t_interval(&l).0 > 0.0);
        }
        assert!((365..=395).contains(&covered), "{covered} of 400");
        assert!(resolved >= 390, "{resolved} of 400");
        assert!(mean_resolved < 100, "{mean_resolved} of 400 by the mean");
    }

    /// Student's t at its table's edges: the table for 1 to 30 degrees of
    /// freedom, then 2.00, 1.98, 1.96; none at 0 (no spread to go by).
    #[test]
    fn t_by_degrees_of_freedom() {
        assert_eq!(t_975(0), f64::INFINITY);
        assert_eq!(t_975(1), 12.706);
        assert_eq!(t_975(2), 4.303);
        assert_eq!(t_975(9), 2.262);
        assert_eq!(t_975(30), 2.042);
        assert_eq!((t_975(31), t_975(60)), (2.00, 2.00));
        assert_eq!((t_975(61), t_975(120)), (1.98, 1.98));
        assert_eq!((t_975(121), t_975(10_000)), (1.96, 1.96));
    }

    /// The mean's interval by hand: [1, 2, 3, 6] has mean 3, sample
    /// variance (4 + 1 + 0 + 9) / 3, so ± 3.182 · √(14/3 / 4); one value
    /// is its own interval, and the mean of nothing is 0.
    #[test]
    fn the_t_interval_by_hand() {
        let (low, high) = t_interval(&[1.0, 2.0, 3.0, 6.0]);
        let half = 3.182 * (14.0f64 / 3.0 / 4.0).sqrt();
        assert!((low - (3.0 - half)).abs() < 1e-12 && (high - (3.0 + half)).abs() < 1e-12);
        assert_eq!(t_interval(&[5.0]), (5.0, 5.0));
        // Two values: variance 2, ± 12.706 · √(2/2).
        let (low, high) = t_interval(&[1.0, 3.0]);
        assert!((low + 10.706).abs() < 1e-9 && (high - 14.706).abs() < 1e-9);
        assert_eq!(variance(&[1.0, 2.0, 3.0, 6.0]), 14.0 / 3.0);
        assert_eq!(variance(&[4.0]), 0.0);
        assert_eq!(mean(&[]), 0.0);
        assert_eq!(mean(&[1.0, 2.0, 6.0]), 3.0);
    }

    /// Half the width as a share of the estimate; none without an estimate.
    #[test]
    fn half_widths() {
        let i = Interval {
            estimate: 2.0,
            low: 1.5,
            high: 2.7,
        };
        assert!((i.half_width_pct() - 30.0).abs() < 1e-12);
        let none = Interval {
            estimate: 0.0,
            low: 0.0,
            high: 0.0,
        };
        assert_eq!(none.half_width_pct(), f64::INFINITY, "not 0/0");
        // In logs: the estimate and both ends are exponentiated.
        let e = Interval::exp(0.0, (-1.0, 2.0));
        assert_eq!(
            (e.estimate, e.low, e.high),
            (1.0, (-1.0f64).exp(), 2.0f64.exp())
        );
        // A zero is taken as 1e-12, never a log of 0.
        assert_eq!(logs([0.0, 1.0]), [1e-12f64.ln(), 0.0]);
    }

    /// B/A from pairs by hand: ratios 2, 2, 2, 2 and 32 trim to 2, 2, 2
    /// (one a side set aside), winsorized all ln 2: an interval of none.
    /// Below 5 pairs nothing is set aside.
    #[test]
    fn the_paired_ratio_by_hand() {
        let pairs = [(1.0, 2.0), (2.0, 4.0), (3.0, 6.0), (1.0, 32.0), (5.0, 10.0)];
        let r = paired_ratio(pairs).unwrap();
        assert!((r.estimate - 2.0).abs() < 1e-12 && (r.low - 2.0).abs() < 1e-12);
        assert!((r.high - 2.0).abs() < 1e-12, "{r:?}");
        let four = paired_ratio([(1.0, 2.0), (1.0, 8.0), (1.0, 2.0), (1.0, 8.0)]).unwrap();
        // ln ratios ln2, 3ln2, ln2, 3ln2: mean 2ln2 (ratio 4), s = ln2·√(4/3).
        let half = 3.182 * 2f64.ln() * (4.0f64 / 3.0).sqrt() / 2.0;
        assert!((four.estimate - 4.0).abs() < 1e-9, "{four:?}");
        assert!(
            (four.low - (4f64.ln() - half).exp()).abs() < 1e-9,
            "{four:?}"
        );
        assert!(
            (four.high - (4f64.ln() + half).exp()).abs() < 1e-9,
            "{four:?}"
        );
        // A side at 0 is taken as 1e-12, not a division by 0.
        assert!(paired_ratio([(0.0, 1.0), (0.0, 1.0)]).unwrap().estimate > 1e11);
    }

    /// NEW/OLD by hand, Welch: old's logs [1, 3] (mean 2, variance 2),
    /// new's [2, 4] (mean 3, variance 2): d = 1, se = √(2/2 + 2/2) = √2,
    /// df = (1 + 1)² / (1/1 + 1/1) = 2, t(2) = 4.303.
    #[test]
    fn welch_by_hand() {
        let e = std::f64::consts::E;
        let r = ratio_of_runs(&[e, e.powi(3)], &[e * e, e.powi(4)]).unwrap();
        let half = 4.303 * 2f64.sqrt();
        assert!((r.estimate - e).abs() < 1e-9, "{r:?}");
        assert!((r.low - (1.0 - half).exp()).abs() < 1e-9, "{r:?}");
        assert!((r.high - (1.0 + half).exp()).abs() < 1e-9, "{r:?}");
        // Unequal spreads and counts: df from Welch–Satterthwaite, floored.
        // old logs [0, 2, 4] (mean 2, var 4, var/n 4/3), new logs [3, 3]
        // (var 0): df = (4/3)² / ((4/3)² / 2) = 2.
        let r = ratio_of_runs(&[1.0, e * e, e.powi(4)], &[e.powi(3), e.powi(3)]).unwrap();
        let half = 4.303 * (4.0f64 / 3.0).sqrt();
        assert!((r.low - (1.0 - half).exp()).abs() < 1e-9, "{r:?}");
        // old logs [0, 2] (var/n 1), new [0, 2, 4] (var/n 4/3): df =
        // (7/3)² / (1/1 + (4/3)²/2) = 2.88, floored to 2 (t 4.303, where
        // 3 would give 3.182).
        let r = ratio_of_runs(&[1.0, e * e], &[1.0, e * e, e.powi(4)]).unwrap();
        let half = 4.303 * (7.0f64 / 3.0).sqrt();
        assert!((r.estimate - e).abs() < 1e-9, "{r:?}");
        assert!((r.high - (1.0 + half).exp()).abs() < 1e-6 * r.high, "{r:?}");
        // No spread on either side: the interval is the estimate.
        let flat = ratio_of_runs(&[2.0, 2.0], &[3.0, 3.0, 3.0]).unwrap();
        assert!((flat.estimate - 1.5).abs() < 1e-12 && (flat.low - 1.5).abs() < 1e-12);
        assert_eq!(ratio_of_runs(&[1.0, 2.0], &[1.0]), None);
    }

    #[test]
    fn a_cells_runs_and_two_cells_compared() {
        let same = of_runs(&[2.0, 2.0, 2.0]).unwrap();
        assert!((same.estimate - 2.0).abs() < 1e-12 && same.half_width_pct() < 1e-9);
        let spread = of_runs(&[1.0, 2.0, 4.0]).unwrap();
        assert!((spread.estimate - 2.0).abs() < 1e-12);
        assert!(spread.low < 1.0 && spread.high > 4.0, "{spread:?}");
        assert_eq!(of_runs(&[3.0]), None);
        assert_eq!(paired_ratio([(1.0, 2.0)]), None);
        // new = 1.5 × old, both with the same small spread: the ratio is
        // 1.5 and its interval excludes 1.
        let old = [10.0, 10.2, 9.8, 10.1];
        let new: Vec<f64> = old.iter().map(|x| x * 1.5).collect();
        let r = ratio_of_runs(&old, &new).unwrap();
        assert!((r.estimate - 1.5).abs() < 1e-9, "{r:?}");
        assert!(r.low > 1.4 && r.high < 1.6, "{r:?}");
        // Two draws of one spread: the interval includes 1.
        let r = ratio_of_runs(&[10.0, 11.0, 9.0], &[9.5, 10.5, 10.0]).unwrap();
        assert!(r.low < 1.0 && r.high > 1.0, "{r:?}");
        assert_eq!(ratio_of_runs(&[1.0], &[1.0, 2.0]), None);
    }
}
