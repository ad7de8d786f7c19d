//! `h2lab load` as a user meets it: against nghttpd, nginx, h2o and our own
//! servers, and against what goes wrong (a closed port, h2c to a TLS port,
//! a server that never answers, a CA that does not sign the server, an
//! HTTP/1 server). Every failure must say why, with its count.

mod support;

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use h2lab::bench::peers::{self, Peer};
use h2lab::{Dispatch, TlsProvider};
use serde_json::Value;

use support::{run, run_within};

fn h2lab_load() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_h2lab"));
    cmd.arg("load");
    cmd
}

/// Runs `h2lab load ARGS --json`: exit code, the report, stderr.
fn load(args: &[&str]) -> (Option<i32>, Value, String) {
    support::h2lab_load(&[args, &["--json"]].concat())
}

fn cacert() -> String {
    support::repo_path("certs/ca.pem").display().to_string()
}

/// The count of errors with this reason in a report (0 if none).
fn errors(json: &Value, reason: &str) -> u64 {
    json["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors array: {json}"))
        .iter()
        .find(|e| e["reason"] == reason)
        .map_or(0, |e| e["count"].as_u64().unwrap())
}

fn sample(json: &Value, reason: &str) -> String {
    json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["reason"] == reason)
        .map(|e| e["sample"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child killed (with its process group, if it leads one, and its
/// folder) on drop.
struct Peerish {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Drop for Peerish {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir(name: &str) -> PathBuf {
    // Under target/, not /tmp: what a test leaves is cleaned with the build.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("load-client-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// nghttpd (h2c) serving `dir`; `-v` prints every frame it receives.
fn nghttpd(dir: &Path, verbose: bool) -> Peerish {
    let port = free_port();
    let mut cmd = support::tool("nghttpd");
    cmd.process_group(0).args(["--no-tls", "-d"]).arg(dir);
    if verbose {
        cmd.arg("-v");
    }
    let child = cmd
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(if verbose {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(port);
    Peerish {
        child,
        dir: dir.to_path_buf(),
        port,
    }
}

fn docroot(name: &str) -> PathBuf {
    let dir = temp_dir(name);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("index.html"), "hello\n").unwrap();
    std::fs::write(dir.join("sub/o.txt"), "other file\n").unwrap();
    dir
}

/// nghttpd allows 100 streams per connection: 200 wanted in flight are
/// held to its SETTINGS (h2load gets the same 0 failed), and paths and
/// queries reach it as the URL says (a missing one is a 404, counted).
#[test]
fn nghttpd_stream_limit_paths_and_404s() {
    let server = nghttpd(&docroot("nghttpd"), false);
    let base = format!("http://127.0.0.1:{}", server.port);
    let (code, json, err) = load(&["-c", "2", "-m", "200", "-n", "20000", &base]);
    assert_eq!(code, Some(0), "{err} {json}");
    assert_eq!(json["succeeded"], 20000, "{json}");
    assert_eq!(json["failed"], 0, "{json}");

    // The file's length proves which path was served: "other file\n".
    let (code, json, _) = load(&["-n", "10", &format!("{base}/sub/o.txt?x=1")]);
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json["traffic"]["data_in"], 110, "{json}");

    let (code, json, _) = load(&["-n", "7", &format!("{base}/missing")]);
    assert_eq!(code, Some(1), "{json}");
    assert_eq!(json["status_codes"]["4xx"], 7, "{json}");
    assert_eq!(json["status_codes"]["codes"]["404"], 7, "{json}");
    assert_eq!(json["failed"], 7, "{json}");

    // -i: the URLs in turn, the first one's host for all.
    let list = server.dir.join("urls.txt");
    std::fs::write(
        &list,
        format!("{base}/\n\nhttp://elsewhere:1/sub/o.txt\n/missing\n"),
    )
    .unwrap();
    let (code, json, _) = load(&["-n", "9", "-i", list.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{json}");
    assert_eq!(json["status_codes"]["codes"]["200"], 6, "{json}");
    assert_eq!(json["status_codes"]["codes"]["404"], 3, "{json}");
    assert_eq!(json["settings"]["urls"], 3, "{json}");
}

/// What goes on the wire is what was asked: method, path, headers, body
/// (nghttpd -v prints the header fields and DATA it receives).
#[test]
fn method_headers_and_body_reach_the_server() {
    let dir = docroot("verbose");
    let body = dir.join("body.bin");
    std::fs::write(&body, vec![b'x'; 100_000]).unwrap();
    let mut server = nghttpd(&dir, true);
    let url = format!("http://127.0.0.1:{}/sub/o.txt?q=1", server.port);
    let (code, json, err) = load(&[
        "-n",
        "2",
        "--method",
        "PUT",
        "-H",
        "X-Lab: yes",
        "-H",
        "host:example.test",
        "-d",
        body.to_str().unwrap(),
        &url,
    ]);
    assert_eq!(json["settings"]["body_bytes"], 100_000, "{err} {json}");
    // nghttpd serves the file whatever the method: 200 and its 11 octets,
    // whole, for both requests.
    assert_eq!(code, Some(0), "{err} {json}");
    assert_eq!(json["succeeded"], 2, "{json}");
    assert_eq!(
        json["status_codes"]["codes"],
        serde_json::json!({"200": 2}),
        "{json}"
    );
    assert_eq!(
        json["traffic"]["data_in"],
        2 * "other file\n".len(),
        "{json}"
    );
    assert_eq!(json["connection_errors"], 0, "{json}");
    let _ = server.child.kill();
    let mut out = String::new();
    server
        .child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    for want in [
        ":method: PUT",
        ":path: /sub/o.txt?q=1",
        ":authority: example.test",
        "x-lab: yes",
        "content-length: 100000",
    ] {
        assert!(out.contains(want), "{want} not in nghttpd's log:\n{out}");
    }
    // 100,000 octets per request, in DATA frames within the windows.
    let data: usize = out
        .lines()
        .filter(|l| l.contains("recv DATA frame"))
        .filter_map(|l| l.split("length=").nth(1))
        .filter_map(|l| l.split(|c: char| !c.is_ascii_digit()).next())
        .filter_map(|n| n.parse::<usize>().ok())
        .sum();
    assert_eq!(data, 200_000, "{out}");
}

/// nginx with keepalive_requests 100 sends GOAWAY every 100 requests: the
/// load opens a new connection, sends again what was not processed, and
/// every request succeeds (h2load fails most of them here).
#[test]
fn nginx_goaway_is_followed_by_reconnecting() {
    let dir = temp_dir("nginx");
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    let port = free_port();
    let d = dir.display();
    std::fs::write(
        dir.join("nginx.conf"),
        format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  keepalive_requests 100;\n\
             client_body_temp_path {d}/tmp/body; proxy_temp_path {d}/tmp/proxy;\n\
             fastcgi_temp_path {d}/tmp/fastcgi; uwsgi_temp_path {d}/tmp/uwsgi; scgi_temp_path {d}/tmp/scgi;\n\
             server {{\n    listen 127.0.0.1:{port} http2;\n\
             location / {{ return 200 \"Hello World\\n\"; }}\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let nginx = peers::Peer::Nginx
        .find()
        .expect("nginx (Debian: nginx-light)");
    let child = Command::new(nginx)
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    // nginx's worker is a child of the master: the group goes on drop.
    let _nginx = Peerish { child, dir, port };
    wait_listening(port);
    let url = format!("http://127.0.0.1:{port}/");
    let (code, json, err) = load(&["-c", "3", "-m", "10", "-n", "3000", &url]);
    assert_eq!(code, Some(0), "{err} {json}");
    assert_eq!(json["succeeded"], 3000, "{json}");
    let reconnects = json["reconnects"].as_u64().unwrap();
    assert!((27..=40).contains(&reconnects), "{json}");
    assert_eq!(json["connection_errors"], 0, "{json}");
}

/// h2o over TLS: the report names the TLS it negotiated.
#[test]
fn h2o_over_tls_reports_the_session() {
    let peer = peers::start(
        Peer::H2o,
        true,
        1,
        None,
        Default::default(),
        std::net::Ipv4Addr::LOCALHOST.into(),
    )
    .expect("h2o");
    let (code, json, err) = load(&[
        "-n",
        "500",
        "-c",
        "2",
        "-m",
        "5",
        "--cacert",
        &cacert(),
        &peer.url,
    ]);
    assert_eq!(code, Some(0), "{err} {json}");
    assert_eq!(json["succeeded"], 500, "{json}");
    assert_eq!(json["tls"]["alpn"], "h2", "{json}");
    assert!(
        json["tls"]["version"]
            .as_str()
            .unwrap()
            .starts_with("TLSv1_"),
        "{json}"
    );
    assert!(
        !json["tls"]["cipher"].as_str().unwrap().is_empty(),
        "{json}"
    );
    assert!(json["connect_us"]["min"].as_u64().is_some(), "{json}");
    assert!(json["first_byte_us"]["max"].as_u64().is_some(), "{json}");
    assert_eq!(json["per_client"]["min"], 250, "{json}");
}

/// Each way of failing has its reason, its count and a message.
#[test]
fn failures_say_why() {
    // A closed port: every client refused.
    let port = free_port();
    let (code, json, _) = load(&["-n", "10", "-c", "3", &format!("http://127.0.0.1:{port}/")]);
    assert_eq!(code, Some(1));
    assert_eq!(errors(&json, "connect refused"), 3, "{json}");
    assert_eq!(
        (json["failed"].as_u64(), json["connection_errors"].as_u64()),
        (Some(10), Some(3))
    );
    assert_eq!(json["latency_us"], Value::Null, "nothing measured: {json}");

    // h2c to a TLS port.
    let tls = support::start(support::setup(Dispatch::Poll, TlsProvider::Rustls));
    let h2c_url = tls.url().replace("https://", "http://");
    let (code, json, _) = load(&["-n", "4", "-c", "2", &h2c_url]);
    assert_eq!(code, Some(1));
    assert_eq!(errors(&json, "not HTTP/2"), 2, "{json}");
    assert!(
        sample(&json, "not HTTP/2").contains("use https://"),
        "{json}"
    );

    // A CA that did not sign the server's certificate.
    let other_ca = temp_dir("ca").join("other.pem");
    std::fs::write(&other_ca, h2lab::identity::generate().unwrap().ca_pem).unwrap();
    let (code, json, _) = load(&["-n", "4", "--cacert", other_ca.to_str().unwrap(), tls.url()]);
    assert_eq!(code, Some(1));
    assert_eq!(errors(&json, "TLS failure"), 1, "{json}");
    assert!(
        sample(&json, "TLS failure").contains("invalid peer certificate"),
        "{json}"
    );
    drop(tls);

    // A server that accepts and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", silent.local_addr().unwrap());
    let (code, json, _) = load(&["-n", "5", "-c", "2", "--timeout", "500ms", &url]);
    assert_eq!(code, Some(1));
    assert_eq!(errors(&json, "no answer"), 2, "{json}");
    assert_eq!(json["failed"], 5, "{json}");
    drop(silent);

    // An HTTP/1 server, on a port it picks itself and says ("Serving HTTP
    // on 127.0.0.1 port N ..."): a port picked for it here could be taken
    // by a parallel test before it binds.
    let mut http1 = Command::new("python3")
        .args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    let mut said = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(http1.stdout.take().unwrap()),
        &mut said,
    )
    .unwrap();
    let port: u16 = said
        .split(" port ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {said:?}"));
    let (code, json, _) = load(&["-n", "2", &format!("http://127.0.0.1:{port}/")]);
    let _ = http1.kill();
    let _ = http1.wait();
    assert_eq!(code, Some(1));
    assert_eq!(errors(&json, "not HTTP/2"), 1, "{json}");

    // A GOAWAY with an error: the mini engine ends a header block past
    // 64 KiB (here a HEADERS and four CONTINUATIONs) with
    // ENHANCE_YOUR_CALM.
    let mini = support::start(support::setup(Dispatch::Poll, TlsProvider::None));
    let big = format!("x-big: {}", "a".repeat(70_000));
    let (code, json, _) = load(&["-n", "3", "-H", &big, mini.url()]);
    assert_eq!(code, Some(1));
    assert_eq!(errors(&json, "GOAWAY ENHANCE_YOUR_CALM"), 1, "{json}");
    assert_eq!(json["connection_errors"], 1, "{json}");
    assert_eq!(json["requests"], 3, "{json}");
    // A malformed request is its stream's error alone: `te` other than
    // "trailers" (RFC 9113 §8.2.2) is reset, each request on its own.
    let (code, json, _) = load(&["-n", "3", "-H", "te: gzip", mini.url()]);
    assert_eq!(code, Some(1));
    assert_eq!(errors(&json, "stream reset PROTOCOL_ERROR"), 3, "{json}");
    assert_eq!(json["connection_errors"], 0, "{json}");
}

/// `-n` of 2^64-1 against a closed port: every request fails, none is lost
/// to an overflow, and the exit status says so.
#[test]
fn counts_cannot_overflow() {
    let port = free_port();
    let (code, json, _) = load(&[
        "-n",
        "18446744073709551615",
        &format!("http://127.0.0.1:{port}/"),
    ]);
    assert_eq!(code, Some(1), "{json}");
    assert_eq!(json["failed"], u64::MAX, "{json}");
    assert_eq!(json["requests"], u64::MAX, "{json}");
}

/// Unusable arguments and files are refused before anything connects.
#[test]
fn bad_arguments_and_files_exit_2() {
    let dir = temp_dir("args");
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "\n\n").unwrap();
    let readme = support::repo_path("README.md");
    let url = "http://127.0.0.1:1/";
    for (args, says) in [
        (vec!["-c", "2", "-t", "3", url], "-t must not exceed -c"),
        (vec!["-i", empty.to_str().unwrap()], "has no URL"),
        (vec!["-i", "/nonexistent/urls"], "cannot read"),
        (vec!["-d", "/nonexistent/body", url], "cannot read"),
        (vec!["-H", "no colon", url], "NAME:VALUE"),
        (vec!["-H", "connection: close", url], "connection"),
        (vec!["--rps", "0", url], "not a rate"),
        (vec!["-D", "5parsecs", url], "not a duration"),
        (vec!["--method", "G T", url], "not a token"),
        (
            vec!["--cacert", readme.to_str().unwrap(), "https://127.0.0.1:1/"],
            "no PEM certificate",
        ),
        (vec!["http://127.0.0.1:1/a b"], "bad URL"),
    ] {
        let out = run(h2lab_load().args(&args));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: one line: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

/// Threads split the clients; with `-n` every request is still counted
/// once, on our side and on the server's.
#[test]
fn threads_share_the_clients_and_the_count() {
    let server = support::start(support::setup(Dispatch::Tokio, TlsProvider::None));
    let (code, json, err) = load(&["-n", "10001", "-c", "5", "-m", "7", "-t", "2", server.url()]);
    assert_eq!(code, Some(0), "{err} {json}");
    assert_eq!(json["succeeded"], 10001, "{json}");
    assert_eq!(json["settings"]["threads"], 2, "{json}");
    assert_eq!(json["per_client"]["min"], 2000, "{json}");
    assert_eq!(json["per_client"]["max"], 2001, "{json}");
    assert_eq!(server.stop().responses, 10001);
}

/// `--rps`: requests go out on their schedule and the report says whether
/// it was kept; a rate the server cannot reach is reported as such.
#[test]
fn a_fixed_rate_is_kept_and_an_impossible_one_is_reported() {
    let server = support::start(support::setup(Dispatch::Poll, TlsProvider::None));
    let (code, json, err) = load(&[
        "-c",
        "2",
        "-m",
        "10",
        "-D",
        "1s",
        "--warm-up",
        "200ms",
        "--rps",
        "400",
        server.url(),
    ]);
    assert_eq!(code, Some(0), "{err} {json}");
    // Time-free: the requests due in the measured second are the
    // timetable's 400 whatever the machine did (sent on time or counted as
    // never sent; ±1 at the window's edges), the rate is what succeeded
    // over the report's own measured seconds, and "behind" says what its
    // rule says of the report's own figures. Whether this machine kept the
    // schedule is a figure, not a verdict (src/load/timetable.rs counts
    // the schedule exactly without a clock).
    let rate = &json["rate"];
    let (sent, unsent) = (
        rate["sent"].as_u64().unwrap(),
        rate["unsent"].as_u64().unwrap(),
    );
    assert!((399..=401).contains(&(sent + unsent)), "{json}");
    assert_eq!(rate["target_rps"], 400.0, "{json}");
    let seconds = json["seconds"].as_f64().unwrap();
    assert!((seconds - 1.0).abs() < 1e-6, "the measured window: {json}");
    let succeeded = json["succeeded"].as_f64().unwrap();
    assert!(succeeded > 0.0 && succeeded <= sent as f64, "{json}");
    let rps = json["req_per_s"].as_f64().unwrap();
    assert!((rps - succeeded / seconds).abs() < 1e-6 * rps, "{json}");
    let late = rate["max_lag_us"].as_u64().unwrap() > 100_000;
    let behind = unsent > (sent + unsent) / 100 || late;
    assert_eq!(rate["behind"], behind, "{json}");
    // One connection, one request at a time, 10 million a second: no server
    // keeps that up; what was due and not sent is counted.
    let (_, json, _) = load(&[
        "-c",
        "1",
        "-m",
        "1",
        "-D",
        "500ms",
        "--rps",
        "10000000",
        server.url(),
    ]);
    assert_eq!(json["rate"]["behind"], true, "{json}");
    assert!(
        json["rate"]["unsent"].as_u64().unwrap() > 1_000_000,
        "{json}"
    );
    assert!(json["seconds"].as_f64().unwrap() < 0.6, "{json}");
}

/// Ctrl-C prints the summary of what was done and exits 1.
#[test]
fn ctrl_c_reports_what_was_done() {
    let server = support::start(support::setup(Dispatch::Poll, TlsProvider::None));
    let child = h2lab_load()
        .args(["-c", "2", "-m", "10", "-D", "30s", "--json", server.url()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["interrupted"], true, "{json}");
    assert!(json["succeeded"].as_u64().unwrap() > 0, "{json}");
    assert_eq!(json["failed"], 0, "{json}");
    let seconds = json["seconds"].as_f64().unwrap();
    assert!((0.5..2.0).contains(&seconds), "{json}");
}

/// On a terminal, a progress line; off one (as everywhere else in these
/// tests), none.
#[test]
fn progress_shows_on_a_terminal() {
    let server = support::start(support::setup(Dispatch::Poll, TlsProvider::None));
    let cmd = format!(
        "{} load -c 1 -m 1 -D 1s --rps 100 {}",
        env!("CARGO_BIN_EXE_h2lab"),
        server.url()
    );
    // util-linux's `script` gives the command a terminal.
    let out = run_within(
        support::tool("script").args(["-qec", &cmd, "/dev/null"]),
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(" ms, "), "no progress line: {text}");
    assert!(text.contains("req/s"), "{text}");
    let plain = run(h2lab_load().args(["-n", "5", server.url()]));
    assert!(
        plain.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
}

/// A weighted mix, with a browser's headers: every path gets its share
/// exactly, its answers are checked against its route, the per-path
/// counts add up to the total (text, JSON and CSV), and the browser's
/// fields go as a few octets each after the first request. Against a
/// blind server, which answers every path as `/`, the same mix fails
/// exactly the requests whose route says otherwise.
#[test]
fn a_mix_is_reported_path_by_path() {
    let server = support::start(support::setup(Dispatch::Poll, TlsProvider::None));
    let base = server.url().trim_end_matches('/').to_string();
    let urls = [
        format!("{base}/@3"),
        format!("{base}/bytes/100@1"),
        format!("{base}/status/204@1"),
    ];
    let csv = temp_dir("mix").join("paths.csv");
    let (code, json, _) = load(&[
        "-n",
        "500",
        "-m",
        "10",
        "--browser-headers",
        "--csv",
        csv.to_str().unwrap(),
        &urls[0],
        &urls[1],
        &urls[2],
    ]);
    assert_eq!(code, Some(0), "{json}");
    let paths = json["paths"].as_array().unwrap();
    let got: Vec<(&str, u64, u64, u64)> = paths
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap(),
                p["requests"].as_u64().unwrap(),
                p["succeeded"].as_u64().unwrap(),
                p["body_bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("/", 300, 300, 3600),
            ("/bytes/100", 100, 100, 10_000),
            ("/status/204", 100, 100, 0)
        ]
    );
    let total: u64 = got.iter().map(|g| g.1).sum();
    assert_eq!(total, json["requests"].as_u64().unwrap());
    assert_eq!(paths[2]["codes"]["204"], 100, "{json}");
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.contains("/bytes/100,1,100,100,0,200:100,"), "{text}");
    // About 600 octets of fields a request if sent raw; with the dynamic
    // table, after the first request of each path, a few octets each.
    let out = json["traffic"]["bytes_out"].as_u64().unwrap();
    assert!(out < 500 * 60, "{out} octets out for 500 requests");
    assert_eq!(json["traffic"]["dated_blocks"], 500, "{json}");
    server.stop();

    let blind = h2lab::start(&h2lab::ServerConfig {
        blind: true,
        ..support::config(support::setup(Dispatch::Poll, TlsProvider::None))
    })
    .unwrap();
    let base = blind.url().trim_end_matches('/').to_string();
    let (code, json, _) = load(&[
        "-n",
        "50",
        &format!("{base}/@3"),
        &format!("{base}/bytes/100@1"),
        &format!("{base}/status/204@1"),
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(errors(&json, "wrong body"), 10, "{json}");
    assert_eq!(errors(&json, "wrong status"), 10, "{json}");
    assert_eq!(json["succeeded"], 30, "{json}");
    blind.stop();
}
