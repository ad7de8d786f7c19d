//! The machine a bench ran on, and how it ran: carried in the JSON
//! (`machine`) and as a `# key: value` block before the CSV's header, so
//! that `h2lab report` describes where the figures were made.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::peers::Peer;
use super::system::version_of;
use super::BenchConfig;

/// Every field is text: it is read back from CSV comments as it was written
/// (a field a CSV from before it lacks is empty).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Machine {
    /// When the bench started, UTC.
    pub date: String,
    pub h2lab: String,
    pub cpu: String,
    pub cores: String,
    pub kernel: String,
    /// Whether Linux runs under a hypervisor, and which (`lscpu`).
    pub virtualization: String,
    /// The cpuidle driver and governor.
    pub cpuidle: String,
    /// The one-way wake-up latency between the servers' and the load's
    /// first CPUs, timed at the start ([`super::wakeup`]).
    pub wake_up: String,
    /// How system calls were counted, or why not.
    pub syscalls: String,
    /// `--precision` and `--max-repeat`.
    pub precision: String,
    pub pinning: String,
    pub warm_up: String,
    pub duration: String,
    pub repeat: String,
    /// How the machine's own pace was timed (`bench --pace`).
    pub pace: String,
    pub client: String,
    pub tls: String,
    pub h2load: String,
    pub nginx: String,
    pub h2o: String,
    pub nghttpd: String,
    /// `--net` and `--link`: how the server and the load were joined.
    pub network: String,
    /// How the kernel charges softirq time (what "server CPU" holds).
    pub softirq_time: String,
}

impl Machine {
    /// This machine, and how `config` runs on it.
    pub fn of_bench(config: &BenchConfig) -> Machine {
        Machine {
            date: crate::wall_clock::utc_now(),
            pinning: format!(
                "servers on CPUs {}, load on CPUs {}",
                config.pin_server.as_deref().unwrap_or("any"),
                config.pin_client.as_deref().unwrap_or("any")
            ),
            warm_up: format!("{} s", config.warm_up.as_secs_f64()),
            duration: format!("{} s", config.duration.as_secs_f64()),
            repeat: config.repeat.to_string(),
            pace: match &config.pace {
                Some(p) => format!(
                    "{} s on CPUs {} before the first run and after each",
                    p.length.as_secs_f64(),
                    p.cpus
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                None => "not timed".into(),
            },
            client: config.client.name().into(),
            network: super::network_line(
                &config.net,
                config.listen,
                config.hosts.as_deref(),
                config.server.as_deref(),
            ),
            wake_up: wake_up(config.pin_server.as_deref(), config.pin_client.as_deref()),
            syscalls: match (config.count_syscalls, super::counts::perf_usable()) {
                (true, _) => "counted by perf stat (raw_syscalls and syscalls tracepoints) in one more run per cell, whose times are not kept".into(),
                (false, Err(why)) => format!("not counted: {why}"),
                (false, Ok(())) => "not counted (--no-count)".into(),
            },
            precision: match config.precision {
                Some(p) => format!(
                    "cells run again while a 95% interval is wider than ±{p}%, up to {} runs",
                    config.max_repeat
                ),
                None => "none: every cell runs --repeat times".into(),
            },
            ..Machine::here()
        }
    }

    /// This machine, for `ab`: with its wake-up latency between the two
    /// pinned CPUs and its pinning.
    pub fn of_ab(pin_server: Option<&str>, pin_client: Option<&str>, network: String) -> Machine {
        Machine {
            date: crate::wall_clock::utc_now(),
            pinning: format!(
                "servers on CPUs {}, load on CPUs {}",
                pin_server.unwrap_or("any"),
                pin_client.unwrap_or("any")
            ),
            wake_up: wake_up(pin_server, pin_client),
            client: "builtin".into(),
            network,
            ..Machine::here()
        }
    }

    /// One line on what the machine adds: its hypervisor, cpuidle driver
    /// and wake-up latency, and how the sides were joined.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "{}; cpuidle {}; wake-up {}",
            self.virtualization, self.cpuidle, self.wake_up
        );
        if !self.network.is_empty() {
            line.push_str("; network: ");
            line.push_str(&self.network);
        }
        line
    }

    /// The median one-way wake-up latency, µs, if it was timed.
    pub fn wake_up_median_us(&self) -> Option<f64> {
        let rest = self.wake_up.strip_prefix("median ")?;
        rest.split_whitespace().next()?.parse().ok()
    }

    /// Whether a cell's CPU per request is mostly wake-ups: its server
    /// switches context at least every other request, and those switches,
    /// at this machine's wake-up latency, add up to half its CPU per
    /// request or more.
    pub fn wake_up_dominated(&self, m: &super::Median) -> bool {
        let (Some(wake), Some(cs)) = (self.wake_up_median_us(), m.counts.ctx_switches_per_req)
        else {
            return false;
        };
        cs >= WAKE_UP_SWITCHES_PER_REQ && cs * wake >= 0.5 * m.cpu_us_per_req
    }

    /// This machine: CPU, kernel, h2lab, TLS libraries, tools and peers
    /// (the bench's fields empty).
    pub fn here() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_else(|| "unknown".into());
        // Not available_parallelism: the bench may have pinned itself.
        let cores = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let installed = |v: Option<String>| v.unwrap_or_else(|| "not installed".into());
        let peer = |peer: Peer| {
            let args: &[&str] = match peer {
                Peer::Nginx => &["-v"],
                _ => &["--version"],
            };
            installed(peer.find().and_then(|p| version_of(p.to_str()?, args)))
        };
        Machine {
            h2lab: format!(
                "{} (commit {})",
                env!("CARGO_PKG_VERSION"),
                env!("H2LAB_COMMIT")
            ),
            cpu,
            cores: cores.to_string(),
            kernel: format!("Linux {}", kernel.trim()),
            virtualization: virtualization(&cpuinfo),
            cpuidle: cpuidle(),
            tls: format!("rustls 0.23 (ring); {}", openssl::version::version()),
            h2load: installed(version_of("h2load", &["--version"])),
            nginx: peer(Peer::Nginx),
            h2o: peer(Peer::H2o),
            nghttpd: peer(Peer::Nghttpd),
            softirq_time: crate::netns::softirq_accounting(),
            ..Machine::default()
        }
    }

    fn fields(&self) -> Vec<(String, String)> {
        let value = serde_json::to_value(self).expect("strings serialize");
        let serde_json::Value::Object(map) = value else {
            unreachable!("a struct is an object")
        };
        map.into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
            .collect()
    }

    /// The CSV's comment block: `# key: value` per field.
    pub fn comment_block(&self) -> String {
        let mut out = String::new();
        for (k, v) in self.fields() {
            let _ = writeln!(out, "# {k}: {}", v.replace('\n', " "));
        }
        out
    }

    /// The block at the top of a CSV, if it has one.
    pub fn from_comments(text: &str) -> Option<Machine> {
        let map: serde_json::Map<String, serde_json::Value> = text
            .lines()
            .map_while(|l| l.strip_prefix("# "))
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect();
        if map.is_empty() {
            return None;
        }
        serde_json::from_value(serde_json::Value::Object(map)).ok()
    }

    /// A markdown list, under `heading` (fields left empty left out).
    pub fn markdown(&self, heading: &str) -> String {
        let mut out = format!("## {heading}\n\n");
        for (k, v) in self.fields().into_iter().filter(|(_, v)| !v.is_empty()) {
            let _ = writeln!(out, "- {}: {v}", k.replace('_', "-"));
        }
        out
    }
}

/// Context switches per request from which a cell may be dominated by
/// wake-ups.
pub const WAKE_UP_SWITCHES_PER_REQ: f64 = 0.5;

/// Under a hypervisor (the `hypervisor` CPU flag), and which one where
/// `lscpu` can tell.
fn virtualization(cpuinfo: &str) -> String {
    let flagged = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "hypervisor"));
    if !flagged {
        return "none (no hypervisor flag in /proc/cpuinfo)".into();
    }
    let lscpu = std::process::Command::new("lscpu")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let field = |name: &str| {
        lscpu
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim_start_matches([':', ' ']).trim().to_string())
    };
    match (field("Hypervisor vendor"), field("Virtualization type")) {
        (Some(vendor), Some(kind)) => format!("a virtual machine: {vendor}, {kind} virtualization"),
        (Some(vendor), None) => format!("a virtual machine: {vendor}"),
        _ => "a virtual machine (hypervisor not named)".into(),
    }
}

/// The cpuidle driver and governor (`none`: the idle CPU halts, and on a
/// virtual machine exits to the hypervisor).
fn cpuidle() -> String {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/sys/devices/system/cpu/cpuidle/{f}"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into())
    };
    format!(
        "driver {}, governor {}",
        read("current_driver"),
        read("current_governor")
    )
}

/// The wake-up latency between the first CPU of each list, as the machine
/// block says it (or why it was not timed).
fn wake_up(server: Option<&str>, client: Option<&str>) -> String {
    let first = |l: Option<&str>| super::system::cpu_list(l?)?.first().copied();
    let (Some(a), Some(b)) = (first(server), first(client)) else {
        return "not timed (nothing pinned)".into();
    };
    match super::wakeup::ping_pong(a, b, 2000) {
        Ok(w) => format!(
            "median {:.1} µs, p99 {:.1} µs one way, CPU {a} to CPU {b} ({} pipe round trips halved)",
            w.median_us, w.p99_us, w.rounds
        ),
        Err(e) => format!("not timed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_comment_block_reads_back() {
        let m = Machine {
            date: "2026-11-26T15:04:05Z".into(),
            cpu: "AMD EPYC: 2 cores".into(),
            repeat: "3".into(),
            ..Machine::default()
        };
        let block = m.comment_block();
        assert!(block.contains("# date: 2026-11-26T15:04:05Z\n"), "{block}");
        assert!(block.lines().all(|l| l.starts_with("# ")), "{block}");
        let text = format!("{block}kind,client\nrun,builtin\n");
        assert_eq!(Machine::from_comments(&text), Some(m));
        assert_eq!(Machine::from_comments("kind,client\n"), None);
        // A block from before a field existed reads, the field empty.
        let old = "# date: 2026-11-26T15:04:05Z\n# repeat: 3\nkind,client\n";
        let back = Machine::from_comments(old).unwrap();
        assert_eq!((back.repeat.as_str(), back.pace.as_str()), ("3", ""));
        assert_eq!(back.wake_up_median_us(), None);
    }

    /// A cell is marked as the machine's when its server switches at least
    /// every other request and those switches, at the timed wake-up
    /// latency, are half its CPU per request or more.
    #[test]
    fn wake_up_dominated_cells_are_told_apart() {
        let m = Machine {
            wake_up: "median 4.5 µs, p99 11.1 µs one way, CPU 0 to CPU 1".into(),
            ..Machine::default()
        };
        assert_eq!(m.wake_up_median_us(), Some(4.5));
        let cell = |cpu_us_per_req: f64, cs: Option<f64>| super::super::Median {
            cpu_us_per_req,
            counts: super::super::Counts {
                ctx_switches_per_req: cs,
                ..Default::default()
            },
            ..super::super::Median::example()
        };
        assert!(m.wake_up_dominated(&cell(7.9, Some(1.0))));
        // Few switches: the server's own work.
        assert!(!m.wake_up_dominated(&cell(4.0, Some(0.02))));
        // Switching every request, but at 60 µs a request the work dominates.
        assert!(!m.wake_up_dominated(&cell(60.0, Some(1.0))));
        assert!(!m.wake_up_dominated(&cell(7.9, None)));
        assert!(!Machine::default().wake_up_dominated(&cell(7.9, Some(1.0))));
    }
}
