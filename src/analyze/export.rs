//! `analyze`'s outputs, each an [`Exporter`] of the analyses of one or
//! more traces, side by side: a table for the terminal, JSON, and markdown
//! for write-ups. What a trace cannot tell comes first in each.

use std::fmt::Write as _;

use super::{Analysis, Spread, COMPONENTS};
use crate::export::Exporter;
use crate::trace::Name;

/// The terminal's table: one column per trace.
pub struct Table;

/// Every figure, as a JSON array of analyses.
pub struct Json;

/// The table's sections as markdown tables.
pub struct Markdown;

/// A section of rows: a label, then one cell per trace.
struct Section {
    title: &'static str,
    rows: Vec<(String, Vec<String>)>,
}

fn us(ns: f64) -> String {
    match ns {
        n if n >= 1e7 => format!("{:.0}", n / 1e3),
        n if n >= 1e5 => format!("{:.1}", n / 1e3),
        n => format!("{:.2}", n / 1e3),
    }
}

fn pct(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

fn spread(s: &Spread) -> String {
    format!(
        "{} / {} / {} / {}",
        us(s.p50_ns as f64),
        us(s.p90_ns as f64),
        us(s.p99_ns as f64),
        us(s.max_ns as f64)
    )
}

/// The sections every text output shows.
fn sections(all: &[Analysis]) -> Vec<Section> {
    let cells = |f: &dyn Fn(&Analysis) -> String| all.iter().map(f).collect::<Vec<_>>();
    let mut out = Vec::new();
    out.push(Section {
        title: "the trace",
        rows: vec![
            ("setup".into(), cells(&|a| a.setup.clone())),
            ("requests".into(), cells(&|a| a.requests.to_string())),
            ("clients".into(), cells(&|a| a.clients.to_string())),
            (
                "window (ms)".into(),
                cells(&|a| format!("{:.1}", a.window_ns as f64 / 1e6)),
            ),
        ],
    });
    out.push(Section {
        title: "latency per request, µs: p50 / p90 / p99 / max (mean)",
        rows: vec![(
            "HEADERS in → its write's end".into(),
            cells(&|a| format!("{} ({})", spread(&a.latency), us(a.latency.mean_ns))),
        )],
    });
    let mut rows = Vec::new();
    for (k, (name, what)) in COMPONENTS.iter().enumerate() {
        let seen = all.iter().any(|a| a.components[k].spread.max_ns > 0);
        if !seen {
            continue;
        }
        rows.push((
            format!("{name}: {what}"),
            cells(&|a| {
                let c = &a.components[k];
                format!(
                    "{} ({}) p50 {} p99 {}",
                    us(c.spread.mean_ns),
                    pct(c.share),
                    us(c.spread.p50_ns as f64),
                    us(c.spread.p99_ns as f64)
                )
            }),
        ));
    }
    out.push(Section {
        title: "where it went, µs per request: mean (share of the mean latency), p50, p99",
        rows,
    });
    out.push(Section {
        title: "the loop's time, shares of its wall time",
        rows: vec![(
            "busy / idle / descheduled".into(),
            cells(&|a| match &a.loop_time {
                Some(l) => {
                    let of = |ns: u64| pct(ns as f64 / l.wall_ns.max(1) as f64);
                    format!(
                        "{} / {} / {}",
                        of(l.busy_ns),
                        of(l.idle_ns),
                        of(l.descheduled_ns)
                    )
                }
                None => "not recorded".into(),
            }),
        )],
    });
    // Actions: the union of names, in the vocabulary's order (the loop's
    // time outside actions last).
    let mut names: Vec<&str> = Vec::new();
    for a in all {
        for x in &a.actions {
            if !names.contains(&x.name.as_str()) {
                names.push(&x.name);
            }
        }
    }
    names.sort_by_key(|n| {
        let known = Name::ALL.iter().position(|k| k.as_str() == *n);
        (n.starts_with('('), known.unwrap_or(usize::MAX))
    });
    let rows = names
        .iter()
        .map(|&name| {
            (
                name.to_string(),
                cells(&|a| match a.actions.iter().find(|x| x.name == name) {
                    Some(x) if x.count == 0 => {
                        format!("{:.0} ns ({})", x.self_ns_per_request, pct(x.share_of_busy))
                    }
                    Some(x) => format!(
                        "{:.2} × {:.0} ns ({}) {:.0} B",
                        x.per_request,
                        x.self_ns_per_request,
                        pct(x.share_of_busy),
                        x.octets_per_call
                    ),
                    None => "-".into(),
                }),
            )
        })
        .collect();
    out.push(Section {
        title: "per action: calls per request × own ns per request (share of busy time), octets per call",
        rows,
    });
    out.push(Section {
        title: "clients: requests min / max, their p50 latency min / max (µs)",
        rows: vec![(
            "fairness".into(),
            cells(&|a| {
                let reqs = a.per_client.iter().map(|c| c.requests);
                let p50 = a
                    .per_client
                    .iter()
                    .filter(|c| c.requests > 0)
                    .map(|c| c.latency.p50_ns);
                match (reqs.clone().min(), reqs.max(), p50.clone().min(), p50.max()) {
                    (Some(r0), Some(r1), Some(p0), Some(p1)) => {
                        format!("{r0} / {r1}, {} / {}", us(p0 as f64), us(p1 as f64))
                    }
                    _ => "-".into(),
                }
            }),
        )],
    });
    out
}

/// Each trace's caveats, named by its column.
fn caveats(all: &[Analysis]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, a) in all.iter().enumerate() {
        for c in &a.caveats {
            out.push(format!("[{}] {}: {c}", i + 1, a.trace));
        }
    }
    out
}

impl Exporter<[Analysis]> for Table {
    type Error = std::convert::Infallible;

    fn export(&self, all: &[Analysis]) -> Result<String, Self::Error> {
        let mut out = String::new();
        for c in caveats(all) {
            let _ = writeln!(out, "note: {c}");
        }
        if !out.is_empty() {
            out.push('\n');
        }
        let sections = sections(all);
        let label_w = sections
            .iter()
            .flat_map(|s| s.rows.iter().map(|r| r.0.chars().count()))
            .max()
            .unwrap_or(0)
            + 2;
        let mut widths: Vec<usize> = all
            .iter()
            .enumerate()
            .map(|(i, a)| format!("[{}] {}", i + 1, a.trace).chars().count())
            .collect();
        for s in &sections {
            for (_, cells) in &s.rows {
                for (w, c) in widths.iter_mut().zip(cells) {
                    *w = (*w).max(c.chars().count());
                }
            }
        }
        let line = |out: &mut String, label: &str, cells: &[String]| {
            let _ = write!(out, "  {label:<label_w$}");
            for (c, w) in cells.iter().zip(&widths) {
                let _ = write!(out, "  {c:<w$}");
            }
            out.truncate(out.trim_end().len());
            out.push('\n');
        };
        let heads: Vec<String> = all
            .iter()
            .enumerate()
            .map(|(i, a)| format!("[{}] {}", i + 1, a.trace))
            .collect();
        line(&mut out, "", &heads);
        for s in &sections {
            let _ = writeln!(out, "{}", s.title);
            for (label, cells) in &s.rows {
                line(&mut out, label, cells);
            }
        }
        Ok(out)
    }
}

impl Exporter<[Analysis]> for Json {
    type Error = serde_json::Error;

    fn export(&self, all: &[Analysis]) -> Result<String, Self::Error> {
        Ok(serde_json::to_string_pretty(all)? + "\n")
    }
}

impl Exporter<[Analysis]> for Markdown {
    type Error = std::convert::Infallible;

    fn export(&self, all: &[Analysis]) -> Result<String, Self::Error> {
        let mut out = String::from("# h2lab analyze\n\n");
        let caveats = caveats(all);
        if !caveats.is_empty() {
            for c in caveats {
                let _ = writeln!(out, "* {c}");
            }
            out.push('\n');
        }
        let cell = |s: &str| s.replace('|', "\\|");
        for s in sections(all) {
            let _ = writeln!(out, "**{}**\n", s.title);
            let _ = write!(out, "| |");
            for (i, a) in all.iter().enumerate() {
                let _ = write!(out, " [{}] `{}` |", i + 1, cell(&a.trace));
            }
            let _ = writeln!(out, "\n|---|{}", "---|".repeat(all.len()));
            for (label, cells) in &s.rows {
                let _ = write!(out, "| {} |", cell(label));
                for c in cells {
                    let _ = write!(out, " {} |", cell(c));
                }
                out.push('\n');
            }
            out.push('\n');
        }
        Ok(out)
    }
}
