//! `h2lab compare A.csv B.csv`: per-request action counts, bytes and mean
//! durations of two action logs side by side, each log's most common
//! per-request action sequence, and a verdict for CI.
//!
//! Requests are counted from the frames: streams the server ended (a
//! `frame-out` DATA or HEADERS row with END_STREAM).

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::cli::{self, bad_input, values, CmdResult, Exit};
use crate::csv_file::{self, CsvFileError};
use crate::trace::{CsvRow, Kind, Name, CSV_HEADER};

/// Compare two action logs (the CSV of `serve --trace`): per-request
/// action counts, bytes and mean durations, and each log's usual
/// per-request action sequence.
///
/// Exit status: 0 when B is within the thresholds of A, 1 when a
/// per-request action count (or, if asked, a mean duration) in B exceeds
/// A's by more, 2 when a log cannot be read (with the reason) or when
/// either trace lost records (see --allow-losses).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The baseline action log.
    pub a: PathBuf,
    /// The action log to judge against the baseline.
    pub b: PathBuf,
    /// Percent by which B's per-request count of an action may exceed A's.
    #[arg(long, value_name = "PCT", default_value_t = 10.0, value_parser = values::pct)]
    pub threshold: f64,
    /// Also judge mean durations: percent by which B's may exceed A's.
    /// Off by default: on a shared machine two runs of one setup differ in
    /// durations far more than in counts (set it to the spread you see).
    #[arg(long, value_name = "PCT", value_parser = values::pct)]
    pub duration_threshold: Option<f64>,
    /// Compare even when a trace lost records (queue full, limit) or is
    /// incomplete, as said in its PREFIX.meta.json; the warning stays.
    #[arg(long)]
    pub allow_losses: bool,
}

/// `h2lab compare`.
pub fn run(args: Args) -> CmdResult {
    let a = read_log(&args.a).map_err(bad_input)?;
    let b = read_log(&args.b).map_err(bad_input)?;
    let mut lossy = false;
    for log in [&a, &b] {
        match &log.losses {
            Losses::None => {}
            Losses::Unknown => eprintln!(
                "h2lab: warning: no {} beside {}: cannot tell whether its trace lost records",
                meta_path(&log.path).display(),
                log.path.display()
            ),
            Losses::Some(what) => {
                lossy = true;
                eprintln!(
                    "h2lab: WARNING: {}: {what}; per-request figures from it are wrong",
                    log.path.display()
                );
            }
        }
    }
    if lossy && !args.allow_losses {
        return Err(bad_input(anyhow::anyhow!(
            "a trace lost records: not compared (--allow-losses compares anyway)"
        )));
    }
    let thresholds = Thresholds {
        count_pct: args.threshold,
        duration_pct: args.duration_threshold,
    };
    let comparison = compare(&a, &b, thresholds);
    cli::out(comparison.to_string());
    if comparison.regressions.is_empty() {
        cli::out("\nno regression beyond the thresholds\n");
        return Ok(Exit::Success);
    }
    cli::out("\nregressions:\n");
    for r in &comparison.regressions {
        cli::out(format!("  {r}\n"));
    }
    Ok(Exit::Failure)
}

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error(transparent)]
    Csv(#[from] CsvFileError),
    #[error("{}: no responses (no frame-out with END_STREAM): nothing to compare per request", .0.display())]
    NoRequests(PathBuf),
}

/// Totals of one action name.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Totals {
    pub count: u64,
    pub bytes: u64,
    pub dur_ns: u64,
}

/// What a log's metadata says it lost.
#[derive(Debug, Default, PartialEq)]
pub enum Losses {
    #[default]
    None,
    /// No `PREFIX.meta.json` beside it.
    Unknown,
    Some(String),
}

/// `PREFIX.meta.json` for `PREFIX.csv`.
pub fn meta_path(csv: &Path) -> PathBuf {
    csv.with_extension("meta.json")
}

/// One action log, summed up.
#[derive(Debug, Default)]
pub struct Log {
    pub path: PathBuf,
    pub losses: Losses,
    pub requests: u64,
    pub clients: u64,
    pub actions: BTreeMap<String, Totals>,
    /// Action sequences between socket writes that answered requests, and
    /// how often each occurred.
    pub sequences: HashMap<String, Sequence>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sequence {
    pub times: u64,
    pub responses: u64,
}

/// Reads and sums up an action log written by `h2lab serve --trace`.
pub fn read_log(path: &Path) -> Result<Log, CompareError> {
    let mut rows: Vec<CsvRow> = csv_file::read(path, CSV_HEADER, "an h2lab action log")?;
    let losses = match crate::trace::TraceMeta::read(&meta_path(path)) {
        Ok(meta) => meta.losses().map_or(Losses::None, Losses::Some),
        Err(_) => Losses::Unknown,
    };
    let mut log = Log {
        path: path.to_owned(),
        losses,
        ..Log::default()
    };
    for r in &rows {
        if r.kind == Kind::Action {
            let t = log.actions.entry(r.name.clone()).or_default();
            t.count += 1;
            t.bytes += r.bytes;
            t.dur_ns += r.dur_ns;
        }
        if r.is_response() {
            log.requests += 1;
        }
    }
    if log.requests == 0 {
        return Err(CompareError::NoRequests(path.to_owned()));
    }
    // Rows are written as spans close; per client, time order is start order.
    rows.sort_by_key(|r| (r.client, r.ts_ns));
    let mut clients = 0;
    let mut segment: Vec<&str> = Vec::new();
    let mut answered = 0u64;
    let mut last_client = None;
    for r in rows.iter().filter(|r| r.kind != Kind::Loop) {
        if last_client != Some(r.client) {
            clients += 1;
            last_client = Some(r.client);
            segment.clear();
            answered = 0;
        }
        if r.is_response() {
            answered += 1;
        }
        if r.kind != Kind::Action {
            continue;
        }
        segment.push(&r.name);
        if r.name == Name::WriteSocket.as_str() {
            if answered > 0 {
                let s = log.sequences.entry(run_length(&segment)).or_default();
                s.times += 1;
                s.responses += answered;
            }
            segment.clear();
            answered = 0;
        }
    }
    log.clients = clients;
    Ok(log)
}

/// `a b b c` → `a → b ×2 → c`.
fn run_length(names: &[&str]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < names.len() {
        let n = names[i..].iter().take_while(|x| **x == names[i]).count();
        if !out.is_empty() {
            out.push_str(" → ");
        }
        out.push_str(names[i]);
        if n > 1 {
            let _ = write!(out, " ×{n}");
        }
        i += n;
    }
    out
}

impl Log {
    fn per_request(&self, t: Totals) -> (f64, f64) {
        let r = self.requests as f64;
        (t.count as f64 / r, t.bytes as f64 / r)
    }

    /// The most common sequence: (sequence, times, responses per time).
    pub fn usual_sequence(&self) -> Option<(&str, u64, f64)> {
        self.sequences
            .iter()
            .max_by(|a, b| a.1.times.cmp(&b.1.times).then(b.0.cmp(a.0)))
            .map(|(s, q)| (s.as_str(), q.times, q.responses as f64 / q.times as f64))
    }
}

/// Thresholds in percent: B may exceed A by this much before it counts as
/// a regression. Durations are judged only when a threshold is given.
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    pub count_pct: f64,
    pub duration_pct: Option<f64>,
}

/// One action name's line of the comparison.
#[derive(Debug)]
pub struct Line {
    pub name: String,
    pub a: Totals,
    pub b: Totals,
}

#[derive(Debug)]
pub struct Comparison<'a> {
    pub a: &'a Log,
    pub b: &'a Log,
    pub lines: Vec<Line>,
    /// What B exceeds A by, beyond the thresholds, in words.
    pub regressions: Vec<String>,
}

fn change(a: f64, b: f64) -> Option<f64> {
    (a > 0.0).then(|| (b - a) / a * 100.0)
}

fn mean_ns(t: Totals) -> Option<f64> {
    (t.count > 0).then(|| t.dur_ns as f64 / t.count as f64)
}

pub fn compare<'a>(a: &'a Log, b: &'a Log, th: Thresholds) -> Comparison<'a> {
    let mut names: Vec<&String> = a.actions.keys().chain(b.actions.keys()).collect();
    names.sort();
    names.dedup();
    let mut lines = Vec::new();
    let mut regressions = Vec::new();
    for name in names {
        let ta = a.actions.get(name).copied().unwrap_or_default();
        let tb = b.actions.get(name).copied().unwrap_or_default();
        let (ca, _) = a.per_request(ta);
        let (cb, _) = b.per_request(tb);
        match change(ca, cb) {
            Some(pct) if pct > th.count_pct => regressions.push(format!(
                "{name}: {cb:.3} per request, {pct:+.1}% over {ca:.3} (threshold {}%)",
                th.count_pct
            )),
            None if cb > 0.0 => regressions.push(format!("{name}: new in B, {cb:.3} per request")),
            _ => {}
        }
        if let (Some(ma), Some(mb), Some(limit)) = (mean_ns(ta), mean_ns(tb), th.duration_pct) {
            if let Some(pct) = change(ma, mb).filter(|p| *p > limit) {
                regressions.push(format!(
                    "{name}: mean {:.2} µs, {pct:+.1}% over {:.2} µs (threshold {limit}%)",
                    mb / 1000.0,
                    ma / 1000.0,
                ));
            }
        }
        lines.push(Line {
            name: name.clone(),
            a: ta,
            b: tb,
        });
    }
    Comparison {
        a,
        b,
        lines,
        regressions,
    }
}

fn pct_cell(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => change(a, b).map_or("".into(), |p| format!("{p:+.1}%")),
        (None, Some(_)) => "new".into(),
        (Some(_), None) => "gone".into(),
        (None, None) => String::new(),
    }
}

impl fmt::Display for Comparison<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (tag, log) in [("A", self.a), ("B", self.b)] {
            writeln!(
                f,
                "{tag}: {} ({} requests, {} clients)",
                log.path.display(),
                log.requests,
                log.clients
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<16} {:>9} {:>9} {:>8}   {:>10} {:>10} {:>8}   {:>9} {:>9} {:>8}",
            "action", "A n/req", "B n/req", "Δ", "A B/req", "B B/req", "Δ", "A µs", "B µs", "Δ"
        )?;
        for l in &self.lines {
            let (ca, ba) = self.a.per_request(l.a);
            let (cb, bb) = self.b.per_request(l.b);
            let some = |x: f64, n: u64| (n > 0).then_some(x);
            let (ma, mb) = (mean_ns(l.a), mean_ns(l.b));
            writeln!(
                f,
                "{:<16} {:>9.3} {:>9.3} {:>8}   {:>10.1} {:>10.1} {:>8}   {:>9} {:>9} {:>8}",
                l.name,
                ca,
                cb,
                pct_cell(some(ca, l.a.count), some(cb, l.b.count)),
                ba,
                bb,
                pct_cell(some(ba, l.a.count), some(bb, l.b.count)),
                ma.map_or("-".into(), |m| format!("{:.2}", m / 1000.0)),
                mb.map_or("-".into(), |m| format!("{:.2}", m / 1000.0)),
                pct_cell(ma, mb),
            )?;
        }
        writeln!(f)?;
        for (tag, log) in [("A", self.a), ("B", self.b)] {
            match log.usual_sequence() {
                Some((seq, times, per)) => writeln!(
                    f,
                    "{tag} usual sequence ({times}×, {per:.1} responses each): {seq}"
                )?,
                None => writeln!(
                    f,
                    "{tag} usual sequence: none (no write answered a request)"
                )?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_length_folds_repeats() {
        assert_eq!(run_length(&["a", "b", "b", "c"]), "a → b ×2 → c");
        assert_eq!(run_length(&[]), "");
    }
}
