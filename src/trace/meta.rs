//! What a trace says about itself: the setup, the command line, the version,
//! the wall-clock start (so that it lines up with perf or h2load output),
//! the measured cost of one record, and what it holds and lost. Written as
//! `PREFIX.meta.json` at start and again at the end, and into the JSON
//! trace's `metadata` (Perfetto's `metadata` table, as `json_metadata.*`).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

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

/// Now, as nanoseconds since the Unix epoch and as UTC text.
pub fn wall_clock_now() -> (u64, String) {
    let ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (ns, utc(ns))
}

/// `2026-11-26T13:15:03.123456789Z` (days to a civil date: H. Hinnant's
/// algorithm).
fn utc(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ns % 1_000_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            utc(951_782_400_000_000_001),
            "2000-02-29T00:00:00.000000001Z"
        );
        assert_eq!(
            utc(1_795_000_000_000_000_000),
            "2026-11-18T11:06:40.000000000Z"
        );
    }

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
