//! The bench CSV's record: one row per run, then one per cell with its
//! medians, written by `bench --out` and read by `report`, the viewer and
//! the tests, all through this one serde type.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::confidence::Interval;
use super::matrix::{Mix, Source};
use super::stats::PaceRange;
use super::{Cell, Counts, LoadClient, Median, Results, Run, Target, TraceCost};
use crate::csv_file::{self, CsvFileError};
use crate::engine::{Body, Work};
use crate::netns::attribution::Attribution;
use crate::netns::link::Link;
use crate::netns::Topology;
use clap::ValueEnum;

/// The CSV header, the field names of [`Row`] in order.
pub const CSV_HEADER: &str = "kind,client,dispatch,engine,tls,clients,pipeline,rep,req_per_s,req_per_s_min,req_per_s_max,p50_us,p99_us,cpu_us_per_req,succeeded,failed,connection_errors,traced,trace_records_per_req,trace_lost,span_ns,event_ns,cpu_us_per_req_min,cpu_us_per_req_max,req_per_s_cv,cpu_cv,wide,threads,pace_ns,pace_ns_min,pace_ns_max,work,body,goodput_mib_per_s,offload,req_per_s_ci_low,req_per_s_ci_high,cpu_ci_low,cpu_ci_high,settled,ctx_switches_per_req,syscalls_per_req,reads_per_req,writes_per_req,octets_per_write,requests_per_read,head_fields,head_octets,head_dated,body_octets,file_reads_per_req,source,mix,net,link,server_cpu_packets,client_cpu_packets,server_cpu_steered,client_cpu_steered,server_segs_in,server_segs_out,client_segs_in,client_segs_out,client_share,load_hosts,server_host";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RowKind {
    /// One measured run.
    Run,
    /// A cell's medians over its runs.
    Median,
    /// A cell's counting run: perf counted the server's system calls,
    /// which slowed it; its counts are what it is for, not its times.
    Count,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub kind: RowKind,
    pub client: LoadClient,
    pub dispatch: String,
    pub engine: String,
    pub tls: String,
    pub clients: usize,
    pub pipeline: usize,
    /// Runs only: which repeat.
    pub rep: Option<usize>,
    pub req_per_s: f64,
    /// Medians only: the spread of the runs.
    pub req_per_s_min: Option<f64>,
    pub req_per_s_max: Option<f64>,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub cpu_us_per_req: f64,
    pub succeeded: u64,
    pub failed: u64,
    pub connection_errors: u64,
    /// `bench --trace-cost`: the server recorded a trace.
    pub traced: bool,
    /// Traced cells: records per succeeded request, records lost, and what
    /// one span and one frame event cost the recording thread (ns).
    pub trace_records_per_req: Option<f64>,
    pub trace_lost: Option<u64>,
    pub span_ns: Option<f64>,
    pub event_ns: Option<f64>,
    /// Medians only: the spread of CPU per request, the coefficients of
    /// variation of req/s and of CPU, and whether the repeats spread wider
    /// than 1.2× (max/min) in either.
    pub cpu_us_per_req_min: Option<f64>,
    pub cpu_us_per_req_max: Option<f64>,
    pub req_per_s_cv: Option<f64>,
    pub cpu_cv: Option<f64>,
    pub wide: Option<bool>,
    /// `bench --threads`: the server's threads; empty: its default (and in
    /// CSVs from before the axis).
    #[serde(default)]
    pub threads: Option<usize>,
    /// The machine's pace (ns per block of a fixed piece of work, timed on
    /// the bench's CPUs between runs): around the run, or the median and
    /// min–max around the cell's runs; empty when not timed (and in CSVs
    /// from before it was).
    #[serde(default)]
    pub pace_ns: Option<f64>,
    #[serde(default)]
    pub pace_ns_min: Option<f64>,
    #[serde(default)]
    pub pace_ns_max: Option<f64>,
    /// `bench --work`: each request's work (`cpu:50µs`); empty: none (and
    /// in CSVs from before the axis).
    #[serde(default)]
    pub work: Option<String>,
    /// `bench --body`: each response's body (`1MiB`); empty: the seed's
    /// 12 octets (and in CSVs from before the axis).
    #[serde(default)]
    pub body: Option<String>,
    /// DATA octets of the responses per second, in MiB (empty in CSVs from
    /// before it was measured).
    #[serde(default)]
    pub goodput_mib_per_s: Option<f64>,
    /// `bench --offload`: the workers; empty: none (and in CSVs from
    /// before the axis).
    #[serde(default)]
    pub offload: Option<usize>,
    /// Medians only: the 95% intervals of the runs' geometric mean of
    /// req/s and of CPU per request, and whether both were within
    /// `--precision` (empty: not asked, or a CSV from before).
    #[serde(default)]
    pub req_per_s_ci_low: Option<f64>,
    #[serde(default)]
    pub req_per_s_ci_high: Option<f64>,
    #[serde(default)]
    pub cpu_ci_low: Option<f64>,
    #[serde(default)]
    pub cpu_ci_high: Option<f64>,
    #[serde(default)]
    pub settled: Option<bool>,
    /// Counts per request: context switches (runs and medians), and the
    /// system calls of the cell's counting run (count and median rows;
    /// empty when not counted).
    #[serde(default)]
    pub ctx_switches_per_req: Option<f64>,
    #[serde(default)]
    pub syscalls_per_req: Option<f64>,
    #[serde(default)]
    pub reads_per_req: Option<f64>,
    #[serde(default)]
    pub writes_per_req: Option<f64>,
    #[serde(default)]
    pub octets_per_write: Option<f64>,
    #[serde(default)]
    pub requests_per_read: Option<f64>,
    /// The same work per request? What the server did for each, read from
    /// the wire (a probe before each run) and from its system calls: the
    /// response's header fields, its header block octets, the share of
    /// responses with a `date`, body octets, and pread-like file reads.
    #[serde(default)]
    pub head_fields: Option<f64>,
    #[serde(default)]
    pub head_octets: Option<f64>,
    #[serde(default)]
    pub head_dated: Option<f64>,
    #[serde(default)]
    pub body_octets: Option<f64>,
    #[serde(default)]
    pub file_reads_per_req: Option<f64>,
    /// `bench --source`: `blind` or `file` (empty: reading, and in CSVs
    /// from before).
    #[serde(default)]
    pub source: Option<String>,
    /// `bench --mix`: the paths asked for (empty: `/`).
    #[serde(default)]
    pub mix: Option<String>,
    /// `bench --net`: loopback, rfs or veth (empty in CSVs from before:
    /// loopback).
    #[serde(default)]
    pub net: Option<String>,
    /// `bench --link`: the veth pair's shape (`rate=1gbit`); empty: none.
    #[serde(default)]
    pub link: Option<String>,
    /// Whose kernel work each side's CPU did, per request (docs/net.md):
    /// packets the server's and the load's CPUs processed in their receive
    /// softirqs, steering interrupts each received, each side's own
    /// segments in and out, and the share of the server CPUs' packets
    /// that were the load's. Empty where not counted (and in CSVs
    /// from before).
    #[serde(default)]
    pub server_cpu_packets: Option<f64>,
    #[serde(default)]
    pub client_cpu_packets: Option<f64>,
    #[serde(default)]
    pub server_cpu_steered: Option<f64>,
    #[serde(default)]
    pub client_cpu_steered: Option<f64>,
    #[serde(default)]
    pub server_segs_in: Option<f64>,
    #[serde(default)]
    pub server_segs_out: Option<f64>,
    #[serde(default)]
    pub client_segs_in: Option<f64>,
    #[serde(default)]
    pub client_segs_out: Option<f64>,
    #[serde(default)]
    pub client_share: Option<f64>,
    /// `--load-hosts`: the hosts the load ran from (`a,b`); empty: the
    /// load ran here (and in CSVs from before).
    #[serde(default)]
    pub load_hosts: Option<String>,
    /// `--server-host`: the host the server ran on; empty: here (and in
    /// CSVs from before).
    #[serde(default)]
    pub server_host: Option<String>,
}

/// To `digits` decimals: the CSV is for reading, not for replaying.
fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

impl Row {
    fn new(kind: RowKind, client: LoadClient, cell: &Cell) -> Row {
        let [dispatch, engine, tls] = cell.target.columns();
        Row {
            kind,
            client,
            dispatch,
            engine,
            tls,
            clients: cell.clients,
            pipeline: cell.pipeline,
            rep: None,
            req_per_s: 0.0,
            req_per_s_min: None,
            req_per_s_max: None,
            p50_us: None,
            p99_us: None,
            cpu_us_per_req: 0.0,
            succeeded: 0,
            failed: 0,
            connection_errors: 0,
            traced: cell.traced,
            trace_records_per_req: None,
            trace_lost: None,
            span_ns: None,
            event_ns: None,
            cpu_us_per_req_min: None,
            cpu_us_per_req_max: None,
            req_per_s_cv: None,
            cpu_cv: None,
            wide: None,
            threads: (cell.threads > 0).then_some(cell.threads),
            pace_ns: None,
            pace_ns_min: None,
            pace_ns_max: None,
            work: (!cell.work.is_none()).then(|| cell.work.to_string()),
            body: (cell.body != Body::default()).then(|| cell.body.to_string()),
            goodput_mib_per_s: None,
            offload: (cell.offload > 0).then_some(cell.offload),
            req_per_s_ci_low: None,
            req_per_s_ci_high: None,
            cpu_ci_low: None,
            cpu_ci_high: None,
            settled: None,
            ctx_switches_per_req: None,
            syscalls_per_req: None,
            reads_per_req: None,
            writes_per_req: None,
            octets_per_write: None,
            requests_per_read: None,
            head_fields: None,
            head_octets: None,
            head_dated: None,
            body_octets: None,
            file_reads_per_req: None,
            source: (cell.source != Source::Reading).then(|| cell.source.name().to_string()),
            mix: cell.mix.map(|m| m.as_str().to_string()),
            net: Some(cell.net.name().to_string()),
            link: cell.link.map(|l| l.to_string()),
            load_hosts: cell.load_hosts.map(str::to_string),
            server_host: cell.server_host.map(str::to_string),
            server_cpu_packets: None,
            client_cpu_packets: None,
            server_cpu_steered: None,
            client_cpu_steered: None,
            server_segs_in: None,
            server_segs_out: None,
            client_segs_in: None,
            client_segs_out: None,
            client_share: None,
        }
    }

    fn with_counts(self, c: &Counts) -> Row {
        let r = |v: Option<f64>| v.map(|v| round(v, 4));
        Row {
            ctx_switches_per_req: r(c.ctx_switches_per_req),
            syscalls_per_req: r(c.syscalls_per_req),
            reads_per_req: r(c.reads_per_req),
            writes_per_req: r(c.writes_per_req),
            octets_per_write: c.octets_per_write.map(|v| round(v, 1)),
            requests_per_read: r(c.requests_per_read),
            head_fields: c.head_fields.map(|v| round(v, 2)),
            head_octets: c.head_octets.map(|v| round(v, 1)),
            head_dated: c.head_dated.map(|v| round(v, 2)),
            body_octets: c.body_octets.map(|v| round(v, 1)),
            file_reads_per_req: r(c.file_reads_per_req),
            server_cpu_packets: c.net.map(|n| round(n.server_cpu_packets, 3)),
            client_cpu_packets: c.net.map(|n| round(n.client_cpu_packets, 3)),
            server_cpu_steered: c.net.map(|n| round(n.server_cpu_steered, 3)),
            client_cpu_steered: c.net.map(|n| round(n.client_cpu_steered, 3)),
            server_segs_in: c.net.map(|n| round(n.server_segs_in, 3)),
            server_segs_out: c.net.map(|n| round(n.server_segs_out, 3)),
            client_segs_in: c.net.map(|n| round(n.client_segs_in, 3)),
            client_segs_out: c.net.map(|n| round(n.client_segs_out, 3)),
            client_share: c.net.map(|n| round(n.client_share, 3)),
            ..self
        }
    }

    fn counts(&self) -> Counts {
        Counts {
            syscalls_per_req: self.syscalls_per_req,
            reads_per_req: self.reads_per_req,
            writes_per_req: self.writes_per_req,
            octets_per_write: self.octets_per_write,
            requests_per_read: self.requests_per_read,
            ctx_switches_per_req: self.ctx_switches_per_req,
            file_reads_per_req: self.file_reads_per_req,
            head_fields: self.head_fields,
            head_octets: self.head_octets,
            head_dated: self.head_dated,
            body_octets: self.body_octets,
            net: self.server_cpu_packets.map(|_| Attribution {
                server_cpu_packets: self.server_cpu_packets.unwrap_or(0.0),
                client_cpu_packets: self.client_cpu_packets.unwrap_or(0.0),
                server_cpu_steered: self.server_cpu_steered.unwrap_or(0.0),
                client_cpu_steered: self.client_cpu_steered.unwrap_or(0.0),
                server_segs_in: self.server_segs_in.unwrap_or(0.0),
                server_segs_out: self.server_segs_out.unwrap_or(0.0),
                client_segs_in: self.client_segs_in.unwrap_or(0.0),
                client_segs_out: self.client_segs_out.unwrap_or(0.0),
                client_share: self.client_share.unwrap_or(0.0),
            }),
        }
    }

    fn with_trace(self, t: Option<&TraceCost>) -> Row {
        match t {
            None => self,
            Some(t) => Row {
                trace_records_per_req: Some(round(t.records_per_req, 3)),
                trace_lost: Some(t.lost),
                span_ns: Some(round(t.span_ns, 1)),
                event_ns: Some(round(t.event_ns, 1)),
                ..self
            },
        }
    }

    /// A timed run's row, or with `RowKind::Count` a counting run's.
    pub fn of_run(client: LoadClient, r: &Run, kind: RowKind) -> Row {
        Row {
            rep: Some(r.rep),
            req_per_s: round(r.req_per_s, 1),
            p50_us: r.p50_us,
            p99_us: r.p99_us,
            cpu_us_per_req: round(r.cpu_us_per_req, 3),
            succeeded: r.succeeded,
            failed: r.failed,
            connection_errors: r.connection_errors,
            pace_ns: r.pace_ns.map(|p| round(p, 1)),
            goodput_mib_per_s: Some(round(r.goodput_mib_per_s, 3)),
            ..Row::new(kind, client, &r.cell)
        }
        .with_trace(r.trace.as_ref())
        .with_counts(&r.counts)
    }

    pub fn of_median(client: LoadClient, m: &Median) -> Row {
        Row {
            req_per_s: round(m.req_per_s, 1),
            req_per_s_min: Some(round(m.req_per_s_min, 1)),
            req_per_s_max: Some(round(m.req_per_s_max, 1)),
            p50_us: m.p50_us,
            p99_us: m.p99_us,
            cpu_us_per_req: round(m.cpu_us_per_req, 3),
            cpu_us_per_req_min: Some(round(m.cpu_us_per_req_min, 3)),
            cpu_us_per_req_max: Some(round(m.cpu_us_per_req_max, 3)),
            req_per_s_cv: Some(round(m.req_per_s_cv, 4)),
            cpu_cv: Some(round(m.cpu_cv, 4)),
            wide: Some(m.is_wide()),
            succeeded: m.succeeded,
            failed: m.failed,
            connection_errors: m.connection_errors,
            pace_ns: m.pace_ns.map(|p| round(p.median, 1)),
            pace_ns_min: m.pace_ns.map(|p| round(p.min, 1)),
            pace_ns_max: m.pace_ns.map(|p| round(p.max, 1)),
            goodput_mib_per_s: Some(round(m.goodput_mib_per_s, 3)),
            req_per_s_ci_low: m.req_per_s_ci.map(|c| round(c.low, 1)),
            req_per_s_ci_high: m.req_per_s_ci.map(|c| round(c.high, 1)),
            cpu_ci_low: m.cpu_ci.map(|c| round(c.low, 3)),
            cpu_ci_high: m.cpu_ci.map(|c| round(c.high, 3)),
            settled: m.settled,
            ..Row::new(RowKind::Median, client, &m.cell)
        }
        .with_trace(m.trace.as_ref())
        .with_counts(&m.counts)
    }

    pub fn cell(&self) -> Result<Cell, String> {
        Ok(Cell {
            target: Target::from_columns(&self.dispatch, &self.engine, &self.tls)?,
            clients: self.clients,
            pipeline: self.pipeline,
            threads: self.threads.unwrap_or(0),
            traced: self.traced,
            work: match &self.work {
                Some(spec) => spec.parse()?,
                None => Work::None,
            },
            body: match &self.body {
                Some(size) => size.parse()?,
                None => Body::default(),
            },
            offload: self.offload.unwrap_or(0),
            source: match &self.source {
                Some(s) => Source::parse(s)?,
                None => Source::Reading,
            },
            mix: self.mix.as_deref().map(Mix::parse).transpose()?,
            net: match self.net.as_deref() {
                None => Topology::Loopback,
                Some(n) => {
                    Topology::from_str(n, false).map_err(|_| format!("unknown net {n:?}"))?
                }
            },
            link: match self.link.as_deref() {
                None => None,
                Some(l) => Some(super::matrix::intern_link(Link::parse(l)?)),
            },
            load_hosts: self.load_hosts.as_deref().map(super::matrix::intern),
            server_host: self.server_host.as_deref().map(super::matrix::intern),
        })
    }

    /// The median a `median` row holds (the number of runs is not kept).
    pub fn to_median(&self) -> Result<Median, String> {
        Ok(Median {
            cell: self.cell()?,
            runs: 0,
            req_per_s: self.req_per_s,
            req_per_s_min: self.req_per_s_min.unwrap_or(self.req_per_s),
            req_per_s_max: self.req_per_s_max.unwrap_or(self.req_per_s),
            p50_us: self.p50_us,
            p99_us: self.p99_us,
            cpu_us_per_req: self.cpu_us_per_req,
            cpu_us_per_req_min: self.cpu_us_per_req_min.unwrap_or(self.cpu_us_per_req),
            cpu_us_per_req_max: self.cpu_us_per_req_max.unwrap_or(self.cpu_us_per_req),
            req_per_s_cv: self.req_per_s_cv.unwrap_or(0.0),
            cpu_cv: self.cpu_cv.unwrap_or(0.0),
            succeeded: self.succeeded,
            failed: self.failed,
            connection_errors: self.connection_errors,
            goodput_mib_per_s: self.goodput_mib_per_s.unwrap_or(0.0),
            trace: match (self.trace_records_per_req, self.span_ns, self.event_ns) {
                (Some(records_per_req), Some(span_ns), Some(event_ns)) => Some(TraceCost {
                    records_per_req,
                    lost: self.trace_lost.unwrap_or(0),
                    span_ns,
                    event_ns,
                }),
                _ => None,
            },
            pace_ns: self.pace_ns.map(|median| PaceRange {
                median,
                min: self.pace_ns_min.unwrap_or(median),
                max: self.pace_ns_max.unwrap_or(median),
            }),
            req_per_s_ci: interval(
                self.req_per_s,
                self.req_per_s_ci_low,
                self.req_per_s_ci_high,
            ),
            cpu_ci: interval(self.cpu_us_per_req, self.cpu_ci_low, self.cpu_ci_high),
            settled: self.settled,
            counts: self.counts(),
        })
    }
}

/// An interval read back: the median stands for the estimate (the
/// geometric mean is not kept).
fn interval(median: f64, low: Option<f64>, high: Option<f64>) -> Option<Interval> {
    Some(Interval {
        estimate: median,
        low: low?,
        high: high?,
    })
}

/// Every row of the results: the runs, the counting runs, then the
/// medians.
pub fn rows(results: &Results) -> Vec<Row> {
    let c = results.client;
    let runs = results.runs.iter().map(|r| Row::of_run(c, r, RowKind::Run));
    let counted = results
        .counted
        .iter()
        .map(|r| Row::of_run(c, r, RowKind::Count));
    runs.chain(counted)
        .chain(results.medians.iter().map(|m| Row::of_median(c, m)))
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Csv(#[from] CsvFileError),
    #[error("{}: {reason}", path.display())]
    Row {
        path: std::path::PathBuf,
        reason: String,
    },
}

/// Reads a bench CSV back as results: its median rows (runs are kept only
/// as rows: a report needs the medians).
pub fn read(path: &Path) -> Result<Results, ReadError> {
    let rows: Vec<Row> = csv_file::read(path, CSV_HEADER, "an h2lab bench CSV")?;
    let bad = |reason: String| ReadError::Row {
        path: path.to_owned(),
        reason,
    };
    let medians = rows
        .iter()
        .filter(|r| r.kind == RowKind::Median)
        .map(|r| r.to_median().map_err(bad))
        .collect::<Result<Vec<_>, _>>()?;
    if medians.is_empty() {
        return Err(bad("no median rows".into()));
    }
    let text = std::fs::read_to_string(path).unwrap_or_default();
    Ok(Results {
        client: rows[0].client,
        machine: super::Machine::from_comments(&text),
        runs: Vec::new(),
        counted: Vec::new(),
        medians,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{Dispatch, Engine, Setup};
    use crate::tls::TlsProvider;

    #[test]
    fn the_header_is_the_field_names() {
        let cell = Cell {
            target: Target::H2lab(Setup {
                dispatch: Dispatch::Poll,
                engine: Engine::Mini,
                tls: TlsProvider::Rustls,
            }),
            clients: 5,
            pipeline: 100,
            threads: 2,
            traced: false,
            work: Work::Cpu(std::time::Duration::from_micros(50)),
            body: "1MiB".parse().unwrap(),
            offload: 4,
            source: Source::File,
            mix: Some(Mix::parse("/@99+/cpu/1ms@1").unwrap()),
            net: Topology::Veth,
            link: Some(super::super::matrix::intern_link(
                Link::parse("rate=1gbit").unwrap(),
            )),
            load_hosts: Some(super::super::matrix::intern("a,u@b")),
            server_host: Some(super::super::matrix::intern("s")),
        };
        let median = Median {
            cell,
            runs: 3,
            req_per_s: 1234.5678,
            req_per_s_min: 1000.04,
            req_per_s_max: 1500.0,
            p50_us: Some(80),
            p99_us: None,
            cpu_us_per_req: 0.123456,
            cpu_us_per_req_min: 0.1,
            cpu_us_per_req_max: 0.13,
            req_per_s_cv: 0.2,
            cpu_cv: 0.1,
            succeeded: 9,
            failed: 0,
            connection_errors: 0,
            goodput_mib_per_s: 12.3456,
            trace: None,
            pace_ns: Some(PaceRange {
                median: 2000.04,
                min: 1500.0,
                max: 3100.0,
            }),
            req_per_s_ci: Some(Interval {
                estimate: 1200.0,
                low: 900.04,
                high: 1600.0,
            }),
            cpu_ci: None,
            settled: Some(false),
            counts: Counts {
                syscalls_per_req: Some(0.37),
                octets_per_write: Some(412.345),
                ctx_switches_per_req: Some(0.02),
                head_fields: Some(4.0),
                head_octets: Some(50.0),
                head_dated: Some(1.0),
                body_octets: Some(12.0),
                net: Some(Attribution {
                    server_cpu_packets: 8.98,
                    client_cpu_packets: 18.7414,
                    server_cpu_steered: 7.0,
                    client_cpu_steered: 15.4,
                    server_segs_in: 9.1,
                    server_segs_out: 763.0,
                    client_segs_in: 762.0,
                    client_segs_out: 9.1,
                    client_share: 0.0,
                }),
                ..Counts::default()
            },
        };
        let row = Row::of_median(LoadClient::Builtin, &median);
        let text = csv_file::to_string([&row]).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(CSV_HEADER));
        assert_eq!(
            lines.next(),
            Some("median,builtin,poll,mini,rustls,5,100,,1234.6,1000.0,1500.0,80,,0.123,9,0,0,false,,,,,0.1,0.13,0.2,0.1,true,2,2000.0,1500.0,3100.0,cpu:50µs,1MiB,12.346,4,900.0,1600.0,,,false,0.02,0.37,,,412.3,,4.0,50.0,1.0,12.0,,file,/@99+/cpu/1ms@1,veth,rate=1gbit,8.98,18.741,7.0,15.4,9.1,763.0,762.0,9.1,0.0,\"a,u@b\",s")
        );
        assert_eq!(
            row.to_median()
                .unwrap()
                .counts
                .net
                .unwrap()
                .client_cpu_packets,
            18.741
        );
        let back = row.to_median().unwrap();
        assert_eq!(back.cell, cell);
        assert_eq!(back.req_per_s, 1234.6);
        assert_eq!(back.pace_ns.map(|p| p.spread()), Some(3100.0 / 1500.0));
        assert_eq!(
            back.req_per_s_ci.map(|c| (c.low, c.high)),
            Some((900.0, 1600.0))
        );
        assert_eq!((back.cpu_ci, back.settled), (None, Some(false)));
        assert_eq!(back.counts.octets_per_write, Some(412.3));
        assert_eq!(back.counts.reads_per_req, None);
        // A CSV from before the threads axis (and the pace, the work, the
        // body): the server's default, no pace, no work, the seed's body.
        let header = &CSV_HEADER[..CSV_HEADER.find(",threads,pace_ns").unwrap()];
        let old = format!(
            "{header}\nmedian,builtin,poll,mini,rustls,5,100,,1.0,,,,,0.1,9,0,0,false,,,,,,,,,\n"
        );
        let path = std::env::temp_dir().join(format!("h2lab-row-{}.csv", std::process::id()));
        std::fs::write(&path, old).unwrap();
        let results = read(&path);
        let _ = std::fs::remove_file(&path);
        let median = &results.unwrap().medians[0];
        assert_eq!(median.cell.threads, 0);
        assert_eq!(median.pace_ns, None);
        assert_eq!(median.cell.work, Work::None);
        assert_eq!(median.cell.body, Body::default());
        assert_eq!(median.cell.offload, 0);
    }
}
