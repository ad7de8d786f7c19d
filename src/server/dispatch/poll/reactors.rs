//! `poll --threads N`: N reactors, each a [`PollLoop`] on a thread of its
//! own, optionally pinned to a CPU. Connections reach them by one of two
//! designs ([`Spread`]), the comparison this lab exists for: a listener per
//! reactor on one port (`SO_REUSEPORT`, the kernel picks), or one listener
//! on reactor 0, which hands each connection to the next reactor in turn
//! through that reactor's [`Inbox`]. Client ids and `--max-clients` hold
//! across reactors ([`Common`]); each reactor sweeps its own idle clients.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::inbox::Inbox;
use super::{offload, Options, PollLoop};
use crate::server::dispatch::Wake;
use crate::server::shared::Shared;
use crate::server::{ServerConfig, ServerError, Spread};

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

/// Starts the reactors: `listeners` holds one per reactor (`reuseport`) or
/// one for all (`handoff`).
pub fn spawn(
    config: &ServerConfig,
    listeners: Vec<TcpListener>,
    shared: Arc<Shared>,
) -> Result<(Wake, Vec<JoinHandle<()>>), ServerError> {
    let n = config.reactors();
    let common = Arc::new(Common::default());
    let mut polls = Vec::with_capacity(n);
    let mut inboxes = Vec::with_capacity(n);
    for _ in 0..n {
        let poll = mio::Poll::new().map_err(ServerError::Spawn)?;
        inboxes.push(Arc::new(
            Inbox::new(poll.registry()).map_err(ServerError::Spawn)?,
        ));
        polls.push(poll);
    }
    // `--offload N`: one pool of workers for every reactor. Their threads
    // come after the loops' in the list the stop joins: the workers end
    // when the loops, which hold the queue, have.
    let (pool, workers) = match config.offload {
        0 => (None, Vec::new()),
        n => {
            let (pool, workers) = offload::Pool::start(n, &shared).map_err(ServerError::Spawn)?;
            (Some(pool), workers)
        }
    };
    let mut listeners = listeners.into_iter();
    let mut loops = Vec::with_capacity(n);
    for (i, poll) in polls.into_iter().enumerate() {
        let (listener, handoff) = match config.spread {
            Spread::Reuseport => (listeners.next(), Vec::new()),
            Spread::Handoff if i == 0 => (listeners.next(), inboxes.clone()),
            Spread::Handoff => (None, Vec::new()),
        };
        let options = Options {
            max_clients: config.max_clients,
            idle_timeout: config.idle_timeout,
            handshake_timeout: config.handshake_timeout,
            offload: pool.clone(),
        };
        let reactor = Reactor {
            index: i,
            inbox: inboxes[i].clone(),
            handoff,
            common: common.clone(),
        };
        loops.push(
            PollLoop::new(poll, listener, reactor, shared.clone(), options)
                .map_err(ServerError::Spawn)?,
        );
    }
    let mut threads = Vec::with_capacity(n);
    for (i, event_loop) in loops.into_iter().enumerate() {
        let name = match n {
            1 => "h2lab-poll".to_string(),
            _ => format!("h2lab-poll-{i}"),
        };
        let cpu = (!config.pin.is_empty()).then(|| config.pin[i % config.pin.len()]);
        let traced = shared.clone();
        let run = move || {
            if let Some(cpu) = cpu {
                pin_to(cpu);
            }
            traced.traced(|| event_loop.run())
        };
        match std::thread::Builder::new().name(name).spawn(run) {
            Ok(t) => threads.push(t),
            Err(e) => {
                // Stop the reactors already running before saying why.
                shared.begin_stop();
                inboxes.iter().for_each(|i| i.wake());
                threads.into_iter().for_each(|t: JoinHandle<()>| {
                    let _ = t.join();
                });
                return Err(ServerError::Spawn(e));
            }
        }
    }
    drop(pool);
    threads.extend(workers);
    Ok((Wake::Poll(inboxes), threads))
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

/// Runs this thread on `cpu` only; a CPU that cannot be used is said once,
/// and the thread runs unpinned.
fn pin_to(cpu: usize) {
    if cpu >= rustix::thread::CpuSet::MAX_CPU {
        return eprintln!("h2lab: cannot pin a reactor to CPU {cpu}: no such CPU");
    }
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    if let Err(e) = rustix::thread::sched_setaffinity(None, &set) {
        eprintln!("h2lab: cannot pin a reactor to CPU {cpu}: {e}");
    }
}
