//! `poll --threads N`: N reactors behind one port, by either spread
//! (`reuseport`, `handoff`). Real clients, real sockets: every request is
//! answered, the limits hold across reactors, reactors run where `--pin`
//! says, a stop is clean, and the trace gives each reactor a track group
//! that Perfetto's own trace processor reads.

mod support;

use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use h2lab::trace::TraceConfig;
use h2lab::{Dispatch, ServerConfig, Spread, TlsProvider};
use support::{run, serve, tool, trace_query};

fn reactors(threads: usize, spread: Spread) -> ServerConfig {
    ServerConfig {
        dispatch: Dispatch::Poll,
        threads,
        spread,
        ..ServerConfig::default()
    }
}

/// 2 and 4 reactors, both spreads, h2c and TLS: h2load's 32 connections ×
/// 10 in flight are all answered, by more than one reactor (handed out in
/// turn: by every one; by the kernel's hash under `reuseport`, all 32 on
/// one reactor of 2 has a chance of 2^-31), and SIGTERM ends the process
/// within 2 s with its stop line.
#[test]
fn every_request_is_answered_and_the_stop_is_clean() {
    for threads in ["2", "4"] {
        for spread in ["reuseport", "handoff"] {
            for tls in ["none", "rustls"] {
                let what = format!("--threads {threads} --spread {spread} --tls {tls}");
                let s = serve(&[
                    "--dispatch",
                    "poll",
                    "--threads",
                    threads,
                    "--spread",
                    spread,
                    "--tls",
                    tls,
                ]);
                let pid = s.child.id();
                let out = run(tool("h2load")
                    .args([
                        "-n", "20000", "-c", "32", "-m", "10", "-T", "10", "-N", "10",
                    ])
                    .arg(&s.url));
                let text = String::from_utf8_lossy(&out.stdout);
                assert!(text.contains("20000 succeeded, 0 failed"), "{what}: {text}");
                // A reactor that served its share ran for milliseconds; an
                // idle one slept in epoll_wait from the start.
                let busy = reactor_threads(pid)
                    .iter()
                    .filter(|(_, on_cpu_ns, _)| *on_cpu_ns > 2_000_000)
                    .count();
                let started = Instant::now();
                let out = s.stop_with("TERM");
                assert!(started.elapsed() < Duration::from_secs(2), "{what}");
                assert_eq!(out.status.code(), Some(0), "{what}");
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(
                    stderr.contains("32 connections, 20000 responses"),
                    "{what}: {stderr}"
                );
                if spread == "handoff" {
                    // Handed out in turn: every reactor got 32 / N clients.
                    assert_eq!(busy.to_string(), threads, "{what}: reactors that worked");
                } else {
                    assert!(busy >= 2, "{what}: {busy} reactors worked");
                }
            }
        }
    }
}

/// The reactors of process `pid`: name, ns on a CPU so far, allowed CPUs.
fn reactor_threads(pid: u32) -> Vec<(String, u64, String)> {
    threads_named(pid, "h2lab-poll")
}

/// The threads of process `pid` whose name starts with `prefix`: name, ns
/// on a CPU so far, allowed CPUs.
fn threads_named(pid: u32, prefix: &str) -> Vec<(String, u64, String)> {
    let mut found = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let name = name.trim().to_string();
        if !name.starts_with(prefix) {
            continue;
        }
        // "time on CPU, time waiting on a run queue, timeslices" in ns.
        let schedstat = std::fs::read_to_string(dir.join("schedstat")).unwrap();
        let on_cpu = schedstat
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let status = std::fs::read_to_string(dir.join("status")).unwrap();
        let allowed = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim()
            .to_string();
        found.push((name, on_cpu, allowed));
    }
    found.sort();
    found
}

/// `--pin 0` puts every reactor on CPU 0 (taken in turn from the list).
#[test]
fn pinned_reactors_run_where_they_are_told() {
    let s = serve(&["--dispatch", "poll", "--threads", "3", "--pin", "0"]);
    // Each reactor names and pins itself as it starts: wait for all three.
    let deadline = Instant::now() + Duration::from_secs(5);
    let threads = loop {
        let threads = reactor_threads(s.child.id());
        if threads.len() == 3 && threads.iter().all(|(_, _, allowed)| allowed == "0") {
            break threads;
        }
        assert!(Instant::now() < deadline, "{threads:?}");
        std::thread::sleep(Duration::from_millis(10));
    };
    let names: Vec<&str> = threads.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["h2lab-poll-0", "h2lab-poll-1", "h2lab-poll-2"]);
    for (name, _, allowed) in &threads {
        assert_eq!(allowed, "0", "{name}");
    }
    assert_eq!(s.stop_with("INT").status.code(), Some(0));
}

/// `uring --threads 2 --pin 0`: two rings, each with its listener on the
/// port (`reuseport`), both pinned to CPU 0; h2load's 32 TLS connections ×
/// 10 in flight are all answered, by both, and SIGTERM ends the process
/// within 2 s with its stop line.
#[test]
fn uring_reactors_answer_everything_where_they_are_pinned() {
    if support::skip_uring() {
        return;
    }
    let s = serve(&[
        "--dispatch",
        "uring",
        "--threads",
        "2",
        "--pin",
        "0",
        "--tls",
        "rustls",
    ]);
    let pid = s.child.id();
    let out = run(tool("h2load")
        .args([
            "-n", "20000", "-c", "32", "-m", "10", "-T", "10", "-N", "10",
        ])
        .arg(&s.url));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("20000 succeeded, 0 failed"), "{text}");
    let threads = threads_named(pid, "h2lab-uring");
    let names: Vec<&str> = threads.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["h2lab-uring-0", "h2lab-uring-1"]);
    for (name, on_cpu_ns, allowed) in &threads {
        assert_eq!(allowed, "0", "{name}");
        // All 32 on one ring of 2 has a chance of 2^-31.
        assert!(*on_cpu_ns > 2_000_000, "{name} did not work: {threads:?}");
    }
    let started = Instant::now();
    let out = s.stop_with("TERM");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("32 connections, 20000 responses"),
        "{stderr}"
    );
}

/// `--max-clients 3` counts clients on every reactor together: of 6
/// connections held open, 3 are refused, whichever reactor they reach.
#[test]
fn max_clients_holds_across_reactors() {
    for spread in [Spread::Reuseport, Spread::Handoff] {
        let server = h2lab::start(&ServerConfig {
            max_clients: Some(3),
            ..reactors(2, spread)
        })
        .unwrap();
        let conns: Vec<TcpStream> = (0..6)
            .map(|_| TcpStream::connect(server.local_addr()).unwrap())
            .collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.stats().accepted < 6 {
            assert!(
                Instant::now() < deadline,
                "{spread:?}: {:?}",
                server.stats()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let stats = server.stop();
        drop(conns);
        assert_eq!((stats.accepted, stats.refused), (6, 3), "{spread:?}");
    }
}

/// `--idle-timeout` holds on every reactor: 4 silent connections spread
/// over 2 reactors are all closed as timed out.
#[test]
fn idle_clients_time_out_on_every_reactor() {
    let server = h2lab::start(&ServerConfig {
        idle_timeout: Some(Duration::from_millis(200)),
        ..reactors(2, Spread::Handoff)
    })
    .unwrap();
    let conns: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(server.local_addr()).unwrap())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.stats().timed_out < 4 {
        assert!(Instant::now() < deadline, "{:?}", server.stats());
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(conns);
    assert_eq!(server.stop().timed_out, 4);
}

/// A traced run on 2 and on 4 reactors: Perfetto sees a process per
/// reactor, each with its poll loop as main thread and its own clients'
/// tracks, and every response in the trace.
#[test]
fn each_reactor_traces_on_its_own_track_group() {
    for (n, spread) in [
        (2, Spread::Reuseport),
        (2, Spread::Handoff),
        (4, Spread::Handoff),
    ] {
        let trace = TraceConfig::new(
            Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join("reactors")
                .join(format!("{n}-{spread:?}")),
        );
        let server = h2lab::start(&ServerConfig {
            trace: Some(trace.clone()),
            tls: TlsProvider::None,
            ..reactors(n, spread)
        })
        .unwrap();
        let out = run(tool("h2load")
            .args(["-n", "800", "-c", "32", "-m", "5", "-T", "10", "-N", "10"])
            .arg(server.url()));
        assert!(String::from_utf8_lossy(&out.stdout).contains("800 succeeded, 0 failed"));
        let stats = server.stop();
        let summary = stats.trace.unwrap().unwrap();
        assert_eq!((summary.dropped, summary.unrecorded), (0, 0));
        let rows = trace_query(
            &trace.json_path(),
            "select p.name as process, \
                    sum(t.name like 'poll loop %') as loops, \
                    sum(t.name like 'client %') as clients \
             from thread t join process p using(upid) \
             where p.name like '%reactor%' group by p.upid order by p.name",
        );
        // Handed out in turn, every reactor has clients; by the kernel's
        // hash (32 clients on 2 reactors), both but for a chance of 2^-31.
        let groups = &rows[1..];
        assert_eq!(groups.len(), n, "{spread:?}: {rows:?}");
        let mut clients = 0;
        for row in groups {
            let k: usize = row[0].rsplit_once("reactor ").unwrap().1.parse().unwrap();
            assert!(k < n, "{row:?}");
            assert_eq!(row[1], "1", "{spread:?}: one loop track in {row:?}");
            clients += row[2].parse::<u32>().unwrap();
        }
        assert_eq!(clients, 32, "{spread:?}: {rows:?}");
        // Client ids are 1-based and shared across reactors: the 32
        // tracks are clients 1 to 32, each once, whichever reactor took it.
        let names = trace_query(
            &trace.json_path(),
            "select t.name from thread t where t.name like 'client %'",
        );
        let mut ids: Vec<u64> = names[1..]
            .iter()
            .map(|row| {
                let digits: String = row[0]["client ".len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                digits.parse().unwrap_or_else(|_| panic!("{row:?}"))
            })
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, (1..=32).collect::<Vec<u64>>(), "{spread:?}: {names:?}");
        let answered = trace_query(
            &trace.json_path(),
            "select count(*) from slice join args using(arg_set_id) \
             where slice.name = 'DATA out' and args.key = 'args.flags' \
               and args.string_value like '%END_STREAM%'",
        );
        assert_eq!(answered[1][0], "800", "{spread:?}");
    }
}
