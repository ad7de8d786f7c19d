//! `load --load-hosts` over real SSH: the test makes its hosts as network
//! namespaces (the `--net veth` pair: the server's namespace, where the
//! controller runs too, and the load's, at 198.18.0.1 and 198.18.0.2,
//! addresses that exist only inside them), runs Debian's `sshd` for two
//! load hosts there (on two ports of the load's namespace: host `a` and
//! host `b`) with host and user keys made by the test, never the
//! machine's own, and drives the system's `ssh` through a configuration
//! file of its own. Checked: the agents' counts add up to the run's; a
//! killed agent, a killed SSH connection and a signalled controller leave
//! no process of the run on any host and name what was lost; a version
//! mismatch and an unreachable host are refused with one line, exit 2.
//!
//! The namespaces are the machine's: the tests here run one at a time.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use h2lab::netns::{self, link::Link, segments::Side, Net, NetSpec, Topology};
use support::{run, wait_until};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The load hosts' address, inside the load's namespace, and the server
/// host's, inside the server's.
const LOAD_ADDR: &str = "198.18.0.2";
const SERVER_ADDR: &str = "198.18.0.1";
/// Host `a`'s and host `b`'s sshd (in the load's namespace), and host
/// `s`'s (in the server's); `c` is a port nobody listens on.
const HOSTS: [(&str, Side, &str, u16); 3] = [
    ("a", Side::Client, LOAD_ADDR, 2201),
    ("b", Side::Client, LOAD_ADDR, 2202),
    ("s", Side::Server, SERVER_ADDR, 2200),
];
const DEAD_PORT: u16 = 2299;

/// The hosts of one test: the namespaces, two sshd, a server, and the
/// files that make ssh reach them. Removed when dropped.
struct Lab {
    dir: PathBuf,
    sshd: Vec<Child>,
    server: Option<support::Serving>,
    // Dropped last: the namespaces go with it.
    net: Net,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for s in &mut self.sshd {
            let _ = s.kill();
            let _ = s.wait();
        }
        self.server = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sh(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Lab {
    fn new() -> Lab {
        let net = Net::set_up(NetSpec {
            topology: Topology::Veth,
            link: Link::default(),
            server_cpus: vec![0],
            client_cpus: vec![1],
        })
        .expect("the namespaces (as root, with CAP_NET_ADMIN and CAP_SYS_ADMIN)");
        let dir = std::env::temp_dir().join(format!("h2lab-hosts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = |name: &str| dir.join(name).display().to_string();
        for key in ["host", "user"] {
            sh(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "h2lab-test", "-f"])
                .arg(path(key)));
        }
        std::fs::copy(dir.join("user.pub"), dir.join("authorized_keys")).unwrap();
        let host_pub = std::fs::read_to_string(dir.join("host.pub")).unwrap();
        let mut known = String::new();
        let mut client = String::new();
        let dead = ("c", Side::Client, LOAD_ADDR, DEAD_PORT);
        for (name, _, addr, port) in HOSTS.iter().copied().chain([dead]) {
            known.push_str(&format!("[{addr}]:{port} {host_pub}"));
            client.push_str(&format!("Host {name}\n  HostName {addr}\n  Port {port}\n"));
        }
        client.push_str(&format!(
            "Host *\n  User root\n  IdentityFile {}\n  IdentitiesOnly yes\n  \
             UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  \
             StrictHostKeyChecking yes\n  LogLevel ERROR\n",
            path("user"),
            path("known_hosts")
        ));
        std::fs::write(dir.join("known_hosts"), known).unwrap();
        std::fs::write(dir.join("ssh_config"), client).unwrap();
        // sshd's privilege-separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let mut sshd = Vec::new();
        for (name, side, addr, port) in HOSTS {
            let config = format!(
                "Port {port}\nListenAddress {addr}\nHostKey {}\nPidFile none\n\
                 AuthorizedKeysFile {}\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nLogLevel ERROR\n",
                path("host"),
                path("authorized_keys")
            );
            let file = dir.join(format!("sshd_{name}"));
            std::fs::write(&file, config).unwrap();
            let child = net
                .within(side, || {
                    Command::new("/usr/sbin/sshd")
                        .args(["-D", "-e", "-f"])
                        .arg(&file)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                })
                .unwrap()
                .expect("/usr/sbin/sshd (openssh-server)");
            sshd.push(child);
        }
        for (name, side, addr, port) in HOSTS {
            let addr = format!("{addr}:{port}").parse().unwrap();
            wait_until(&format!("host {name}'s sshd listens"), || {
                net.within(side, || {
                    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
                })
                .unwrap()
            });
        }
        let server = net
            .within(Side::Server, || {
                support::serve(&["--dispatch", "poll", "--host", "198.18.0.1", "--port", "0"])
            })
            .unwrap();
        Lab {
            dir,
            sshd,
            server: Some(server),
            net,
        }
    }

    fn url(&self) -> String {
        self.server.as_ref().unwrap().url.clone()
    }

    /// `h2lab load` on the controller (the server's namespace) with these
    /// hosts, through the lab's ssh configuration.
    fn load(&self, hosts: &str, remote_bin: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_h2lab"));
        cmd.args(["load", "--load-hosts", hosts, "--ssh-config"])
            .arg(self.dir.join("ssh_config"))
            .arg("--remote-bin")
            .arg(remote_bin)
            .args(args);
        cmd
    }

    fn within<T>(&self, f: impl FnOnce() -> T) -> T {
        self.net.within(Side::Server, f).unwrap()
    }

    /// The sshd's session processes: every process under them.
    fn sessions(&self) -> Vec<u32> {
        self.sshd.iter().flat_map(|s| descendants(s.id())).collect()
    }
}

fn ours() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_h2lab"))
}

/// Every process below `pid` (the children of each of its threads).
fn descendants(pid: u32) -> Vec<u32> {
    let mut all = Vec::new();
    let mut queue = vec![pid];
    while let Some(p) = queue.pop() {
        let tasks = std::fs::read_dir(format!("/proc/{p}/task"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_else(|_| Vec::new());
        for task in tasks {
            let children = std::fs::read_to_string(task.join("children")).unwrap_or_default();
            for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                all.push(c);
                queue.push(c);
            }
        }
    }
    all
}

/// Octets the server has received on each of its connections (`ss -ti`
/// in its namespace): the load hosts' requests, arriving.
fn served(lab: &Lab) -> Vec<u64> {
    let port = lab
        .url()
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let out = lab.within(|| {
        sh(Command::new("ss").args([
            "-tinH",
            "state",
            "established",
            "sport",
            "=",
            &format!(":{port}"),
        ]))
    });
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("bytes_received:")?.parse().ok())
        .collect()
}

/// Both hosts are loading the server: two connections, each past its
/// first requests.
fn both_loading(lab: &Lab) {
    wait_until("both hosts' requests reach the server", || {
        let got = served(lab);
        got.len() == 2 && got.iter().all(|&n| n > 10_000)
    });
}

/// The load agents running on this machine (any host).
fn agents() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    let words: Vec<&[u8]> = c.split(|&b| b == 0).collect();
                    words.first().is_some_and(|w| w.ends_with(b"h2lab"))
                        && words.iter().any(|w| *w == b"--agent-start")
                })
                .unwrap_or(false)
        })
        .collect()
}

fn json(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "not one JSON report ({e}): {text}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Nothing of a run left: no agent, no session under either sshd.
fn assert_nothing_left(lab: &Lab, what: &str) {
    wait_until(&format!("{what}: every agent and session gone"), || {
        agents().is_empty() && lab.sessions().is_empty()
    });
}

/// Two hosts share one run: 4 clients, 400 requests, each host's 200
/// counted; the run's counts are their sums, its latency one histogram of
/// both (`wire.rs` checks the merge count by count), each host's clock
/// offset measured and reported.
#[test]
fn two_hosts_make_one_run_and_their_counts_add_up() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new();
    let url = lab.url();
    let started = Instant::now();
    let out = lab.within(|| {
        run(lab
            .load(
                "a,b",
                &ours(),
                &[
                    "-c",
                    "4",
                    "-t",
                    "2",
                    "-n",
                    "400",
                    "--json",
                    "--expect-body",
                    "12",
                ],
            )
            .arg(&url))
    });
    let took = started.elapsed();
    let report = json(&out);
    assert!(out.status.success(), "{report}");
    assert_eq!(report["requests"], 400, "{report}");
    assert_eq!(report["succeeded"], 400, "{report}");
    assert_eq!(report["status_codes"]["codes"]["200"], 400, "{report}");
    let hosts = report["hosts"].as_array().expect("hosts");
    assert_eq!(hosts.len(), 2);
    for (h, name) in hosts.iter().zip(["a", "b"]) {
        assert_eq!(h["host"], name);
        assert_eq!(h["clients"], 2);
        assert_eq!(h["requests"], 200, "{h}");
        assert_eq!(h["succeeded"], 200, "{h}");
        assert!(h["lost"].is_null(), "{h}");
        // One kernel's clock: the offset is within its own bound (plus a
        // rounding), which a round trip over the veth keeps under 50 ms.
        let (off, within) = (
            h["clock_offset_us"].as_f64().unwrap(),
            h["clock_within_us"].as_f64().unwrap(),
        );
        assert!(off.abs() <= within + 1.0, "{h}");
        assert!(within < 50_000.0, "{h}");
        assert!(h["late_us"].as_f64().is_some_and(|l| l >= 0.0), "{h}");
    }
    let per = &report["per_client"];
    assert_eq!(
        (per["min"].as_f64(), per["max"].as_f64()),
        (Some(100.0), Some(100.0)),
        "{report}"
    );
    assert!(report["latency_us"]["p50"].as_u64().unwrap() > 0);
    assert_nothing_left(&lab, "after a clean run");
    eprintln!("two hosts, 400 requests: {took:?}");
}

/// An agent killed mid-run: its host is named as lost, the other's
/// results are kept, the exit status is 1. A killed SSH connection: the
/// agent at the other end exits at once. Neither leaves a process on any
/// host.
#[test]
fn a_lost_agent_or_connection_is_named_and_leaves_nothing() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new();
    let url = lab.url();
    for kill in ["agent", "ssh"] {
        let controller = lab.within(|| {
            lab.load("a,b", &ours(), &["-c", "2", "-D", "2s", "--json"])
                .arg(&url)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        });
        wait_until(&format!("{kill}: both agents run"), || agents().len() == 2);
        both_loading(&lab);
        // Host b's: the agent under b's sshd, or the controller's
        // connection to b (its ssh master, which b's sessions share).
        let victim = match kill {
            "agent" => {
                let under_b = descendants(lab.sshd[1].id());
                *agents()
                    .iter()
                    .find(|p| under_b.contains(p))
                    .expect("b's agent")
            }
            _ => {
                let sshs: Vec<u32> = descendants(controller.id())
                    .into_iter()
                    .filter(|p| {
                        std::fs::read_to_string(format!("/proc/{p}/cmdline")).is_ok_and(|c| {
                            c.starts_with("ssh\0")
                                && c.contains("\0b\0")
                                && c.contains("ControlMaster=yes")
                        })
                    })
                    .collect();
                assert_eq!(sshs.len(), 1, "the controller's connection to b");
                sshs[0]
            }
        };
        sh(Command::new("kill").args(["-KILL", &victim.to_string()]));
        // The run goes on with host a: b's agent is gone at once.
        wait_until(&format!("{kill}: b's agent gone"), || agents().len() == 1);
        let out = controller.wait_with_output().unwrap();
        let report = json(&out);
        assert_eq!(out.status.code(), Some(1), "{kill}: {report}");
        let hosts = report["hosts"].as_array().unwrap();
        assert!(hosts[0]["lost"].is_null(), "{kill}: {report}");
        let lost = hosts[1]["lost"]
            .as_str()
            .unwrap_or_else(|| panic!("{kill}: b not lost: {report}"));
        assert!(!lost.is_empty());
        assert!(
            hosts[0]["succeeded"].as_u64().unwrap() > 0,
            "{kill}: a's results kept"
        );
        assert_eq!(report["succeeded"], hosts[0]["succeeded"], "{kill}");
        assert_eq!(report["interrupted"], true, "{kill}");
        assert_nothing_left(&lab, kill);
    }
}

/// SIGTERM at the controller: every agent is told to stop, reports what
/// it did, and exits; the run ends long before its 30 s with both hosts'
/// results.
#[test]
fn a_signalled_controller_stops_every_host_and_keeps_the_results() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new();
    let url = lab.url();
    let controller = lab.within(|| {
        lab.load("a,b", &ours(), &["-c", "2", "-D", "30s", "--json"])
            .arg(&url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    });
    wait_until("both agents run", || agents().len() == 2);
    both_loading(&lab);
    let stopped = Instant::now();
    sh(Command::new("kill").args(["-TERM", &controller.id().to_string()]));
    let out = controller.wait_with_output().unwrap();
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "{:?}",
        stopped.elapsed()
    );
    let report = json(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert_eq!(report["interrupted"], true);
    for h in report["hosts"].as_array().unwrap() {
        assert!(h["lost"].is_null(), "{h}");
        assert!(h["succeeded"].as_u64().unwrap() > 0, "{h}");
    }
    assert_nothing_left(&lab, "after SIGTERM");
}

/// A host that runs another h2lab, and one nobody answers on: each
/// refused before anything runs, with one line naming the host, exit 2.
#[test]
fn another_version_and_an_unreachable_host_are_refused() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new();
    let url = lab.url();
    let other = lab.dir.join("other-h2lab");
    std::fs::write(
        &other,
        "#!/bin/sh\necho 'h2lab 0.0.0 (elsewhere)'\ncat >/dev/null\n",
    )
    .unwrap();
    sh(Command::new("chmod").arg("+x").arg(&other));
    for (hosts, bin, says) in [
        (
            "a,b",
            other.as_path(),
            "a: runs h2lab 0.0.0 (elsewhere), this is h2lab ",
        ),
        (
            "a,c",
            ours().as_path(),
            "c: unreachable: ssh failed (exit 255)",
        ),
    ] {
        let out = lab.within(|| run(lab.load(hosts, bin, &["-c", "2", "-n", "2"]).arg(&url)));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{hosts}: {err}");
        assert_eq!(err.lines().count(), 1, "{hosts}: {err}");
        assert!(err.contains(says), "{hosts}: {err}");
        assert!(out.stdout.is_empty(), "{hosts}");
    }
    assert_nothing_left(&lab, "after the refusals");
    assert_eq!(netns::made_by_runs().len(), 2, "the lab's own namespaces");
}

/// `bench` with the server here and its load from hosts `a` and `b`: the
/// rows say where the load ran, the server was metered while it ran (CPU
/// per request, system calls counted), and every request succeeded.
#[test]
fn bench_runs_its_load_from_two_hosts() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new();
    let csv = lab.dir.join("bench.csv");
    let config = lab.dir.join("ssh_config");
    let out = lab.within(|| {
        run(Command::new(env!("CARGO_BIN_EXE_h2lab"))
            .args([
                "bench",
                "--dispatch",
                "poll",
                "--tls",
                "none",
                "--clients",
                "4",
            ])
            .args([
                "--pipeline",
                "1",
                "--warm-up",
                "0.2",
                "--duration",
                "0.5",
                "--repeat",
                "1",
            ])
            .args(["--precision", "0", "--pace", "0", "--listen", "198.18.0.1"])
            .args(["--load-hosts", "a,b", "--ssh-config"])
            .arg(&config)
            .arg("--remote-bin")
            .arg(ours())
            .arg("--out")
            .arg(&csv))
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("load from a (clock ") && err.contains(", b (clock "),
        "the hosts and their clocks: {err}"
    );
    let rows: Vec<h2lab::bench::row::Row> =
        h2lab::csv_file::read(&csv, h2lab::bench::row::CSV_HEADER, "a bench CSV").unwrap();
    assert!(rows.len() >= 3, "a run, a counting run and a median");
    for r in &rows {
        assert_eq!(r.load_hosts.as_deref(), Some("a,b"), "{r:?}");
        assert!(
            r.succeeded > 0 && r.failed == 0 && r.connection_errors == 0,
            "{r:?}"
        );
    }
    let median = rows
        .iter()
        .find(|r| r.kind == h2lab::bench::row::RowKind::Median)
        .unwrap();
    // The meter's window fell on the load: a poll server's debug build
    // spends several µs a request (nothing would be near 0).
    assert!(median.cpu_us_per_req > 2.0, "{median:?}");
    assert!(median.syscalls_per_req.unwrap() > 1.0, "{median:?}");
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("# network: ")
            && l.contains("servers listen on 198.18.0.1, load from a (clock")),
        "the machine block names the hosts: {text}"
    );
    assert_nothing_left(&lab, "after the bench");
}

/// `ab` with its servers on host `s` and its load from host `a` (the
/// controller in the load's namespace), each side metered on `s`; and
/// the refusals that need no host: --load-hosts without --listen, with a
/// loopback --listen, with --client h2load.
#[test]
fn ab_runs_its_load_from_a_host_and_refuses_what_cannot_work() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new();
    let config = lab.dir.join("ssh_config").display().to_string();
    let bin = ours().display().to_string();
    let ab = |extra: &[&str]| {
        lab.net
            .within(Side::Client, || {
                run(Command::new(env!("CARGO_BIN_EXE_h2lab"))
                    .args([
                        "ab",
                        "--a",
                        "--dispatch poll",
                        "--b",
                        "--dispatch poll",
                        "-c",
                        "2",
                    ])
                    .args([
                        "--duration",
                        "0.2",
                        "--warm-up",
                        "0.05",
                        "--pairs",
                        "3",
                        "--json",
                    ])
                    .args([
                        "--load-hosts",
                        "a",
                        "--ssh-config",
                        &config,
                        "--remote-bin",
                        &bin,
                    ])
                    .args(extra))
            })
            .unwrap()
    };
    let out = ab(&["--listen", "198.18.0.1", "--server-host", "s"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = report.to_string();
    assert!(text.contains("servers on s (clock"), "{text}");
    assert!(text.contains("load from a (clock"), "{text}");
    let samples = report["samples"].as_array().expect("samples");
    assert_eq!(samples.len(), 3, "{text}");
    for side in samples.iter().flat_map(|pair| pair.as_array().unwrap()) {
        // Metered on `s`: the server's CPU for its requests.
        assert!(side["cpu_us_per_req"].as_f64().unwrap() > 0.5, "{side}");
    }
    for (extra, says) in [
        (&[][..], "--load-hosts needs --listen ADDR"),
        (
            &["--listen", "127.0.0.1"][..],
            "cannot reach a loopback --listen",
        ),
        (
            &["--listen", "198.18.0.1", "--client", "h2load"][..],
            "built-in load client",
        ),
    ] {
        let out = ab(extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(says), "{err}");
    }
    assert_nothing_left(&lab, "after ab");
}

/// `bench --server-host s` from the load's namespace: our server and a
/// peer (h2o) run on host `s` (the server's namespace), started and
/// metered there by the agent, the load here; then ours alone, untraced
/// and traced (`--trace-cost`: the trace comes back from `s`), with the
/// load from hosts `a` and `b` (no counting run). The rows name both hosts, the
/// servers were metered over the load's window (CPU per request, system
/// calls counted), and nothing is left on `s` after.
#[test]
fn bench_runs_its_servers_on_another_host() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new();
    let config = lab.dir.join("ssh_config");
    for (load_hosts, more) in [
        (None, &["--peers", "h2o", "--require-peers"][..]),
        (Some("a,b"), &["--no-count", "--trace-cost"][..]),
    ] {
        let csv = lab.dir.join("away.csv");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_h2lab"));
        cmd.args([
            "bench",
            "--dispatch",
            "poll",
            "--tls",
            "none",
            "--clients",
            "4",
        ])
        .args([
            "--pipeline",
            "1",
            "--warm-up",
            "0.2",
            "--duration",
            "0.5",
            "--repeat",
            "1",
        ])
        .args(["--precision", "0", "--pace", "0"])
        .args(more)
        .args([
            "--listen",
            SERVER_ADDR,
            "--server-host",
            "s",
            "--ssh-config",
        ])
        .arg(&config)
        .arg("--remote-bin")
        .arg(ours())
        .arg("--out")
        .arg(&csv);
        if let Some(hosts) = load_hosts {
            cmd.args(["--load-hosts", hosts]);
        }
        let out = lab.net.within(Side::Client, || run(&mut cmd)).unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{load_hosts:?}: {err}");
        assert!(err.contains("servers on s (clock "), "{err}");
        let rows: Vec<h2lab::bench::row::Row> =
            h2lab::csv_file::read(&csv, h2lab::bench::row::CSV_HEADER, "a bench CSV").unwrap();
        let medians: Vec<_> = rows
            .iter()
            .filter(|r| r.kind == h2lab::bench::row::RowKind::Median)
            .collect();
        assert_eq!(medians.len(), 2, "ours and h2o, or ours traced: {rows:?}");
        for r in &rows {
            assert_eq!(r.server_host.as_deref(), Some("s"), "{r:?}");
            assert_eq!(r.load_hosts.as_deref(), load_hosts, "{r:?}");
            assert!(r.succeeded > 0 && r.failed == 0, "{r:?}");
        }
        for m in medians {
            // Metered on `s` over the load's window: a server's CPU for
            // its requests (nothing would be near 0), its system calls.
            assert!(m.cpu_us_per_req > 0.5, "{m:?}");
            if load_hosts.is_none() {
                assert!(m.syscalls_per_req.unwrap() > 1.0, "{m:?}");
            }
            // The trace's own figures, read from its files brought back.
            if m.traced {
                assert!(m.trace_records_per_req.unwrap() > 1.0, "{m:?}");
                assert_eq!(m.trace_lost, Some(0), "{m:?}");
            }
        }
        assert_nothing_left(&lab, "after the bench");
    }
    // What it needs: one line, exit 2.
    let out = run(Command::new(env!("CARGO_BIN_EXE_h2lab")).args(["bench", "--server-host", "s"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--server-host needs --listen ADDR"), "{err}");
}

/// A bench killed outright while its server runs on host `s`: the ssh
/// sessions lose their input, the agent kills its server at once (in
/// the middle of a 60 s window), and nothing is left on any host.
#[test]
fn a_killed_bench_leaves_no_server_on_its_host() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new();
    let config = lab.dir.join("ssh_config");
    let bench = lab
        .net
        .within(Side::Client, || {
            Command::new(env!("CARGO_BIN_EXE_h2lab"))
                .args([
                    "bench",
                    "--dispatch",
                    "poll",
                    "--tls",
                    "none",
                    "--clients",
                    "2",
                ])
                .args([
                    "--duration",
                    "60",
                    "--repeat",
                    "1",
                    "--precision",
                    "0",
                    "--pace",
                    "0",
                ])
                .args(["--no-count", "--listen", SERVER_ADDR, "--server-host", "s"])
                .arg("--ssh-config")
                .arg(&config)
                .arg("--remote-bin")
                .arg(ours())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .unwrap();
    let serving = || {
        descendants(lab.sshd[2].id()).into_iter().any(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).any(|w| w == b"serve"))
        })
    };
    wait_until("the server runs on s", serving);
    sh(Command::new("kill").args(["-KILL", &bench.id().to_string()]));
    let killed = Instant::now();
    assert_nothing_left(&lab, "after the bench was killed");
    assert!(!serving());
    // Long before the 60 s window would have ended.
    assert!(
        killed.elapsed() < Duration::from_secs(20),
        "{:?}",
        killed.elapsed()
    );
    let mut bench = bench;
    let _ = bench.wait();
}
