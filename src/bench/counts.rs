//! Counts per request, the figures that do not move with the machine's
//! noise: the server's system calls (all of them, the read-like and the
//! write-like), its context switches, octets per write and requests per
//! read. They say what times alone hide (a slower client hands the server
//! smaller batches: more reads and writes per request).
//!
//! Context switches come from /proc/PID/task/*/status, free to read, so
//! every run has them (and the threads' CPU time, from their schedstat). System calls come from the kernel's syscall
//! tracepoints through `perf stat` (Debian's `linux-perf`), which costs
//! the server about 130 ns a call (0.50 against 0.55 µs of CPU a request
//! on `poll/mini/none` at 5 × 10, docs/bench.md): they are counted in a
//! run of their own, never in a timed one.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::system;
use crate::netns::attribution::Attribution;

/// All system calls, then the read-like and the write-like ones.
const ALL: &str = "raw_syscalls:sys_enter";
const READS: [&str; 5] = ["read", "readv", "recvfrom", "recvmsg", "recvmmsg"];
/// Reads at an offset: a file's (h2o's and nghttpd's file handlers, and
/// `serve --body-file`, read the file per request with one of these).
const FILE_READS: [&str; 3] = ["pread64", "preadv", "preadv2"];
const WRITES: [&str; 6] = [
    "write",
    "writev",
    "sendto",
    "sendmsg",
    "sendmmsg",
    "sendfile64",
];

/// A server's system calls over a measured window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Syscalls {
    pub all: u64,
    pub reads: u64,
    pub writes: u64,
    pub file_reads: u64,
}

/// What the server put in each response, read from the wire by the
/// load client (a probe of a few requests before each run): header fields
/// and header block octets per response, the share of responses with a
/// `date`, body octets per response.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Heads {
    pub fields: f64,
    pub octets: f64,
    pub dated: f64,
    pub body: f64,
}

/// Counts per succeeded request (`None`: not counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub syscalls_per_req: Option<f64>,
    pub reads_per_req: Option<f64>,
    pub writes_per_req: Option<f64>,
    /// Octets the server wrote to its sockets (TLS records included, as
    /// its client read them) per write-like call.
    pub octets_per_write: Option<f64>,
    /// Requests per read-like call (calls that found nothing included).
    pub requests_per_read: Option<f64>,
    pub ctx_switches_per_req: Option<f64>,
    /// pread-like calls per request: the server's file reads.
    #[serde(default)]
    pub file_reads_per_req: Option<f64>,
    /// What each response carried ([`Heads`]).
    #[serde(default)]
    pub head_fields: Option<f64>,
    #[serde(default)]
    pub head_octets: Option<f64>,
    #[serde(default)]
    pub head_dated: Option<f64>,
    #[serde(default)]
    pub body_octets: Option<f64>,
    /// Whose kernel work each side's CPU did, per request (the runs'
    /// median in a cell's).
    #[serde(default)]
    pub net: Option<Attribution>,
}

impl Counts {
    /// `syscalls` and `ctx_switches` over a window in which `requests`
    /// succeeded and the client read `octets_in`.
    pub fn per_request(
        requests: u64,
        syscalls: Option<Syscalls>,
        ctx_switches: Option<u64>,
        octets_in: Option<u64>,
    ) -> Counts {
        if requests == 0 {
            return Counts::default();
        }
        let per = |n: u64| n as f64 / requests as f64;
        let s = syscalls;
        Counts {
            syscalls_per_req: s.map(|s| per(s.all)),
            reads_per_req: s.map(|s| per(s.reads)),
            writes_per_req: s.map(|s| per(s.writes)),
            octets_per_write: s
                .zip(octets_in)
                .filter(|(s, _)| s.writes > 0)
                .map(|(s, o)| o as f64 / s.writes as f64),
            requests_per_read: s
                .filter(|s| s.reads > 0)
                .map(|s| requests as f64 / s.reads as f64),
            ctx_switches_per_req: ctx_switches.map(per),
            file_reads_per_req: s.map(|s| per(s.file_reads)),
            ..Counts::default()
        }
    }

    /// These counts with what each response carried, where they have none.
    pub fn with_heads(self, heads: Option<Heads>) -> Counts {
        match heads {
            None => self,
            Some(h) => Counts {
                head_fields: self.head_fields.or(Some(h.fields)),
                head_octets: self.head_octets.or(Some(h.octets)),
                head_dated: self.head_dated.or(Some(h.dated)),
                body_octets: self.body_octets.or(Some(h.body)),
                ..self
            },
        }
    }

    /// What each response carried, if probed.
    pub fn heads(&self) -> Option<Heads> {
        Some(Heads {
            fields: self.head_fields?,
            octets: self.head_octets?,
            dated: self.head_dated?,
            body: self.body_octets?,
        })
    }

    /// These counts with `net` where they have none.
    pub fn with_net(self, net: Option<Attribution>) -> Counts {
        Counts {
            net: self.net.or(net),
            ..self
        }
    }

    /// These counts with the context switches of `timed` (which has them
    /// from every timed run) where this counting run has none.
    pub fn with_ctx_switches(self, ctx: Option<f64>) -> Counts {
        Counts {
            ctx_switches_per_req: ctx.or(self.ctx_switches_per_req),
            ..self
        }
    }
}

/// What one thread has done so far: CPU time (ns, the scheduler's own
/// count, not /proc/PID/stat's 10 ms ticks) and context switches
/// (voluntary plus involuntary).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadUse {
    pub cpu_ns: u64,
    pub ctx_switches: u64,
}

/// Every thread of `pids` so far, by thread id (threads that have ended
/// are not there).
pub fn threads(pids: &[u32]) -> Result<BTreeMap<u32, ThreadUse>, String> {
    let mut by_thread = BTreeMap::new();
    for pid in pids {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map_err(|e| format!("/proc/{pid}/task: {e}"))?;
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
                continue;
            };
            // A thread may end between the listing and the reads.
            let (Ok(status), Ok(schedstat)) = (
                std::fs::read_to_string(task.path().join("status")),
                std::fs::read_to_string(task.path().join("schedstat")),
            ) else {
                continue;
            };
            let ctx_switches = status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
            // schedstat: time on the CPU (ns), time waiting, time slices.
            let cpu_ns = schedstat
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            by_thread.insert(
                tid,
                ThreadUse {
                    cpu_ns,
                    ctx_switches,
                },
            );
        }
    }
    Ok(by_thread)
}

/// CPU time and context switches over a window, from readings of every
/// thread taken often enough that a thread ending within it (a
/// thread-per-connection server's, when its connection closes) loses
/// only what it did since its last reading.
#[derive(Clone, Debug, Default)]
pub struct ThreadWindow {
    first: BTreeMap<u32, ThreadUse>,
    last: BTreeMap<u32, ThreadUse>,
}

impl ThreadWindow {
    pub fn start(pids: &[u32]) -> Result<ThreadWindow, String> {
        let first = threads(pids)?;
        Ok(ThreadWindow {
            last: first.clone(),
            first,
        })
    }

    /// Another reading: threads seen again are updated, new ones added.
    pub fn read(&mut self, pids: &[u32]) -> Result<(), String> {
        self.last.extend(threads(pids)?);
        Ok(())
    }

    /// What the threads did between the first reading and each one's last.
    pub fn total(&self) -> ThreadUse {
        let mut total = ThreadUse::default();
        for (tid, last) in &self.last {
            let first = self.first.get(tid).copied().unwrap_or_default();
            total.cpu_ns += last.cpu_ns.saturating_sub(first.cpu_ns);
            total.ctx_switches += last.ctx_switches.saturating_sub(first.ctx_switches);
        }
        total
    }
}

/// Whether `perf stat` can count the syscall tracepoints here: `Ok`, or
/// why not (not installed, not permitted, no tracefs). Asked once.
pub fn perf_usable() -> Result<(), String> {
    static USABLE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    USABLE
        .get_or_init(|| {
            let out = Command::new("perf")
                .args(["stat", "-x,", "-e", ALL, "true"])
                .output()
                .map_err(|e| format!("cannot run perf ({e}): apt-get install linux-perf"))?;
            let text = String::from_utf8_lossy(&out.stderr);
            match parse(&text).first() {
                Some((_, Some(n))) if out.status.success() && *n > 0 => Ok(()),
                _ => Err(format!(
                    "perf stat -e {ALL} does not count here: {}",
                    text.lines()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("no output")
                        .trim()
                )),
            }
        })
        .clone()
}

/// `perf stat` attached to a server, counting nothing until
/// [`Perf::enable`], and stopped by [`Perf::finish`].
pub struct Perf {
    child: Child,
    ctl: File,
    ack: File,
    dir: PathBuf,
}

impl Drop for Perf {
    fn drop(&mut self) {
        // Its group, and forgotten by the interrupt handler.
        system::kill_group(self.child.id());
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How long perf may take to start or to answer a command.
const PERF_PATIENCE: Duration = Duration::from_secs(10);

impl Perf {
    /// Attaches `perf stat` to the processes `pids` (and their threads),
    /// its events disabled.
    pub fn attach(pids: &[u32]) -> Result<Perf, String> {
        perf_usable()?;
        let dir = std::env::temp_dir().join(format!(
            "h2lab-perf-{}-{}",
            std::process::id(),
            pids.first().copied().unwrap_or(0)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let fifo = |name: &str| -> Result<File, String> {
            let path = dir.join(name);
            rustix::fs::mknodat(
                rustix::fs::CWD,
                &path,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
                0,
            )
            .map_err(|e| format!("mkfifo {}: {e}", path.display()))?;
            // Read and write: opening never waits for perf's end.
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))
        };
        let (ctl, ack) = (fifo("ctl")?, fifo("ack")?);
        let mut events = vec![ALL.to_string()];
        events.extend(
            READS
                .iter()
                .chain(&WRITES)
                .chain(&FILE_READS)
                .map(|s| format!("syscalls:sys_enter_{s}")),
        );
        let pid_list: Vec<String> = pids.iter().map(u32::to_string).collect();
        let mut cmd = Command::new("perf");
        cmd.args(["stat", "-x,", "--delay", "-1", "--control"])
            .arg(format!(
                "fifo:{},{}",
                dir.join("ctl").display(),
                dir.join("ack").display()
            ))
            .arg("-o")
            .arg(dir.join("out"))
            .args(["-e", &events.join(","), "-p", &pid_list.join(",")]);
        let child = system::owned(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run perf: {e}"))?;
        system::register(child.id());
        Ok(Perf {
            child,
            ctl,
            ack,
            dir,
        })
    }

    /// Starts counting, once perf says so.
    pub fn enable(&mut self) -> Result<(), String> {
        self.command("enable")
    }

    /// Stops counting and reads the counts.
    pub fn finish(mut self) -> Result<Syscalls, String> {
        self.command("disable")?;
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        }
        let started = Instant::now();
        while self.child.try_wait().map_err(|e| e.to_string())?.is_none() {
            if started.elapsed() > PERF_PATIENCE {
                return Err("perf stat did not stop".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let out = std::fs::read_to_string(self.dir.join("out"))
            .map_err(|e| format!("perf stat's output: {e}"))?;
        let counts = parse(&out);
        let count = |name: &str| {
            counts
                .iter()
                .find(|(event, _)| event == name)
                .and_then(|(_, n)| *n)
        };
        let sum = |calls: &[&str]| -> u64 {
            calls
                .iter()
                .filter_map(|c| count(&format!("syscalls:sys_enter_{c}")))
                .sum()
        };
        Ok(Syscalls {
            all: count(ALL).ok_or_else(|| format!("perf stat counted no {ALL}: {out}"))?,
            reads: sum(&READS),
            writes: sum(&WRITES),
            file_reads: sum(&FILE_READS),
        })
    }

    /// Sends `command` to perf and waits for its "ack".
    fn command(&mut self, command: &str) -> Result<(), String> {
        self.ctl
            .write_all(format!("{command}\n").as_bytes())
            .map_err(|e| format!("perf's control fifo: {e}"))?;
        let started = Instant::now();
        let mut got = Vec::new();
        loop {
            let mut buf = [0u8; 64];
            match self.ack.read(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("perf's ack fifo: {e}")),
            }
            if got.windows(4).any(|w| w == b"ack\n") {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("perf stat ended ({status}) before '{command}'"));
            }
            if started.elapsed() > PERF_PATIENCE {
                return Err(format!("perf stat did not answer '{command}'"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// `perf stat -x,` lines: (event, count), `None` where perf says
/// `<not counted>` or `<not supported>`.
fn parse(text: &str) -> Vec<(String, Option<u64>)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let fields: Vec<&str> = l.split(',').collect();
            let event = fields.get(2)?.trim().to_string();
            Some((event, fields[0].trim().parse().ok()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_lines_are_read() {
        let text = "# started on Wed Dec  2 12:57:24 2026\n\n\
                    1353167,,raw_syscalls:sys_enter,1959320875,100.00,,\n\
                    <not counted>,,syscalls:sys_enter_read,0,100.00,,\n\
                    712033,,syscalls:sys_enter_recvfrom,1959320875,100.00,,\n";
        assert_eq!(
            parse(text),
            vec![
                ("raw_syscalls:sys_enter".to_string(), Some(1353167)),
                ("syscalls:sys_enter_read".to_string(), None),
                ("syscalls:sys_enter_recvfrom".to_string(), Some(712033)),
            ]
        );
    }

    #[test]
    fn counts_are_per_request() {
        let s = Syscalls {
            all: 300,
            reads: 50,
            writes: 25,
            file_reads: 100,
        };
        let c = Counts::per_request(100, Some(s), Some(40), Some(10_000));
        assert_eq!(c.syscalls_per_req, Some(3.0));
        assert_eq!(c.reads_per_req, Some(0.5));
        assert_eq!(c.writes_per_req, Some(0.25));
        assert_eq!(c.octets_per_write, Some(400.0));
        assert_eq!(c.requests_per_read, Some(2.0));
        assert_eq!(c.ctx_switches_per_req, Some(0.4));
        assert_eq!(c.file_reads_per_req, Some(1.0));
        assert_eq!(
            Counts::per_request(0, Some(s), Some(1), None),
            Counts::default()
        );
        let none = Counts::per_request(10, None, Some(5), Some(1));
        assert_eq!((none.syscalls_per_req, none.octets_per_write), (None, None));
    }

    /// This process's own context switches are counted, and grow when its
    /// thread sleeps (each sleep is a voluntary switch).
    #[test]
    fn context_switches_grow_with_sleeps() {
        let me = [std::process::id()];
        let switches = || -> u64 { threads(&me).unwrap().values().map(|t| t.ctx_switches).sum() };
        let before = switches();
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(switches() >= before + 20);
        assert!(threads(&[u32::MAX]).is_err());
    }

    /// A thread that ends within the window keeps what it was last seen
    /// to have done: its sleeps' switches and its CPU time.
    #[test]
    fn a_window_keeps_the_switches_of_threads_that_ended() {
        let me = [std::process::id()];
        let mut window = ThreadWindow::start(&me).unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            for _ in 0..50 {
                std::thread::sleep(Duration::from_millis(1));
            }
            // 20 ms of CPU on this thread's own clock.
            let cpu = || rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
            let ns = |t: rustix::time::Timespec| t.tv_sec * 1_000_000_000 + t.tv_nsec;
            let started = ns(cpu());
            while ns(cpu()) - started < 20_000_000 {
                std::hint::black_box(0u64);
            }
            rx.recv().unwrap();
        });
        std::thread::sleep(Duration::from_millis(150));
        window.read(&me).unwrap();
        tx.send(()).unwrap();
        worker.join().unwrap();
        window.read(&me).unwrap();
        let total = window.total();
        assert!(total.ctx_switches >= 50, "{total:?}");
        assert!(total.cpu_ns >= 20_000_000, "{total:?}");
    }
}
