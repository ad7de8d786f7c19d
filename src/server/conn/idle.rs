//! The idle timeout and the handshake deadline off the `poll` loop (which
//! sweeps its clients itself): when a connection last made progress, the
//! deadline it waits for next, and a watchdog that ends a connection future
//! at that deadline.
//!
//! Progress is the rule `poll` keeps: a whole frame from the client that
//! leaves no header block open. Octets that make no frame do not count, nor
//! do CONTINUATIONs of a block that does not end (the header-read
//! deadline), so a client cannot hold its place by trickling either.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::ConnError;
use crate::frame::{flags, FrameHeader, FrameType};

/// Which limit a deadline belongs to, and how long it is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Limit {
    /// Not established within this long of its accept.
    Handshake(Duration),
    /// No progress for this long.
    Idle(Duration),
}

impl From<Limit> for ConnError {
    fn from(limit: Limit) -> Self {
        match limit {
            Limit::Handshake(t) => ConnError::HandshakeTimeout(t),
            Limit::Idle(t) => ConnError::IdleTimeout(t),
        }
    }
}

/// When a connection was accepted and last made progress. Shared (by
/// reference or `Arc`) between whatever reads the client's frames and the
/// watchdog, so it is updated through `&self`.
#[derive(Debug)]
pub struct Progress {
    accepted: Instant,
    /// Nanoseconds from `accepted` to the last progress.
    last_ns: AtomicU64,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    /// A connection accepted now: progress counts from here.
    pub fn new() -> Self {
        Self {
            accepted: Instant::now(),
            last_ns: AtomicU64::new(0),
        }
    }

    /// The client made progress now.
    pub fn note(&self) {
        let ns = u64::try_from(self.accepted.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_ns.store(ns, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.accepted + Duration::from_nanos(self.last_ns.load(Ordering::Relaxed))
    }

    /// The nearest deadline: the handshake's until the client is
    /// established, the idle timeout's from its last progress; `None`
    /// without either.
    pub fn next_deadline(&self, limits: Limits, established: bool) -> Option<(Instant, Limit)> {
        let handshake = limits
            .handshake
            .filter(|_| !established)
            .map(|t| (self.accepted + t, Limit::Handshake(t)));
        let idle = limits.idle.map(|t| (self.last() + t, Limit::Idle(t)));
        match (handshake, idle) {
            (Some(h), Some(i)) => Some(if h.0 <= i.0 { h } else { i }),
            (h, i) => h.or(i),
        }
    }
}

/// The time limits a connection lives under.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Limits {
    pub handshake: Option<Duration>,
    pub idle: Option<Duration>,
}

/// Whether a header block is open after the frame `head`, given whether one
/// was open before it.
pub fn header_block_open(open: bool, head: &FrameHeader) -> bool {
    match head.kind {
        FrameType::HEADERS | FrameType::PUSH_PROMISE | FrameType::CONTINUATION => {
            head.flags & flags::END_HEADERS == 0
        }
        _ => open,
    }
}

/// `fut`, ended by the deadline's limit if it comes first.
pub async fn within<T>(
    deadline: Option<(Instant, Limit)>,
    fut: impl Future<Output = Result<T, ConnError>>,
) -> Result<T, ConnError> {
    match deadline {
        Some((at, limit)) => tokio::time::timeout_at(at.into(), fut)
            .await
            .map_err(|_| ConnError::from(limit))?,
        None => fut.await,
    }
}

/// Runs `fut` until it ends or the client makes no progress for `t`
/// (checked against `progress` at each deadline), which ends it with
/// [`ConnError::IdleTimeout`].
pub async fn watch<F, T>(fut: F, t: Duration, progress: &Progress) -> Result<T, ConnError>
where
    F: Future<Output = Result<T, ConnError>>,
{
    let mut fut = std::pin::pin!(fut);
    loop {
        let at = progress.last() + t;
        if Instant::now() >= at {
            return Err(ConnError::IdleTimeout(t));
        }
        tokio::select! {
            result = &mut fut => return result,
            // Progress since may have moved the deadline: looked at again.
            _ = tokio::time::sleep_until(at.into()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(kind: FrameType, flags: u8) -> FrameHeader {
        FrameHeader {
            length: 0,
            kind,
            flags,
            stream: 1,
        }
    }

    #[test]
    fn a_header_block_is_open_until_a_frame_ends_it() {
        let open = header_block_open(false, &head(FrameType::HEADERS, 0));
        assert!(open);
        // Another kind of frame leaves it as it was.
        assert!(header_block_open(open, &head(FrameType::PING, 0)));
        assert!(header_block_open(open, &head(FrameType::CONTINUATION, 0)));
        assert!(!header_block_open(
            open,
            &head(FrameType::CONTINUATION, flags::END_HEADERS)
        ));
        assert!(!header_block_open(
            false,
            &head(FrameType::HEADERS, flags::END_HEADERS | flags::END_STREAM)
        ));
    }

    #[test]
    fn the_nearest_deadline_wins_and_the_handshake_one_ends_with_it() {
        let p = Progress::new();
        let limits = Limits {
            handshake: Some(Duration::from_secs(10)),
            idle: Some(Duration::from_secs(1)),
        };
        let (at, limit) = p.next_deadline(limits, false).unwrap();
        assert_eq!(limit, Limit::Idle(Duration::from_secs(1)));
        assert_eq!(at, p.accepted + Duration::from_secs(1));
        let limits = Limits {
            idle: Some(Duration::from_secs(60)),
            ..limits
        };
        let (_, limit) = p.next_deadline(limits, false).unwrap();
        assert_eq!(limit, Limit::Handshake(Duration::from_secs(10)));
        let (_, limit) = p.next_deadline(limits, true).unwrap();
        assert_eq!(limit, Limit::Idle(Duration::from_secs(60)));
        assert_eq!(p.next_deadline(Limits::default(), false), None);
    }

    #[test]
    fn progress_moves_the_idle_deadline() {
        let p = Progress::new();
        let limits = Limits {
            handshake: None,
            idle: Some(Duration::from_millis(100)),
        };
        let (first, _) = p.next_deadline(limits, true).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        p.note();
        let (second, _) = p.next_deadline(limits, true).unwrap();
        assert!(second >= first + Duration::from_millis(5));
    }

    #[tokio::test]
    async fn the_watchdog_ends_a_connection_without_progress_not_before() {
        let p = Progress::new();
        let t = Duration::from_millis(60);
        // Progress after 40 ms moves the end to 100 ms.
        let noted = async {
            tokio::time::sleep(Duration::from_millis(40)).await;
            p.note();
            std::future::pending::<Result<(), ConnError>>().await
        };
        let ended = watch(noted, t, &p).await;
        let after = p.accepted.elapsed();
        assert!(matches!(ended, Err(ConnError::IdleTimeout(d)) if d == t));
        assert!(after >= Duration::from_millis(100), "{after:?}");
        // A future that ends in time is its own result.
        let quick = async { Ok::<_, ConnError>(7) };
        assert_eq!(watch(quick, t, &Progress::new()).await.unwrap(), 7);
    }
}
