//! HTTP/2 conformance, by h2spec (`../shared/tools/h2spec`, 146 cases):
//! the `h2` engine passes all of it on `thread` and `tokio` with every TLS
//! provider; the mini engine, deliberately simple, survives all of it on
//! every dispatch (the server answers after, no panic). And uploads of any
//! size are read to their end before the answer.
//!
//! Not `single` with `h2`: h2spec holds a connection open without a word
//! while it tests on another, and `single` serves one client at a time, so
//! every case after that waits out its timeout (a preface deadline would
//! end the silent one, but after h2spec's timeout).

mod support;

use std::path::PathBuf;
use std::process::Command;

use h2lab::Setup;
use support::{run, run_within, tool};

fn h2spec() -> PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/h2spec");
    assert!(
        path.is_file(),
        "{} missing (it ships in shared/tools)",
        path.display()
    );
    path
}

/// Runs the whole suite against `server`, each case given `timeout`
/// seconds; returns (tests, passed) and the output.
fn run_h2spec(server: &h2lab::Server, timeout: &str) -> ((u32, u32), String) {
    let port = server.local_addr().port().to_string();
    let mut cmd = Command::new(h2spec());
    cmd.args(["-h", "127.0.0.1", "-p", &port, "-o", timeout]);
    if server.setup().tls.is_tls() {
        cmd.args(["-t", "-k"]);
    }
    // 146 cases, each failing one waiting out its timeout.
    let out = run_within(&mut cmd, std::time::Duration::from_secs(240));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // The last line: "146 tests, 146 passed, 0 skipped, 0 failed".
    let summary = text
        .lines()
        .rev()
        .find(|l| l.contains(" tests, "))
        .unwrap_or_else(|| panic!("no h2spec summary in: {text}"));
    let num = |word: &str| -> u32 {
        let words: Vec<&str> = summary
            .split([' ', ','])
            .filter(|w| !w.is_empty())
            .collect();
        let at = words.iter().position(|w| *w == word).unwrap();
        words[at - 1].parse().unwrap()
    };
    ((num("tests"), num("passed")), text)
}

setup_tests!(for [
    thread_h2_none, thread_h2_rustls, thread_h2_openssl,
    tokio_h2_none, tokio_h2_rustls, tokio_h2_openssl,
] the_h2_engine_passes_h2spec);

fn the_h2_engine_passes_h2spec(setup: Setup) {
    let server = support::start(setup);
    let ((tests, passed), text) = run_h2spec(&server, "2");
    assert_eq!((tests, passed), (146, 146), "{setup}:\n{text}");
    support::assert_curl_hello(&server);
    server.stop();
}

setup_tests!(for [
    single_mini_none, thread_mini_none, tokio_mini_none, poll_mini_none, poll_mini_rustls,
] the_mini_engine_survives_h2spec);

/// The mini engine answers what it understands and closes on what it does
/// not: some cases fail by design (each waits out a 1 s timeout), none may
/// take the server down. One TLS setup: the engine is the same under TLS.
fn the_mini_engine_survives_h2spec(setup: Setup) {
    let server = support::start(setup);
    let ((tests, passed), text) = run_h2spec(&server, "1");
    assert_eq!(tests, 146, "{setup}:\n{text}");
    println!("{setup}: h2spec {passed}/{tests} passed");
    support::assert_curl_hello(&server);
    let stats = server.stop();
    assert!(stats.accepted >= 146, "{setup}: {stats:?}");
}

setup_tests!(for [
    single_h2_none, single_h2_rustls, thread_h2_none, thread_h2_openssl,
    tokio_h2_none, tokio_h2_rustls, tokio_h2_openssl,
    single_mini_none, tokio_mini_rustls, poll_mini_none, poll_mini_rustls,
] an_upload_larger_than_the_window_is_answered);

/// A 3 MiB POST, 48 times the initial flow-control window: the server
/// reads it to its end (giving the window back as it comes) and answers.
fn an_upload_larger_than_the_window_is_answered(setup: Setup) {
    let server = support::start(setup);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("uploads");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{setup}.bin").replace('/', "-"));
    std::fs::write(&file, vec![b'x'; 3 << 20]).unwrap();
    let mut cmd = tool("curl");
    cmd.args(["--silent", "--show-error", "--max-time", "10", "--insecure"]);
    match setup.tls.is_tls() {
        true => cmd.arg("--http2"),
        false => cmd.arg("--http2-prior-knowledge"),
    };
    let out = run(cmd
        .arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .arg(server.url()));
    assert_eq!(
        out.stdout,
        b"Hello World\n",
        "{setup}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(&file);
    assert_eq!(server.stop().responses, 1, "{setup}");
}
