//! The server interface: `stop()` with clients still connected, the port
//! freed, `with_server` always stopping (the seed's CALLBACK-ON-SERVER and
//! its three tests), and unsupported setups refused by name.

mod support;

use std::io::Write;
use std::net::TcpListener;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use h2lab::{Dispatch, Engine, ServerError, Setup, TlsProvider};
use support::{client_hello, config, start, RawConn};

setup_tests!(
    stop_with_client_connected_is_prompt_and_frees_the_port,
    stop_is_prompt_while_a_client_never_reads
);

fn stop_with_client_connected_is_prompt_and_frees_the_port(setup: Setup) {
    let server = start(setup);
    let addr = server.local_addr();
    // One client mid-conversation (its connection is being served) and, for
    // `single`, one more waiting in the accept queue behind it.
    let mut busy = RawConn::connect(&server);
    busy.write_all(&client_hello()).unwrap();
    // Being served: the server has sent its SETTINGS on it.
    assert_eq!(busy.read_server_preface(), 4, "{setup}: SETTINGS first");
    let waiting = RawConn::tcp(&server);

    let started = Instant::now();
    server.stop();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "{setup}: stop took {took:?}");

    // The connection was ended: reads see EOF (after the SETTINGS sent).
    busy.read_to_close();
    drop(waiting);
    TcpListener::bind(addr).unwrap_or_else(|e| panic!("{setup}: port not free after stop: {e}"));
}

/// A client that pipelines GETs and never reads: the mini engine's writes
/// to it block once the socket buffers are full (confirmed from the
/// kernel's socket queues before the stop). `stop()` still ends everything
/// within 2 s (tokio with the mini engine waited for the write forever).
/// The `h2` crate ends such a connection by itself first.
fn stop_is_prompt_while_a_client_never_reads(setup: Setup) {
    let server = start(setup);
    let mut conn = RawConn::connect(&server);
    conn.write_all(&client_hello()).unwrap();
    let (client, server_addr) = (conn.local_addr(), server.local_addr());
    let writer = std::thread::spawn(move || {
        let mut stream = 1u32;
        let mut batch = Vec::with_capacity(1000 * 12);
        // Up to 300,000 requests, as long as the server takes them.
        for _ in 0..300 {
            batch.clear();
            for _ in 0..1000 {
                let mut get = support::GET_1;
                get[5..9].copy_from_slice(&stream.to_be_bytes());
                stream += 2;
                batch.extend_from_slice(&get);
            }
            if conn.write_all(&batch).is_err() {
                break;
            }
        }
        conn
    });
    // The mini engine's writes to this client are blocked: the client's
    // receive queue holds what it never read, and the server's socket holds
    // octets it cannot send (the client's window is shut). The `h2` crate
    // does not get there: it ends such a connection itself (the socket is
    // gone from the kernel's table), so on those setups this checks the
    // stop once that client is gone.
    match setup.engine {
        Engine::Mini => support::wait_until(&format!("{setup}: writes blocked"), || {
            let server_side = support::tcp_queues(server_addr, client);
            let client_side = support::tcp_queues(client, server_addr);
            matches!((server_side, client_side), (Some((unsent, _)), Some((_, unread)))
                if unsent > 0 && unread >= 64 * 1024)
        }),
        Engine::H2 => support::wait_until(&format!("{setup}: the crate ended it"), || {
            support::tcp_queues(server_addr, client).is_none()
        }),
    }
    let started = Instant::now();
    server.stop();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "{setup}: stop took {took:?}");
    drop(writer.join().unwrap());
}

#[test]
fn with_server_returns_the_function_result_and_stops() {
    let mut addr = None;
    let body = h2lab::with_server(
        &config(support::setup(Dispatch::Thread, TlsProvider::None)),
        |server| {
            addr = Some(server.local_addr());
            support::assert_raw_hello(server);
            42
        },
    )
    .unwrap();
    assert_eq!(body, 42);
    TcpListener::bind(addr.unwrap()).expect("stopped: port free");
}

#[test]
fn with_server_stops_when_the_function_fails() {
    let mut addr = None;
    let result: Result<Result<(), String>, ServerError> = h2lab::with_server(
        &config(support::setup(Dispatch::Single, TlsProvider::Rustls)),
        |server| {
            addr = Some(server.local_addr());
            Err("client saw something wrong".to_string())
        },
    );
    assert_eq!(
        result.unwrap(),
        Err("client saw something wrong".to_string())
    );
    TcpListener::bind(addr.unwrap()).expect("stopped: port free");
}

#[test]
fn with_server_stops_when_the_function_panics_and_the_panic_goes_on() {
    let mut addr = None;
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        let _ = h2lab::with_server(
            &config(support::setup(Dispatch::Thread, TlsProvider::Openssl)),
            |server| {
                addr = Some(server.local_addr());
                // Leave a client connected, as a failing test would.
                let conn = RawConn::tcp(server);
                std::mem::forget(conn);
                panic!("client function failed");
            },
        );
    }));
    let payload = caught.expect_err("the panic reaches the caller");
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"client function failed")
    );
    TcpListener::bind(addr.unwrap()).expect("stopped: port free");
}

#[test]
fn unbuilt_setups_are_refused_by_name_with_the_supported_list() {
    for tls in TlsProvider::ALL {
        let setup = Setup {
            dispatch: Dispatch::Poll,
            engine: Engine::H2,
            tls,
        };
        let err = h2lab::start(&config(setup)).err().expect("unsupported");
        assert!(matches!(err, ServerError::UnsupportedSetup { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("unsupported setup {setup}")),
            "{text}"
        );
        assert!(
            text.contains("single/mini/none") && text.contains("poll/mini/openssl"),
            "{text}"
        );
        let (_, list) = text.split_once("supported: ").expect("a list");
        assert!(!list.contains("poll/h2"), "{text}");
    }
}

#[test]
fn dispatch_specific_options_are_refused_elsewhere() {
    let cases = [
        (
            Dispatch::Thread,
            h2lab::ServerConfig {
                max_clients: Some(3),
                ..Default::default()
            },
            "--max-clients is only for --dispatch poll and uring",
        ),
        (
            Dispatch::Thread,
            h2lab::ServerConfig {
                threads: 2,
                ..Default::default()
            },
            "--threads is only for --dispatch tokio, poll and uring",
        ),
        (
            Dispatch::Tokio,
            h2lab::ServerConfig {
                pin: vec![0],
                ..Default::default()
            },
            "--pin is only for --dispatch poll and uring",
        ),
    ];
    for (dispatch, cfg, message) in cases {
        let cfg = h2lab::ServerConfig { dispatch, ..cfg };
        let err = h2lab::start(&cfg).err().expect("refused");
        assert_eq!(err.to_string(), message);
    }
}

#[test]
fn busy_port_is_a_clear_bind_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = h2lab::ServerConfig {
        port: taken.local_addr().unwrap().port(),
        ..Default::default()
    };
    let err = h2lab::start(&cfg).err().expect("port is taken");
    assert!(
        err.to_string().starts_with("cannot listen on 127.0.0.1:"),
        "{err}"
    );
}

#[test]
fn serves_on_ipv6_loopback() {
    let cfg = h2lab::ServerConfig {
        host: "::1".parse().unwrap(),
        tls: TlsProvider::Rustls,
        dispatch: Dispatch::Thread,
        ..Default::default()
    };
    let server = match h2lab::start(&cfg) {
        Ok(s) => s,
        // A machine without IPv6 loopback cannot run this; say so loudly.
        Err(ServerError::Bind { source, .. })
            if source.kind() == std::io::ErrorKind::AddrNotAvailable =>
        {
            panic!("no ::1 on this machine: {source}")
        }
        Err(e) => panic!("{e}"),
    };
    assert!(
        server.url().starts_with("https://[::1]:"),
        "{}",
        server.url()
    );
    support::assert_curl_hello(&server);
}
