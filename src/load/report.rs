//! The report of a load run: what was sent, what came back, why anything
//! failed, and how the connections, the TLS and the schedule went. Text
//! for people (h2load's layout), the same in JSON with `null` where
//! nothing was measured.

use std::collections::BTreeMap;
use std::fmt;

use super::tally::{Spread, Tally, TlsInfo};
use super::{LoadConfig, Plan, Stop};

/// What a run measured (`--json` writes it as it is).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LoadReport {
    /// `h2lab VERSION (COMMIT)`.
    pub version: String,
    /// When the run started, UTC.
    pub started: String,
    pub url: String,
    pub settings: Settings,
    pub clients: usize,
    pub streams: usize,
    /// Requests counted (started after the warm-up, or all with `-n`).
    pub requests: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Connections that failed (refused, reset, TLS or protocol errors) or
    /// were never served by the end.
    pub connection_errors: u64,
    pub seconds: f64,
    pub req_per_s: f64,
    /// Goodput: DATA octets of the counted responses that succeeded, per
    /// second (the traffic line counts everything, warm-up included).
    pub goodput_bytes_per_s: f64,
    /// Latency of succeeded requests, in µs (from the scheduled send time
    /// with `--rps`).
    pub latency_us: Option<Latency>,
    pub status_codes: StatusCodes,
    /// Every reason something failed, with how often and the first message.
    pub errors: Vec<ErrorCount>,
    /// Requests sent again: REFUSED_STREAM, or left unprocessed by a GOAWAY.
    pub retried: u64,
    /// Connections opened again after a graceful GOAWAY.
    pub reconnects: u64,
    /// From starting a connection to TCP connected, µs.
    pub connect_us: Option<MinMeanMax>,
    /// From starting a connection to its first octet from the server, µs.
    pub first_byte_us: Option<MinMeanMax>,
    pub traffic: Traffic,
    /// Succeeded requests per client.
    pub per_client: Option<MinMeanMax>,
    pub tls: Option<TlsInfo>,
    /// `--rps` only: how well the schedule was kept.
    pub rate: Option<Rate>,
    /// Ctrl-C ended the run; `abandoned` requests were in flight then and
    /// are counted nowhere else.
    pub interrupted: bool,
    pub abandoned: u64,
    /// Per path of the run (`-i`, several URLs, weights), the requests
    /// that were sent: their counts add up to `requests` but for those a
    /// failed connection never sent.
    pub paths: Vec<PathReport>,
    /// `--load-hosts`: each host's share (absent from a local run's JSON).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostReport>,
}

/// One load host's part of a run (`--load-hosts`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HostReport {
    pub host: String,
    pub clients: usize,
    /// Its requests counted, succeeded and failed (0 for a lost host).
    pub requests: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Its clock minus the controller's, µs, and the bound on that.
    pub clock_offset_us: f64,
    pub clock_within_us: f64,
    /// Its measured time, s.
    pub seconds: Option<f64>,
    /// How long after the common instant it began, µs (its own clock;
    /// from the sleep's wake-up, or a session that opened late).
    pub late_us: Option<f64>,
    /// Why its results are missing: the session lost, the agent dead.
    pub lost: Option<String>,
}

/// One path's share of the run.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PathReport {
    pub path: String,
    pub weight: u32,
    pub requests: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Every status seen, with its count.
    pub codes: BTreeMap<u16, u64>,
    /// Latency of its succeeded requests, µs (2 significant digits).
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    /// DATA octets of its succeeded responses.
    pub body_bytes: u64,
}

/// A [`PathReport`] as one CSV row (`load --csv`).
#[derive(Debug, serde::Serialize)]
pub struct PathRow<'a> {
    pub path: &'a str,
    pub weight: u32,
    pub requests: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// `200:98 404:2`.
    pub codes: String,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub body_bytes: u64,
}

impl PathReport {
    pub fn row(&self) -> PathRow<'_> {
        PathRow {
            path: &self.path,
            weight: self.weight,
            requests: self.requests,
            succeeded: self.succeeded,
            failed: self.failed,
            codes: codes_text(&self.codes, " "),
            p50_us: self.p50_us,
            p99_us: self.p99_us,
            body_bytes: self.body_bytes,
        }
    }
}

/// `200:98 404:2`.
fn codes_text(codes: &BTreeMap<u16, u64>, sep: &str) -> String {
    let v: Vec<String> = codes.iter().map(|(c, n)| format!("{c}:{n}")).collect();
    v.join(sep)
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Settings {
    pub clients: usize,
    pub streams: usize,
    pub threads: usize,
    /// `-n`, or `null` with `-D`.
    pub requests: Option<u64>,
    pub duration_s: Option<f64>,
    pub warm_up_s: f64,
    pub timeout_s: f64,
    pub rps: Option<f64>,
    pub urls: usize,
    pub method: String,
    pub body_bytes: Option<usize>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Latency {
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
    pub mean: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct MinMeanMax {
    pub min: u64,
    pub mean: f64,
    pub max: u64,
}

impl MinMeanMax {
    fn of(s: &Spread) -> Option<Self> {
        Some(Self {
            min: s.min,
            mean: s.mean()?,
            max: s.max,
        })
    }
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct StatusCodes {
    #[serde(rename = "2xx")]
    pub s2xx: u64,
    #[serde(rename = "3xx")]
    pub s3xx: u64,
    #[serde(rename = "4xx")]
    pub s4xx: u64,
    #[serde(rename = "5xx")]
    pub s5xx: u64,
    /// Every status seen, with its count.
    pub codes: BTreeMap<u16, u64>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ErrorCount {
    pub reason: String,
    pub count: u64,
    pub sample: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Traffic {
    /// Octets read from and written to the sockets (TLS records included).
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Of `bytes_in`, the octets read once the measured time had begun
    /// (after `--warm-up`): what the server wrote in it.
    pub bytes_in_measured: u64,
    /// Of the HTTP/2 frames received: header block and DATA payloads.
    pub headers_in: u64,
    pub data_in: u64,
    /// Response header blocks, the fields they held, and how many had a
    /// `date`: what the server did per response, read from the wire.
    pub header_blocks: u64,
    pub header_fields: u64,
    pub dated_blocks: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Rate {
    pub target_rps: f64,
    /// Requests sent on their schedule, and due but never sent.
    pub sent: u64,
    pub unsent: u64,
    /// The latest a request went out after its time, µs.
    pub max_lag_us: u64,
    /// The server (or the connections' `-m`) could not keep up: over 1%
    /// of the due requests never went out, or one went out 100 ms late.
    pub behind: bool,
}

pub(super) fn build(
    config: &LoadConfig,
    plan: &Plan,
    t: Tally,
    started: String,
    interrupted: bool,
) -> LoadReport {
    let end = std::time::Instant::now();
    let seconds = match plan.due {
        Some(d) => d
            .min(end)
            .saturating_duration_since(plan.measure_from)
            .as_secs_f64(),
        None => end.duration_since(plan.start).as_secs_f64(),
    };
    build_timed(config, plan, t, started, interrupted, seconds)
}

/// [`build`] with the measured time given (`--load-hosts`: the longest of
/// the agents', who started together).
pub(super) fn build_timed(
    config: &LoadConfig,
    plan: &Plan,
    t: Tally,
    started: String,
    interrupted: bool,
    seconds: f64,
) -> LoadReport {
    let h = &t.hist;
    let latency_us = (!h.is_empty()).then(|| Latency {
        min: h.min(),
        p50: h.value_at_quantile(0.50),
        p90: h.value_at_quantile(0.90),
        p99: h.value_at_quantile(0.99),
        max: h.max(),
        mean: h.mean(),
    });
    let codes = t.status_counts();
    let mut status_codes = StatusCodes {
        codes: codes.clone(),
        ..Default::default()
    };
    for (&code, &n) in &codes {
        match code / 100 {
            2 => status_codes.s2xx += n,
            3 => status_codes.s3xx += n,
            4 => status_codes.s4xx += n,
            5 => status_codes.s5xx += n,
            _ => {}
        }
    }
    let mut per = Spread::default();
    t.per_client.iter().for_each(|&n| per.add(n));
    let rate = config.rps.map(|target_rps| {
        let s = t.schedule;
        let due = s.sent + s.unsent;
        Rate {
            target_rps,
            sent: s.sent,
            unsent: s.unsent,
            max_lag_us: s.max_lag_us,
            behind: s.unsent > due / 100 || s.max_lag_us > 100_000,
        }
    });
    let (requests, duration_s) = match config.stop {
        Stop::Requests(n) => (Some(n), None),
        Stop::Duration(d) => (None, Some(d.as_secs_f64())),
    };
    LoadReport {
        version: format!(
            "h2lab {} ({})",
            env!("CARGO_PKG_VERSION"),
            env!("H2LAB_COMMIT")
        ),
        started,
        url: config.url.clone(),
        settings: Settings {
            clients: config.clients,
            streams: config.streams,
            threads: config.threads,
            requests,
            duration_s,
            warm_up_s: config.warm_up.as_secs_f64(),
            timeout_s: config.timeout.as_secs_f64(),
            rps: config.rps,
            urls: plan.requests.len(),
            method: config.method.clone().unwrap_or_else(|| {
                match config.body {
                    Some(_) => "POST",
                    None => "GET",
                }
                .into()
            }),
            body_bytes: config.body.as_ref().map(|b| b.len()),
        },
        clients: config.clients,
        streams: config.streams,
        requests: t.succeeded.saturating_add(t.failed),
        succeeded: t.succeeded,
        failed: t.failed,
        connection_errors: t.connection_errors,
        seconds,
        req_per_s: if seconds > 0.0 {
            t.succeeded as f64 / seconds
        } else {
            0.0
        },
        goodput_bytes_per_s: if seconds > 0.0 {
            t.body_in as f64 / seconds
        } else {
            0.0
        },
        latency_us,
        status_codes,
        errors: t
            .problems
            .iter()
            .map(|(reason, (count, sample))| ErrorCount {
                reason: reason.clone(),
                count: *count,
                sample: sample.clone(),
            })
            .collect(),
        retried: t.retried,
        reconnects: t.reconnects,
        connect_us: MinMeanMax::of(&t.connect_us),
        first_byte_us: MinMeanMax::of(&t.first_byte_us),
        traffic: Traffic {
            bytes_in: t.bytes_in,
            bytes_in_measured: t.bytes_in_measured,
            bytes_out: t.bytes_out,
            headers_in: t.headers_in,
            header_blocks: t.header_blocks,
            header_fields: t.header_fields,
            dated_blocks: t.dated,
            data_in: t.data_in,
        },
        per_client: MinMeanMax::of(&per),
        tls: t.tls,
        rate,
        interrupted,
        abandoned: t.abandoned,
        paths: plan
            .requests
            .iter()
            .zip(&plan.weights)
            .zip(&t.paths)
            .map(|((r, &weight), p)| PathReport {
                path: r.path.clone(),
                weight,
                requests: p.succeeded + p.failed,
                succeeded: p.succeeded,
                failed: p.failed,
                codes: p.statuses.clone(),
                p50_us: (!p.hist.is_empty()).then(|| p.hist.value_at_quantile(0.5)),
                p99_us: (!p.hist.is_empty()).then(|| p.hist.value_at_quantile(0.99)),
                body_bytes: p.body,
            })
            .collect(),
        hosts: Vec::new(),
    }
}

impl LoadReport {
    /// Every request succeeded and nothing cut the run short.
    pub fn clean(&self) -> bool {
        self.failed == 0 && self.connection_errors == 0 && !self.interrupted
    }
}

/// `1234567` → `1.2 MB`.
fn bytes(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} kB", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        _ => format!("{:.2} GB", n as f64 / 1e9),
    }
}

fn mmm(f: &mut fmt::Formatter<'_>, label: &str, v: &Option<MinMeanMax>) -> fmt::Result {
    match v {
        Some(v) => writeln!(f, "{label}: min {} mean {:.1} max {}", v.min, v.mean, v.max),
        None => writeln!(f, "{label}: none measured"),
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.interrupted {
            writeln!(
                f,
                "interrupted: the figures are of what was done ({} requests in flight abandoned)",
                self.abandoned
            )?;
        }
        writeln!(
            f,
            "requests: {} total, {} succeeded, {} failed; {} connection errors ({} clients × {} streams, {} thread{})",
            self.requests,
            self.succeeded,
            self.failed,
            self.connection_errors,
            self.clients,
            self.streams,
            self.settings.threads,
            if self.settings.threads == 1 { "" } else { "s" }
        )?;
        writeln!(
            f,
            "finished in {:.3} s, {:.0} req/s, {}/s in, goodput {}/s",
            self.seconds,
            self.req_per_s,
            bytes((self.traffic.bytes_in as f64 / self.seconds.max(1e-9)) as u64),
            bytes(self.goodput_bytes_per_s as u64)
        )?;
        let s = &self.status_codes;
        let codes: Vec<String> = s.codes.iter().map(|(c, n)| format!("{c}: {n}")).collect();
        writeln!(
            f,
            "status codes: {} 2xx, {} 3xx, {} 4xx, {} 5xx{}",
            s.s2xx,
            s.s3xx,
            s.s4xx,
            s.s5xx,
            match codes.is_empty() {
                true => String::new(),
                false => format!(" ({})", codes.join(", ")),
            }
        )?;
        if !self.errors.is_empty() {
            writeln!(f, "errors:")?;
            for e in &self.errors {
                writeln!(f, "  {} × {}: {}", e.count, e.reason, e.sample)?;
            }
        }
        if self.retried > 0 || self.reconnects > 0 {
            writeln!(
                f,
                "retried: {} requests (refused, or unprocessed by a GOAWAY); {} reconnects",
                self.retried, self.reconnects
            )?;
        }
        let t = &self.traffic;
        writeln!(
            f,
            "traffic: {} in ({} headers, {} data), {} out",
            bytes(t.bytes_in),
            bytes(t.headers_in),
            bytes(t.data_in),
            bytes(t.bytes_out)
        )?;
        if t.header_blocks > 0 {
            let per = |n: u64| n as f64 / t.header_blocks as f64;
            writeln!(
                f,
                "response heads: {} blocks, {:.2} fields and {:.1} octets each, {} with a date",
                t.header_blocks,
                per(t.header_fields),
                per(t.headers_in),
                t.dated_blocks
            )?;
        }
        match &self.latency_us {
            Some(l) => writeln!(
                f,
                "latency µs: min {} p50 {} p90 {} p99 {} max {} mean {:.1}",
                l.min, l.p50, l.p90, l.p99, l.max, l.mean
            )?,
            None => writeln!(f, "latency µs: none measured (nothing succeeded)")?,
        }
        mmm(f, "connect µs", &self.connect_us)?;
        mmm(f, "first byte µs", &self.first_byte_us)?;
        mmm(f, "requests per client", &self.per_client)?;
        if let Some(tls) = &self.tls {
            writeln!(
                f,
                "TLS: {}, {}, ALPN {}",
                tls.version,
                tls.cipher,
                tls.alpn.as_deref().unwrap_or("none")
            )?;
        }
        if self.paths.len() > 1 {
            writeln!(
                f,
                "per path (weight: requests, succeeded, statuses, latency µs p50/p99, body):"
            )?;
            for p in &self.paths {
                let us = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
                writeln!(
                    f,
                    "  {} ({}): {} requests, {} succeeded, {}, {}/{}, {}",
                    p.path,
                    p.weight,
                    p.requests,
                    p.succeeded,
                    match p.codes.is_empty() {
                        true => "no status".to_string(),
                        false => codes_text(&p.codes, ", "),
                    },
                    us(p.p50_us),
                    us(p.p99_us),
                    bytes(p.body_bytes)
                )?;
            }
        }
        if let Some(r) = &self.rate {
            writeln!(
                f,
                "rate: {} req/s asked; {} sent on schedule, {} due but never sent; at most {:.1} ms behind",
                r.target_rps,
                r.sent,
                r.unsent,
                r.max_lag_us as f64 / 1e3
            )?;
            if r.behind {
                writeln!(
                    f,
                    "the server could not keep up with {} req/s (latencies count from each request's scheduled time)",
                    r.target_rps
                )?;
            }
        }
        for h in &self.hosts {
            write!(
                f,
                "host {}: {} clients, {} requests, {} succeeded, {} failed; clock {:+.1} µs (within {:.1} µs)",
                h.host,
                h.clients,
                h.requests,
                h.succeeded,
                h.failed,
                h.clock_offset_us,
                h.clock_within_us
            )?;
            if let Some(late) = h.late_us {
                write!(f, "; began {:.1} ms after the start", late / 1e3)?;
            }
            match &h.lost {
                Some(why) => writeln!(f, "; LOST: {why}")?,
                None => writeln!(f)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_as_people_write_them() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500), "1.5 kB");
        assert_eq!(bytes(2_345_678), "2.3 MB");
        assert_eq!(bytes(3_000_000_000), "3.00 GB");
    }
}
