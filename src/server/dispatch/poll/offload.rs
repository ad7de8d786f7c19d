//! `poll --offload N`: the requests' `cpu:` and `sleep:` work on N worker
//! threads instead of the loop's, the hybrid design of nginx's thread pools
//! and SEDA. The loop hands a request's work to the pool; the worker does
//! it (in a `work` slice on its own thread) and puts the request in the
//! reactor's inbox of finished work, whose waker wakes the loop to answer.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::inbox::Inbox;
use crate::engine::Work;
use crate::server::conn::do_work;
use crate::server::shared::Shared;

/// One request's work: which reactor and client it came from.
pub struct Job {
    pub inbox: Arc<Inbox>,
    /// The client's slab key and id (a key may be reused once it closes).
    pub key: usize,
    pub client: u64,
    pub stream: u32,
    pub work: Work,
}

/// The workers' queue; the workers end when every sender is gone (the
/// loops have ended).
pub struct Pool {
    jobs: Sender<Job>,
}

impl Pool {
    /// Starts `n` workers, traced as the server's other threads are.
    pub fn start(n: usize, shared: &Arc<Shared>) -> std::io::Result<(Pool, Vec<JoinHandle<()>>)> {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let queue = queue.clone();
            let shared = shared.clone();
            let worker = move || shared.traced(|| work_on(&queue));
            threads.push(
                std::thread::Builder::new()
                    .name(format!("h2lab-work-{i}"))
                    .spawn(worker)?,
            );
        }
        Ok((Pool { jobs }, threads))
    }

    pub fn submit(&self, job: Job) {
        // The workers outlive every loop that submits: a send cannot fail.
        let _ = self.jobs.send(job);
    }
}

impl Clone for Pool {
    fn clone(&self) -> Self {
        Pool {
            jobs: self.jobs.clone(),
        }
    }
}

/// Takes jobs until the queue closes.
fn work_on(queue: &Mutex<Receiver<Job>>) {
    loop {
        let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(job) = job else {
            break;
        };
        do_work(job.client, &job.work);
        job.inbox.finished(job.key, job.client, job.stream);
    }
    crate::trace::flush_this_thread();
}
