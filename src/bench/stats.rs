//! The statistics of a bench: each cell's runs summed up in a [`Median`].

use serde::Serialize;

use super::confidence::{self, Interval};
use super::{Cell, Counts, Run, TraceCost};
use crate::netns::attribution::Attribution;

/// The runs of one cell, summed up.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Median {
    pub cell: Cell,
    pub runs: usize,
    pub req_per_s: f64,
    pub req_per_s_min: f64,
    pub req_per_s_max: f64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub cpu_us_per_req: f64,
    pub cpu_us_per_req_min: f64,
    pub cpu_us_per_req_max: f64,
    /// Coefficients of variation (standard deviation / mean) of the runs.
    pub req_per_s_cv: f64,
    pub cpu_cv: f64,
    pub succeeded: u64,
    pub failed: u64,
    pub connection_errors: u64,
    /// DATA octets of the responses per second, in MiB: the runs' median.
    pub goodput_mib_per_s: f64,
    /// Traced cells: medians of the runs' trace figures, losses summed.
    pub trace: Option<TraceCost>,
    /// The machine's pace around the runs (ns per block of its fixed
    /// work, see [`super::pace`]): median, min and max; `None` when it was
    /// not timed.
    pub pace_ns: Option<PaceRange>,
    /// 95% intervals of the runs' geometric mean ([`confidence::of_runs`];
    /// `None` for a single run, or read from a CSV without them).
    pub req_per_s_ci: Option<Interval>,
    pub cpu_ci: Option<Interval>,
    /// Both intervals are within the bench's `--precision` (`None`: no
    /// precision was asked for).
    pub settled: Option<bool>,
    /// Counts per request: the median of the runs' context switches, and
    /// the system calls of the cell's counting run.
    pub counts: Counts,
}

/// The machine's pace around a cell's runs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PaceRange {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl PaceRange {
    /// How much slower the machine was around the slowest of the runs than
    /// around the fastest: max/min.
    pub fn spread(&self) -> f64 {
        if self.min > 0.0 {
            self.max / self.min
        } else {
            1.0
        }
    }
}

/// Repeats whose max/min exceeds this are too far apart to trust the median.
pub const WIDE_SPREAD: f64 = 1.2;

impl Median {
    /// max/min of the runs' req/s and of their CPU per request.
    pub fn spreads(&self) -> (f64, f64) {
        let ratio = |min: f64, max: f64| if min > 0.0 { max / min } else { 1.0 };
        (
            ratio(self.req_per_s_min, self.req_per_s_max),
            ratio(self.cpu_us_per_req_min, self.cpu_us_per_req_max),
        )
    }

    /// The repeats spread wider than [`WIDE_SPREAD`] in req/s or CPU.
    pub fn is_wide(&self) -> bool {
        let (rps, cpu) = self.spreads();
        rps > WIDE_SPREAD || cpu > WIDE_SPREAD
    }

    /// Half the wider of the two 95% intervals (req/s, CPU per request),
    /// as a percentage of its estimate (infinite without an interval).
    pub fn half_width_pct(&self) -> f64 {
        [self.req_per_s_ci, self.cpu_ci]
            .iter()
            .map(|ci| ci.map_or(f64::INFINITY, |c| c.half_width_pct()))
            .fold(0.0, f64::max)
    }

    /// Not to be trusted: it never settled within the bench's
    /// `--precision`, or, with none asked, its repeats spread wide.
    pub fn unsure(&self) -> bool {
        match self.settled {
            Some(settled) => !settled,
            None => self.is_wide(),
        }
    }
}

#[cfg(test)]
impl Median {
    /// A poll/mini/none cell at 1 × 1 with three alike runs, for tests.
    pub fn example() -> Median {
        use crate::server::{Dispatch, Engine, Setup};
        let cell = Cell {
            target: super::Target::H2lab(Setup {
                dispatch: Dispatch::Poll,
                engine: Engine::Mini,
                tls: crate::tls::TlsProvider::None,
            }),
            clients: 1,
            pipeline: 1,
            threads: 0,
            traced: false,
            work: crate::engine::Work::None,
            body: crate::engine::Body::default(),
            offload: 0,
            source: super::matrix::Source::Reading,
            mix: None,
            net: crate::netns::Topology::Loopback,
            link: None,
            load_hosts: None,
            server_host: None,
        };
        Median {
            cell,
            runs: 3,
            req_per_s: 1000.0,
            req_per_s_min: 1000.0,
            req_per_s_max: 1000.0,
            p50_us: None,
            p99_us: None,
            cpu_us_per_req: 1.0,
            cpu_us_per_req_min: 1.0,
            cpu_us_per_req_max: 1.0,
            req_per_s_cv: 0.0,
            cpu_cv: 0.0,
            succeeded: 3000,
            failed: 0,
            connection_errors: 0,
            goodput_mib_per_s: 0.0,
            trace: None,
            pace_ns: None,
            req_per_s_ci: None,
            cpu_ci: None,
            settled: None,
            counts: Counts::default(),
        }
    }
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

/// Standard deviation over mean (0 for fewer than two values).
pub fn cv(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 || mean == 0.0 {
        return 0.0;
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    var.sqrt() / mean
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Whether a cell's intervals are as narrow as ± `precision` percent.
pub fn settles(req_per_s_ci: Option<Interval>, cpu_ci: Option<Interval>, precision: f64) -> bool {
    [req_per_s_ci, cpu_ci]
        .iter()
        .all(|ci| ci.is_some_and(|ci| ci.half_width_pct() <= precision))
}

/// The median of every cell, in the matrix's order, with the counts of its
/// counting run (in `counted`, if any) and, given a `precision` (%),
/// whether it settled.
pub fn medians(
    cells: &[Cell],
    runs: &[Run],
    counted: &[Run],
    precision: Option<f64>,
) -> Vec<Median> {
    cells
        .iter()
        .map(|cell| {
            let mine: Vec<&Run> = runs.iter().filter(|r| r.cell == *cell).collect();
            let (req_per_s_ci, cpu_ci) = (
                confidence::of_runs(&mine.iter().map(|r| r.req_per_s).collect::<Vec<_>>()),
                confidence::of_runs(&mine.iter().map(|r| r.cpu_us_per_req).collect::<Vec<_>>()),
            );
            let ctx: Vec<f64> = mine
                .iter()
                .filter_map(|r| r.counts.ctx_switches_per_req)
                .collect();
            let counts = counted
                .iter()
                .find(|r| r.cell == *cell)
                .map(|r| r.counts)
                .unwrap_or_default()
                .with_ctx_switches((!ctx.is_empty()).then(|| median(ctx)))
                .with_heads(mine.iter().find_map(|r| r.counts.heads()))
                .with_net(Attribution::median(
                    &mine.iter().filter_map(|r| r.counts.net).collect::<Vec<_>>(),
                ));
            let rps: Vec<f64> = mine.iter().map(|r| r.req_per_s).collect();
            let cpu: Vec<f64> = mine.iter().map(|r| r.cpu_us_per_req).collect();
            let pct = |f: fn(&Run) -> Option<u64>| -> Option<u64> {
                let v: Vec<f64> = mine.iter().filter_map(|r| f(r).map(|x| x as f64)).collect();
                (!v.is_empty()).then(|| median(v) as u64)
            };
            Median {
                cell: *cell,
                runs: mine.len(),
                req_per_s: median(rps.clone()),
                req_per_s_min: min(&rps),
                req_per_s_max: max(&rps),
                p50_us: pct(|r| r.p50_us),
                p99_us: pct(|r| r.p99_us),
                cpu_us_per_req: median(cpu.clone()),
                cpu_us_per_req_min: min(&cpu),
                cpu_us_per_req_max: max(&cpu),
                req_per_s_cv: cv(&rps),
                cpu_cv: cv(&cpu),
                succeeded: mine.iter().map(|r| r.succeeded).sum(),
                failed: mine.iter().map(|r| r.failed).sum(),
                connection_errors: mine.iter().map(|r| r.connection_errors).sum(),
                goodput_mib_per_s: median(mine.iter().map(|r| r.goodput_mib_per_s).collect()),
                trace: trace_median(&mine),
                pace_ns: pace(&mine),
                settled: precision.map(|p| settles(req_per_s_ci, cpu_ci, p)),
                req_per_s_ci,
                cpu_ci,
                counts,
            }
        })
        .collect()
}

fn pace(runs: &[&Run]) -> Option<PaceRange> {
    let v: Vec<f64> = runs.iter().filter_map(|r| r.pace_ns).collect();
    (!v.is_empty()).then(|| PaceRange {
        min: min(&v),
        max: max(&v),
        median: median(v),
    })
}

/// The pace over a whole bench (from its cells'), and how many cells it
/// spread wider than [`WIDE_SPREAD`] across: `None` when it was not timed.
pub fn machine_pace(medians: &[Median]) -> Option<(PaceRange, usize)> {
    let paces: Vec<PaceRange> = medians.iter().filter_map(|m| m.pace_ns).collect();
    if paces.is_empty() {
        return None;
    }
    let wide = paces.iter().filter(|p| p.spread() > WIDE_SPREAD).count();
    let whole = PaceRange {
        median: median(paces.iter().map(|p| p.median).collect()),
        min: min(&paces.iter().map(|p| p.min).collect::<Vec<_>>()),
        max: max(&paces.iter().map(|p| p.max).collect::<Vec<_>>()),
    };
    Some((whole, wide))
}

fn trace_median(runs: &[&Run]) -> Option<TraceCost> {
    let costs: Vec<&TraceCost> = runs.iter().filter_map(|r| r.trace.as_ref()).collect();
    if costs.is_empty() {
        return None;
    }
    let of = |f: fn(&TraceCost) -> f64| median(costs.iter().map(|c| f(c)).collect());
    Some(TraceCost {
        records_per_req: of(|c| c.records_per_req),
        lost: costs.iter().map(|c| c.lost).sum(),
        span_ns: of(|c| c.span_ns),
        event_ns: of(|c| c.event_ns),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_take_the_middle_run() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }

    /// A run of `cell` with these figures; the rest zero or none.
    fn run(cell: Cell, rps: f64, cpu: f64, p50: Option<u64>, pace: Option<f64>) -> Run {
        Run {
            cell,
            rep: 0,
            req_per_s: rps,
            p50_us: p50,
            p99_us: p50.map(|p| 10 * p),
            mean_us: 0.0,
            cpu_us_per_req: cpu,
            succeeded: 100,
            failed: 1,
            connection_errors: 2,
            seconds: 1.0,
            goodput_mib_per_s: rps / 1000.0,
            counts: Counts::default(),
            trace: None,
            pace_ns: pace,
        }
    }

    /// Every field of a cell's median from its own runs only, in the
    /// matrix's order: middles, extremes, spreads, sums, intervals, counts.
    #[test]
    fn medians_sum_up_each_cell_from_its_own_runs() {
        let a = Median::example().cell;
        let b = Cell { clients: 5, ..a };
        let mut runs = vec![
            run(a, 1000.0, 2.0, Some(50), Some(10.0)),
            run(a, 1200.0, 3.0, Some(70), Some(12.0)),
            run(a, 900.0, 2.5, Some(60), Some(11.0)),
            run(b, 5.0, 9.0, None, None),
        ];
        runs[1].counts.ctx_switches_per_req = Some(4.0);
        runs[2].counts.ctx_switches_per_req = Some(2.0);
        runs[0].trace = Some(TraceCost {
            records_per_req: 3.0,
            lost: 7,
            span_ns: 40.0,
            event_ns: 20.0,
        });
        runs[1].trace = Some(TraceCost {
            records_per_req: 5.0,
            lost: 1,
            span_ns: 60.0,
            event_ns: 30.0,
        });
        let mut counted = run(a, 0.0, 0.0, None, None);
        counted.counts.syscalls_per_req = Some(6.5);
        counted.counts.ctx_switches_per_req = Some(99.0);
        let m = medians(&[b, a], &runs, &[counted], Some(1000.0));
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].cell, m[1].cell), (b, a), "the matrix's order");
        let (mb, ma) = (&m[0], &m[1]);
        assert_eq!(ma.runs, 3);
        assert_eq!(
            (ma.req_per_s, ma.req_per_s_min, ma.req_per_s_max),
            (1000.0, 900.0, 1200.0)
        );
        assert_eq!(
            (
                ma.cpu_us_per_req,
                ma.cpu_us_per_req_min,
                ma.cpu_us_per_req_max
            ),
            (2.5, 2.0, 3.0)
        );
        assert_eq!((ma.p50_us, ma.p99_us), (Some(60), Some(600)));
        assert_eq!((ma.succeeded, ma.failed, ma.connection_errors), (300, 3, 6));
        assert_eq!(ma.goodput_mib_per_s, 1.0);
        assert_eq!(ma.req_per_s_cv, cv(&[1000.0, 1200.0, 900.0]));
        assert_eq!(ma.cpu_cv, cv(&[2.0, 3.0, 2.5]));
        assert!(ma.req_per_s_cv > 0.0 && ma.cpu_cv > 0.0);
        assert_eq!(
            ma.pace_ns,
            Some(PaceRange {
                median: 11.0,
                min: 10.0,
                max: 12.0
            })
        );
        // Counts from the counting run; context switches from the timed
        // runs' median where they have them.
        assert_eq!(ma.counts.syscalls_per_req, Some(6.5));
        assert_eq!(ma.counts.ctx_switches_per_req, Some(3.0));
        assert_eq!(
            ma.trace,
            Some(TraceCost {
                records_per_req: 4.0,
                lost: 8,
                span_ns: 50.0,
                event_ns: 25.0
            })
        );
        let (rps_ci, cpu_ci) = (ma.req_per_s_ci.unwrap(), ma.cpu_ci.unwrap());
        assert_eq!(Some(rps_ci), confidence::of_runs(&[1000.0, 1200.0, 900.0]));
        assert_eq!(Some(cpu_ci), confidence::of_runs(&[2.0, 3.0, 2.5]));
        assert_eq!(
            ma.settled,
            Some(settles(Some(rps_ci), Some(cpu_ci), 1000.0))
        );
        assert!(!settles(Some(rps_ci), Some(cpu_ci), 1.0));
        assert_eq!(ma.settled, Some(true));
        // The other cell: one run, nothing to spread or interval.
        assert_eq!((mb.runs, mb.req_per_s, mb.cpu_us_per_req), (1, 5.0, 9.0));
        assert_eq!(
            (mb.p50_us, mb.p99_us, mb.pace_ns, &mb.trace),
            (None, None, None, &None)
        );
        assert_eq!((mb.req_per_s_ci, mb.cpu_ci), (None, None));
        assert_eq!(mb.settled, Some(false), "no interval never settles");
        assert_eq!(mb.counts, Counts::default());
        assert_eq!(medians(&[a], &runs, &[], None)[0].settled, None);
    }

    /// A cell is wide when max/min of either figure passes 1.2, and
    /// unsure when it did not settle or, with no precision asked, is wide.
    #[test]
    fn spreads_wideness_and_doubt() {
        let mut m = Median::example();
        assert_eq!(m.spreads(), (1.0, 1.0));
        assert!(!m.is_wide() && !m.unsure());
        m.req_per_s_min = 800.0;
        m.req_per_s_max = 1000.0;
        assert_eq!(m.spreads(), (1.25, 1.0));
        assert!(m.is_wide() && m.unsure());
        m.req_per_s_min = 1000.0;
        m.req_per_s_max = 1200.0;
        assert!(!m.is_wide(), "1.2 itself is not wide");
        m.req_per_s_max = 1000.0;
        m.cpu_us_per_req_max = 1.2;
        assert!(!m.is_wide(), "1.2 itself is not wide");
        m.cpu_us_per_req_max = 1.21;
        assert!(m.is_wide());
        m.cpu_us_per_req_min = 0.0;
        assert_eq!(m.spreads(), (1.0, 1.0), "no minimum, no spread");
        m.settled = Some(true);
        m.cpu_us_per_req_min = 1.0;
        assert!(m.is_wide() && !m.unsure(), "settled overrides the spread");
        m.settled = Some(false);
        assert!(m.unsure());
        // The wider of the two intervals, infinite without one.
        assert_eq!(m.half_width_pct(), f64::INFINITY);
        let narrow = confidence::of_runs(&[100.0, 101.0, 99.0]).unwrap();
        let wide = confidence::of_runs(&[100.0, 130.0, 70.0]).unwrap();
        m.req_per_s_ci = Some(narrow);
        assert_eq!(m.half_width_pct(), f64::INFINITY);
        m.cpu_ci = Some(wide);
        assert_eq!(m.half_width_pct(), wide.half_width_pct());
        m.req_per_s_ci = Some(wide);
        m.cpu_ci = Some(narrow);
        assert_eq!(m.half_width_pct(), wide.half_width_pct());
        assert!(wide.half_width_pct() > narrow.half_width_pct());
        // Settled: both intervals within the precision, the bound itself in.
        let p = wide.half_width_pct();
        assert!(settles(Some(wide), Some(narrow), p));
        assert!(!settles(Some(wide), Some(narrow), p - 1e-9));
        assert!(!settles(None, Some(narrow), 100.0));
        assert!(!settles(Some(narrow), None, 100.0));
    }

    /// The machine's pace over a bench: the median of the cells' medians,
    /// the least minimum and the greatest maximum, and how many cells
    /// spread past 1.2 (max/min).
    #[test]
    fn the_machine_pace_spans_the_cells() {
        let mut cells = vec![Median::example(); 3];
        assert_eq!(machine_pace(&cells), None);
        let range = |median, min, max| Some(PaceRange { median, min, max });
        cells[0].pace_ns = range(10.0, 9.5, 11.0);
        cells[1].pace_ns = range(20.0, 10.0, 30.0);
        cells[2].pace_ns = range(11.5, 10.0, 11.5);
        let (whole, wide) = machine_pace(&cells).unwrap();
        assert_eq!(
            whole,
            PaceRange {
                median: 11.5,
                min: 9.5,
                max: 30.0
            }
        );
        assert_eq!(
            wide, 1,
            "only 10 to 30 passes 1.2 (11/9.5 and 11.5/10 do not)"
        );
        assert_eq!(
            PaceRange {
                median: 1.0,
                min: 0.0,
                max: 5.0
            }
            .spread(),
            1.0
        );
        assert_eq!(whole.spread(), 30.0 / 9.5);
    }

    #[test]
    fn extremes_of_the_runs() {
        assert_eq!(min(&[3.0, 1.5, 2.0]), 1.5);
        assert_eq!(max(&[3.0, 1.5, 4.0]), 4.0);
        assert_eq!(median(vec![1.0, 2.0, 3.0, 10.0]), 2.5);
    }

    #[test]
    fn spread_is_the_coefficient_of_variation() {
        assert_eq!(cv(&[5.0]), 0.0);
        assert_eq!(cv(&[2.0, 2.0, 2.0]), 0.0);
        // Mean 2, sample standard deviation 1.
        assert!((cv(&[1.0, 2.0, 3.0]) - 0.5).abs() < 1e-12);
        // Mean 3, sample variance (1 + 1) / 1: standard deviation √2.
        assert!((cv(&[2.0, 4.0]) - 2f64.sqrt() / 3.0).abs() < 1e-12);
        assert_eq!(
            cv(&[0.0, 0.0]),
            0.0,
            "a mean of 0 has no spread to speak of"
        );
    }
}
