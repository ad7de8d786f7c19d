//! Other machines, reached with OpenSSH: a host is an `ssh` destination
//! (`user@name`, or a name from `~/.ssh/config`), a session is the
//! system's `ssh` in batch mode running one h2lab command there, with its
//! standard input and output ours. The remote command dies with its
//! session: every h2lab command run on a host exits when its standard
//! input ends (the session closed, the connection lost, or the controller
//! gone), so nothing of a run outlives it on any host.
//!
//! Why the `ssh` binary and not a Rust SSH crate: it reads the user's own
//! `~/.ssh/config`, agent and keys (ProxyJump, ControlMaster and the rest
//! come with it), and it is what Ansible, Fabric and pdsh drive too.
//!
//! Imports nothing of the crate.

pub mod clock;

use std::io::{self, BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use clock::Offset;

/// The version two ends of a run must share: `h2lab VERSION (COMMIT)`.
pub fn version() -> String {
    format!(
        "h2lab {} ({})",
        env!("CARGO_PKG_VERSION"),
        env!("H2LAB_COMMIT")
    )
}

/// Our clock, ns since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// An `ssh` destination: `name`, `user@name`, or a `Host` of the ssh
/// configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host(String);

impl std::str::FromStr for Host {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("an empty host".into());
        }
        if s.starts_with('-') {
            return Err(format!("'{s}' is not a host (it would be an ssh option)"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "'{s}' is not a host (a space or control character)"
            ));
        }
        Ok(Host(s.to_string()))
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a host cannot take part in a run.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("{0}: unreachable: {1}")]
    Unreachable(Host, String),
    #[error("{host}: runs {theirs}, this is {ours}: the versions must be equal (install this one there, or --remote-bin PATH)")]
    Version {
        host: Host,
        theirs: String,
        ours: String,
    },
    #[error("{0}: no clock offset: {1}")]
    Clock(Host, String),
    #[error("cannot run ssh: {0}")]
    Ssh(io::Error),
}

/// How the hosts are reached: `ssh`'s configuration file and the h2lab
/// to run there.
#[derive(Clone, Debug)]
pub struct Ssh {
    /// `ssh -F FILE`; `None`: the user's `~/.ssh/config`.
    pub config: Option<PathBuf>,
    /// The h2lab on the hosts: a name found on their PATH, or a path.
    pub remote_bin: String,
    /// A directory for OpenSSH's control sockets: every session to a host
    /// goes over the one connection its [`Ssh::connect`] made (the master,
    /// ControlMaster), in milliseconds instead of a handshake each.
    /// `None`: each session its own connection.
    pub control: Option<PathBuf>,
}

impl Default for Ssh {
    fn default() -> Self {
        Ssh {
            config: None,
            remote_bin: "h2lab".into(),
            control: None,
        }
    }
}

/// One word for a POSIX shell, quoted: the remote side of `ssh` hands
/// the command line to the user's shell.
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    match plain {
        true => word.to_string(),
        false => format!("'{}'", word.replace('\'', r"'\''")),
    }
}

impl Ssh {
    /// `ssh` running `remote_bin ARGS` on `host`: batch mode (no
    /// password prompt, no host key question), no terminal, keep-alives
    /// that find a lost connection within about 6 s.
    pub fn command(&self, host: &Host, args: &[String]) -> Command {
        self.command_as(host, args, false)
    }

    /// [`Ssh::command`]; a `master` makes the connection the host's other
    /// sessions share (with a control directory).
    fn command_as(&self, host: &Host, args: &[String], master: bool) -> Command {
        let mut ssh = Command::new("ssh");
        ssh.args(["-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"])
            .args(["-o", "ServerAliveInterval=2", "-o", "ServerAliveCountMax=3"]);
        if let Some(config) = &self.config {
            ssh.arg("-F").arg(config);
        }
        if let Some(dir) = &self.control {
            // %C: a hash of the host, port and user, the same for the
            // master and its sessions. A session without its master (gone)
            // makes a connection of its own.
            ssh.arg("-o")
                .arg(format!("ControlPath={}/%C", dir.display()))
                .args([
                    "-o",
                    if master {
                        "ControlMaster=yes"
                    } else {
                        "ControlMaster=no"
                    },
                ])
                .args(["-o", "ControlPersist=no"]);
        }
        let line: Vec<String> = std::iter::once(self.remote_bin.as_str())
            .chain(args.iter().map(String::as_str))
            .map(quote)
            .collect();
        ssh.arg("--").arg(&host.0).arg(line.join(" "));
        ssh
    }

    /// Starts `remote_bin ARGS` on `host`.
    pub fn open(&self, host: &Host, args: &[String]) -> Result<Session, HostError> {
        self.spawn(host, self.command_as(host, args, false))
    }

    fn spawn(&self, host: &Host, mut cmd: Command) -> Result<Session, HostError> {
        use std::os::unix::process::CommandExt;
        // A process group of its own: Ctrl-C at the terminal reaches the
        // controller alone, which then asks every host to stop and report
        // (ssh killed by it would lose the host's results).
        let mut child = cmd
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(HostError::Ssh)?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        // stderr is drained as it comes, so that a chatty remote never
        // blocks on a full pipe; its last lines say why a session ended.
        let said = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("piped");
        let keep = said.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = io::Read::read(&mut err, &mut buf) {
                if n == 0 {
                    break;
                }
                let mut s = keep.lock().unwrap_or_else(|e| e.into_inner());
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
                if s.len() > 64 * 1024 {
                    let cut = s.len() - 32 * 1024;
                    let cut = (cut..s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(0);
                    s.drain(..cut);
                }
            }
        });
        Ok(Session {
            host: host.clone(),
            child,
            stdin,
            stdout: Some(stdout),
            said,
        })
    }

    /// Connects to `host`: opens its clock session (the master of its
    /// connection, with a control directory), checks that it runs our
    /// version, then measures its clock's offset from ours (`samples`
    /// exchanges). The session stays open, and with it the connection,
    /// until the [`Link`] is dropped.
    pub fn connect(&self, host: &Host, samples: usize) -> Result<Link, HostError> {
        let opened = Instant::now();
        let mut s = self.spawn(
            host,
            self.command_as(host, &["remote-clock".to_string()], true),
        )?;
        let lost = |s: &mut Session| {
            let why = s.end();
            HostError::Unreachable(s.host.clone(), why)
        };
        let theirs = match s.line() {
            Ok(Some(line)) => line,
            _ => return Err(lost(&mut s)),
        };
        let opening = opened.elapsed();
        let ours = version();
        if theirs != ours {
            return Err(HostError::Version {
                host: host.clone(),
                theirs,
                ours,
            });
        }
        let mut taken = Vec::with_capacity(samples);
        for _ in 0..samples {
            let sent = now_ns();
            if s.send("t").is_err() {
                return Err(lost(&mut s));
            }
            let remote = match s.line() {
                Ok(Some(line)) => line.parse::<u64>().map_err(|_| {
                    HostError::Clock(host.clone(), format!("'{line}' is not a time"))
                })?,
                _ => return Err(lost(&mut s)),
            };
            taken.push(clock::Sample {
                sent,
                remote,
                received: now_ns(),
            });
        }
        let offset = clock::estimate(&taken)
            .ok_or_else(|| HostError::Clock(host.clone(), "our clock stepped back".into()))?;
        Ok(Link {
            session: s,
            offset,
            opening,
        })
    }
}

/// A host reached ([`Ssh::connect`]).
pub struct Link {
    /// The clock session, held open: the connection's master.
    pub session: Session,
    pub offset: Offset,
    /// How long the first session took to open: ssh's connection and
    /// the remote h2lab's start, to its first line.
    pub opening: Duration,
}

/// A directory for control sockets, private to this process, removed
/// when dropped.
#[derive(Debug)]
pub struct ControlDir(PathBuf);

impl ControlDir {
    pub fn new() -> io::Result<ControlDir> {
        use std::os::unix::fs::DirBuilderExt;
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("h2lab-ssh-{}-{n}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(ControlDir(path))
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ControlDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Session({}, ssh pid {})", self.host, self.child.id())
    }
}

/// One command running on a host. Dropping it ends it (the `ssh` process
/// is killed, and with the session the remote command).
pub struct Session {
    pub host: Host,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<BufReader<ChildStdout>>,
    said: Arc<Mutex<String>>,
}

impl Session {
    /// The next line the remote command wrote, without its newline;
    /// `None` at its end.
    pub fn line(&mut self) -> io::Result<Option<String>> {
        let Some(out) = self.stdout.as_mut() else {
            return Ok(None);
        };
        let mut line = String::new();
        match out.read_line(&mut line)? {
            0 => Ok(None),
            _ => Ok(Some(line.trim_end_matches(['\n', '\r']).to_string())),
        }
    }

    /// Takes the output, to be read on another thread.
    pub fn take_output(&mut self) -> Option<BufReader<ChildStdout>> {
        self.stdout.take()
    }

    /// Writes one line to the remote command.
    pub fn send(&mut self, line: &str) -> io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::BrokenPipe))?;
        stdin.write_all(format!("{line}\n").as_bytes())?;
        stdin.flush()
    }

    /// Ends the remote command's input: it exits.
    pub fn close(&mut self) {
        self.stdin = None;
    }

    /// The `ssh` process's id (the local end of the session).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the session has ended, and how.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Ends the session (kills `ssh` if it still runs) and says how it
    /// ended: its exit status and the last line either side wrote on
    /// stderr.
    pub fn end(&mut self) -> String {
        self.stdin = None;
        let status = match self.child.try_wait() {
            Ok(Some(status)) => status,
            _ => {
                let _ = self.child.kill();
                match self.child.wait() {
                    Ok(status) => status,
                    Err(e) => return format!("ssh: {e}"),
                }
            }
        };
        let said = self.said.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let last = said
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string();
        let how = match status.code() {
            Some(255) => "ssh failed (exit 255)".to_string(),
            Some(code) => format!("exit {code}"),
            None => "killed".to_string(),
        };
        match last.is_empty() {
            true => how,
            false => format!("{how}: {last}"),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stdin = None;
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The remote side of [`Ssh::connect`] (`h2lab remote-clock`): our version
/// on the first line, then our clock (ns since the epoch) for each line
/// read, until the input ends.
pub fn serve_clock(mut input: impl BufRead, mut output: impl Write) -> io::Result<()> {
    writeln!(output, "{}", version())?;
    output.flush()?;
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(());
        }
        writeln!(output, "{}", now_ns())?;
        output.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_destinations_never_options() {
        assert_eq!("user@box".parse::<Host>().unwrap().to_string(), "user@box");
        assert!("".parse::<Host>().is_err());
        assert!("-oProxyCommand=x".parse::<Host>().is_err());
        assert!("a b".parse::<Host>().is_err());
        assert!("a\nb".parse::<Host>().is_err());
    }

    #[test]
    fn words_are_quoted_for_the_remote_shell() {
        assert_eq!(quote("load"), "load");
        assert_eq!(
            quote("http://198.18.0.1:8080/bytes/10"),
            "http://198.18.0.1:8080/bytes/10"
        );
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("$(reboot)"), "'$(reboot)'");
    }

    #[test]
    fn the_command_is_batch_ssh_to_the_host() {
        let ssh = Ssh {
            config: Some("/tmp/cfg".into()),
            remote_bin: "/opt/h2lab".into(),
            control: Some("/tmp/ctl".into()),
        };
        let c = ssh.command(&"a".parse().unwrap(), &["load".into(), "x y".into()]);
        let args: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(c.get_program(), "ssh");
        assert!(args.contains(&"BatchMode=yes".to_string()));
        let f = args.iter().position(|a| a == "-F").unwrap();
        assert_eq!(args[f + 1], "/tmp/cfg");
        assert_eq!(
            &args[args.len() - 3..],
            ["--", "a", "/opt/h2lab load 'x y'"]
        );
    }

    #[test]
    fn the_clock_says_the_version_then_a_time_per_line() {
        let mut out = Vec::new();
        let before = now_ns();
        serve_clock(&b"t\nt\n"[..], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], version());
        for l in &lines[1..] {
            let t: u64 = l.parse().unwrap();
            assert!(t >= before && t <= now_ns());
        }
    }
}
