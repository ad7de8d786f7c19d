//! Many clients at once: `h2load -n 20000 -c 50 -m 10` against the
//! event-loop dispatches. Every request must succeed.

mod support;

use h2lab::Setup;
use support::{run, start, tool};

fn fifty_clients_20000_requests(setup: Setup) {
    let server = start(setup);
    let out = run(tool("h2load")
        .args([
            "-n", "20000", "-c", "50", "-m", "10", "-T", "20", "-N", "20",
        ])
        .arg(server.url()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{setup}: {text}");
    assert!(
        text.contains("requests: 20000 total, 20000 started, 20000 done, 20000 succeeded, 0 failed, 0 errored, 0 timeout"),
        "{setup}: {text}"
    );
    let stats = server.stop();
    assert_eq!(stats.accepted, 50, "{setup}");
    assert_eq!(stats.responses, 20000, "{setup}");
    assert_eq!(stats.failed, 0, "{setup}");
}

setup_tests!(for [
    poll_mini_none, poll_mini_rustls, poll_mini_openssl,
    uring_mini_none, uring_mini_rustls, uring_mini_openssl,
    tokio_mini_none, tokio_mini_rustls, tokio_mini_openssl,
    tokio_h2_none, tokio_h2_rustls, tokio_h2_openssl,
] fifty_clients_20000_requests);

/// `h2lab load` against real servers, through the binary.
mod builtin {

    use h2lab::{Dispatch, Engine, ServerConfig, TlsProvider};
    use serde_json::Value;

    use crate::support;

    fn load(args: &[&str]) -> (Option<i32>, Value, String) {
        support::h2lab_load(args)
    }

    fn cacert() -> String {
        support::repo_path("certs/ca.pem").display().to_string()
    }

    /// Exact counts: every request of `-n` is accounted for, on our side and
    /// on the server's, for the mini engine and for the h2 crate (which must
    /// respect our HEADER_TABLE_SIZE of 0).
    #[test]
    fn counts_are_exact() {
        for (dispatch, engine, tls) in [
            (Dispatch::Poll, Engine::Mini, TlsProvider::Rustls),
            (Dispatch::Single, Engine::Mini, TlsProvider::None),
            (Dispatch::Tokio, Engine::H2, TlsProvider::Openssl),
            (Dispatch::Thread, Engine::H2, TlsProvider::None),
        ] {
            let setup = h2lab::Setup {
                dispatch,
                engine,
                tls,
            };
            let server = support::start(setup);
            let clients = if dispatch == Dispatch::Single {
                "1"
            } else {
                "3"
            };
            let (code, json, err) = load(&[
                "-n",
                "1001",
                "-c",
                clients,
                "-m",
                "7",
                "--cacert",
                &cacert(),
                "--json",
                server.url(),
            ]);
            assert_eq!(code, Some(0), "{setup}: {err} {json}");
            assert_eq!(json["requests"], 1001, "{setup}: {json}");
            assert_eq!(json["succeeded"], 1001, "{setup}: {json}");
            assert_eq!(json["failed"], 0, "{setup}: {json}");
            assert!(
                json["latency_us"]["p50"].as_u64().unwrap() > 0,
                "{setup}: {json}"
            );
            let stats = server.stop();
            assert_eq!(stats.responses, 1001, "{setup}");
        }
    }

    /// Refused connections: their share fails, the total stays exact, and
    /// the exit status says so.
    #[test]
    fn refused_clients_are_counted_not_lost() {
        let server = h2lab::start(&ServerConfig {
            dispatch: Dispatch::Poll,
            max_clients: Some(1),
            ..Default::default()
        })
        .unwrap();
        let (code, json, _) = load(&["-n", "300", "-c", "3", "-m", "5", "--json", server.url()]);
        assert_eq!(code, Some(1), "{json}");
        assert_eq!(json["requests"], 300, "{json}");
        assert_eq!(json["succeeded"], 100, "{json}");
        assert_eq!(json["failed"], 200, "{json}");
        assert_eq!(json["connection_errors"], 2, "{json}");
        assert_eq!(server.stop().refused, 2);
    }

    #[test]
    fn duration_with_warm_up_is_bounded() {
        let server = support::start(support::setup(Dispatch::Tokio, TlsProvider::Rustls));
        let started = std::time::Instant::now();
        let (code, json, err) = load(&[
            "-D",
            "1",
            "--warm-up",
            "0.5",
            "-c",
            "2",
            "-m",
            "4",
            "-k",
            "--json",
            server.url(),
        ]);
        let took = started.elapsed().as_secs_f64();
        assert_eq!(code, Some(0), "{err}");
        // Time-free: the run lasts at least its warm-up and its duration
        // (the test's own clock can only find it longer), and the measured
        // window is the duration asked, exactly, whatever the machine did.
        assert!(took >= 1.5, "took {took}s");
        let seconds = json["seconds"].as_f64().unwrap();
        assert!((seconds - 1.0).abs() < 1e-6, "{json}");
        assert!(json["succeeded"].as_u64().unwrap() > 0, "{json}");
        assert_eq!(json["failed"], 0, "{json}");
    }

    #[test]
    fn bad_arguments_are_one_line_errors() {
        let (code, _, err) = load(&["ftp://127.0.0.1:1/"]);
        assert_eq!(code, Some(2));
        assert!(err.contains("bad URL"), "{err}");
        let (code, _, err) = load(&["https://127.0.0.1:1/"]);
        assert_eq!(code, Some(2));
        assert!(err.contains("needs --cacert FILE or -k"), "{err}");
        let (code, _, err) = load(&["-n", "5", "-D", "1", "http://127.0.0.1:1/"]);
        assert_eq!(code, Some(2), "{err}");
        // Nothing listens there: a connection error, not a hang.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (code, json, _) = load(&["-n", "10", "--json", &format!("http://127.0.0.1:{port}/")]);
        assert_eq!(code, Some(1));
        assert_eq!(
            (json["failed"].as_u64(), json["connection_errors"].as_u64()),
            (Some(10), Some(1)),
            "{json}"
        );
    }
}
