//! `--net` and `--link`, with real namespaces, veth pairs, qdiscs and
//! sysctls: whose packets each side's CPU processed, by counts (1 MiB
//! answers, where the two sides' counts differ several-fold); nothing left
//! behind after a normal end, SIGINT, a server killed mid-run, or a bench
//! killed outright (the next start removes it); and the refusals, each one
//! line and exit 2.
//!
//! The tests here change what the whole machine has (namespaces, lo's
//! steering) and read every CPU's softirq counts: they run one at a time
//! (and cargo runs no other test binary beside this one).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use h2lab::bench::row::{Row, RowKind, CSV_HEADER};
use h2lab::netns;
use support::{run, wait_until};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A bench of one cell: poll/mini/none, 5 clients, one request each at a
/// time, 1 MiB answers, one run of 1 s after 0.3 s of warm-up.
fn bench_args(net: &str, out: &Path) -> Vec<String> {
    bench_for(net, out, 1)
}

/// [`bench_args`], measured for `secs`.
fn bench_for(net: &str, out: &Path, secs: u32) -> Vec<String> {
    let words = "bench --dispatch poll --tls none --clients 5 --pipeline 1 --body 1MiB \
                 --warm-up 0.3 --repeat 1 --precision 0 --no-count --pace 0";
    let mut args: Vec<String> = words.split_whitespace().map(str::to_string).collect();
    args.extend(["--duration".into(), secs.to_string()]);
    args.extend(["--net".into(), net.into(), "--out".into()]);
    args.push(out.display().to_string());
    args
}

fn h2lab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_h2lab"))
}

fn csv_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("h2lab-net-{}-{name}.csv", std::process::id()))
}

/// The median row of a one-cell bench CSV.
fn median(path: &Path) -> Row {
    let rows: Vec<Row> = h2lab::csv_file::read(path, CSV_HEADER, "a bench CSV").unwrap();
    let _ = std::fs::remove_file(path);
    rows.into_iter()
        .find(|r| r.kind == RowKind::Median)
        .expect("a median row")
}

fn within(a: f64, b: f64, pct: f64) -> bool {
    (a - b).abs() <= b * pct / 100.0
}

/// What runs made and left: namespaces, and a saved steering state.
fn leftovers() -> (Vec<String>, Vec<String>) {
    let states = std::fs::read_dir(netns::STATE_DIR)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    (netns::made_by_runs(), states)
}

fn assert_clean(what: &str, steering: &[(String, String)]) {
    assert_eq!(leftovers(), (vec![], vec![]), "{what}: left behind");
    assert_eq!(
        netns::rfs::current(),
        steering,
        "{what}: steering not restored"
    );
}

fn said(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// With 1 MiB answers the server sends more than twice the segments it
/// receives. On loopback a sender's CPU processes what it sends: the
/// server's CPU processed the client's incoming segments (and the ACKs
/// the client sent from there). On `veth` and
/// `rfs` each side's receive is steered to its own CPU: the server's CPU
/// processed its own, at a steering interrupt each.
#[test]
fn each_cpu_processes_the_packets_its_topology_gives_it() {
    let _one = serial();
    let steering = netns::rfs::current();
    for net in ["loopback", "veth", "rfs"] {
        let path = csv_path(net);
        let out = run(h2lab().args(bench_args(net, &path)));
        assert!(out.status.success(), "{net}: {}", said(&out));
        let row = median(&path);
        assert_eq!(row.net.as_deref(), Some(net));
        let f = |v: Option<f64>| v.unwrap_or_else(|| panic!("{net}: a figure missing"));
        let (srv_cpu, cli_cpu) = (f(row.server_cpu_packets), f(row.client_cpu_packets));
        let (srv_in, cli_in) = (f(row.server_segs_in), f(row.client_segs_in));
        let figures = format!(
            "{net}: server CPU {srv_cpu}, load CPU {cli_cpu}, server in {srv_in}, load in {cli_in}, steered {:?}/{:?}",
            row.server_cpu_steered, row.client_cpu_steered
        );
        assert!(cli_in > 2.0 * srv_in, "{figures}");
        match net {
            // Loopback: the client's incoming segments, all of them, and a
            // few more: ACKs the client's socket sent while its receive ran
            // in the server CPU's softirq, processed there too (8-15% more
            // here), never more than the server's own incoming.
            "loopback" => {
                assert!(srv_cpu >= 0.95 * cli_in, "{figures}");
                assert!(srv_cpu <= cli_in + srv_in, "{figures}");
                assert!(f(row.client_share) > 0.6, "{figures}");
                assert_eq!(f(row.server_cpu_steered), 0.0, "{figures}");
            }
            _ => {
                assert!(within(srv_cpu, srv_in, 10.0), "{figures}");
                assert!(f(row.client_share) < 0.1, "{figures}");
                assert!(f(row.server_cpu_steered) > 0.5 * srv_in, "{figures}");
            }
        }
        assert_clean(net, &steering);
    }
}

/// A bench started in the background, its stderr to a file.
struct Background {
    child: Child,
    err: PathBuf,
}

impl Background {
    fn start(net: &str) -> Background {
        let err = csv_path(&format!("{net}-err"));
        // Long enough to be caught in the middle.
        let args = bench_for(net, &csv_path(&format!("{net}-bg")), 20);
        let child = h2lab()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        Background { child, err }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) for its end.
    fn wait(mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "the bench did not end");
            std::thread::sleep(Duration::from_millis(20));
        };
        let said = std::fs::read_to_string(&self.err).unwrap_or_default();
        let _ = std::fs::remove_file(&self.err);
        (status, said)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `h2lab serve` a bench started: a descendant of `pid` serving.
fn server_of(pid: u32) -> Option<u32> {
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for child in h2lab::bench::system::children_of(p) {
            let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(" serve --port 0 ") && !cmdline.starts_with("setpriv") {
                return Some(child);
            }
            todo.push(child);
        }
    }
    None
}

/// Its namespaces exist and it is serving: the middle of a run.
fn wait_for_the_middle(bench: &Background, net: &str) {
    wait_until(&format!("{net}: the bench's server runs"), || {
        server_of(bench.pid()).is_some()
    });
    if net == "veth" {
        let pid = bench.pid();
        assert!(
            netns::made_by_runs()
                .iter()
                .any(|n| n.starts_with(&format!("h2lab-{pid}-"))),
            "no namespace of the bench's"
        );
    }
}

/// SIGINT, SIGTERM and a server SIGKILLed mid-run: the bench ends and
/// undoes everything; the steering is as it was.
#[test]
fn nothing_is_left_after_a_signal_or_a_killed_server() {
    let _one = serial();
    let steering = netns::rfs::current();
    for net in ["veth", "rfs"] {
        for signal in ["INT", "TERM"] {
            let bench = Background::start(net);
            wait_for_the_middle(&bench, net);
            if net == "rfs" {
                assert_ne!(netns::rfs::current(), steering, "rfs: steering not set");
            }
            let pid = bench.pid().to_string();
            assert!(run(Command::new("kill").args(["-s", signal, &pid]))
                .status
                .success());
            let (status, said) = bench.wait();
            assert_eq!(status.code(), Some(1), "{net} SIG{signal}: {said}");
            assert!(said.contains("interrupted"), "{net} SIG{signal}: {said}");
            assert_clean(&format!("{net} after SIG{signal}"), &steering);
        }
        let bench = Background::start(net);
        wait_for_the_middle(&bench, net);
        let server = server_of(bench.pid()).unwrap().to_string();
        assert!(run(Command::new("kill").args(["-s", "KILL", &server]))
            .status
            .success());
        // The run goes on without its server (its requests fail) and the
        // bench ends as it ends.
        let (_, said) = bench.wait();
        assert!(said.contains("network: "), "{net}, server killed: {said}");
        assert_clean(&format!("{net} after its server was killed"), &steering);
    }
}

/// A bench killed outright cannot undo anything: the next run with the
/// same topology finds what it left, removes it and says so.
#[test]
fn the_next_start_removes_what_a_killed_run_left() {
    let _one = serial();
    let steering = netns::rfs::current();
    for net in ["veth", "rfs"] {
        let bench = Background::start(net);
        wait_for_the_middle(&bench, net);
        let pid = bench.pid();
        assert!(
            run(Command::new("kill").args(["-s", "KILL", &pid.to_string()]))
                .status
                .success()
        );
        let _ = bench.wait();
        // Its server dies with it (PR_SET_PDEATHSIG); what it made stays.
        let left = leftovers();
        assert!(
            !left.0.is_empty() || !left.1.is_empty(),
            "{net}: nothing left to remove"
        );
        let path = csv_path(&format!("{net}-after"));
        let out = run(h2lab().args(bench_args(net, &path)));
        let err = said(&out);
        assert!(out.status.success(), "{net}: {err}");
        let _ = std::fs::remove_file(&path);
        let word = match net {
            "veth" => format!("removed h2lab-{pid}-"),
            _ => format!("a killed run (pid {pid}) had set"),
        };
        assert!(err.contains(&word), "{net}: {err}");
        assert_clean(&format!("{net} after the next run"), &steering);
    }
}

/// Each refusal is one line, exit 2, and makes nothing.
#[test]
fn what_cannot_be_made_is_refused_at_once() {
    let _one = serial();
    let steering = netns::rfs::current();
    let refused = |cmd: &mut Command, words: &[&str]| {
        let out = run(cmd);
        let err = said(&out);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{cmd:?}: {err}");
        for w in words {
            assert!(err.contains(w), "{cmd:?}: {err}");
        }
        assert_clean(&format!("{cmd:?}"), &steering);
    };
    let path = csv_path("refused");
    let args = |net: &str| bench_args(net, &path);
    for net in ["rfs", "veth"] {
        // Root without its capabilities, as a user without them is.
        refused(
            Command::new("setpriv")
                .args(["--inh-caps=-all", "--bounding-set=-all", "--"])
                .arg(env!("CARGO_BIN_EXE_h2lab"))
                .args(args(net)),
            &["CAP_NET_ADMIN", &format!("--net {net}")],
        );
        refused(h2lab().args(args(net)).arg("--no-pin"), &["pinned"]);
        // ab refuses alike.
        refused(
            Command::new("setpriv")
                .args(["--inh-caps=-all", "--bounding-set=-all", "--"])
                .arg(env!("CARGO_BIN_EXE_h2lab"))
                .args(["ab", "--b", "--dispatch poll", "--pairs", "3", "--net", net]),
            &["CAP_NET_ADMIN"],
        );
    }
    refused(
        h2lab().args(args("veth")).args(["--link", "delay=20ms"]),
        &["netem", "CONFIG_NET_SCH_NETEM"],
    );
    refused(
        h2lab()
            .args(args("veth"))
            .args(["--link", "rate=1gbit,loss=0.1%"]),
        &["sch_netem"],
    );
    refused(
        h2lab()
            .args(args("loopback"))
            .args(["--link", "rate=1gbit"]),
        &["--net veth"],
    );
    refused(
        h2lab().args(args("veth")).args(["--link", "rate=fast"]),
        &["rate"],
    );
    assert!(!path.exists(), "a refused bench wrote its CSV");
}
