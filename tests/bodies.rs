//! `serve --body SIZE`: large responses within HTTP/2 flow control, on
//! every setup. Real clients check them octet by octet (the load client's
//! `--expect-body`, nghttp with windows far smaller than the body), and a
//! client that asks for 64 MiB bodies with every window wide open and
//! never reads cannot grow the server's memory.

mod support;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use h2lab::engine::Body;
use h2lab::frame::{encode_frame, encode_window_update, setting, FrameType, CLIENT_PREFACE};
use h2lab::load::{LoadConfig, Stop};
use h2lab::{Dispatch, ServerConfig, Setup};
use rustls::pki_types::ServerName;
use support::{rss_kib, run, tool, GET_1};

/// A size that is no multiple of a frame, a window or the pattern.
const ODD: u64 = (1 << 20) + 5;

fn body_of(len: u64) -> Vec<u8> {
    let mut v = Vec::new();
    Body::append(0, len as usize, &mut v);
    v
}

fn large_bodies_arrive_whole_through_small_windows(setup: Setup) {
    let body = Body::new(ODD).unwrap();
    let server = h2lab::start(&ServerConfig {
        body,
        ..support::config(setup)
    })
    .unwrap_or_else(|e| panic!("{setup}: {e:#}"));
    let url = server.url().to_string();
    // The built-in client, streams in flight on each connection (one
    // connection on `single`, which serves one at a time): every body
    // checked octet by octet.
    let report = h2lab::load::run(&LoadConfig {
        url: url.clone(),
        streams: 3,
        clients: match setup.dispatch {
            Dispatch::Single => 1,
            _ => 2,
        },
        stop: Stop::Requests(12),
        insecure: true,
        expect_body: Some(body),
        ..LoadConfig::default()
    })
    .unwrap();
    assert_eq!(
        (report.succeeded, report.failed),
        (12, 0),
        "{setup}: {report}"
    );
    assert_eq!(report.traffic.data_in, 12 * ODD, "{setup}");
    // nghttp with a 16 KiB stream window and a 32 KiB connection window:
    // the body comes in 64 turns of WINDOW_UPDATE.
    let out = run(tool("nghttp").args(["-w", "14", "-W", "15"]).arg(&url));
    assert!(out.status.success(), "{setup}: {out:?}");
    assert!(
        out.stdout == body_of(ODD),
        "{setup}: {} octets",
        out.stdout.len()
    );
    // And an empty body is an answer too.
    server.stop();
    let empty = h2lab::start(&ServerConfig {
        body: Body::new(0).unwrap(),
        ..support::config(setup)
    })
    .unwrap();
    let out = run(tool("nghttp").arg("-v").arg(empty.url()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(":status: 200"),
        "{setup}: {text}"
    );
    empty.stop();
}

setup_tests!(large_bodies_arrive_whole_through_small_windows);

/// What a client sends to ask for as much as it can: every window at its
/// largest, frames of 16 MiB allowed, and 20 GETs.
fn greedy_hello() -> Vec<u8> {
    let mut hello = CLIENT_PREFACE.to_vec();
    let mut settings = Vec::new();
    for (id, value) in [
        (setting::INITIAL_WINDOW_SIZE, (1u32 << 31) - 1),
        (setting::MAX_FRAME_SIZE, (1 << 24) - 1),
    ] {
        settings.extend_from_slice(&id.to_be_bytes());
        settings.extend_from_slice(&value.to_be_bytes());
    }
    encode_frame(&mut hello, FrameType::SETTINGS, 0, 0, &settings);
    encode_window_update(&mut hello, 0, (1 << 31) - 1 - 65_535);
    for i in 0..20u32 {
        let mut get = GET_1;
        get[5..9].copy_from_slice(&(2 * i + 1).to_be_bytes());
        hello.extend_from_slice(&get);
    }
    hello
}

/// Clients that each ask for 20 bodies of 64 MiB with every window open
/// and never read: the server sends as the socket takes it, so its memory
/// stays within a budget far below one body (64 MiB), and it stops within
/// 2 s with them connected.
fn clients_that_never_read_large_bodies_hold_bounded_memory(setup: Setup) {
    let serving = support::serve_capped(setup, &["--body", "64MiB"]);
    let pid = serving.child.id();
    let idle = rss_kib(pid);
    let count = match setup.dispatch {
        Dispatch::Single => 1,
        _ => 8,
    };
    let mut socks = Vec::new();
    let mut tls_conns = Vec::new();
    for _ in 0..count {
        let sock = TcpStream::connect(serving.addr()).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        socks.push(sock.try_clone().unwrap());
        match setup.tls.is_tls() {
            false => (&sock).write_all(&greedy_hello()).unwrap(),
            true => {
                let conn = rustls::ClientConnection::new(
                    support::tls_client_config(&[b"h2"]),
                    ServerName::try_from("localhost").unwrap(),
                )
                .unwrap();
                let mut stream = rustls::StreamOwned::new(conn, sock);
                while stream.conn.is_handshaking() {
                    stream.conn.complete_io(&mut stream.sock).unwrap();
                }
                stream.write_all(&greedy_hello()).unwrap();
                stream.flush().unwrap();
                // Kept (unread) so that the connection stays open.
                tls_conns.push(stream);
            }
        }
    }
    // The server fills the sockets, then waits for them to drain: each
    // client's receive queue holds its octets and the server's send queue
    // behind it is backed up (the kernel's queues say so; a server that
    // never answered would fail here). Its memory is sampled throughout,
    // and a while longer at that state.
    let ends: Vec<_> = socks
        .iter()
        .map(|s| (s.local_addr().unwrap(), s.peer_addr().unwrap()))
        .collect();
    let mut peak = idle;
    support::wait_until(&format!("{setup}: every socket filled"), || {
        peak = peak.max(rss_kib(pid));
        ends.iter().all(|&(client, server)| {
            let received = support::tcp_queues(client, server).map(|(_, rx)| rx);
            let backed_up = support::tcp_queues(server, client).map(|(tx, _)| tx);
            received.is_some_and(|rx| rx > 0) && backed_up.is_some_and(|tx| tx > 0)
        })
    });
    for _ in 0..20 {
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "{setup}: idle {idle} KiB, peak {peak} KiB with {count} clients not reading 64 MiB bodies"
    );
    let budget = 24 * 1024;
    assert!(
        peak <= idle + budget,
        "{setup}: {peak} KiB peak, {idle} KiB idle: over the {budget} KiB budget"
    );
    let stopping = Instant::now();
    let out = serving.stop_with("TERM");
    assert!(out.status.success(), "{setup}: {out:?}");
    assert!(stopping.elapsed() < Duration::from_secs(2), "{setup}");
    for s in socks {
        let _ = s.shutdown(Shutdown::Both);
    }
    drop(tls_conns);
}

setup_tests!(for [single_mini_none, single_h2_rustls, thread_mini_openssl, thread_h2_none, tokio_mini_rustls, tokio_h2_openssl, poll_mini_none, poll_mini_openssl, uring_mini_none, uring_mini_openssl] clients_that_never_read_large_bodies_hold_bounded_memory);

/// Minor page faults of a process so far (`/proc/PID/stat` field 10).
fn minor_faults(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(7).unwrap().parse().unwrap()
}

/// In steady state a 1 MiB answer costs no fresh memory: glibc shrank its
/// heap after each answer and grew it again at the next, 128 page faults
/// per answer with rustls on `poll` (half the throughput), until the
/// server raised the heap's trim threshold. A count, not a time.
#[test]
fn large_answers_in_steady_state_take_no_fresh_pages() {
    for (dispatch, tls) in [("poll", "rustls"), ("tokio", "openssl"), ("poll", "none")] {
        let s = support::serve(&["--dispatch", dispatch, "--tls", tls, "--body", "1MiB"]);
        let load = |n: &str| {
            let (code, report, err) = support::h2lab_load(&[
                "-k",
                "-c",
                "5",
                "-n",
                n,
                "--window",
                "16MiB",
                "--expect-body",
                "1MiB",
                "--json",
                &s.url,
            ]);
            assert_eq!(code, Some(0), "{dispatch}/{tls}: {report} {err}");
        };
        load("100");
        let before = minor_faults(s.child.id());
        load("200");
        let faults = minor_faults(s.child.id()) - before;
        eprintln!("{dispatch}/{tls}: {faults} page faults for 200 answers of 1 MiB");
        // New connections fault a little (their buffers, TLS state): far
        // below one fault per answer's 4 KiB page, 256 per answer.
        assert!(
            faults < 2_000,
            "{dispatch}/{tls}: {faults} page faults for 200 answers"
        );
        assert!(s.stop_with("TERM").status.success());
    }
}
