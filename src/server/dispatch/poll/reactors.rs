//! `poll --threads N`: N reactors, each a [`PollLoop`] on a thread of its
//! own, optionally pinned to a CPU (`uring --threads N` alike, each an
//! [`UringLoop`], with a listener each). Connections reach them by one of two
//! designs ([`Spread`]), the comparison this lab exists for: a listener per
//! reactor on one port (`SO_REUSEPORT`, the kernel picks), or one listener
//! on reactor 0, which hands each connection to the next reactor in turn
//! through that reactor's [`Inbox`]. Client ids and `--max-clients` hold
//! across reactors ([`Common`]); each reactor sweeps its own idle clients.

use std::net::TcpListener;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::inbox::Inbox;
use super::place::{Common, Reactor};
use super::uring::UringLoop;
use super::{offload, Options, PollLoop};
use crate::server::dispatch::Wake;
use crate::server::shared::Shared;
use crate::server::{Dispatch, ServerConfig, ServerError, Spread};

/// Starts the reactors: `listeners` holds one per reactor (`reuseport`) or
/// one for all (`handoff`).
pub fn spawn(
    config: &ServerConfig,
    listeners: Vec<TcpListener>,
    shared: Arc<Shared>,
) -> Result<(Wake, Vec<JoinHandle<()>>), ServerError> {
    let n = config.reactors();
    let uring = config.dispatch == Dispatch::Uring;
    let common = Arc::new(Common::default());
    let mut polls = Vec::with_capacity(n);
    let mut inboxes = Vec::with_capacity(n);
    for _ in 0..n {
        if uring {
            inboxes.push(Arc::new(Inbox::with_eventfd().map_err(ServerError::Spawn)?));
            polls.push(None);
            continue;
        }
        let poll = mio::Poll::new().map_err(ServerError::Spawn)?;
        inboxes.push(Arc::new(
            Inbox::new(poll.registry()).map_err(ServerError::Spawn)?,
        ));
        polls.push(Some(poll));
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
    // A ring is made on its loop's thread, which says here how that went
    // before the server says it listens (and before its descriptors are
    // counted by anyone).
    let (made_tx, made_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
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
        let run: Box<dyn FnOnce() + Send> = match poll {
            Some(poll) => {
                let event_loop = PollLoop::new(poll, listener, reactor, shared.clone(), options)
                    .map_err(ServerError::Spawn)?;
                Box::new(move || event_loop.run())
            }
            // A ring is made on the thread that submits to it.
            None => {
                let (shared, features, made) = (shared.clone(), config.uring, made_tx.clone());
                Box::new(move || {
                    match UringLoop::new(listener, reactor, shared, options, features) {
                        Ok(event_loop) => {
                            let _ = made.send(Ok(()));
                            drop(made);
                            event_loop.run();
                        }
                        Err(e) => {
                            let _ = made.send(Err(e));
                        }
                    }
                })
            }
        };
        loops.push(run);
    }
    let mut threads = Vec::with_capacity(n);
    for (i, event_loop) in loops.into_iter().enumerate() {
        let name = match n {
            1 => format!("h2lab-{}", config.dispatch),
            _ => format!("h2lab-{}-{i}", config.dispatch),
        };
        let cpu = (!config.pin.is_empty()).then(|| config.pin[i % config.pin.len()]);
        let traced = shared.clone();
        let run = move || {
            if let Some(cpu) = cpu {
                pin_to(cpu);
            }
            traced.traced(event_loop)
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
    drop(made_tx);
    if uring {
        // Every ring made, or the first error (the others are stopped).
        let failed = (0..n).find_map(|_| match made_rx.recv() {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(std::io::Error::other(
                "a ring's thread ended before its ring was made",
            )),
        });
        if let Some(e) = failed {
            drop(pool);
            shared.begin_stop();
            inboxes.iter().for_each(|i| i.wake());
            threads.into_iter().chain(workers).for_each(|t| {
                let _ = t.join();
            });
            return Err(ServerError::UringUnavailable(e.to_string()));
        }
    }
    drop(pool);
    threads.extend(workers);
    Ok((Wake::Poll(inboxes), threads))
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
