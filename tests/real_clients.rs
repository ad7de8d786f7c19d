//! Real servers on port 0, real clients over real sockets (curl, h2load,
//! nghttp), for every supported dispatch × engine × TLS setup.

mod support;

use h2lab::{Dispatch, Setup};
use support::{assert_curl_hello, repo_path, run, start, tool};

setup_tests!(
    curl_gets_hello_over_h2,
    h2load_requests_all_succeed,
    nghttp_gets_response
);

fn curl_gets_hello_over_h2(setup: Setup) {
    let server = start(setup);
    assert_curl_hello(&server);
    let stats = server.stop();
    assert_eq!(stats.responses, 1);
    assert_eq!(stats.failed, 0);
}

/// `h2load -n 2000 -m 10`: one client on `single` (it serves one at a time),
/// five on the others.
fn h2load_requests_all_succeed(setup: Setup) {
    let clients = if setup.dispatch == Dispatch::Single {
        "1"
    } else {
        "5"
    };
    let server = start(setup);
    let out = run(tool("h2load")
        .args([
            "-n", "2000", "-m", "10", "-c", clients, "-T", "10", "-N", "10",
        ])
        .arg(server.url()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{setup}: h2load failed: {text}");
    assert!(
        text.contains("requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored, 0 timeout"),
        "{setup}: {text}"
    );
    if setup.tls.is_tls() {
        assert!(text.contains("Application protocol: h2"), "{setup}: {text}");
    }
    let stats = server.stop();
    assert_eq!(stats.responses, 2000, "{setup}");
    assert_eq!(stats.failed, 0, "{setup}");
}

fn nghttp_gets_response(setup: Setup) {
    let server = start(setup);
    let mut cmd = tool("nghttp");
    cmd.args(["--verbose", "--timeout=10"]);
    let out = run(cmd.arg(server.url()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{setup}: nghttp failed: {text}");
    assert!(text.contains(":status: 200"), "{setup}: {text}");
    assert!(
        text.contains("\nHello World\n"),
        "{setup}: body missing: {text}"
    );
    if setup.tls.is_tls() {
        assert!(
            text.contains("The negotiated protocol: h2"),
            "{setup}: {text}"
        );
    }
    server.stop();
}

/// curl verifies the development pair against certs/ca.pem, by name and by IP.
#[test]
fn development_certificate_verifies_for_localhost_and_ip() {
    let server = start(support::setup(Dispatch::Thread, h2lab::TlsProvider::Rustls));
    let port = server.local_addr().port();
    for url in [
        format!("https://localhost:{port}/"),
        format!("https://127.0.0.1:{port}/"),
    ] {
        let out = run(tool("curl")
            .args([
                "--silent",
                "--show-error",
                "--http2",
                "--max-time",
                "10",
                "--cacert",
            ])
            .arg(repo_path("certs/ca.pem"))
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .arg(&url));
        assert!(
            out.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"Hello World\n");
    }
}
