//! The `tokio` dispatch (the seed's cl-async/libuv `:async`): a task per
//! connection on a current-thread runtime, or a multi-thread one with
//! `threads > 0`. The mini engine runs through the same [`MiniConn`] as the
//! blocking dispatches; the `h2` engine through [`conn::h2`].

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::buffers::BufPool;
use crate::server::conn::idle::{within, Progress};
use crate::server::conn::socket::{SocketTrace, TokioSocket};
use crate::server::conn::{self, ConnError, MiniConn};
use crate::server::io::{interrupted, would_block, ACCEPT_ERROR_PAUSE};
use crate::server::shared::Shared;
use crate::server::Engine;

/// A runtime for the dispatch: current-thread for `threads == 0`; with
/// `offload > 0`, a blocking pool of that many threads at most (the
/// offloaded work's). The threads it starts get the trace dispatcher, if
/// any.
pub fn runtime(
    threads: usize,
    offload: usize,
    dispatch: Option<tracing::Dispatch>,
) -> io::Result<tokio::runtime::Runtime> {
    let mut builder = match threads {
        0 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    if offload > 0 {
        builder.max_blocking_threads(offload);
    }
    builder
        .thread_name("h2lab-tokio")
        .on_thread_start(move || {
            if let Some(d) = &dispatch {
                // Kept for the thread's life: the guard is never dropped.
                std::mem::forget(tracing::dispatcher::set_default(d));
            }
        })
        // The runtime's shutdown returns once its threads say they are
        // done, which may come before their thread-local records go: they
        // are sent here first, so a stop's trace has them all.
        .on_thread_stop(crate::trace::flush_this_thread)
        .enable_all()
        .build()
}

/// Accepts until `stop` changes, then lets every connection end and returns.
pub fn run(
    runtime: tokio::runtime::Runtime,
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    runtime.block_on(async move {
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => return eprintln!("h2lab: tokio listener: {e}"),
        };
        let mut tasks = JoinSet::new();
        let mut next_id = 0u64;
        // Said once per run of failures (EMFILE repeats every pause).
        let mut failing = false;
        // After connections came, were established or went, a second
        // without any gives the freed heap back (see `trim`).
        let mut check = tokio::time::interval(TRIM_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut seen = shared.trim.events();
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = check.tick() => {
                    let now = shared.trim.events();
                    if now == seen && shared.trim.due_after().is_some() {
                        shared.trim.release();
                    }
                    seen = now;
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((sock, _peer)) => {
                        failing = false;
                        next_id += 1;
                        shared.accepted();
                        tasks.spawn(connection(next_id, sock, shared.clone(), stop.clone()));
                    }
                    Err(e) if interrupted(&e) => {}
                    Err(e) => {
                        if !failing {
                            eprintln!("h2lab: accept: {e} (retrying every {ACCEPT_ERROR_PAUSE:?})");
                            failing = true;
                        }
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                },
            }
        }
        drop(listener);
        // Every connection watches `stop` too: they end promptly.
        while tasks.join_next().await.is_some() {}
    });
}

async fn connection(id: u64, sock: TcpStream, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let mut responses = 0;
    let result = async {
        let tls = shared.accept(id, |nodelay| sock.set_nodelay(nodelay))?;
        let writes = &shared.counters.writes;
        match shared.engine {
            Engine::Mini => {
                let sock = TokioSocket {
                    sock,
                    trace: SocketTrace::new(id, writes, false),
                };
                let conn = MiniConn::new(tls, id, shared.handler.clone(), shared.offload > 0);
                serve_mini(sock, conn, &shared, &mut responses, stop).await
            }
            Engine::H2 => {
                let mut stop = stop;
                // Boxed: the crate's connection is kilobytes, and a task is
                // as large as its largest branch, so mini connections would
                // carry its room too.
                let settings = shared.h2_settings();
                let serve = Box::pin(conn::h2::serve(id, sock, tls, &settings, &mut responses));
                tokio::select! {
                    r = serve => r,
                    _ = stop.changed() => Ok(()),
                }
            }
        }
    }
    .await;
    shared.finish(id, responses, result);
}

/// How often the accept loop looks whether connections have stopped coming
/// and going.
const TRIM_CHECK: Duration = Duration::from_secs(1);

thread_local! {
    /// Buffers for the mini connections this worker thread runs.
    static POOL: std::cell::RefCell<BufPool> = std::cell::RefCell::new(BufPool::default());
}

async fn serve_mini(
    mut sock: TokioSocket<'_>,
    mut conn: MiniConn,
    shared: &Shared,
    responses: &mut u64,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ConnError> {
    let limits = shared.limits;
    let progress = Progress::new();
    let mut established = false;
    // `--offload`: each request's work on the blocking pool; its stream
    // comes back here when done. (Made only then: a channel is ~0.7 KiB
    // an idle connection would keep.)
    let (done_tx, mut done_rx) = match shared.offload {
        0 => (None, None),
        _ => {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
            (Some(tx), Some(rx))
        }
    };
    let serve = async {
        loop {
            let deadline = progress.next_deadline(limits, established);
            within(deadline, flush(&mut sock, &mut conn)).await?;
            if conn.is_done() {
                return Ok(());
            }
            if let Some(done_tx) = &done_tx {
                let id = sock.trace.client();
                conn.pipeline().take_held(|stream, work| {
                    let done = done_tx.clone();
                    tokio::task::spawn_blocking(move || {
                        conn::do_work(id, &work);
                        let _ = done.send(stream);
                    });
                });
            }
            // Waiting holds no buffer: an idle connection costs its task,
            // its session and its socket only.
            POOL.with_borrow_mut(|pool| conn.return_buffers(pool));
            if !established && conn.is_established() {
                established = true;
                shared.trim.note();
            }
            let deadline = progress.next_deadline(limits, established);
            // Whichever comes first: input, the next `delay:` answer due,
            // or offloaded work done.
            let timer = conn.pipeline().poll_timeout();
            let reads = !conn.reads_no_more();
            let event = within(deadline, async {
                tokio::select! {
                    r = sock.sock.readable(), if reads => match r {
                        Ok(()) => Ok(Wake::Readable),
                        Err(e) => Err(ConnError::from(e)),
                    },
                    _ = sleep_until(timer), if timer.is_some() => Ok(Wake::Timer),
                    Some(stream) = finished(&mut done_rx) => Ok(Wake::Done(stream)),
                    // Nothing to wait for: cannot be (done, returned above).
                    else => Ok(Wake::Timer),
                }
            })
            .await?;
            POOL.with_borrow_mut(|pool| conn.borrow_buffers(pool));
            match event {
                Wake::Timer => conn.pipeline().handle_timeout(std::time::Instant::now()),
                Wake::Done(stream) => conn.pipeline().release(stream),
                Wake::Readable => match sock.try_read(conn.read_buf()) {
                    Ok(n) => conn.handle_read(n)?,
                    Err(e) if would_block(&e) => {}
                    Err(e) => return Err(e.into()),
                },
            }
            if conn.progressed() {
                progress.note();
            }
        }
    };
    // A stop ends the connection wherever it waits: for input, or for a
    // client that does not read to take the output.
    let result: Result<(), ConnError> = tokio::select! {
        result = serve => result,
        _ = stop.changed() => Ok(()),
    };
    if matches!(&result, Err(e) if !e.is_timeout()) {
        // Send what is due (a GOAWAY, a TLS alert) before closing, unless
        // the client does not take it before a deadline or a stop.
        let deadline = progress.next_deadline(limits, true);
        tokio::select! {
            _ = within(deadline, flush(&mut sock, &mut conn)) => {}
            _ = stop.wait_for(|stopping| *stopping) => {}
        }
    }
    *responses = conn.responses();
    result
}

/// What ended a mini connection's wait.
enum Wake {
    Readable,
    /// A `delay:` answer is due.
    Timer,
    /// Offloaded work for this stream is done.
    Done(u32),
}

/// The next offloaded stream done (never without `--offload`).
async fn finished(done: &mut Option<tokio::sync::mpsc::UnboundedReceiver<u32>>) -> Option<u32> {
    match done {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `at` (forever without one: the branch is off then).
async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Writes everything due: one write per chunk read, however many
/// responses it holds, and for large responses one write per pull of the
/// engine, until it waits for the client.
async fn flush(sock: &mut TokioSocket<'_>, conn: &mut MiniConn) -> Result<(), ConnError> {
    loop {
        let out = conn.output()?;
        if out.is_empty() {
            return Ok(());
        }
        sock.write_all(out).await?;
        conn.written();
    }
}
