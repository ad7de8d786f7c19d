//! `bench --server-host HOST`: each cell's server, ours or a peer, runs on
//! another host, started there by an agent (`h2lab remote-server`, over
//! the host's ssh connection) with the very code that starts it here
//! (`child.rs`), pinned to `--pin-server`'s CPUs of that host. The agent
//! meters it there as `meter.rs` does here (CPU time and context switches
//! per thread, system calls with perf) over the window the controller
//! names in that host's clock, and says what it read as one JSON line.
//! The server dies with the agent's session: when the agent's input ends
//! (the session closed, the connection lost, the controller gone), it
//! kills its server's process group at once, mid-window too, and exits.
//!
//! The protocol, one line each way: the agent says `url URL` once the
//! server serves; the controller says `meter START WARM_UP MEASURED
//! COUNT` (ns, START in the host's clock; COUNT 1 for a counting run),
//! and the agent answers `metered {JSON}` after the window, or `error
//! WHY`; then `stop`: the agent stops the server with SIGTERM (a traced
//! one completes its trace), says `stopped` (or `error WHY`), sends each
//! trace file back (`file NAME`, `data BASE64` lines, `end`; removed
//! there) and `done`.

use std::io::{BufRead, Write};
use std::time::Duration;

use super::child::{Running, ServerPlace};
use super::matrix::{Cell, Source};
use super::meter::{self, Metered};
use super::{counts::Syscalls, BenchError};
use crate::cli::{self, CmdResult, Exit};
use crate::engine::{Body, Handler, Work};
use crate::load::remote::Hosts;

/// `h2lab remote-server`: what a bench asks a server host to run (the
/// cell's server, as `child.rs` starts it here).
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// The target's columns, as bench rows have them (`poll mini none`,
    /// `h2o peer openssl`).
    #[arg(long, required_unless_present = "serve_args")]
    pub dispatch: Option<String>,
    #[arg(long, required_unless_present = "serve_args")]
    pub engine: Option<String>,
    #[arg(long, required_unless_present = "serve_args")]
    pub tls: Option<String>,
    /// Instead of a target: `serve`'s own options (`ab`'s sides), run by
    /// `--serve-exe` (default: this h2lab).
    #[arg(long, allow_hyphen_values = true, conflicts_with_all = ["dispatch", "engine", "tls"])]
    pub serve_args: Option<String>,
    #[arg(long, requires = "serve_args")]
    pub serve_exe: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    #[arg(long)]
    pub work: Option<Work>,
    #[arg(long)]
    pub body: Option<Body>,
    #[arg(long, default_value_t = 0)]
    pub offload: usize,
    #[arg(long, default_value = "reading")]
    pub source: String,
    /// The address it listens on.
    #[arg(long)]
    pub host: std::net::IpAddr,
    /// Its CPUs on this host.
    #[arg(long)]
    pub pin: Option<String>,
    /// Trace ours (`--trace-cost`) to files of this name, in a directory
    /// of the agent's own; they go back to the controller at `stop`.
    #[arg(long, conflicts_with = "serve_args", value_parser = file_name)]
    pub trace: Option<String>,
}

/// A file name, never a path.
fn file_name(s: &str) -> Result<String, String> {
    match s.is_empty() || s.contains('/') || s.starts_with('.') {
        true => Err(format!("'{s}' is not a file name")),
        false => Ok(s.to_string()),
    }
}

/// Where the agent traces its server: a directory of its own.
fn trace_at(name: &str) -> crate::trace::TraceConfig {
    let dir = std::env::temp_dir().join(format!("h2lab-remote-trace-{}", std::process::id()));
    crate::trace::TraceConfig::new(dir.join(name))
}

/// Octets of a trace file per `data` line.
const CHUNK: usize = 48 << 10;

/// What the agent read of its server over a window.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct MeteredWire {
    cpu_s: f64,
    ctx_switches: u64,
    /// All, reads, writes, file reads (counting runs).
    syscalls: Option<[u64; 4]>,
}

/// The agent: starts the server, says where it serves, meters it when
/// asked, and stops it when its input ends.
pub fn agent(args: AgentArgs) -> CmdResult {
    let exe = std::env::current_exe().map_err(|e| anyhow::anyhow!("this h2lab's path: {e}"))?;
    let server = match &args.serve_args {
        Some(words) => {
            let exe = args.serve_exe.clone().unwrap_or(exe);
            let mut words: Vec<String> = words.split_whitespace().map(str::to_string).collect();
            if !args.host.is_loopback() {
                words.extend(["--host".into(), args.host.to_string()]);
            }
            match super::child::serve_child(&exe, &words, args.pin.as_deref()) {
                Ok((child, url)) => Running::H2lab {
                    child,
                    url,
                    _file: None,
                },
                Err(super::child::ServeFailure::Spawn(e)) => {
                    return Err(anyhow::anyhow!("cannot run {}: {e}", exe.display()).into())
                }
                Err(super::child::ServeFailure::NotServing(said)) => {
                    return Err(anyhow::anyhow!("`serve {}`: {said}", words.join(" ")).into())
                }
            }
        }
        None => {
            let column = |c: &Option<String>| c.clone().unwrap_or_default();
            let target = super::Target::from_columns(
                &column(&args.dispatch),
                &column(&args.engine),
                &column(&args.tls),
            )
            .map_err(|e| cli::bad_input(anyhow::anyhow!(e)))?;
            let source =
                Source::parse(&args.source).map_err(|e| cli::bad_input(anyhow::anyhow!(e)))?;
            let handler = Handler {
                work: args.work.unwrap_or(Work::None),
                body: args.body.unwrap_or_default(),
                blind: source == Source::Blind,
                ..Handler::default()
            };
            let place = ServerPlace {
                exe: &exe,
                pin: args.pin.as_deref(),
                host: args.host,
            };
            let trace = args.trace.as_deref().map(trace_at);
            Running::start(
                &place,
                target,
                args.threads,
                handler,
                args.offload,
                source,
                trace.as_ref(),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?
        }
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "url {}", server.url())?;
    out.flush()?;
    // The input is read on a thread of its own, so that its end is seen
    // at once, even while a window is metered: the server's group (an
    // owned child, `system::register`) is killed, and the agent exits.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                return;
            }
        }
        super::system::interrupt();
        remove_own_temporaries();
        std::process::exit(3);
    });
    let mut server = Some(server);
    for line in rx {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words[..] == ["stop"] {
            let stopped = server.take().map_or(Ok(()), Running::terminate);
            match stopped {
                Ok(()) => writeln!(out, "stopped")?,
                Err(e) => writeln!(out, "error {e}")?,
            }
            if let Some(name) = &args.trace {
                send_trace(&mut out, &trace_at(name))?;
            }
            writeln!(out, "done")?;
            out.flush()?;
            return Ok(Exit::Success);
        }
        let Some(running) = server.as_ref() else {
            break;
        };
        let reply = match words[..] {
            ["meter", start, warm_up, measured, count] => {
                let ns = |w: &str| w.parse::<u64>().map_err(|_| format!("'{w}' is not ns"));
                match (ns(start), ns(warm_up), ns(measured)) {
                    (Ok(start), Ok(warm_up), Ok(measured)) => {
                        let lead = Hosts::until(start);
                        let window = Duration::from_nanos(warm_up) + Duration::from_nanos(measured);
                        let (_, metered) = meter::around(
                            &running.pids(),
                            lead,
                            Duration::from_nanos(warm_up),
                            Duration::from_nanos(measured),
                            count == "1",
                            None,
                            || std::thread::sleep(lead + window),
                        );
                        match metered {
                            Ok(m) => format!("metered {}", serde_json::to_string(&wire(&m))?),
                            Err(e) => format!("error {e}"),
                        }
                    }
                    _ => format!("error a bad meter line: {line}"),
                }
            }
            _ => format!("error an unknown line: {line}"),
        };
        writeln!(out, "{reply}")?;
        out.flush()?;
    }
    drop(server);
    Ok(Exit::Success)
}

/// What this process made in the temporary directory, named by its pid
/// (a peer's folder, a body file, the trace directory): removed when it
/// must exit at once, where no destructor runs.
fn remove_own_temporaries() {
    let pid = std::process::id();
    let ours = [
        format!("h2lab-peer-{pid}-"),
        format!("h2lab-body-{pid}-"),
        format!("h2lab-remote-trace-{pid}"),
    ];
    let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if ours.iter().any(|p| name.starts_with(p.as_str())) {
            let path = entry.path();
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
        }
    }
}

/// A stopped server's trace files, back over the session, then removed
/// here (with their directory, once empty).
fn send_trace(out: &mut impl Write, trace: &crate::trace::TraceConfig) -> std::io::Result<()> {
    use base64::Engine as _;
    for path in [trace.json_path(), trace.csv_path(), trace.meta_path()] {
        let Ok(octets) = std::fs::read(&path) else {
            continue;
        };
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        writeln!(out, "file {}", name.unwrap_or_default())?;
        for chunk in octets.chunks(CHUNK) {
            writeln!(
                out,
                "data {}",
                base64::engine::general_purpose::STANDARD.encode(chunk)
            )?;
        }
        writeln!(out, "end")?;
        let _ = std::fs::remove_file(&path);
    }
    if let Some(dir) = trace.prefix.parent() {
        let _ = std::fs::remove_dir(dir);
    }
    Ok(())
}

fn wire(m: &Metered) -> MeteredWire {
    MeteredWire {
        cpu_s: m.cpu_s,
        ctx_switches: m.ctx_switches,
        syscalls: m.syscalls.map(|s| [s.all, s.reads, s.writes, s.file_reads]),
    }
}

/// A cell's server on the server host, its agent's session open.
pub struct RemoteServer {
    session: crate::hosts::Session,
    pub url: String,
    /// The host's clock minus ours, ns.
    offset: crate::hosts::Offset,
}

impl RemoteServer {
    /// Starts `cell`'s server on `host` (reached: one host), listening on
    /// `listen`, pinned to `pin` there; waits until it serves.
    pub fn start(
        host: &Hosts,
        cell: Cell,
        listen: std::net::IpAddr,
        pin: Option<&str>,
        trace: Option<&crate::trace::TraceConfig>,
    ) -> Result<RemoteServer, BenchError> {
        let [dispatch, engine, tls] = cell.target.columns();
        let mut argv: Vec<String> = vec!["remote-server".into()];
        let mut arg = |name: &str, value: String| argv.extend([name.to_string(), value]);
        arg("--dispatch", dispatch);
        arg("--engine", engine);
        arg("--tls", tls);
        arg("--threads", cell.threads.to_string());
        if !cell.work.is_none() {
            arg("--work", cell.work.to_string());
        }
        arg("--body", cell.body.to_string());
        arg("--offload", cell.offload.to_string());
        arg("--source", cell.source.name().to_string());
        arg("--host", listen.to_string());
        if let Some(pin) = pin {
            arg("--pin", pin.to_string());
        }
        if let Some(name) = trace.and_then(|t| t.prefix.file_name()) {
            arg("--trace", name.to_string_lossy().into_owned());
        }
        RemoteServer::open(host, &argv).map_err(|reason| BenchError::Serve {
            target: cell.target,
            reason,
        })
    }

    /// Starts `h2lab serve WORDS` (by `exe` there, if given) on `host`,
    /// listening on `listen`, pinned to `pin` there (`ab`'s sides).
    pub fn start_serve(
        host: &Hosts,
        exe: Option<&std::path::Path>,
        words: &[String],
        listen: std::net::IpAddr,
        pin: Option<&str>,
    ) -> Result<RemoteServer, String> {
        // One word, `=` joined: the value starts with `--`.
        let mut argv: Vec<String> = vec![
            "remote-server".into(),
            format!("--serve-args={}", words.join(" ")),
        ];
        if let Some(exe) = exe {
            argv.extend(["--serve-exe".into(), exe.display().to_string()]);
        }
        argv.extend(["--host".into(), listen.to_string()]);
        if let Some(pin) = pin {
            argv.extend(["--pin".into(), pin.to_string()]);
        }
        RemoteServer::open(host, &argv)
    }

    /// Runs the agent with `argv` on the one host, and waits until its
    /// server serves.
    fn open(host: &Hosts, argv: &[String]) -> Result<RemoteServer, String> {
        let name = &host.hosts[0];
        let mut session = host
            .ssh
            .open(name, argv)
            .map_err(|e| format!("on {name}: {e}"))?;
        let url = match session.line() {
            Ok(Some(line)) => match line.strip_prefix("url ") {
                Some(url) => url.to_string(),
                None => return Err(format!("on {name}: {line}")),
            },
            _ => return Err(format!("on {name}: {}", session.end())),
        };
        Ok(RemoteServer {
            session,
            url,
            offset: host.offsets[0],
        })
    }

    /// Asks the agent to meter the server from `start` (ns, our clock):
    /// `warm_up` not counted, then `measured`.
    pub fn meter(
        &mut self,
        start: u64,
        warm_up: Duration,
        measured: Duration,
        counting: bool,
    ) -> Result<(), String> {
        self.session
            .send(&format!(
                "meter {} {} {} {}",
                self.offset.theirs(start),
                warm_up.as_nanos(),
                measured.as_nanos(),
                u8::from(counting)
            ))
            .map_err(|e| format!("the server host's agent: {e}"))
    }

    /// Stops the server (SIGTERM: a traced one completes its trace) and,
    /// for `trace`, brings its files back to the same paths here.
    pub fn finish(&mut self, trace: Option<&crate::trace::TraceConfig>) -> Result<(), String> {
        use base64::Engine as _;
        let lost = |s: &mut crate::hosts::Session| format!("the server host's agent: {}", s.end());
        self.session.send("stop").map_err(|e| e.to_string())?;
        // Written as it comes: a trace can be hundreds of MB.
        let mut file: Option<(std::path::PathBuf, std::io::BufWriter<std::fs::File>)> = None;
        loop {
            let Ok(Some(line)) = self.session.line() else {
                return Err(lost(&mut self.session));
            };
            let (word, rest) = line.split_once(' ').unwrap_or((&line, ""));
            match (word, &mut file) {
                ("stopped", None) => {}
                ("error", None) => return Err(rest.to_string()),
                ("done", None) => return Ok(()),
                ("file", None) => {
                    let dir = trace
                        .and_then(|t| t.prefix.parent())
                        .ok_or("a trace file, and no trace asked for")?;
                    // A name, never a path: the file goes where ours would.
                    file_name(rest).map_err(|e| format!("a trace file: {e}"))?;
                    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                    let path = dir.join(rest);
                    let out = std::fs::File::create(&path)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    file = Some((path, std::io::BufWriter::new(out)));
                }
                ("data", Some((path, out))) => {
                    let octets = base64::engine::general_purpose::STANDARD
                        .decode(rest)
                        .map_err(|e| format!("a trace file's data: {e}"))?;
                    out.write_all(&octets)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                }
                ("end", Some(_)) => {
                    let (path, mut out) = file.take().expect("matched");
                    out.flush()
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                }
                _ => return Err(format!("the server host's agent said {line:?}")),
            }
        }
    }

    /// What the agent read, once its window is over.
    pub fn metered(&mut self) -> Result<Metered, String> {
        let line = match self.session.line() {
            Ok(Some(line)) => line,
            _ => return Err(format!("the server host's agent: {}", self.session.end())),
        };
        if let Some(json) = line.strip_prefix("metered ") {
            let m: MeteredWire = serde_json::from_str(json)
                .map_err(|e| format!("the server host's agent said {json:?}: {e}"))?;
            return Ok(Metered {
                cpu_s: m.cpu_s,
                ctx_switches: m.ctx_switches,
                syscalls: m.syscalls.map(|[all, reads, writes, file_reads]| Syscalls {
                    all,
                    reads,
                    writes,
                    file_reads,
                }),
                net: None,
            });
        }
        Err(format!(
            "the server host's agent: {}",
            line.strip_prefix("error ").unwrap_or(&line)
        ))
    }
}
