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
        Self::accepted_at(Instant::now())
    }

    /// A connection accepted at `accepted` (time is an argument: the rules
    /// below are tested on a clock of the test's own).
    pub fn accepted_at(accepted: Instant) -> Self {
        Self {
            accepted,
            last_ns: AtomicU64::new(0),
        }
    }

    /// The client made progress now.
    pub fn note(&self) {
        self.note_at(Instant::now());
    }

    /// The client made progress at `now` (never before its accept).
    pub fn note_at(&self, now: Instant) {
        let since = now.saturating_duration_since(self.accepted);
        let ns = u64::try_from(since.as_nanos()).unwrap_or(u64::MAX);
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
        // tokio's clock: the real one, or a test's paused one.
        if tokio::time::Instant::now().into_std() >= at {
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

    /// `note` stamps the progress at the real clock's now: the idle
    /// deadline moves from the accept to at least a timeout from now.
    #[test]
    fn note_stamps_now() {
        let before = Instant::now();
        let p = Progress::accepted_at(before - Duration::from_secs(10));
        let idle = Limits {
            handshake: None,
            idle: Some(Duration::from_secs(1)),
        };
        assert_eq!(
            p.next_deadline(idle, true).unwrap().0,
            before - Duration::from_secs(9)
        );
        p.note();
        assert!(p.next_deadline(idle, true).unwrap().0 >= before + Duration::from_secs(1));
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

    /// Time is the test's own: an instant, and offsets from it.
    fn clock() -> impl Fn(u64) -> Instant {
        let t0 = Instant::now();
        move |ms| t0 + Duration::from_millis(ms)
    }

    #[test]
    fn progress_moves_the_idle_deadline() {
        let at = clock();
        let p = Progress::accepted_at(at(0));
        let limits = Limits {
            handshake: None,
            idle: Some(Duration::from_millis(100)),
        };
        assert_eq!(p.next_deadline(limits, true).unwrap().0, at(100));
        p.note_at(at(5));
        assert_eq!(p.next_deadline(limits, true).unwrap().0, at(105));
        // The handshake deadline counts from the accept, whatever comes.
        let both = Limits {
            handshake: Some(Duration::from_millis(300)),
            idle: Some(Duration::from_millis(400)),
        };
        p.note_at(at(250));
        assert_eq!(
            p.next_deadline(both, false),
            Some((at(300), Limit::Handshake(Duration::from_millis(300))))
        );
        assert_eq!(
            p.next_deadline(both, true),
            Some((at(650), Limit::Idle(Duration::from_millis(400))))
        );
    }

    /// The rule the idle timeout and the header-read deadline share, fed
    /// octets at the test's own times: trickled octets move no deadline, nor
    /// do CONTINUATIONs of a block that never ends; a whole frame outside a
    /// block does, to the time it was completed.
    #[test]
    fn only_whole_frames_outside_a_header_block_are_progress() {
        use crate::frame::CLIENT_PREFACE;
        let at = clock();
        let p = std::sync::Arc::new(Progress::accepted_at(at(0)));
        let limits = Limits {
            handshake: None,
            idle: Some(Duration::from_millis(400)),
        };
        let deadline = || p.next_deadline(limits, true).unwrap().0;
        let mut frames = super::super::Frames::new(1);
        frames.watch(p.clone());
        // The preface, then SETTINGS one octet every 10 ms: whole at 90 ms.
        frames.seen_in_at(CLIENT_PREFACE, at(0));
        let settings = [0, 0, 0, 4, 0, 0, 0, 0, 0];
        for (i, octet) in settings.iter().enumerate() {
            assert_eq!(deadline(), at(400), "octet {i}: no progress yet");
            frames.seen_in_at(&[*octet], at(10 * (i as u64 + 1)));
        }
        assert_eq!(deadline(), at(490), "SETTINGS whole at 90 ms");
        // HEADERS without END_HEADERS, then empty CONTINUATIONs: no progress.
        frames.seen_in_at(&[0, 0, 1, 1, 0, 0, 0, 0, 1, 0x82], at(100));
        for t in [150, 300, 450] {
            frames.seen_in_at(&[0, 0, 0, 9, 0, 0, 0, 0, 1], at(t));
            assert_eq!(deadline(), at(490), "CONTINUATION at {t} ms");
        }
        // The block ends: progress at once.
        frames.seen_in_at(&[0, 0, 0, 9, 4, 0, 0, 0, 1], at(480));
        assert_eq!(deadline(), at(880));
        // A PING split in two: progress when its second half comes.
        let ping = [0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        frames.seen_in_at(&ping[..5], at(500));
        assert_eq!(deadline(), at(880));
        frames.seen_in_at(&ping[5..], at(600));
        assert_eq!(deadline(), at(1000));
    }

    /// The watchdog on tokio's paused clock: progress at 40 ms moves the end
    /// from 60 ms to exactly 100 ms; a future that ends in time is its own
    /// result.
    #[tokio::test(start_paused = true)]
    async fn the_watchdog_ends_a_connection_without_progress_not_before() {
        let now = || tokio::time::Instant::now().into_std();
        let start = now();
        let p = Progress::accepted_at(start);
        let t = Duration::from_millis(60);
        let noted = async {
            tokio::time::sleep(Duration::from_millis(40)).await;
            p.note_at(now());
            std::future::pending::<Result<(), ConnError>>().await
        };
        let ended = watch(noted, t, &p).await;
        assert!(matches!(ended, Err(ConnError::IdleTimeout(d)) if d == t));
        assert_eq!(now() - start, Duration::from_millis(100));
        let quick = async { Ok::<_, ConnError>(7) };
        assert_eq!(
            watch(quick, t, &Progress::accepted_at(now()))
                .await
                .unwrap(),
            7
        );
    }
}
