//! The server under measurement, in processes of its own: an `h2lab serve`
//! child, or a peer server. Stopped when dropped, also on an error path.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use super::system::{self, pinned};
use super::{peers, BenchConfig, BenchError, Target};
use crate::engine::{Body, Handler};
use crate::server::Setup;
use crate::trace::TraceConfig;

/// The server child (an owned process group), killed when dropped.
pub struct ServerChild(Child);

impl Drop for ServerChild {
    fn drop(&mut self) {
        system::kill_group(self.0.id());
        let _ = self.0.wait();
    }
}

/// A server under measurement: our child, or a peer (with its children).
pub enum Running {
    H2lab { child: ServerChild, url: String },
    Peer(peers::RunningPeer),
}

impl Running {
    /// Starts `target` (pinned as the bench says; ours traced to `trace`
    /// if given) and waits until it serves.
    /// `threads`: the cell's (0: the server's default); `handler`: each
    /// request's work (ours only) and body (a peer serves it as a file);
    /// `offload`: workers for the work (ours only; 0: none).
    pub fn start(
        config: &BenchConfig,
        target: Target,
        threads: usize,
        handler: Handler,
        offload: usize,
        trace: Option<&TraceConfig>,
    ) -> Result<Running, BenchError> {
        match target {
            Target::H2lab(setup) => start_serve(config, setup, threads, handler, offload, trace),
            Target::Peer { peer, tls } => peers::start(
                peer,
                tls,
                threads,
                config.pin_server.as_deref(),
                handler.body,
            )
            .map(Running::Peer)
            .map_err(|reason| BenchError::Serve { target, reason }),
        }
    }

    pub fn url(&self) -> &str {
        match self {
            Running::H2lab { url, .. } => url,
            Running::Peer(p) => &p.url,
        }
    }

    /// The processes whose CPU time is the server's.
    pub fn pids(&self) -> Vec<u32> {
        match self {
            Running::H2lab { child, .. } => vec![child.0.id()],
            Running::Peer(p) => p.pids(),
        }
    }

    /// Stops our server with SIGTERM and waits (2 minutes at most: a second
    /// at full speed is millions of records to format) for it to exit, so
    /// that it completes its trace; a peer is killed.
    pub fn terminate(self) -> Result<(), String> {
        let Running::H2lab { mut child, .. } = self else {
            return Ok(());
        };
        let pid = rustix::process::Pid::from_raw(child.0.id() as i32)
            .ok_or_else(|| "no pid".to_string())?;
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)
            .map_err(|e| format!("cannot signal the server: {e}"))?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            match child.0.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(format!("the server exited with {status}")),
                Ok(None) if std::time::Instant::now() > deadline => {
                    return Err("the server did not stop within 120 s of SIGTERM".into())
                }
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(10)),
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

/// `h2lab serve` for `setup` on a free port; its one stdout line tells the URL.
fn start_serve(
    config: &BenchConfig,
    setup: Setup,
    threads: usize,
    handler: Handler,
    offload: usize,
    trace: Option<&TraceConfig>,
) -> Result<Running, BenchError> {
    let mut serve = Command::new(&config.exe);
    serve.args(["serve", "--port", "0"]);
    if offload > 0 {
        serve.args(["--offload", &offload.to_string()]);
    }
    if threads > 0 {
        serve.args(["--threads", &threads.to_string()]);
    }
    if !handler.work.is_none() {
        serve.args(["--work", &handler.work.to_string()]);
    }
    if handler.body != Body::default() {
        serve.args(["--body", &handler.body.to_string()]);
    }
    if let Some(t) = trace {
        serve.arg("--trace").arg(&t.prefix);
    }
    let mut child = system::owned(pinned(serve, config.pin_server.as_deref()))
        .args(["--dispatch", &setup.dispatch.to_string()])
        .args(["--engine", &setup.engine.to_string()])
        .args(["--tls", setup.tls.name()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| BenchError::Spawn {
            exe: config.exe.clone(),
            source,
        })?;
    system::register(child.id());
    let stdout = child.stdout.take().expect("piped");
    let child = ServerChild(child);
    let failed = |reason: String| BenchError::Serve {
        target: Target::H2lab(setup),
        reason,
    };
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| failed(e.to_string()))?;
    match line.strip_prefix("listening on ") {
        Some(url) => Ok(Running::H2lab {
            child,
            url: url.trim().to_string(),
        }),
        None => Err(failed(
            "no `listening on` line (see `h2lab serve --help`)".into(),
        )),
    }
}
