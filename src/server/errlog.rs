//! Per-client errors on stderr, rate-limited: clients must not be able to
//! drive the log's volume. The first few errors of each interval are shown
//! one by one; past them, errors are only counted by reason, and one line
//! says how many were not shown, and why, with the first error of a later
//! interval or at stop.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::conn::{ConnError, PipelineError};

/// Errors shown one by one per interval.
pub const SHOWN_PER_INTERVAL: u32 = 5;
/// The interval of the limit and of the summary lines.
pub const INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct ClientErrors {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    since: Instant,
    shown: u32,
    /// Reason → errors not shown in this interval.
    held: BTreeMap<&'static str, u64>,
}

impl Default for ClientErrors {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                since: Instant::now(),
                shown: 0,
                held: BTreeMap::new(),
            }),
        }
    }
}

impl ClientErrors {
    /// Logs client `id`'s error, or counts it if this interval has shown
    /// enough.
    pub fn report(&self, id: u64, error: &ConnError) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.since.elapsed() >= INTERVAL {
            summarize(&mut s);
            s.since = Instant::now();
            s.shown = 0;
        }
        if s.shown < SHOWN_PER_INTERVAL {
            s.shown += 1;
            eprintln!("h2lab: client {id}: {error:#}");
        } else {
            *s.held.entry(reason(error)).or_default() += 1;
        }
    }

    /// Says what was held back (at stop).
    pub fn flush(&self) {
        summarize(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// One line for the errors held back, if any: `N more client errors not
/// shown: 40 protocol, 5 reset`.
fn summarize(s: &mut State) {
    if s.held.is_empty() {
        return;
    }
    let total: u64 = s.held.values().sum();
    let by_reason: Vec<String> = s.held.iter().map(|(r, n)| format!("{n} {r}")).collect();
    eprintln!(
        "h2lab: {total} more client errors not shown (at most {SHOWN_PER_INTERVAL} per {} s): {}",
        INTERVAL.as_secs(),
        by_reason.join(", ")
    );
    s.held.clear();
}

/// A short name for what went wrong.
pub fn reason(error: &ConnError) -> &'static str {
    use std::io::ErrorKind;
    let io = |e: &std::io::Error| match e.kind() {
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted => {
            "reset"
        }
        ErrorKind::TimedOut => "timed out",
        _ => "socket",
    };
    match error {
        ConnError::Pipeline(PipelineError::Engine(_)) => "protocol",
        ConnError::Pipeline(PipelineError::Tls(_) | PipelineError::Stalled) | ConnError::Tls(_) => {
            "tls"
        }
        ConnError::H2(e) => match e.get_io() {
            Some(e) => io(e),
            None => "protocol",
        },
        ConnError::Io(e) => io(e),
        ConnError::HandshakeTimeout(_) | ConnError::IdleTimeout(_) => "timed out",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_the_kind_of_failure() {
        let reset = ConnError::Io(std::io::ErrorKind::ConnectionReset.into());
        assert_eq!(reason(&reset), "reset");
        let other = ConnError::Io(std::io::Error::other("x"));
        assert_eq!(reason(&other), "socket");
        let stalled = ConnError::Pipeline(PipelineError::Stalled);
        assert_eq!(reason(&stalled), "tls");
    }

    #[test]
    fn past_the_limit_errors_are_counted_by_reason() {
        let log = ClientErrors::default();
        let reset = ConnError::Io(std::io::ErrorKind::ConnectionReset.into());
        for id in 0..20 {
            log.report(id, &reset);
        }
        let s = log.state.lock().unwrap();
        assert_eq!(s.shown, SHOWN_PER_INTERVAL);
        assert_eq!(s.held.get("reset"), Some(&15));
    }
}
