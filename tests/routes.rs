//! Every route (`h2lab serve --help`, docs/serving.md) on every setup:
//! one connection asks for each, and each answer's status, header fields
//! and body are checked octet by octet, HEAD's having the GET's fields
//! and no body; curl, a real client, gets the same. A blind mini server
//! answers every path as `/`, and says it is blind. `--body-file` is read
//! for every request: a change to the file shows in the next answer.

mod support;

use std::collections::BTreeMap;
use std::io::Write;

use h2lab::engine::Body;
use h2lab::frame::{self, encode_frame, flags, FrameType, Reason};
use h2lab::hpack::{encode, Decoder};
use h2lab::{ServerConfig, Setup};
use support::{run, tool};

/// (method, path, status, body octets, content-type)
const ROUTES: [(&str, &str, u16, u64, &str); 12] = [
    ("GET", "/", 200, 12, "text/html"),
    ("HEAD", "/", 200, 12, "text/html"),
    ("POST", "/", 200, 12, "text/html"),
    (
        "GET",
        "/bytes/20000",
        200,
        20_000,
        "application/octet-stream",
    ),
    (
        "HEAD",
        "/bytes/20000",
        200,
        20_000,
        "application/octet-stream",
    ),
    ("GET", "/bytes/0?q=1", 200, 0, "application/octet-stream"),
    ("GET", "/status/418", 418, 0, "text/plain"),
    ("GET", "/missing", 404, 0, "text/plain"),
    ("PUT", "/", 405, 0, "text/plain"),
    ("GET", "/cpu/10us", 200, 12, "text/html"),
    ("GET", "/sleep/1ms", 200, 12, "text/html"),
    ("GET", "/delay/1ms", 200, 12, "text/html"),
];

/// What a stream got: its header fields, the body, a reset.
#[derive(Debug, Default)]
struct Answer {
    fields: Vec<(String, String)>,
    body: Vec<u8>,
    reset: Option<Reason>,
}

impl Answer {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request per route on one connection, then GOAWAY; returns
/// each stream's answer (streams 1, 3, 5, ... in the order of ROUTES).
fn ask_every_route(server: &h2lab::Server) -> BTreeMap<u32, Answer> {
    let mut wire = support::client_hello();
    for (i, (method, path, ..)) in ROUTES.iter().enumerate() {
        let mut block = Vec::new();
        for (n, v) in [
            (":method", *method),
            (
                ":scheme",
                if server.setup().tls.is_tls() {
                    "https"
                } else {
                    "http"
                },
            ),
            (":path", path),
            (":authority", "localhost"),
        ] {
            block.push(0);
            encode::string(&mut block, n.as_bytes(), false);
            encode::string(&mut block, v.as_bytes(), true);
        }
        let end = if *method == "POST" {
            0
        } else {
            flags::END_STREAM
        };
        let stream = 2 * i as u32 + 1;
        encode_frame(
            &mut wire,
            FrameType::HEADERS,
            flags::END_HEADERS | end,
            stream,
            &block,
        );
        if *method == "POST" {
            encode_frame(
                &mut wire,
                FrameType::DATA,
                flags::END_STREAM,
                stream,
                b"upload",
            );
        }
    }
    let mut conn = support::RawConn::connect(server);
    conn.write_all(&wire).unwrap();
    // Read until every stream has ended, then say GOAWAY and read the rest.
    let mut got = Vec::new();
    let mut answers = BTreeMap::new();
    let mut decoder = Decoder::new(4096);
    let mut ended = 0;
    let mut buf = [0u8; 65536];
    while ended < ROUTES.len() {
        let n = std::io::Read::read(&mut conn, &mut buf).expect("the answers");
        assert!(n > 0, "{}: closed early: {answers:?}", server.setup());
        got.extend_from_slice(&buf[..n]);
        let mut used = 0;
        while let Some(h) = frame::FrameHeader::parse(&got[used..]) {
            let end = used + frame::HEADER_LEN + h.length as usize;
            if got.len() < end {
                break;
            }
            let payload = &got[used + frame::HEADER_LEN..end];
            let a: &mut Answer = answers.entry(h.stream).or_default();
            match h.kind {
                FrameType::HEADERS => decoder
                    .decode(payload, |n, v| {
                        a.fields.push((
                            String::from_utf8(n.to_vec()).unwrap(),
                            String::from_utf8(v.to_vec()).unwrap(),
                        ))
                    })
                    .unwrap(),
                FrameType::DATA => a.body.extend_from_slice(payload),
                FrameType::RST_STREAM => {
                    a.reset = Some(Reason(u32::from_be_bytes(payload.try_into().unwrap())))
                }
                _ => {}
            }
            if h.stream != 0
                && (h.has(flags::END_STREAM) && h.kind != FrameType::SETTINGS
                    || h.kind == FrameType::RST_STREAM)
            {
                ended += 1;
            }
            used = end;
        }
        got.drain(..used);
    }
    answers.remove(&0);
    let mut goaway = Vec::new();
    frame::encode_goaway(&mut goaway, 0, Reason::NO_ERROR);
    let _ = conn.write_all(&goaway);
    answers
}

fn every_route_is_answered_octet_by_octet(setup: Setup) {
    let server = support::start(setup);
    let answers = ask_every_route(&server);
    for (i, (method, path, status, len, kind)) in ROUTES.iter().enumerate() {
        let a = &answers[&(2 * i as u32 + 1)];
        let what = format!("{setup}: {method} {path}: {a:?}");
        assert_eq!(a.reset, None, "{what}");
        assert_eq!(a.field(":status"), Some(&*status.to_string()), "{what}");
        assert_eq!(a.field("content-type"), Some(*kind), "{what}");
        assert_eq!(a.field("content-length"), Some(&*len.to_string()), "{what}");
        let date = a.field("date").unwrap_or_else(|| panic!("no date: {what}"));
        assert!(date.len() == 29 && date.ends_with(" GMT"), "{what}");
        let sent = if *method == "HEAD" { 0 } else { *len };
        let mut body = Vec::new();
        Body::append(0, sent as usize, &mut body);
        assert!(a.body == body, "{what}: the body");
        if *status == 405 {
            assert_eq!(a.field("allow"), Some("GET, HEAD, POST"), "{what}");
        }
    }
    // HEAD: the GET's fields, but the date's second.
    let fields = |i: u32| -> Vec<(String, String)> {
        let mut f = answers[&i].fields.clone();
        f.retain(|(n, _)| n != "date");
        f
    };
    assert_eq!(fields(1), fields(3), "{setup}: HEAD /");
    assert_eq!(fields(7), fields(9), "{setup}: HEAD /bytes");
    // curl, a real client, agrees on a route and its status.
    let mut cmd = tool("curl");
    cmd.args(["--silent", "--show-error", "--max-time", "10", "--insecure"]);
    cmd.arg(if setup.tls.is_tls() {
        "--http2"
    } else {
        "--http2-prior-knowledge"
    });
    cmd.args(["--write-out", " %{http_code}"]);
    let out = run(cmd.arg(format!("{}bytes/7", server.url())));
    assert_eq!(out.stdout, b"Hello W 200", "{setup}");
    let stats = server.stop();
    assert_eq!(stats.responses, ROUTES.len() as u64 + 1, "{setup}");
}

setup_tests!(
    every_route_is_answered_octet_by_octet,
    a_body_file_is_read_for_every_request
);

setup_tests!(for [poll_mini_none, thread_mini_rustls, uring_mini_none] a_blind_server_answers_every_path_as_the_root);

/// `--blind`: nothing is read, so every path gets `/`'s body with the
/// seed's two fields (no date, no content-length).
fn a_blind_server_answers_every_path_as_the_root(setup: Setup) {
    let server = h2lab::start(&ServerConfig {
        blind: true,
        ..support::config(setup)
    })
    .unwrap();
    let answers = ask_every_route(&server);
    for (i, (method, path, ..)) in ROUTES.iter().enumerate() {
        let a = &answers[&(2 * i as u32 + 1)];
        assert_eq!(
            a.fields,
            [
                (":status".to_string(), "200".to_string()),
                ("content-type".to_string(), "text/html".to_string())
            ],
            "{setup}: {method} {path}"
        );
        assert_eq!(a.body, b"Hello World\n", "{setup}: {method} {path}");
    }
    server.stop();
}

/// `/` answers with the file's octets, read per request: the same
/// length written again with other octets is the next answer.
fn a_body_file_is_read_for_every_request(setup: Setup) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("body-files");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{setup}.html").replace('/', "-"));
    std::fs::write(&path, "<p>first answer</p>\n").unwrap();
    let server = h2lab::start(&ServerConfig {
        body_file: Some(path.clone()),
        ..support::config(setup)
    })
    .unwrap();
    let get = || {
        let mut cmd = tool("curl");
        cmd.args(["--silent", "--show-error", "--max-time", "10", "--insecure"]);
        cmd.arg(if setup.tls.is_tls() {
            "--http2"
        } else {
            "--http2-prior-knowledge"
        });
        run(cmd.arg(server.url())).stdout
    };
    assert_eq!(get(), b"<p>first answer</p>\n", "{setup}");
    std::fs::write(&path, "<p>other answer</p>\n").unwrap();
    assert_eq!(get(), b"<p>other answer</p>\n", "{setup}");
    server.stop();
    let _ = std::fs::remove_file(&path);
}
