//! A reactor's place among the others: its index, its inbox, the inboxes
//! it hands connections to, and what every reactor of a server shares
//! (client ids, the open count for `--max-clients`). Below both loops
//! (`PollLoop`, `UringLoop`) and `reactors`, which starts them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use super::inbox::Inbox;

/// What every reactor of a server shares.
#[derive(Debug, Default)]
pub struct Common {
    next_id: AtomicU64,
    open: AtomicUsize,
}

impl Common {
    /// The next client id: 1-based, in accept order across reactors.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Counts one more open client unless `max` are open already.
    pub fn try_open(&self, max: Option<usize>) -> bool {
        let Some(max) = max else {
            self.open.fetch_add(1, Ordering::Relaxed);
            return true;
        };
        self.open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    pub fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A reactor's place among the others.
pub struct Reactor {
    pub index: usize,
    pub inbox: Arc<Inbox>,
    /// `handoff`, on the reactor that accepts: every reactor's inbox (its
    /// own included), taken in turn.
    pub handoff: Vec<Arc<Inbox>>,
    pub common: Arc<Common>,
}
