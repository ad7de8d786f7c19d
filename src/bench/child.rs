//! The server under measurement, in processes of its own: an `h2lab serve`
//! child, or a peer server. Stopped when dropped, also on an error path.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::system::{self, pinned};
use super::{peers, BenchError, Target};
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

impl ServerChild {
    /// The child's process id (its group's leader).
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

/// Where a server runs: the binary of ours, its CPUs, the address it
/// listens on.
pub struct ServerPlace<'a> {
    pub exe: &'a Path,
    pub pin: Option<&'a str>,
    pub host: std::net::IpAddr,
}

/// A server under measurement: our child, or a peer (with its children).
pub enum Running {
    H2lab {
        child: ServerChild,
        url: String,
        /// `Source::File`: the body file, kept until the run is over
        /// (removed on drop).
        _file: Option<BodyFileGuard>,
    },
    Peer(peers::RunningPeer),
}

/// A body file the bench wrote for `serve --body-file`; removed on drop.
pub struct BodyFileGuard(std::path::PathBuf);

impl Drop for BodyFileGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes `body`'s octets (the pattern `serve --body` sends, so that the
/// load client's check holds) to a file of its own.
fn body_file(body: Body) -> std::io::Result<BodyFileGuard> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("h2lab-body-{}-{n}.html", std::process::id()));
    let mut content = Vec::with_capacity(body.len() as usize);
    Body::append(0, body.len() as usize, &mut content);
    std::fs::write(&path, content)?;
    Ok(BodyFileGuard(path))
}

impl Running {
    /// Starts `target` (pinned as the bench says; ours traced to `trace`
    /// if given) and waits until it serves.
    /// `threads`: the cell's (0: the server's default); `handler`: each
    /// request's work (ours only) and body (a peer serves it as a file);
    /// `offload`: workers for the work (ours only; 0: none).
    pub fn start(
        place: &ServerPlace,
        target: Target,
        threads: usize,
        handler: Handler,
        offload: usize,
        source: super::matrix::Source,
        trace: Option<&TraceConfig>,
    ) -> Result<Running, BenchError> {
        match target {
            Target::H2lab(setup) => {
                start_serve(place, setup, threads, handler, offload, source, trace)
            }
            Target::Peer { peer, tls } => {
                peers::start(peer, tls, threads, place.pin, handler.body, place.host)
                    .map(Running::Peer)
                    .map_err(|reason| BenchError::Serve { target, reason })
            }
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
    place: &ServerPlace,
    setup: Setup,
    threads: usize,
    handler: Handler,
    offload: usize,
    source: super::matrix::Source,
    trace: Option<&TraceConfig>,
) -> Result<Running, BenchError> {
    let mut args: Vec<String> = Vec::new();
    let file = match source {
        super::matrix::Source::File => {
            Some(body_file(handler.body).map_err(|e| BenchError::Serve {
                target: Target::H2lab(setup),
                reason: format!("cannot write the body file: {e}"),
            })?)
        }
        _ => None,
    };
    let mut arg = |name: &str, value: String| args.extend([name.to_string(), value]);
    if offload > 0 {
        arg("--offload", offload.to_string());
    }
    if threads > 0 {
        arg("--threads", threads.to_string());
    }
    if !handler.work.is_none() {
        arg("--work", handler.work.to_string());
    }
    match &file {
        Some(f) => arg("--body-file", f.0.display().to_string()),
        None if handler.body != Body::default() => arg("--body", handler.body.to_string()),
        None => {}
    }
    if let Some(t) = trace {
        arg("--trace", t.prefix.display().to_string());
    }
    arg("--dispatch", setup.dispatch.to_string());
    arg("--engine", setup.engine.to_string());
    arg("--tls", setup.tls.name().to_string());
    if handler.blind {
        args.push("--blind".into());
    }
    if !place.host.is_loopback() {
        args.extend(["--host".into(), place.host.to_string()]);
    }
    match serve_child(place.exe, &args, place.pin) {
        Ok((child, url)) => Ok(Running::H2lab {
            child,
            url,
            _file: file,
        }),
        Err(ServeFailure::Spawn(source)) => Err(BenchError::Spawn {
            exe: place.exe.to_path_buf(),
            source,
        }),
        Err(ServeFailure::NotServing(reason)) => Err(BenchError::Serve {
            target: Target::H2lab(setup),
            reason,
        }),
    }
}

/// Why an `h2lab serve` child is not serving.
#[derive(Debug)]
pub enum ServeFailure {
    /// The binary could not be run.
    Spawn(std::io::Error),
    /// It ran, and said no `listening on` line: what it said instead.
    NotServing(String),
}

/// `EXE serve --port 0 ARGS…` (under `taskset -c PIN` if given), an owned
/// process group; its one stdout line tells the URL. What the server says
/// on stderr goes to a file of its own, and is the reason given if it
/// does not start.
pub fn serve_child(
    exe: &Path,
    args: &[String],
    pin: Option<&str>,
) -> Result<(ServerChild, String), ServeFailure> {
    let mut serve = Command::new(exe);
    serve.args(["serve", "--port", "0"]).args(args);
    let log = tempfile().map_err(ServeFailure::Spawn)?;
    let mut child = system::owned(pinned(serve, pin))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log.try_clone().map_err(ServeFailure::Spawn)?)
        .spawn()
        .map_err(ServeFailure::Spawn)?;
    system::register(child.id());
    let stdout = child.stdout.take().expect("piped");
    let child = ServerChild(child);
    let mut line = String::new();
    let _ = BufReader::new(stdout).read_line(&mut line);
    match line.strip_prefix("listening on ") {
        Some(url) => Ok((child, url.trim().to_string())),
        None => {
            drop(child);
            let said = std::fs::read_to_string(log_path(&log)).unwrap_or_default();
            let said = said.trim();
            Err(ServeFailure::NotServing(match said.is_empty() {
                true => "no `listening on` line (see `h2lab serve --help`)".into(),
                false => said.lines().next().unwrap_or(said).to_string(),
            }))
        }
    }
}

/// An anonymous file for a child's stderr (unlinked at once: nothing is
/// left behind).
fn tempfile() -> std::io::Result<std::fs::File> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("h2lab-serve-{}-{n}.err", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// Where an open file can be read again (its `/proc/self/fd` link).
fn log_path(file: &std::fs::File) -> std::path::PathBuf {
    use std::os::fd::AsRawFd;
    std::path::PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
}
