//! What the event-loop dispatches promise beyond serving: `poll`'s client
//! limit, idle timeout and idle cost; no dispatch but `single` lets a stalled
//! client hold the others up; the client-hello hook on both TLS providers;
//! `--nodelay false`, and tokio's multi-thread runtime.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use h2lab::frame::FrameType;
use h2lab::{ClientHello, ClientHelloHook, Dispatch, Engine, ServerConfig, Setup, TlsProvider};
use support::{
    assert_curl_hello, assert_get_on_open, assert_raw_hello, client_hello, run, serve, tool,
    RawConn,
};

fn poll(tls: TlsProvider) -> ServerConfig {
    ServerConfig {
        dispatch: Dispatch::Poll,
        tls,
        ..Default::default()
    }
}

/// Connects and waits for the server's SETTINGS: the client is registered.
fn connected_client(server: &h2lab::Server) -> RawConn {
    let mut conn = RawConn::connect(server);
    conn.write_all(&client_hello()).unwrap();
    assert_eq!(conn.read_server_preface(), FrameType::SETTINGS.0);
    conn
}

fn max_clients_refuses_exactly_the_surplus(tls: TlsProvider) {
    let server = h2lab::start(&ServerConfig {
        max_clients: Some(3),
        ..poll(tls)
    })
    .unwrap();
    let kept: Vec<RawConn> = (0..3).map(|_| connected_client(&server)).collect();
    for _ in 0..2 {
        // Closed at once: no SETTINGS, no handshake, just EOF (or a reset).
        match RawConn::connect_alpn(&server, &[b"h2"]) {
            Ok(mut conn) => assert_eq!(conn.read_to_close(), b"", "{tls}: refused client got data"),
            Err(_) => assert!(tls.is_tls(), "the h2c connect itself cannot fail"),
        }
    }
    let setup = server.setup();
    for conn in kept {
        // Each kept client completes its request (it already sent its hello).
        assert_get_on_open(conn, setup);
    }
    let stats = server.stop();
    assert_eq!(stats.refused, 2, "{setup}");
    assert_eq!(stats.accepted, 5, "{setup}");
    assert_eq!(stats.responses, 3, "{setup}");
}

#[test]
fn poll_max_clients_3_of_5_h2c() {
    max_clients_refuses_exactly_the_surplus(TlsProvider::None);
}

#[test]
fn poll_max_clients_3_of_5_rustls() {
    max_clients_refuses_exactly_the_surplus(TlsProvider::Rustls);
}

#[test]
fn poll_max_clients_3_of_5_openssl() {
    max_clients_refuses_exactly_the_surplus(TlsProvider::Openssl);
}

#[test]
fn poll_idle_timeout_closes_a_silent_client_and_spares_a_talking_one() {
    let server = h2lab::start(&ServerConfig {
        idle_timeout: Some(Duration::from_secs(1)),
        ..poll(TlsProvider::None)
    })
    .unwrap();
    let mut silent = connected_client(&server);
    let mut talking = connected_client(&server);
    let started = Instant::now();
    // The talking client sends a PING every 300 ms for 2 s.
    let pinger = std::thread::spawn(move || {
        let ping = [0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        for _ in 0..7 {
            std::thread::sleep(Duration::from_millis(300));
            talking.write_all(&ping).unwrap();
        }
        talking
    });
    silent.read_to_close();
    let closed_after = started.elapsed();
    assert!(
        closed_after >= Duration::from_millis(900) && closed_after < Duration::from_secs(2),
        "silent client closed after {closed_after:?}"
    );
    let talking = pinger.join().unwrap();
    // Still open after 2 s: it answers a request.
    assert_get_on_open(talking, server.setup());
    let stats = server.stop();
    assert_eq!(stats.timed_out, 1);
}

/// A client that sends half a frame and then nothing must not hold up the
/// other clients (on `single` it would: that is the point of `single`).
fn stalled_client_does_not_block_others(setup: Setup) {
    if setup.dispatch == Dispatch::Uring && support::skip_uring() {
        return;
    }
    let server = support::start(setup);
    let mut stalled = RawConn::connect(&server);
    let mut half = client_hello();
    half.extend_from_slice(&support::GET_1[..6]);
    stalled.write_all(&half).unwrap();
    // Stalled: the server has accepted it and read its half frame (the
    // client's octets are acknowledged, the server's socket has none left
    // to read).
    let (client, server_addr) = (stalled.local_addr(), server.local_addr());
    support::wait_until(&format!("{setup}: the half frame read"), || {
        server.stats().accepted == 1
            && support::tcp_queues(client, server_addr).is_some_and(|(unacked, _)| unacked == 0)
            && support::tcp_queues(server_addr, client).is_some_and(|(_, unread)| unread == 0)
    });

    let out = run(tool("h2load")
        .args(["-n", "2000", "-c", "5", "-m", "10", "-T", "10", "-N", "10"])
        .arg(server.url()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2000 succeeded, 0 failed"), "{setup}: {text}");
    assert_raw_hello(&server);
    drop(stalled);
}

#[test]
fn stalled_client_poll_h2c() {
    stalled_client_does_not_block_others(support::setup(Dispatch::Poll, TlsProvider::None));
}

#[test]
fn stalled_client_poll_rustls() {
    stalled_client_does_not_block_others(support::setup(Dispatch::Poll, TlsProvider::Rustls));
}

#[test]
fn stalled_client_poll_openssl() {
    stalled_client_does_not_block_others(support::setup(Dispatch::Poll, TlsProvider::Openssl));
}

#[test]
fn stalled_client_uring_h2c() {
    stalled_client_does_not_block_others(support::setup(Dispatch::Uring, TlsProvider::None));
}

#[test]
fn stalled_client_uring_rustls() {
    stalled_client_does_not_block_others(support::setup(Dispatch::Uring, TlsProvider::Rustls));
}

#[test]
fn stalled_client_thread_rustls() {
    stalled_client_does_not_block_others(support::setup(Dispatch::Thread, TlsProvider::Rustls));
}

#[test]
fn stalled_client_tokio_openssl() {
    stalled_client_does_not_block_others(support::setup(Dispatch::Tokio, TlsProvider::Openssl));
}

#[test]
fn stalled_client_tokio_h2_rustls() {
    stalled_client_does_not_block_others(Setup {
        dispatch: Dispatch::Tokio,
        engine: Engine::H2,
        tls: TlsProvider::Rustls,
    });
}

/// The poll loop is one thread and sleeps in poll: with 1000 idle
/// connections it does not wake. Counted, not timed: its threads' context
/// switches over 2 s (a thread asleep in `epoll_wait` is switched out
/// once and stays out, however loaded the machine; a loop that woke on a
/// timer, or spun, would add one a wake-up or one a preemption). The CPU
/// ticks are checked too (a sleeping loop is charged none). The handshake
/// deadline is off here: on, the loop sweeps for late handshakes four times
/// per deadline (every 2.5 s by default), and that wake-up is its only one.
#[test]
fn poll_loop_is_one_thread_and_idles_at_zero_cpu_with_1000_clients() {
    let server = serve(&["--dispatch", "poll", "--handshake-timeout", "0"]);
    let pid = server.child.id();
    let threads_before = support::thread_count(pid);
    let mut clients = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let c = TcpStream::connect(server.addr()).unwrap();
        c.set_read_timeout(Some(support::IO_TIMEOUT)).unwrap();
        clients.push(c);
    }
    for c in &mut clients {
        // SETTINGS with SETTINGS_MAX_CONCURRENT_STREAMS: 9 + 6 octets.
        let mut settings = [0u8; 15];
        c.read_exact(&mut settings)
            .expect("every client was accepted");
        assert_eq!(settings[..4], [0, 0, 6, 4]);
    }
    assert_eq!(
        support::thread_count(pid),
        threads_before,
        "no thread per client"
    );
    // The burst's aftermath first: the freed heap is given back once
    // accepts have stopped for a while (a timer, 50 ms after the last of
    // a burst of 256 and a second after the last of fewer): settled once a
    // window longer than that saw no wake-up. Then the loop has nothing to
    // wake for.
    let settled = std::time::Instant::now() + Duration::from_secs(10);
    let mut before = support::context_switches(pid);
    loop {
        std::thread::sleep(Duration::from_millis(1200));
        let now = support::context_switches(pid);
        if now == before {
            break;
        }
        before = now;
        assert!(std::time::Instant::now() < settled, "never settled");
    }
    let ticks = support::cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let woke = support::context_switches(pid) - before;
    let used = support::cpu_ticks(pid) - ticks;
    assert_eq!(
        (woke, used),
        (0, 0),
        "wake-ups and CPU ticks in 2 s with 1000 idle clients"
    );
    drop(clients);
    let out = server.stop_with("TERM");
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1000 connections"), "{err}");
}

setup_tests!(for [
    poll_mini_rustls, poll_mini_openssl,
    uring_mini_rustls, uring_mini_openssl,
    thread_mini_rustls, thread_mini_openssl,
    tokio_mini_rustls, tokio_mini_openssl,
] client_hello_hook_sees_sni_and_alpn_and_may_refuse);

/// The hook sees SNI and the ALPN offer on every dispatch and both
/// providers, and refuses with a handshake_failure alert.
fn client_hello_hook_sees_sni_and_alpn_and_may_refuse(setup: Setup) {
    let seen: Arc<Mutex<Vec<ClientHello>>> = Arc::default();
    let record = seen.clone();
    let hook = ClientHelloHook::new(move |hello| {
        record.lock().unwrap().push(hello.clone());
        match hello.server_name.as_deref() {
            Some("blocked.localhost") => Err("blocked name".into()),
            _ => Ok(()),
        }
    });
    let server = h2lab::start(&ServerConfig {
        client_hello: Some(hook),
        ..support::config(setup)
    })
    .unwrap();
    assert_curl_hello(&server);
    let port = server.local_addr().port();
    let out = run(tool("curl")
        .args(["--silent", "--http2", "--insecure", "--max-time", "10"])
        .args(["--resolve", &format!("blocked.localhost:{port}:127.0.0.1")])
        .arg(format!("https://blocked.localhost:{port}/")));
    assert!(!out.status.success(), "{setup}: refused client got through");
    assert_curl_hello(&server);
    let setup = server.setup();
    let stats = server.stop();
    assert_eq!(stats.failed, 1, "{setup}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "{setup}: {seen:?}");
    // curl connects by IP first: no SNI for an IP address (RFC 6066).
    assert_eq!(seen[0].server_name, None, "{setup}");
    assert_eq!(seen[1].server_name.as_deref(), Some("blocked.localhost"));
    for hello in seen.iter() {
        assert_eq!(
            hello.alpn,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            "{setup}"
        );
    }
}

setup_tests!(for [poll_mini_rustls, uring_mini_rustls, thread_mini_rustls, tokio_mini_rustls] nodelay_false_still_serves);

fn nodelay_false_still_serves(setup: Setup) {
    let dispatch = setup.dispatch.to_string();
    let s = serve(&[
        "--dispatch",
        &dispatch,
        "--nodelay",
        "false",
        "--tls",
        setup.tls.name(),
    ]);
    let out = run(tool("curl")
        .args(["--silent", "--http2", "--insecure", "--max-time", "10"])
        .arg(&s.url));
    assert_eq!(out.stdout, b"Hello World\n", "{setup}");
    assert_eq!(s.stop_with("TERM").status.code(), Some(0));
}

#[test]
fn tokio_multi_thread_runtime_serves_under_load() {
    let s = serve(&["--dispatch", "tokio", "--threads", "2", "--engine", "h2"]);
    let out = run(tool("h2load")
        .args(["-n", "5000", "-c", "10", "-m", "10", "-T", "10", "-N", "10"])
        .arg(&s.url));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("5000 succeeded, 0 failed"), "{text}");
    assert_eq!(s.stop_with("INT").status.code(), Some(0));
}

setup_tests!(pipelined_answers_are_coalesced_into_few_writes);

/// With 100 requests in flight per client, the answers to a batch share
/// one socket write on every setup: dispatch, engine and TLS provider (the
/// seed's coalescing point; for `h2`, our `Coalesce` stream under the
/// crate, which alone flushes once per response). 5000 responses come in
/// 50 batches of 100: measured 51 writes on h2c and 52 with TLS (one more
/// for the handshake) on all 21 setups; the bound, 100, leaves room for
/// each batch to arrive in two reads on a busy machine, and no more.
fn pipelined_answers_are_coalesced_into_few_writes(setup: Setup) {
    let server = support::start(setup);
    let out = run(tool("h2load")
        .args(["-n", "5000", "-c", "1", "-m", "100", "-T", "10", "-N", "10"])
        .arg(server.url()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("5000 succeeded, 0 failed"), "{setup}: {text}");
    let stats = server.stop();
    assert_eq!(stats.responses, 5000, "{setup}");
    println!(
        "{setup}: {} writes for {} responses",
        stats.writes, stats.responses
    );
    assert!(
        stats.writes <= 100,
        "{setup}: {} writes for {} responses",
        stats.writes,
        stats.responses
    );
}

/// At the fd limit (`prlimit --nofile=32`), `poll` cannot accept; once
/// clients leave, it accepts those that waited in the queue by itself, with
/// no new connection to wake it (its listener is edge-triggered), and says
/// so once, not every retry.
#[test]
fn poll_accepts_again_after_the_fd_limit() {
    let serving = support::serve_command(
        Command::new("prlimit")
            .arg("--nofile=32:32")
            .arg(env!("CARGO_BIN_EXE_h2lab"))
            .args(["serve", "--dispatch", "poll"]),
    );
    let addr = serving.addr();
    let pid = serving.child.id();
    let mut conns: Vec<std::net::TcpStream> = (0..40)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    // Past ~25 clients accept fails (EMFILE); the others wait in the queue.
    support::wait_until("at the fd limit with clients queued", || {
        support::slots_taken(pid, 32) == 32 && support::accept_queue(addr).is_some_and(|q| q > 0)
    });
    let last = conns.pop().unwrap();
    conns.truncate(10);
    last.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    support::assert_hello_on(
        support::RawConn::Plain(last),
        support::setup(Dispatch::Poll, TlsProvider::None),
    );
    drop(conns);
    let out = serving.stop_with("TERM");
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    let said = err.matches("h2lab: accept: ").count();
    assert!((1..=3).contains(&said), "{err}");
}

/// Slowloris: clients that trickle their preface, or a frame, one octet
/// at a time cannot hold `--max-clients` places. The handshake deadline
/// closes the first kind and the idle timeout, which only whole frames
/// reset, the second; then a new client is served.
#[test]
fn trickling_clients_cannot_hold_the_places() {
    trickling_clients_cannot_hold_the_places_on("poll");
}

#[test]
fn trickling_clients_cannot_hold_the_places_on_uring() {
    if support::skip_uring() {
        return;
    }
    trickling_clients_cannot_hold_the_places_on("uring");
}

fn trickling_clients_cannot_hold_the_places_on(dispatch: &str) {
    let serving = serve(&[
        "--dispatch",
        dispatch,
        "--max-clients",
        "2",
        "--handshake-timeout",
        "1s",
        "--idle-timeout",
        "1s",
    ]);
    let addr = serving.addr();
    let url = serving.url.clone();
    let hello = client_hello();
    let mut in_preface = TcpStream::connect(addr).unwrap();
    let mut in_a_frame = TcpStream::connect(addr).unwrap();
    in_a_frame.write_all(&hello).unwrap();
    let ends = [&in_preface, &in_a_frame].map(|s| (s.local_addr().unwrap(), addr));
    // A PING, 17 octets: whole only after 1.7 s at one octet per 100 ms.
    let ping = [0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
    let trickle = std::thread::spawn(move || {
        let (mut preface_ok, mut frame_ok) = (true, true);
        for i in 0..30 {
            std::thread::sleep(Duration::from_millis(100));
            preface_ok &= in_preface.write_all(&hello[i % 24..i % 24 + 1]).is_ok();
            frame_ok &= in_a_frame.write_all(&ping[i % 17..i % 17 + 1]).is_ok();
        }
        (preface_ok, frame_ok)
    });
    let load = |n: &str| {
        let out = run(Command::new(env!("CARGO_BIN_EXE_h2lab"))
            .args(["load", "-n", n, "--json"])
            .arg(&url));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    // Both places taken (both accepted: the queue is empty): a third
    // client is refused.
    support::wait_until("both trickling clients accepted", || {
        support::accept_queue(addr) == Some(0)
    });
    let refused = load("1");
    assert_eq!(refused["succeeded"], 0, "{dispatch}: {refused}");
    // Past the deadlines (1 to 1.25 s): both trickling clients are gone,
    // closed by the server.
    support::wait_until("both trickling clients closed", || {
        ends.iter()
            .all(|&(client, server)| support::closed_by_peer(client, server))
    });
    let served = load("5");
    assert_eq!(served["succeeded"], 5, "{dispatch}: {served}");
    let (preface_ok, frame_ok) = trickle.join().unwrap();
    assert!(
        !preface_ok && !frame_ok,
        "{dispatch}: the server kept a trickling client"
    );
    let out = serving.stop_with("TERM");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(", 2 timed out"), "{dispatch}: {err}");
}

/// `--uring-features`: the ring serves with each feature left out, and
/// with none, what it serves with all (h2load: every request answered,
/// h2c and TLS; the server's own count of responses).
#[test]
fn uring_serves_with_each_feature_off() {
    if support::skip_uring() {
        return;
    }
    for (features, tls) in [
        ("none", "none"),
        ("no-defer-taskrun", "rustls"),
        ("no-multishot-accept", "none"),
        ("no-multishot-recv", "openssl"),
        ("no-single-issuer,no-defer-taskrun", "none"),
    ] {
        let serving = serve(&[
            "--dispatch",
            "uring",
            "--tls",
            tls,
            "--uring-features",
            features,
        ]);
        let out = run(support::tool("h2load")
            .args(["-n", "2000", "-c", "4", "-m", "10"])
            .arg(&serving.url));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("2000 succeeded, 0 failed"),
            "{features} {tls}: {text}"
        );
        let out = serving.stop_with("TERM");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{features}: {err}");
        assert!(err.contains("2000 responses"), "{features}: {err}");
    }
}
