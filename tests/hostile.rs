//! Hostile clients against every setup: ten clients that never read —
//! pipelining GETs, flooding PINGs or SETTINGS, opening streams with a
//! zero flow-control window, or sending header blocks whose 1,000-octet
//! fields each enter the HPACK dynamic table and evict the one before —
//! while an ordinary client is served (on
//! `single`, one hostile client and no ordinary one: it serves one client
//! at a time, so there only the memory budget and the stop are checked). The
//! server's memory stays within a budget above idle, the ordinary client
//! gets every answer, and SIGTERM still ends the server within 2 s with
//! the hostile clients connected. The server is a child process, so that
//! its memory is its own.

mod support;

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use h2lab::frame::CLIENT_PREFACE;
use h2lab::{Dispatch, Setup};
use rustls::pki_types::ServerName;
use serde_json::Value;

use support::{rss_kib, GET_1};

/// What ten hostile clients may add to the server's resident memory.
const BUDGET_KIB: u64 = 64 * 1024;
const HOSTILE: usize = 10;
/// How long the hostile clients push before the server is measured.
const FLOOD: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// GETs as fast as the server takes them; never reads an answer.
    Gets,
    /// PINGs, each owed a PING ACK it never reads.
    Pings,
    /// SETTINGS, each owed an ACK.
    Settings,
    /// SETTINGS_INITIAL_WINDOW_SIZE 0, then GETs: no response body may be
    /// sent, so every stream stays open on the server.
    ZeroWindow,
    /// GETs each with a new 1,000-octet field to index (RFC 7541 §6.2.1):
    /// every block evicts the entries before it from the server's dynamic
    /// table, which stays within its 4,096 octets.
    EvictingHeaders,
}

const KINDS: [Kind; 5] = [
    Kind::Gets,
    Kind::Pings,
    Kind::Settings,
    Kind::ZeroWindow,
    Kind::EvictingHeaders,
];

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn preface(kind: Kind) -> Vec<u8> {
    let mut p = CLIENT_PREFACE.to_vec();
    let settings: &[u8] = match kind {
        Kind::ZeroWindow => &[0, 4, 0, 0, 0, 0],
        _ => &[],
    };
    p.extend(frame(4, 0, 0, settings));
    p
}

/// About 64 KiB of what `kind` sends, continuing from stream `next`.
fn batch(kind: Kind, next: &mut u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(70_000);
    while b.len() < 64 * 1024 {
        match kind {
            Kind::Gets | Kind::ZeroWindow => {
                let mut get = GET_1;
                get[5..9].copy_from_slice(&next.to_be_bytes());
                *next += 2;
                b.extend_from_slice(&get);
            }
            Kind::EvictingHeaders => {
                let mut block = vec![0x82, 0x86, 0x84, 0x40];
                h2lab::hpack::encode::string(&mut block, b"x-flood", false);
                let value = format!("{next:010}").repeat(100);
                h2lab::hpack::encode::string(&mut block, value.as_bytes(), false);
                b.extend(frame(1, 5, *next, &block));
                *next += 2;
            }
            Kind::Pings => b.extend(frame(6, 0, 0, b"hostile!")),
            Kind::Settings => b.extend(frame(4, 0, 0, &[0, 2, 0, 0, 0, 0])),
        }
    }
    b
}

/// A connection that writes (plain or TLS) and a handle to shut it down.
fn connect(addr: SocketAddr, tls: bool) -> (Box<dyn Write + Send>, TcpStream) {
    let sock = TcpStream::connect(addr).unwrap();
    // Bounded, so that a server gone wrong cannot hang the test: a write
    // blocked this long ends its client.
    sock.set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let handle = sock.try_clone().unwrap();
    if !tls {
        return (Box::new(sock), handle);
    }
    let conn = rustls::ClientConnection::new(
        support::tls_client_config(&[b"h2"]),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut stream = rustls::StreamOwned::new(conn, sock);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).unwrap();
    }
    (Box::new(stream), handle)
}

/// `h2lab load ARGS -k --json URL`'s report.
fn h2lab_load(url: &str, args: &[&str]) -> Value {
    support::h2lab_load(&[args, &["-k", "--json", url]].concat()).1
}

fn hostile_clients_are_bounded_and_stop_ends_them(setup: Setup) {
    let serving = support::serve_capped(setup, &[]);
    let pid = serving.child.id();
    let addr = serving.addr();
    let url = serving.url.clone();
    // Warm: buffers, TLS contexts and threads as an ordinary load makes them.
    let warm = h2lab_load(&url, &["-n", "300", "-m", "10"]);
    assert_eq!(warm["succeeded"], 300, "{setup}: {warm}");
    let idle = rss_kib(pid);

    let tls = setup.tls.is_tls();
    let stop_pushing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut handles = Vec::new();
    let mut threads = Vec::new();
    // `single` serves one client at a time: one hostile client holds it
    // (more would only wait in the accept queue).
    let count = match setup.dispatch {
        Dispatch::Single => 1,
        _ => HOSTILE,
    };
    for i in 0..count {
        let kind = KINDS[i % KINDS.len()];
        let (mut conn, handle) = connect(addr, tls);
        handles.push(handle);
        let stop = stop_pushing.clone();
        threads.push(std::thread::spawn(move || {
            let mut next = 1;
            if conn.write_all(&preface(kind)).is_err() {
                return;
            }
            // Blocks once the server stops reading; ends when the socket
            // is shut down below.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if conn.write_all(&batch(kind, &mut next)).is_err() {
                    return;
                }
            }
        }));
    }

    // While they push: the server's memory, and an ordinary client.
    let started = Instant::now();
    let ordinary = (setup.dispatch != Dispatch::Single).then(|| {
        let url = url.clone();
        std::thread::spawn(move || h2lab_load(&url, &["-n", "100", "-m", "1", "--timeout", "10s"]))
    });
    let mut peak = idle;
    while started.elapsed() < FLOOD || ordinary.as_ref().is_some_and(|o| !o.is_finished()) {
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some(ordinary) = ordinary {
        let report = ordinary.join().unwrap();
        // Served alongside them, not after: every answer came while the
        // hostile clients were still connected and pushing (they never end
        // by themselves; they are shut down below). Latency is printed,
        // not judged: it is a figure of the machine's load.
        assert_eq!(
            report["succeeded"], 100,
            "{setup}: the ordinary client: {report}"
        );
        let pushing = threads.iter().filter(|t| !t.is_finished()).count();
        assert!(pushing > 0, "{setup}: no hostile client left pushing");
        let l = &report["latency_us"];
        eprintln!(
            "{setup}: the ordinary client beside {pushing} hostile: p50 {} µs, p99 {} µs, max {} µs",
            l["p50"], l["p99"], l["max"]
        );
    }
    peak = peak.max(rss_kib(pid));
    eprintln!("{setup}: idle {idle} KiB, peak {peak} KiB with {HOSTILE} hostile clients");
    assert!(
        peak <= idle + BUDGET_KIB,
        "{setup}: {peak} KiB peak, {idle} KiB idle: over the {BUDGET_KIB} KiB budget"
    );

    // SIGTERM with every hostile client still connected and pushing.
    let stopping = Instant::now();
    let out = serving.stop_with("TERM");
    let took = stopping.elapsed();
    assert!(out.status.success(), "{setup}: {out:?}");
    assert!(
        took < Duration::from_secs(2),
        "{setup}: the stop took {took:?}"
    );
    stop_pushing.store(true, std::sync::atomic::Ordering::Relaxed);
    for h in handles {
        let _ = h.shutdown(Shutdown::Both);
    }
    for t in threads {
        t.join().unwrap();
    }
}

setup_tests!(hostile_clients_are_bounded_and_stop_ends_them);

/// The first SIGTERM stops cleanly, which waits for what is in flight (a
/// trace being written, seconds for a few million records; here a request
/// whose work sleeps 60 s on the `poll` loop's thread); a second one exits
/// at once, saying so. No clock verdict: the request is known to be in its
/// work from the kernel's queues, the first signal known to be taken from
/// the server's own line, and without the second signal's exit the stop
/// would outlast the test's bound by half a minute.
#[test]
fn a_second_signal_exits_at_once() {
    let mut serving = support::serve(&["--dispatch", "poll", "--work", "sleep:60s"]);
    let addr = serving.addr();
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.write_all(&[&support::client_hello()[..], &GET_1].concat())
        .unwrap();
    let local = conn.local_addr().unwrap();
    // In its work: the request acknowledged by the server's kernel and read
    // by the loop, which runs the work in the same turn.
    support::wait_until("the request read by the server", || {
        let sent = support::tcp_queues(local, addr).map(|(tx, _)| tx);
        let unread = support::tcp_queues(addr, local).map(|(_, rx)| rx);
        sent == Some(0) && unread == Some(0)
    });
    let pid = serving.child.id().to_string();
    let term = || {
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
    };
    let (lines, said) = std::sync::mpsc::channel();
    let stderr = serving.child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
            let line = line.unwrap();
            all.push_str(&line);
            all.push('\n');
            let _ = lines.send(line);
        }
        all
    });
    term();
    // The first signal taken: the server says so as its stop begins.
    while !said
        .recv_timeout(Duration::from_secs(30))
        .expect("the server's line for the first signal")
        .contains("signal 15: stopping")
    {}
    term();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = serving.child.try_wait().unwrap() {
            break status;
        }
        // Far short of the 60 s the stop would take without it.
        assert!(started.elapsed() < Duration::from_secs(30), "still running");
        std::thread::sleep(Duration::from_millis(10));
    };
    let err = reader.join().unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("again: exiting without finishing the stop"),
        "{err}"
    );
    assert!(!err.contains("stopped"), "the stop did not finish: {err}");
}
