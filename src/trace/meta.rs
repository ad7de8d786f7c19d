//! What a trace says about itself: the setup, the command line, the version,
//! the wall-clock start (so that it lines up with perf or h2load output),
//! the measured cost of one record, and what it holds and lost. Written as
//! `PREFIX.meta.json` at start and again at the end, and into the JSON
//! trace's `metadata` (Perfetto's `metadata` table, as `json_metadata.*`).

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceMeta {
    /// `h2lab VERSION`.
    pub generator: String,
    /// `dispatch/engine/tls`.
    pub setup: String,
    pub dispatch: String,
    pub engine: String,
    pub tls: String,
    pub nodelay: bool,
    /// tokio worker threads (0: current-thread).
    pub threads: usize,
    pub max_clients: Option<usize>,
    pub idle_timeout_s: Option<f64>,
    pub trace_limit: Option<u64>,
    pub trace_queue: usize,
    /// `live`: formatted as it goes; `deferred`: spooled, formatted at stop.
    pub trace_mode: String,
    pub command_line: String,
    /// The trace's time 0 as wall-clock time.
    pub start_unix_ns: u64,
    pub start_utc: String,
    /// Measured at start: what recording one action costs the thread that
    /// records it (`span_cost_ns`: an action is a span in the trace, if not
    /// in `tracing`), and one frame event (ns, median of repeated batches).
    pub span_cost_ns: f64,
    pub event_cost_ns: f64,
    /// Filled in at the end.
    pub complete: bool,
    pub records: u64,
    pub dropped: u64,
    pub unrecorded: u64,
    /// Seconds spent formatting the files at stop (deferred mode).
    pub format_seconds: f64,
    /// The recording threads, `|`-joined, by index (the `thread` argument).
    pub thread_names: String,
    /// Responses the server sent in all (a warm-up included), when it said.
    #[serde(default)]
    pub responses: Option<u64>,
}

impl TraceMeta {
    /// The losses, in words, or `None` when nothing was lost.
    pub fn losses(&self) -> Option<String> {
        match (self.dropped, self.unrecorded, self.complete) {
            (0, 0, true) => None,
            (d, u, true) => Some(format!(
                "{d} records dropped (queue full), {u} not recorded (limit)"
            )),
            (d, u, false) => Some(format!(
                "incomplete trace (the server did not stop cleanly); {d} records dropped, {u} not recorded"
            )),
        }
    }

    pub fn read(path: &Path) -> std::io::Result<TraceMeta> {
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(std::io::Error::other)
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_are_said() {
        let mut m = TraceMeta {
            complete: true,
            ..TraceMeta::default()
        };
        assert_eq!(m.losses(), None);
        m.dropped = 3;
        assert!(m.losses().unwrap().contains("3 records dropped"));
        m.complete = false;
        assert!(m.losses().unwrap().starts_with("incomplete"));
    }
}
