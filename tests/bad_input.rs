//! Bad input over real sockets: each case is followed by a normal request on a
//! fresh connection that must still succeed (a broken client never takes the
//! server down). Where a GOAWAY is due, its error code is checked.

mod support;

use std::io::Write;

use h2lab::frame::Reason;
use h2lab::Setup;
use support::{
    assert_curl_hello, assert_goaway, assert_goaway_or_bare_close, assert_hello_on,
    assert_raw_hello, client_hello, run, start, tool, RawConn,
};

setup_tests!(
    wrong_preface_gets_protocol_error,
    oversized_frame_gets_frame_size_error,
    close_mid_frame_gets_protocol_error,
    reset_mid_frame_harms_no_one,
    random_bytes_instead_of_client_hello,
);

// ALPN exists only under TLS: on h2c these reduce to a plain request.
setup_tests!(for [
    single_mini_rustls, single_mini_openssl, single_h2_rustls, single_h2_openssl,
    thread_mini_rustls, thread_mini_openssl, thread_h2_rustls, thread_h2_openssl,
    tokio_mini_rustls, tokio_mini_openssl, tokio_h2_rustls, tokio_h2_openssl,
    poll_mini_rustls, poll_mini_openssl,
    uring_mini_rustls, uring_mini_openssl,
] client_offering_only_http11_is_refused, client_without_alpn_is_served);

/// Both a raw request and curl still work on fresh connections.
fn assert_still_serving(server: &h2lab::Server) {
    assert_raw_hello(server);
    assert_curl_hello(server);
}

fn wrong_preface_gets_protocol_error(setup: Setup) {
    let server = start(setup);
    let mut conn = RawConn::connect(&server);
    conn.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let reply = conn.read_to_close();
    assert_goaway_or_bare_close(setup, &reply, Reason::PROTOCOL_ERROR);
    assert_still_serving(&server);
    assert_eq!(server.stop().failed, 1);
}

fn oversized_frame_gets_frame_size_error(setup: Setup) {
    let server = start(setup);
    let mut conn = RawConn::connect(&server);
    // A HEADERS frame announcing 16385 octets: one more than the maximum.
    let mut input = client_hello();
    input.extend_from_slice(&[0x00, 0x40, 0x01, 0x01, 0x05, 0, 0, 0, 1]);
    conn.write_all(&input).unwrap();
    let reply = conn.read_to_close();
    assert_goaway(setup, &reply, Reason::FRAME_SIZE_ERROR);
    assert_still_serving(&server);
}

/// The client stops sending half-way through a frame but still reads: the
/// server answers with GOAWAY(PROTOCOL_ERROR) and closes.
fn close_mid_frame_gets_protocol_error(setup: Setup) {
    let server = start(setup);
    let mut conn = RawConn::connect(&server);
    let mut input = client_hello();
    input.extend_from_slice(&support::GET_1[..7]);
    conn.write_all(&input).unwrap();
    conn.shutdown_write();
    let reply = conn.read_to_close();
    assert_goaway_or_bare_close(setup, &reply, Reason::PROTOCOL_ERROR);
    assert_still_serving(&server);
}

/// The client vanishes half-way through a frame (no FIN-then-read: the
/// socket is dropped).
fn reset_mid_frame_harms_no_one(setup: Setup) {
    let server = start(setup);
    let mut conn = RawConn::connect(&server);
    let mut input = client_hello();
    input.extend_from_slice(&support::GET_1[..5]);
    conn.write_all(&input).unwrap();
    drop(conn);
    assert_still_serving(&server);
}

/// Random octets where a TLS ClientHello (or, for h2c, the preface) is due:
/// the server closes that connection, sending at most a TLS alert or GOAWAY.
fn random_bytes_instead_of_client_hello(setup: Setup) {
    let server = start(setup);
    let mut sock = RawConn::tcp(&server);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let garbage: Vec<u8> = (0..512)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect();
    sock.write_all(&garbage).unwrap();
    let mut conn = RawConn::Plain(sock);
    let reply = conn.read_to_close();
    if setup.tls.is_tls() {
        // Content type 21: a TLS alert record, if anything.
        assert!(reply.is_empty() || reply[0] == 21, "{setup}: {reply:?}");
    } else {
        // Not a preface: §3.4 again.
        assert_goaway_or_bare_close(setup, &reply, Reason::PROTOCOL_ERROR);
    }
    assert_still_serving(&server);
}

/// A TLS client whose ALPN offer lacks h2 gets the no_application_protocol
/// alert; curl --http1.1 fails too.
fn client_offering_only_http11_is_refused(setup: Setup) {
    let server = start(setup);
    {
        let err = RawConn::connect_alpn(&server, &[b"http/1.1"])
            .err()
            .expect("handshake must fail");
        let inner = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>());
        assert_eq!(
            inner,
            Some(&rustls::Error::AlertReceived(
                rustls::AlertDescription::NoApplicationProtocol
            )),
            "{setup}: {err}"
        );
        let out = run(tool("curl")
            .args(["--silent", "--http1.1", "--insecure", "--max-time", "10"])
            .arg(server.url()));
        assert!(!out.status.success(), "{setup}: curl --http1.1 must fail");
    }
    assert_still_serving(&server);
}

/// A TLS client that sends no ALPN at all is served as h2.
fn client_without_alpn_is_served(setup: Setup) {
    let server = start(setup);
    let conn = RawConn::connect_alpn(&server, &[]).unwrap();
    assert_hello_on(conn, setup);
    assert_still_serving(&server);
}

/// Clients cannot drive the log's volume: 50 clients with a wrong preface
/// within a moment show at most 5 lines each second, and the rest is one
/// summary line with the count by reason (at stop at the latest).
#[test]
fn client_errors_are_logged_at_a_limited_rate() {
    let s = support::serve(&["--dispatch", "poll"]);
    let addr = s.addr();
    for _ in 0..50 {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut reply = Vec::new();
        let _ = std::io::Read::read_to_end(&mut conn, &mut reply);
    }
    let out = s.stop_with("TERM");
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    let shown = err
        .lines()
        .filter(|l| l.starts_with("h2lab: client "))
        .count();
    let held: usize = err
        .lines()
        .filter_map(|l| l.strip_prefix("h2lab: "))
        .filter_map(|l| l.split_once(" more client errors not shown"))
        .map(|(n, rest)| {
            assert!(rest.ends_with(&format!(": {n} protocol")), "{rest}");
            n.parse::<usize>().unwrap()
        })
        .sum();
    assert_eq!(shown + held, 50, "{err}");
    assert!(held > 0 && shown <= 10, "{err}");
    assert!(err.contains("50 failed"), "{err}");
}
