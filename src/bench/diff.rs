//! `h2lab bench-compare OLD.csv NEW.csv`: two benches cell by cell. Per
//! cell and figure (req/s, CPU per request), the ratio NEW/OLD of the
//! runs' geometric means with a 95% interval (Welch's, on the logs of
//! the repeats: the two benches' runs were not paired), marked only where
//! the whole interval lies beyond the threshold; cells one bench has and
//! the other lacks, listed; and the two machine blocks, with a loud
//! warning where they differ in what moves the figures.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::confidence::{self, Interval};
use super::row::{Row, RowKind, CSV_HEADER};
use super::{Cell, Machine};
use crate::cli::{self, bad_input, values, CmdResult, Exit};

/// Compare two bench CSVs (`h2lab bench --out`) cell by cell: for req/s
/// and CPU per request, NEW/OLD with a 95% confidence interval from the
/// repeats, marked `worse` or `better` only where the whole interval lies
/// beyond --threshold. Cells in one CSV only are listed; the machine
/// blocks are compared, with a warning where CPU, kernel, pinning,
/// virtualization, load client, durations or the h2lab commit differ.
///
/// Exit status: 0; 1 when a cell is marked worse (for CI); 2 when a CSV
/// cannot be read.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The baseline bench CSV.
    pub old: PathBuf,
    /// The bench CSV to judge against it.
    pub new: PathBuf,
    /// Percent a figure must move, the whole interval beyond it, to be
    /// marked.
    #[arg(long, value_name = "PCT", default_value_t = 5.0, value_parser = values::pct)]
    pub threshold: f64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// One figure of one cell in both benches.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Moved {
    pub old_median: f64,
    pub new_median: f64,
    /// NEW/OLD of the runs' geometric means and its 95% interval (`None`
    /// with fewer than two runs on a side).
    pub ratio: Option<Interval>,
    /// `worse`, `better`, or empty: the interval does not clear the
    /// threshold.
    pub mark: &'static str,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CellDiff {
    pub cell: String,
    pub clients: usize,
    pub pipeline: usize,
    pub req_per_s: Moved,
    pub cpu_us_per_req: Moved,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diff {
    pub threshold_pct: f64,
    pub cells: Vec<CellDiff>,
    pub only_old: Vec<String>,
    pub only_new: Vec<String>,
    /// Machine fields that differ and move figures: (field, old, new).
    pub machine_differs: Vec<(String, String, String)>,
}

/// The machine fields whose difference makes two benches incomparable
/// (or comparable only with care).
const MACHINE_FIELDS: [&str; 10] = [
    "cpu",
    "cores",
    "kernel",
    "virtualization",
    "pinning",
    "client",
    "warm_up",
    "duration",
    "tls",
    "h2lab",
];

pub fn run(args: Args) -> CmdResult {
    let (old, old_machine) = read(&args.old)?;
    let (new, new_machine) = read(&args.new)?;
    let diff = diff(
        &old,
        &new,
        old_machine.as_ref(),
        new_machine.as_ref(),
        args.threshold,
    );
    let text = match args.json {
        true => format!("{}\n", serde_json::to_string_pretty(&diff)?),
        false => table(&diff, &args.old, &args.new),
    };
    cli::out(text);
    let worse = diff
        .cells
        .iter()
        .any(|c| c.req_per_s.mark == "worse" || c.cpu_us_per_req.mark == "worse");
    Ok(if worse { Exit::Failure } else { Exit::Success })
}

/// A bench CSV's run rows by cell, and its machine block.
type Runs = BTreeMap<String, (Cell, Vec<Row>)>;

fn read(path: &Path) -> Result<(Runs, Option<Machine>), cli::CmdError> {
    let rows: Vec<Row> =
        crate::csv_file::read(path, CSV_HEADER, "an h2lab bench CSV").map_err(bad_input)?;
    let mut runs = Runs::new();
    for row in rows.into_iter().filter(|r| r.kind == RowKind::Run) {
        let cell = row
            .cell()
            .map_err(|e| bad_input(anyhow::anyhow!("{}: {e}", path.display())))?;
        let key = format!("{cell} c={} m={}", cell.clients, cell.pipeline);
        runs.entry(key).or_insert((cell, Vec::new())).1.push(row);
    }
    if runs.is_empty() {
        return Err(bad_input(anyhow::anyhow!(
            "{}: no run rows (is it a CSV of `h2lab bench --out`?)",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).unwrap_or_default();
    Ok((runs, Machine::from_comments(&text)))
}

/// The two benches compared; `threshold` in percent.
pub fn diff(
    old: &Runs,
    new: &Runs,
    old_machine: Option<&Machine>,
    new_machine: Option<&Machine>,
    threshold: f64,
) -> Diff {
    let t = threshold / 100.0;
    let moved = |o: &[Row], n: &[Row], of: fn(&Row) -> f64, higher_is_worse: bool| {
        let (o, n): (Vec<f64>, Vec<f64>) = (o.iter().map(of).collect(), n.iter().map(of).collect());
        let ratio = confidence::ratio_of_runs(&o, &n);
        let up = ratio.is_some_and(|r| r.low > 1.0 + t);
        let down = ratio.is_some_and(|r| r.high < 1.0 - t);
        Moved {
            old_median: super::stats::median(o),
            new_median: super::stats::median(n),
            ratio,
            mark: match (up, down, higher_is_worse) {
                (true, _, true) | (_, true, false) => "worse",
                (true, _, false) | (_, true, true) => "better",
                _ => "",
            },
        }
    };
    let cells = old
        .iter()
        .filter_map(|(key, (cell, o))| {
            let (_, n) = new.get(key)?;
            Some(CellDiff {
                cell: cell.to_string(),
                clients: cell.clients,
                pipeline: cell.pipeline,
                req_per_s: moved(o, n, |r| r.req_per_s, false),
                cpu_us_per_req: moved(o, n, |r| r.cpu_us_per_req, true),
            })
        })
        .collect();
    let only = |a: &Runs, b: &Runs| {
        a.keys()
            .filter(|k| !b.contains_key(*k))
            .cloned()
            .collect::<Vec<_>>()
    };
    let field = |m: Option<&Machine>, name: &str| -> String {
        m.and_then(|m| serde_json::to_value(m).ok())
            .and_then(|v| v.get(name).and_then(|s| s.as_str()).map(str::to_string))
            .unwrap_or_default()
    };
    let machine_differs = MACHINE_FIELDS
        .iter()
        .map(|f| (f.to_string(), field(old_machine, f), field(new_machine, f)))
        .filter(|(_, o, n)| o != n)
        .collect();
    Diff {
        threshold_pct: threshold,
        cells,
        only_old: only(old, new),
        only_new: only(new, old),
        machine_differs,
    }
}

fn table(d: &Diff, old: &Path, new: &Path) -> String {
    let mut out = String::new();
    if !d.machine_differs.is_empty() {
        let _ = writeln!(
            out,
            "WARNING: the two benches did not run alike; differences below may be the machine's, not the code's:"
        );
        for (field, o, n) in &d.machine_differs {
            let show = |s: &str| match s {
                "" => "(not said)".to_string(),
                s => s.to_string(),
            };
            let _ = writeln!(out, "  {field}: {} → {}", show(o), show(n));
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "h2lab bench-compare: {} → {}; NEW/OLD of the runs' geometric means, 95% CI (Welch); marked where the whole interval is beyond ±{}%",
        old.display(),
        new.display(),
        d.threshold_pct
    );
    let w = d
        .cells
        .iter()
        .map(|c| c.cell.chars().count())
        .max()
        .unwrap_or(0)
        .max(22);
    let _ = writeln!(
        out,
        "{:<w$} {:>4} {:>4} {:>11} {:>11} {:>7} {:>15} {:>6} {:>9} {:>9} {:>7} {:>15} {:>6}",
        "setup",
        "c",
        "m",
        "old req/s",
        "new req/s",
        "new/old",
        "95% CI",
        "",
        "old CPU/r",
        "new CPU/r",
        "new/old",
        "95% CI",
        ""
    );
    let ratio = |m: &Moved| match m.ratio {
        Some(r) => (
            format!("{:.3}", r.estimate),
            format!("{:.3}–{:.3}", r.low, r.high),
        ),
        None => ("–".into(), "(one run)".into()),
    };
    for c in &d.cells {
        let (rr, rci) = ratio(&c.req_per_s);
        let (cr, cci) = ratio(&c.cpu_us_per_req);
        let _ = writeln!(
            out,
            "{:<w$} {:>4} {:>4} {:>11.0} {:>11.0} {:>7} {:>15} {:>6} {:>9.2} {:>9.2} {:>7} {:>15} {:>6}",
            c.cell,
            c.clients,
            c.pipeline,
            c.req_per_s.old_median,
            c.req_per_s.new_median,
            rr,
            rci,
            c.req_per_s.mark,
            c.cpu_us_per_req.old_median,
            c.cpu_us_per_req.new_median,
            cr,
            cci,
            c.cpu_us_per_req.mark
        );
    }
    for (side, cells) in [("OLD", &d.only_old), ("NEW", &d.only_new)] {
        if !cells.is_empty() {
            let _ = writeln!(out, "only in {side}: {}", cells.join(", "));
        }
    }
    let count = |mark: &str| {
        d.cells
            .iter()
            .filter(|c| c.req_per_s.mark == mark || c.cpu_us_per_req.mark == mark)
            .count()
    };
    let _ = writeln!(
        out,
        "{} of {} cells worse, {} better, the rest within ±{}% or not resolved",
        count("worse"),
        d.cells.len(),
        count("better"),
        d.threshold_pct
    );
    out
}
