//! The real `h2lab` binary: `serve` prints one line and stops cleanly on
//! SIGINT/SIGTERM; bad flags give one-line errors; `certs` writes a pair
//! that the server and curl accept.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{run, serve, tool};

fn h2lab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_h2lab"))
}

fn curl(args: &[&str], url: &str) -> Output {
    run(tool("curl")
        .args(["--silent", "--show-error", "--max-time", "10"])
        .args(args)
        .arg(url))
}

#[test]
fn serve_prints_one_line_and_sigterm_stops_with_status_0() {
    let s = serve(&["--dispatch", "thread", "--tls", "openssl"]);
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    let out = curl(&["--http2", "--insecure"], &s.url);
    assert_eq!(out.stdout, b"Hello World\n");
    let out = s.stop_with("TERM");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        out.stdout.is_empty(),
        "nothing after the first line: {out:?}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stopped by signal 15: 1 connections, 1 responses, "),
        "{err}"
    );
    assert!(err.contains(" 0 failed, 0 refused, 0 timed out"), "{err}");
}

/// `--blind` says so on the stop line, and answers any path as `/`;
/// without it, a path that is no route is 404.
#[test]
fn a_blind_server_says_it_is_blind() {
    let s = serve(&["--dispatch", "poll", "--blind"]);
    let out = curl(
        &["--http2-prior-knowledge", "--write-out", " %{http_code}"],
        &format!("{}nothing", s.url),
    );
    assert_eq!(out.stdout, b"Hello World\n 200");
    let err = String::from_utf8_lossy(&s.stop_with("TERM").stderr).to_string();
    assert!(
        err.contains("poll/mini/none (blind: no request read) stopped"),
        "{err}"
    );
    let s = serve(&["--dispatch", "poll"]);
    let out = curl(
        &["--http2-prior-knowledge", "--write-out", "%{http_code}"],
        &format!("{}nothing", s.url),
    );
    assert_eq!(out.stdout, b"404");
    let err = String::from_utf8_lossy(&s.stop_with("TERM").stderr).to_string();
    assert!(err.contains("poll/mini/none stopped"), "{err}");
    let err = fails_with_one_line(
        &["serve", "--engine", "h2", "--dispatch", "tokio", "--blind"],
        2,
    );
    assert!(err.contains("--blind is the mini engine's"), "{err}");
}

#[test]
fn sigint_stops_with_status_0_while_a_client_is_connected() {
    let s = serve(&["--dispatch", "single"]);
    let addr = s.url.trim_start_matches("http://").trim_end_matches('/');
    let _idle = std::net::TcpStream::connect(addr).unwrap();
    // Connected means accepted: the listener's accept queue is empty again.
    support::wait_until("the client accepted", || {
        support::accept_queue(s.addr()) == Some(0)
    });
    let out = s.stop_with("INT");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// Runs `h2lab ARGS`, expecting failure with one line on stderr.
fn fails_with_one_line(args: &[&str], code: i32) -> String {
    let out = run(h2lab().args(args));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
    assert!(out.stdout.is_empty());
    err
}

#[test]
fn unknown_values_are_one_line_errors() {
    let err = fails_with_one_line(&["serve", "--dispatch", "fork"], 2);
    assert!(
        err.contains("invalid value 'fork'") && err.contains("single"),
        "{err}"
    );
    let err = fails_with_one_line(&["serve", "--tls", "gnutls"], 2);
    assert!(
        err.contains("possible values: none, rustls, openssl"),
        "{err}"
    );
    let err = fails_with_one_line(&["serve", "--port", "70000"], 2);
    assert!(err.contains("70000"), "{err}");
    let err = fails_with_one_line(&["serve", "--host", "example.org"], 2);
    assert!(err.contains("not an IP address"), "{err}");
    let err = fails_with_one_line(&["serve", "--cert", "c.pem"], 2);
    assert!(err.contains("--key"), "{err}");
    // Options the chosen setup does not have: usage errors too.
    let err = fails_with_one_line(&["serve", "--dispatch", "thread", "--max-clients", "3"], 2);
    assert!(
        err.contains("--max-clients is only for --dispatch poll"),
        "{err}"
    );
    let err = fails_with_one_line(
        &["serve", "--dispatch", "uring", "--uring-features", "warp"],
        2,
    );
    assert!(err.contains("unknown io_uring feature `warp`"), "{err}");
    let err = fails_with_one_line(
        &["serve", "--dispatch", "poll", "--uring-features", "none"],
        2,
    );
    assert!(
        err.contains("--uring-features is only for --dispatch uring"),
        "{err}"
    );
    let err = fails_with_one_line(
        &[
            "serve",
            "--dispatch",
            "uring",
            "--threads",
            "2",
            "--spread",
            "handoff",
        ],
        2,
    );
    assert!(
        err.contains("--spread handoff is only for --dispatch poll"),
        "{err}"
    );
    fails_with_one_line(&["frobnicate"], 2);
}

#[test]
fn unsupported_setup_is_a_one_line_error_naming_it() {
    let err = fails_with_one_line(
        &[
            "serve",
            "--dispatch",
            "poll",
            "--engine",
            "h2",
            "--tls",
            "rustls",
        ],
        2,
    );
    assert!(
        err.starts_with("h2lab: unsupported setup poll/h2/rustls"),
        "{err}"
    );
    assert!(err.contains("supported: single/mini/none"), "{err}");
}

#[test]
fn missing_certificate_file_is_named() {
    let err = fails_with_one_line(
        &[
            "serve",
            "--tls",
            "rustls",
            "--cert",
            "/nonexistent/c.pem",
            "--key",
            "/nonexistent/k.pem",
        ],
        1,
    );
    assert!(
        err.contains("cannot read certificate /nonexistent/c.pem"),
        "{err}"
    );
}

#[test]
fn help_explains_every_serve_flag() {
    let out = run(h2lab().args(["serve", "--help"]));
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--host",
        "--port",
        "--dispatch",
        "--engine",
        "--tls",
        "--cert",
        "--key",
        "--trace",
        "--trace-live",
        "--trace-memory",
    ] {
        assert!(help.contains(flag), "{flag} missing from: {help}");
    }
    assert!(help.contains("listening on URL"), "{help}");
}

#[test]
fn trace_errors_name_the_file() {
    let err = fails_with_one_line(&["trace-convert", "/nonexistent/run1"], 2);
    assert!(
        err.starts_with("h2lab: cannot read /nonexistent/run1.meta.json: "),
        "{err}"
    );
    let err = fails_with_one_line(&["serve", "--trace", "/proc/no-such-dir/run"], 1);
    assert!(
        err.starts_with("h2lab: cannot create /proc/no-such-dir: "),
        "{err}"
    );
    assert_eq!(err.matches("os error").count(), 1, "said once: {err}");
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn certs_writes_a_pair_that_serves_and_verifies() {
    let dir = scratch_dir("certs-fresh");
    let out = run(h2lab().args(["certs", "--out"]).arg(&dir));
    assert!(out.status.success(), "{out:?}");
    let path = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let s = serve(&[
        "--tls",
        "rustls",
        "--cert",
        &path("localhost.pem"),
        "--key",
        &path("localhost-key.pem"),
    ]);
    let ok = curl(&["--http2", "--cacert", &path("ca.pem")], &s.url);
    assert_eq!(ok.stdout, b"Hello World\n", "{ok:?}");
    // The committed development CA does not vouch for the fresh pair.
    let refused = curl(
        &[
            "--http2",
            "--cacert",
            support::repo_path("certs/ca.pem").to_str().unwrap(),
        ],
        &s.url,
    );
    assert!(!refused.status.success());
    assert_eq!(s.stop_with("TERM").status.code(), Some(0));

    let err = fails_with_one_line(&["certs", "--out", dir.to_str().unwrap()], 1);
    assert!(err.contains("exists already"), "{err}");
    let mut before = String::new();
    std::fs::File::open(dir.join("ca.pem"))
        .unwrap()
        .read_to_string(&mut before)
        .unwrap();
    assert!(run(h2lab().args(["certs", "--force", "--out"]).arg(&dir))
        .status
        .success());
    let after = std::fs::read_to_string(dir.join("ca.pem")).unwrap();
    assert_ne!(before, after, "--force writes a new pair");
}

/// A reader that goes away (`| head -1`) is not a panic.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("closed-stdout");
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = h2lab()
        .args(["certs", "--out"])
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone before anything is written
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(dir.join("localhost.pem").exists());
}
