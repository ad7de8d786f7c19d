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
            ..Machine::here()
        }
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
            tls: format!("rustls 0.23 (ring); {}", openssl::version::version()),
            h2load: installed(version_of("h2load", &["--version"])),
            nginx: peer(Peer::Nginx),
            h2o: peer(Peer::H2o),
            nghttpd: peer(Peer::Nghttpd),
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
    }
}
