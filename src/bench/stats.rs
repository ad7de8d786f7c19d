//! The statistics of a bench: each cell's runs summed up in a [`Median`].

use serde::Serialize;

use super::{Cell, Run, TraceCost};

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
    pub succeeded: u64,
    pub failed: u64,
    pub connection_errors: u64,
    /// Traced cells: medians of the runs' trace figures, losses summed.
    pub trace: Option<TraceCost>,
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The median of every cell, in the matrix's order.
pub fn medians(cells: &[Cell], runs: &[Run]) -> Vec<Median> {
    cells
        .iter()
        .map(|cell| {
            let mine: Vec<&Run> = runs.iter().filter(|r| r.cell == *cell).collect();
            let rps: Vec<f64> = mine.iter().map(|r| r.req_per_s).collect();
            let pct = |f: fn(&Run) -> Option<u64>| -> Option<u64> {
                let v: Vec<f64> = mine.iter().filter_map(|r| f(r).map(|x| x as f64)).collect();
                (!v.is_empty()).then(|| median(v) as u64)
            };
            Median {
                cell: *cell,
                runs: mine.len(),
                req_per_s: median(rps.clone()),
                req_per_s_min: rps.iter().copied().fold(f64::INFINITY, f64::min),
                req_per_s_max: rps.iter().copied().fold(0.0, f64::max),
                p50_us: pct(|r| r.p50_us),
                p99_us: pct(|r| r.p99_us),
                cpu_us_per_req: median(mine.iter().map(|r| r.cpu_us_per_req).collect()),
                succeeded: mine.iter().map(|r| r.succeeded).sum(),
                failed: mine.iter().map(|r| r.failed).sum(),
                connection_errors: mine.iter().map(|r| r.connection_errors).sum(),
                trace: trace_median(&mine),
            }
        })
        .collect()
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
}
