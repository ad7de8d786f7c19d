//! `h2lab report FILE.csv`: markdown for write-ups from a bench CSV. Per
//! (clients, pipeline, h2c/TLS): every server's median req/s and CPU per
//! request, and the ratio of its req/s to a baseline server's (by default
//! the fastest peer present); then the machine the report was made on.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bench::CSV_HEADER;
use crate::peers::Peer;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {reason}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{}: no median rows", .0.display())]
    Empty(PathBuf),
    #[error("baseline {0:?} is not in the results (servers: {1})")]
    NoBaseline(String, String),
}

/// One median row.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// `poll/mini/rustls`, `h2o/peer/openssl`.
    pub server: String,
    /// `poll/mini`, `h2o/peer`: the server without its TLS provider.
    pub name: String,
    pub tls: bool,
    pub clients: u64,
    pub pipeline: u64,
    pub req_per_s: f64,
    pub cpu_us_per_req: f64,
    pub failed: u64,
}

pub fn read(path: &Path) -> Result<Vec<Row>, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.to_owned(),
        source,
    })?;
    let err = |line: usize, reason: String| ReportError::Parse {
        path: path.to_owned(),
        line,
        reason,
    };
    let mut lines = text.lines();
    if lines.next() != Some(CSV_HEADER) {
        return Err(err(1, "not an h2lab bench CSV (header)".into()));
    }
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        let c: Vec<&str> = line.split(',').collect();
        if c.len() != 17 {
            return Err(err(i + 2, format!("{} columns, expected 17", c.len())));
        }
        if c[0] != "median" {
            continue;
        }
        let num = |j: usize| {
            c[j].parse::<f64>()
                .map_err(|_| err(i + 2, format!("not a number: {:?}", c[j])))
        };
        rows.push(Row {
            server: format!("{}/{}/{}", c[2], c[3], c[4]),
            name: format!("{}/{}", c[2], c[3]),
            tls: c[4] != "none",
            clients: num(5)? as u64,
            pipeline: num(6)? as u64,
            req_per_s: num(8)?,
            cpu_us_per_req: num(13)?,
            failed: num(15)? as u64,
        });
    }
    if rows.is_empty() {
        return Err(ReportError::Empty(path.to_owned()));
    }
    Ok(rows)
}

/// The markdown report. `baseline` names a server without its TLS provider
/// (`h2o/peer`, `poll/mini`); by default the fastest peer present, else the
/// fastest server, by the sum of its median req/s.
pub fn render(rows: &[Row], baseline: Option<&str>, source: &Path) -> Result<String, ReportError> {
    let mut totals: BTreeMap<&str, f64> = BTreeMap::new();
    for r in rows {
        *totals.entry(&r.name).or_default() += r.req_per_s;
    }
    let fastest = |peers_only: bool| {
        totals
            .iter()
            .filter(|(n, _)| !peers_only || n.ends_with("/peer"))
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(n, _)| n.to_string())
    };
    let base = match baseline {
        Some(b) if totals.contains_key(b) => b.to_string(),
        Some(b) => {
            let names: Vec<&str> = totals.keys().copied().collect();
            return Err(ReportError::NoBaseline(b.to_string(), names.join(", ")));
        }
        None => fastest(true)
            .or_else(|| fastest(false))
            .expect("rows are not empty"),
    };
    let mut groups: BTreeMap<(u64, u64, bool), Vec<&Row>> = BTreeMap::new();
    for r in rows {
        groups
            .entry((r.clients, r.pipeline, r.tls))
            .or_default()
            .push(r);
    }
    let mut out = String::new();
    let _ = writeln!(out, "# h2lab bench report\n");
    let _ = writeln!(
        out,
        "From `{}`. Medians of the runs; ratio = req/s ÷ the baseline's (**{base}**) in the same group.\n",
        source.display()
    );
    for ((clients, pipeline, tls), mut group) in groups {
        group.sort_by(|a, b| b.req_per_s.total_cmp(&a.req_per_s));
        let base_rps = group.iter().find(|r| r.name == base).map(|r| r.req_per_s);
        let _ = writeln!(
            out,
            "## {clients} client{}, {pipeline} in flight, {}\n",
            if clients == 1 { "" } else { "s" },
            if tls { "TLS" } else { "h2c" }
        );
        let _ = writeln!(
            out,
            "| server | req/s | CPU µs/req | ratio to {base} | failed |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|");
        for r in group {
            let ratio = match base_rps {
                Some(b) if b > 0.0 => format!("{:.2}", r.req_per_s / b),
                _ => "–".into(),
            };
            let _ = writeln!(
                out,
                "| {} | {:.0} | {:.2} | {ratio} | {} |",
                r.server, r.req_per_s, r.cpu_us_per_req, r.failed
            );
        }
        let _ = writeln!(out);
    }
    out.push_str(&machine());
    Ok(out)
}

/// The first line of a command's output (stdout, else stderr), if it runs.
fn version_of(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
}

/// The machine this report is made on (run it where the bench ran).
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut out = String::from("## Machine (where this report was made)\n\n");
    let _ = writeln!(out, "- CPU: {model}, {cores} cores");
    let _ = writeln!(out, "- kernel: Linux {}", kernel.trim());
    let _ = writeln!(
        out,
        "- h2lab {} (rustls 0.23 with ring)",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(out, "- TLS library: {}", openssl::version::version());
    let h2load = version_of("h2load", &["--version"]).unwrap_or_else(|| "not installed".into());
    let _ = writeln!(out, "- h2load: {h2load}");
    for peer in [Peer::Nginx, Peer::H2o, Peer::Nghttpd] {
        let args: &[&str] = match peer {
            Peer::Nginx => &["-v"],
            _ => &["--version"],
        };
        let version = peer
            .find()
            .and_then(|p| version_of(p.to_str()?, args))
            .unwrap_or_else(|| "not installed".into());
        let _ = writeln!(out, "- {}: {version}", peer.name());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(server: &str, tls: bool, clients: u64, rps: f64) -> Row {
        let name = server.rsplit_once('/').unwrap().0.to_string();
        Row {
            server: server.into(),
            name,
            tls,
            clients,
            pipeline: 10,
            req_per_s: rps,
            cpu_us_per_req: 1.5,
            failed: 0,
        }
    }

    #[test]
    fn ratios_are_to_the_fastest_peer_by_default() {
        let rows = vec![
            row("poll/mini/none", false, 1, 300.0),
            row("h2o/peer/none", false, 1, 150.0),
            row("nginx/peer/none", false, 1, 50.0),
            row("poll/mini/rustls", true, 1, 200.0),
            row("h2o/peer/openssl", true, 1, 100.0),
        ];
        let md = render(&rows, None, Path::new("b.csv")).unwrap();
        assert!(md.contains("ratio to h2o/peer |"), "{md}");
        assert!(
            md.contains("| poll/mini/none | 300 | 1.50 | 2.00 | 0 |"),
            "{md}"
        );
        assert!(
            md.contains("| nginx/peer/none | 50 | 1.50 | 0.33 | 0 |"),
            "{md}"
        );
        assert!(
            md.contains("| poll/mini/rustls | 200 | 1.50 | 2.00 | 0 |"),
            "{md}"
        );
        assert!(md.contains("## 1 client, 10 in flight, TLS"), "{md}");
        assert!(md.contains("## Machine"), "{md}");
        let md = render(&rows, Some("poll/mini"), Path::new("b.csv")).unwrap();
        assert!(
            md.contains("| h2o/peer/none | 150 | 1.50 | 0.50 | 0 |"),
            "{md}"
        );
        assert!(matches!(
            render(&rows, Some("iis"), Path::new("b.csv")),
            Err(ReportError::NoBaseline(..))
        ));
    }

    #[test]
    fn without_peers_the_fastest_server_is_the_baseline() {
        let rows = vec![
            row("poll/mini/none", false, 1, 300.0),
            row("single/mini/none", false, 1, 100.0),
        ];
        let md = render(&rows, None, Path::new("b.csv")).unwrap();
        assert!(md.contains("**poll/mini**"), "{md}");
    }
}
