//! The bench's outputs, each an [`Exporter`] of one [`Results`]: the table
//! printed at the end, the CSV (`--out`), the JSON (`--json`) and the
//! markdown of `h2lab report`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::row;
use super::{Median, Results};
use crate::csv_file;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("baseline {0:?} is not in the results (servers: {1})")]
    NoBaseline(String, String),
}

pub use crate::export::Exporter;

/// The table printed at the end of a bench: one line per cell.
pub struct Table;

/// Every run, then every cell's medians, as [`Row`]s.
pub struct Csv;

/// Everything, with each run's and median's cell spelt out.
pub struct Json;

/// For write-ups: per clients × pipeline × h2c/TLS, every server's median
/// req/s and CPU per request and the ratio of its req/s to a baseline
/// server's, then the machine.
pub struct Markdown<'a> {
    /// A server without its TLS provider (`h2o/peer`, `poll/mini`); by
    /// default the fastest peer present, else the fastest server, by the
    /// sum of its median req/s.
    pub baseline: Option<&'a str>,
    /// Where the results were read from.
    pub source: &'a Path,
    /// The description of the machine, appended as it is.
    pub machine: String,
}

fn opt(v: Option<u64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

impl Exporter<Results> for Table {
    type Error = ExportError;

    fn export(&self, results: &Results) -> Result<String, ExportError> {
        // The setup column as wide as its longest cell (`--threads` and
        // `--work` lengthen them), 22 at least.
        let w = results
            .medians
            .iter()
            .map(|m| m.cell.to_string().chars().count())
            .max()
            .unwrap_or(0)
            .max(22);
        // Goodput only where a body is not the seed's 12 octets.
        let goodput = results
            .medians
            .iter()
            .any(|m| m.cell.body != crate::engine::Body::default());
        let mut out = format!(
            "{:<w$} {:>4} {:>4} {:>10} {:>21} {:>8} {:>8} {:>9} {:>15} {:>6} {:>6} {:>6} {:>7} {:>13} {:>7} {:>7} {:>9} {:>13} {:>5}{}\n",
            "setup",
            "c",
            "m",
            "req/s",
            "(95% CI)",
            "p50 µs",
            "p99 µs",
            "CPU µs/r",
            "(95% CI)",
            "±%",
            "cs/r",
            "sys/r",
            "B/write",
            "response head",
            "pread/r",
            "failed",
            "conn err",
            "pkts/r srv·ld",
            "ld %",
            if goodput { "     MiB/s" } else { "" }
        );
        let machine = results.machine.as_ref();
        for m in &results.medians {
            let mark = if m.unsure() { "!" } else { " " };
            let wake = if machine.is_some_and(|mc| mc.wake_up_dominated(m)) {
                "w"
            } else {
                " "
            };
            let ci = |ci: Option<super::confidence::Interval>, digits: usize| match ci {
                Some(c) => format!("({:.digits$} – {:.digits$})", c.low, c.high),
                None => "(one run)".into(),
            };
            let count = |v: Option<f64>, digits: usize| match v {
                Some(v) => format!("{v:.digits$}"),
                None => "–".into(),
            };
            let _ = writeln!(
                out,
                "{:<w$} {:>4} {:>4} {:>10.0} {:>21} {:>8} {:>8} {:>9.2} {:>15} {:>5}{mark} {:>5}{wake} {:>6} {:>7} {:>13} {:>7} {:>7} {:>9} {:>13} {:>5}{}",
                m.cell.to_string(),
                m.cell.clients,
                m.cell.pipeline,
                m.req_per_s,
                ci(m.req_per_s_ci, 0),
                opt(m.p50_us),
                opt(m.p99_us),
                m.cpu_us_per_req,
                ci(m.cpu_ci, 2),
                match m.half_width_pct() {
                    p if p.is_finite() => format!("{p:.1}"),
                    _ => "–".into(),
                },
                count(m.counts.ctx_switches_per_req, 2),
                count(m.counts.syscalls_per_req, 2),
                count(m.counts.octets_per_write, 0),
                head(&m.counts),
                count(m.counts.file_reads_per_req, 2),
                m.failed,
                m.connection_errors,
                match m.counts.net {
                    Some(n) => format!("{:.1}·{:.1}", n.server_cpu_packets, n.client_cpu_packets),
                    None => "–".into(),
                },
                match m.counts.net {
                    Some(n) => format!("{:.0}", n.client_share * 100.0),
                    None => "–".into(),
                },
                match goodput {
                    true => format!(" {:>9.1}", m.goodput_mib_per_s),
                    false => String::new(),
                }
            );
        }
        let unsure = results.medians.iter().filter(|m| m.unsure()).count();
        if unsure > 0 {
            let why = match results.medians.iter().any(|m| m.settled.is_some()) {
                true => "their 95% interval of req/s or of CPU µs/r (±%: the wider, half its width) never came within --precision, even after --max-repeat runs".to_string(),
                false => format!(
                    "repeats spread wider than {}× (max/min of req/s or of CPU µs/r)",
                    super::stats::WIDE_SPREAD
                ),
            };
            let _ = writeln!(
                out,
                "! {unsure} of {} cells: {why}; their figures are not to be trusted",
                results.medians.len(),
            );
        }
        let woken = results
            .medians
            .iter()
            .filter(|m| machine.is_some_and(|mc| mc.wake_up_dominated(m)))
            .count();
        if let (true, Some(wake)) = (woken > 0, machine.and_then(|m| m.wake_up_median_us())) {
            let _ = writeln!(
                out,
                "w {woken} cells: dominated by wake-ups (a context switch every {} requests or fewer, which at {wake:.1} µs a cross-CPU wake-up here add up to half the CPU µs/r or more): their cost is mostly the machine's, not the server's",
                super::machine::WAKE_UP_SWITCHES_PER_REQ.recip(),
            );
        }
        let _ = writeln!(
            out,
            "cs/r: the server's context switches per request; sys/r: its system calls per request and B/write its octets per write-like call, from a counting run of each cell (– : not counted)"
        );
        if results.medians.iter().any(|m| m.counts.net.is_some()) {
            let _ = writeln!(
                out,
                "pkts/r: packets the server's CPUs · the load's CPUs processed in their receive softirqs, per request; ld %: the share of those on the server's CPUs that were the load's (on loopback a packet is processed on the CPU that sent it; steered, on the receiver's: docs/net.md)"
            );
        }
        if let Some(note) = pace_note(&results.medians) {
            let _ = writeln!(out, "~ {note}");
        }
        out.push_str(&trace_costs(&results.medians));
        Ok(out)
    }
}

/// What the machine's own pace did over the bench, beside the cells'
/// spread (`None` when it was not timed).
fn pace_note(medians: &[Median]) -> Option<String> {
    let (pace, wide_pace) = super::stats::machine_pace(medians)?;
    let timed = medians.iter().filter(|m| m.pace_ns.is_some()).count();
    let wide = medians.iter().filter(|m| m.is_wide());
    let both = wide
        .clone()
        .filter(|m| {
            m.pace_ns
                .is_some_and(|p| p.spread() > super::stats::WIDE_SPREAD)
        })
        .count();
    Some(format!(
        "the machine's own pace (a fixed walk through memory and a system call, timed on the bench's CPUs between runs) varied {:.2}× over the bench ({:.0}–{:.0} ns a block), and more than {}× around the repeats of {wide_pace} of {timed} cells; of the {} cells whose repeats spread wider, {both} had the machine's pace spread wider around them",
        pace.spread(),
        pace.min,
        pace.max,
        super::stats::WIDE_SPREAD,
        wide.count()
    ))
}

/// For `--trace-cost`: each traced cell beside its untraced twin.
fn trace_costs(medians: &[Median]) -> String {
    let mut out = String::new();
    for traced in medians.iter().filter(|m| m.cell.traced) {
        let Some(t) = &traced.trace else { continue };
        let untraced = medians.iter().find(|m| {
            !m.cell.traced
                && m.cell.target == traced.cell.target
                && m.cell.clients == traced.cell.clients
                && m.cell.pipeline == traced.cell.pipeline
                && m.cell.threads == traced.cell.threads
                && m.cell.work == traced.cell.work
                && m.cell.body == traced.cell.body
                && m.cell.offload == traced.cell.offload
        });
        let Some(untraced) = untraced else { continue };
        if out.is_empty() {
            let _ = writeln!(
                out,
                "\ntracing cost (server CPU per request, whole process, writer included)\n{:<22} {:>4} {:>4} {:>10} {:>10} {:>6} {:>10} {:>9} {:>9} {:>6}",
                "setup", "c", "m", "off µs/r", "on µs/r", "×", "records/r", "action ns", "event ns", "lost"
            );
        }
        let _ = writeln!(
            out,
            "{:<22} {:>4} {:>4} {:>10.3} {:>10.3} {:>6.2} {:>10.2} {:>9.1} {:>9.1} {:>6}",
            traced.cell.target.to_string(),
            traced.cell.clients,
            traced.cell.pipeline,
            untraced.cpu_us_per_req,
            traced.cpu_us_per_req,
            traced.cpu_us_per_req / untraced.cpu_us_per_req.max(f64::MIN_POSITIVE),
            t.records_per_req,
            t.span_ns,
            t.event_ns,
            t.lost
        );
    }
    out
}

impl Exporter<Results> for Csv {
    type Error = ExportError;

    fn export(&self, results: &Results) -> Result<String, ExportError> {
        let block = results
            .machine
            .as_ref()
            .map(super::Machine::comment_block)
            .unwrap_or_default();
        Ok(block + &csv_file::to_string(row::rows(results))?)
    }
}

impl Exporter<Results> for Json {
    type Error = ExportError;

    fn export(&self, results: &Results) -> Result<String, ExportError> {
        Ok(serde_json::to_string_pretty(results)?)
    }
}

impl Markdown<'_> {
    /// The baseline's name: the one asked for, or the fastest peer, or the
    /// fastest server.
    fn baseline(&self, medians: &[Median]) -> Result<String, ExportError> {
        let mut totals: BTreeMap<String, f64> = BTreeMap::new();
        for m in medians.iter().filter(|m| !m.cell.traced) {
            *totals.entry(m.cell.target.server_name()).or_default() += m.req_per_s;
        }
        let fastest = |peers_only: bool| {
            totals
                .iter()
                .filter(|(n, _)| !peers_only || n.ends_with("/peer"))
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(n, _)| n.clone())
        };
        match self.baseline {
            Some(b) if totals.contains_key(b) => Ok(b.to_string()),
            Some(b) => {
                let names: Vec<&str> = totals.keys().map(String::as_str).collect();
                Err(ExportError::NoBaseline(b.to_string(), names.join(", ")))
            }
            None => Ok(fastest(true).or_else(|| fastest(false)).unwrap_or_default()),
        }
    }
}

impl Exporter<Results> for Markdown<'_> {
    type Error = ExportError;

    fn export(&self, results: &Results) -> Result<String, ExportError> {
        let base = self.baseline(&results.medians)?;
        type Group = (crate::engine::Body, usize, usize, bool);
        let mut groups: BTreeMap<Group, Vec<&Median>> = BTreeMap::new();
        for m in &results.medians {
            let c = &m.cell;
            groups
                .entry((c.body, c.clients, c.pipeline, c.target.is_tls()))
                .or_default()
                .push(m);
        }
        let mut out = String::new();
        let _ = writeln!(out, "# h2lab bench report\n");
        let _ = writeln!(
            out,
            "From `{}`. Medians of the runs; its 95% CI: the interval of the runs' geometric mean of CPU per request (Student's t); ratio = req/s ÷ the baseline's (**{base}**) in the same group; spread = max/min of the repeats' req/s or CPU, whichever is wider (⚠: the cell never came within the bench's --precision, or without one spread over {}×: not to be trusted); (w): dominated by wake-ups, the machine's cost more than the server's; switches/req: the server's context switches per request; syscalls/req: its system calls per request, from a counting run of the cell.\n",
            self.source.display(),
            super::stats::WIDE_SPREAD
        );
        if let Some(note) = pace_note(&results.medians) {
            let _ = writeln!(out, "The machine: {note}.\n");
        }
        for ((body, clients, pipeline, tls), mut group) in groups {
            let seed = body == crate::engine::Body::default();
            group.sort_by(|a, b| b.req_per_s.total_cmp(&a.req_per_s));
            let base_rps = group
                .iter()
                .find(|m| !m.cell.traced && m.cell.target.server_name() == base)
                .map(|m| m.req_per_s);
            let _ = writeln!(
                out,
                "## {clients} client{}, {pipeline} in flight, {}{}\n",
                if clients == 1 { "" } else { "s" },
                if tls { "TLS" } else { "h2c" },
                match seed {
                    true => String::new(),
                    false => format!(", {body} bodies"),
                }
            );
            let (head, rule, goodput) = match seed {
                true => ("", "", ""),
                false => (" MiB/s |", "---:|", "|"),
            };
            let _ = writeln!(
                out,
                "| server | req/s | CPU µs/req | its 95% CI | ratio to {base} | spread (max/min) | switches/req | syscalls/req | failed |{head}"
            );
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|{rule}");
            for m in group {
                let ratio = match base_rps {
                    Some(b) if b > 0.0 => format!("{:.2}", m.req_per_s / b),
                    _ => "–".into(),
                };
                let (rps, cpu) = m.spreads();
                let mark = if m.unsure() { " ⚠" } else { "" };
                let wake = match &results.machine {
                    Some(machine) if machine.wake_up_dominated(m) => " (w)",
                    _ => "",
                };
                let count = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.2}"));
                let _ = writeln!(
                    out,
                    "| {} | {:.0} | {:.2}{wake} | {} | {ratio} | {:.2}×{mark} | {} | {} | {} |{}",
                    m.cell,
                    m.req_per_s,
                    m.cpu_us_per_req,
                    m.cpu_ci
                        .map_or("–".into(), |c| format!("{:.2}–{:.2}", c.low, c.high)),
                    rps.max(cpu),
                    count(m.counts.ctx_switches_per_req),
                    count(m.counts.syscalls_per_req),
                    m.failed,
                    match goodput {
                        "" => String::new(),
                        _ => format!(" {:.1} |", m.goodput_mib_per_s),
                    }
                );
            }
            let _ = writeln!(out);
        }
        out.push_str(&self.machine);
        Ok(out)
    }
}

/// What each response carried, in one column: fields, header block
/// octets, `d` when it had a date (`4f 50B d`); `–` when not probed.
fn head(c: &super::counts::Counts) -> String {
    match c.heads() {
        None => "–".into(),
        Some(h) => format!(
            "{:.0}f {:.0}B{}",
            h.fields,
            h.octets,
            if h.dated >= 0.5 { " d" } else { "" }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{Cell, LoadClient, Peer, Target};
    use crate::server::{Dispatch, Engine, Setup};
    use crate::tls::TlsProvider;

    fn ours(dispatch: Dispatch, tls: TlsProvider) -> Target {
        Target::H2lab(Setup {
            dispatch,
            engine: Engine::Mini,
            tls,
        })
    }

    fn median(target: Target, rps: f64) -> Median {
        let example = Median::example();
        Median {
            cell: Cell {
                target,
                pipeline: 10,
                ..example.cell
            },
            req_per_s: rps,
            req_per_s_min: rps,
            req_per_s_max: rps,
            p50_us: Some(10),
            p99_us: Some(20),
            cpu_us_per_req: 1.5,
            cpu_us_per_req_min: 1.4,
            cpu_us_per_req_max: 1.6,
            cpu_cv: 0.05,
            succeeded: 100,
            ..example
        }
    }

    fn results(medians: Vec<Median>) -> Results {
        Results {
            client: LoadClient::Builtin,
            machine: None,
            runs: Vec::new(),
            counted: Vec::new(),
            medians,
        }
    }

    fn markdown(r: &Results, baseline: Option<&str>) -> Result<String, ExportError> {
        Markdown {
            baseline,
            source: Path::new("b.csv"),
            machine: "## Machine\n".into(),
        }
        .export(r)
    }

    #[test]
    fn ratios_are_to_the_fastest_peer_by_default() {
        let peer = |peer, tls| Target::Peer { peer, tls };
        let r = results(vec![
            median(ours(Dispatch::Poll, TlsProvider::None), 300.0),
            median(peer(Peer::H2o, false), 150.0),
            median(peer(Peer::Nginx, false), 50.0),
            median(ours(Dispatch::Poll, TlsProvider::Rustls), 200.0),
            median(peer(Peer::H2o, true), 100.0),
        ]);
        let md = markdown(&r, None).unwrap();
        assert!(md.contains("ratio to h2o/peer |"), "{md}");
        assert!(
            md.contains("| poll/mini/none | 300 | 1.50 | – | 2.00 | 1.14× | – | – | 0 |"),
            "{md}"
        );
        assert!(
            md.contains("| nginx/peer/none | 50 | 1.50 | – | 0.33 | 1.14× | – | – | 0 |"),
            "{md}"
        );
        assert!(
            md.contains("| poll/mini/rustls | 200 | 1.50 | – | 2.00 | 1.14× | – | – | 0 |"),
            "{md}"
        );
        assert!(md.contains("## 1 client, 10 in flight, TLS"), "{md}");
        let mut wide = r.clone();
        wide.medians[0].cpu_us_per_req_max = 2.0;
        let md_wide = markdown(&wide, None).unwrap();
        assert!(
            md_wide.contains("| poll/mini/none | 300 | 1.50 | – | 2.00 | 1.43× ⚠ | – | – | 0 |"),
            "{md_wide}"
        );
        let table = Table.export(&wide).unwrap();
        assert!(table.contains("  –! "), "{table}");
        assert!(
            table.contains("! 1 of 5 cells: repeats spread wider"),
            "{table}"
        );
        assert!(!Table.export(&r).unwrap().contains('!'));
        assert!(md.ends_with("## Machine\n"), "{md}");
        let md = markdown(&r, Some("poll/mini")).unwrap();
        assert!(
            md.contains("| h2o/peer/none | 150 | 1.50 | – | 0.50 | 1.14× | – | – | 0 |"),
            "{md}"
        );
        assert!(matches!(
            markdown(&r, Some("iis")),
            Err(ExportError::NoBaseline(..))
        ));
    }

    #[test]
    fn without_peers_the_fastest_server_is_the_baseline() {
        let r = results(vec![
            median(ours(Dispatch::Poll, TlsProvider::None), 300.0),
            median(ours(Dispatch::Single, TlsProvider::None), 100.0),
        ]);
        assert!(markdown(&r, None).unwrap().contains("**poll/mini**"));
    }

    #[test]
    fn table_csv_and_json_carry_every_cell() {
        let r = results(vec![median(ours(Dispatch::Poll, TlsProvider::None), 300.0)]);
        let table = Table.export(&r).unwrap();
        // The header, the cell, and what the counts' columns mean.
        assert_eq!(table.lines().count(), 3, "{table}");
        assert!(table.contains("poll/mini/none"), "{table}");
        let csv = Csv.export(&r).unwrap();
        assert!(csv.starts_with(row::CSV_HEADER), "{csv}");
        assert!(
            csv.contains("\nmedian,builtin,poll,mini,none,1,10,,300.0,"),
            "{csv}"
        );
        let json: serde_json::Value = serde_json::from_str(&Json.export(&r).unwrap()).unwrap();
        assert_eq!(json["client"], "builtin");
        assert_eq!(json["medians"][0]["cell"]["dispatch"], "poll");
        assert_eq!(json["medians"][0]["req_per_s"], 300.0);
    }
}
