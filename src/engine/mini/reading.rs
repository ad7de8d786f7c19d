//! Tests of what the engine reads: the answers by method and path, their
//! header fields, and every kind of malformed request a stream error the
//! connection survives.

use super::*;
use crate::hpack::{encode, Decoder};

/// A connection past its SETTINGS, reading, `/` answered with 12 octets.
fn connected() -> (MiniConnection, Vec<u8>) {
    let mut out = Vec::new();
    let mut conn = MiniConnection::accept(&mut out);
    let mut hello = CLIENT_PREFACE.to_vec();
    encode_frame(&mut hello, FrameType::SETTINGS, 0, 0, &[]);
    assert_eq!(conn.handle_input(&hello, &mut out), Ok(Status::Open));
    conn.set_date(784_111_777);
    (conn, Vec::new())
}

/// A HEADERS frame with `fields` (literals without indexing, raw).
fn headers(stream: u32, fields: &[(&str, &str)], end_stream: bool) -> Vec<u8> {
    let mut block = Vec::new();
    for (n, v) in fields {
        block.push(0);
        encode::string(&mut block, n.as_bytes(), false);
        encode::string(&mut block, v.as_bytes(), false);
    }
    let end = if end_stream { flags::END_STREAM } else { 0 };
    let mut f = Vec::new();
    encode_frame(
        &mut f,
        FrameType::HEADERS,
        flags::END_HEADERS | end,
        stream,
        &block,
    );
    f
}

fn request(stream: u32, method: &str, path: &str) -> Vec<u8> {
    headers(
        stream,
        &[
            (":method", method),
            (":scheme", "http"),
            (":path", path),
            (":authority", "h"),
        ],
        true,
    )
}

/// What came back, per stream: the header fields (decoded), whether the
/// HEADERS ended the stream, the body octets, and any RST_STREAM code.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Reply {
    fields: Vec<(String, String)>,
    headers_end: bool,
    body: Vec<u8>,
    reset: Option<Reason>,
}

fn replies(out: &[u8]) -> std::collections::BTreeMap<u32, Reply> {
    let mut decoder = Decoder::new(4096);
    let mut map: std::collections::BTreeMap<u32, Reply> = Default::default();
    let mut rest = out;
    while let Some(h) = FrameHeader::parse(rest) {
        let payload = &rest[HEADER_LEN..HEADER_LEN + h.length as usize];
        rest = &rest[HEADER_LEN + h.length as usize..];
        let r = map.entry(h.stream).or_default();
        match h.kind {
            FrameType::HEADERS => {
                decoder
                    .decode(payload, |n, v| {
                        r.fields.push((
                            String::from_utf8(n.to_vec()).unwrap(),
                            String::from_utf8(v.to_vec()).unwrap(),
                        ))
                    })
                    .unwrap();
                r.headers_end = h.has(flags::END_STREAM);
            }
            FrameType::DATA => r.body.extend_from_slice(payload),
            FrameType::RST_STREAM => {
                r.reset = Some(Reason(u32::from_be_bytes(payload.try_into().unwrap())))
            }
            _ => {}
        }
    }
    assert!(rest.is_empty(), "a partial frame");
    map
}

fn field<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn step(conn: &mut MiniConnection, input: &[u8], out: &mut Vec<u8>) {
    assert_eq!(conn.handle_input(input, out), Ok(Status::Open));
    conn.poll_transmit(out, usize::MAX);
}

#[test]
fn every_route_gets_its_status_fields_and_body() {
    let (mut conn, mut out) = connected();
    let cases: [(&str, &str, &str, u64, &str); 8] = [
        ("GET", "/", "200", 12, "text/html"),
        (
            "GET",
            "/bytes/20000",
            "200",
            20_000,
            "application/octet-stream",
        ),
        ("POST", "/bytes/3?x=1", "200", 3, "application/octet-stream"),
        ("GET", "/status/418", "418", 0, "text/plain"),
        ("GET", "/status/503", "503", 0, "text/plain"),
        ("GET", "/nothing", "404", 0, "text/plain"),
        ("DELETE", "/", "405", 0, "text/plain"),
        ("GET", "/cpu/1us", "200", 12, "text/html"),
    ];
    let mut input = Vec::new();
    for (i, (method, path, ..)) in cases.iter().enumerate() {
        input.extend(request(2 * i as u32 + 1, method, path));
    }
    step(&mut conn, &input, &mut out);
    let got = replies(&out);
    for (i, (method, path, status, len, kind)) in cases.iter().enumerate() {
        let r = &got[&(2 * i as u32 + 1)];
        let what = format!("{method} {path}: {r:?}");
        assert_eq!(field(r, ":status"), Some(*status), "{what}");
        assert_eq!(field(r, "content-type"), Some(*kind), "{what}");
        assert_eq!(
            field(r, "content-length"),
            Some(&*len.to_string()),
            "{what}"
        );
        assert_eq!(
            field(r, "date"),
            Some("Sun, 06 Nov 1994 08:49:37 GMT"),
            "{what}"
        );
        assert_eq!(r.body.len() as u64, *len, "{what}");
        assert!(Body::matches(0, &r.body), "{what}");
        assert_eq!(r.headers_end, *len == 0, "{what}");
    }
    assert_eq!(field(&got[&13], "allow"), Some("GET, HEAD, POST"));
    let mut work = Vec::new();
    conn.take_work(|w| work.push(w));
    assert_eq!(work, [Work::Cpu(Duration::from_micros(1))]);
}

#[test]
fn head_has_the_get_fields_and_no_body() {
    let (mut conn, mut out) = connected();
    let mut input = request(1, "HEAD", "/bytes/100000");
    input.extend(request(3, "GET", "/bytes/100000"));
    step(&mut conn, &input, &mut out);
    let got = replies(&out);
    let (head, get) = (&got[&1], &got[&3]);
    assert_eq!(head.fields, get.fields);
    assert_eq!(field(head, "content-length"), Some("100000"));
    assert!(head.headers_end && head.body.is_empty(), "{head:?}");
    assert_eq!(get.body.len(), 65_535, "the window's worth so far");
}

#[test]
fn no_content_has_no_content_length() {
    let (mut conn, mut out) = connected();
    step(&mut conn, &request(1, "GET", "/status/204"), &mut out);
    let r = &replies(&out)[&1];
    assert_eq!(field(r, ":status"), Some("204"));
    assert_eq!(field(r, "content-length"), None);
}

/// The date comes from the caller and changes with the second.
#[test]
fn the_date_follows_the_time_given() {
    let (mut conn, mut out) = connected();
    step(&mut conn, &request(1, "GET", "/"), &mut out);
    conn.set_date(784_111_778);
    step(&mut conn, &request(3, "GET", "/"), &mut out);
    let got = replies(&out);
    assert_eq!(
        field(&got[&1], "date"),
        Some("Sun, 06 Nov 1994 08:49:37 GMT")
    );
    assert_eq!(
        field(&got[&3], "date"),
        Some("Sun, 06 Nov 1994 08:49:38 GMT")
    );
}

/// A request split over CONTINUATIONs, Huffman-coded and indexed into the
/// dynamic table, then one that uses the entry: decoded as one block.
#[test]
fn blocks_over_continuations_and_the_dynamic_table_are_read() {
    let (mut conn, mut out) = connected();
    let mut enc = crate::hpack::Encoder::new(4096, true);
    let fields: [(&[u8], &[u8]); 4] = [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":path", b"/bytes/7"),
        (b"cookie", &[b'c'; 3000]),
    ];
    let mut block = Vec::new();
    enc.encode(fields, &mut block);
    let mut input = Vec::new();
    let pieces: Vec<&[u8]> = block.chunks(500).collect();
    for (i, p) in pieces.iter().enumerate() {
        let (kind, mut f) = match i {
            0 => (FrameType::HEADERS, flags::END_STREAM),
            _ => (FrameType::CONTINUATION, 0),
        };
        if i + 1 == pieces.len() {
            f |= flags::END_HEADERS;
        }
        encode_frame(&mut input, kind, f, 1, p);
    }
    let mut second = Vec::new();
    enc.encode(fields, &mut second);
    assert!(second.len() < 8, "indexed: {second:?}");
    encode_frame(&mut input, FrameType::HEADERS, 5, 3, &second);
    step(&mut conn, &input, &mut out);
    let got = replies(&out);
    assert_eq!(got[&1].body, b"Hello W");
    assert_eq!(got[&3].body, b"Hello W");
    assert!(conn.decoder.table().len() >= 2);
}

/// Every kind of malformed request: RST_STREAM PROTOCOL_ERROR on its
/// stream, nothing else, and the next request on the same connection is
/// answered.
#[test]
fn each_malformed_request_is_a_stream_error_and_the_connection_serves_on() {
    let good = [(":method", "GET"), (":scheme", "http"), (":path", "/")];
    let with = |extra: (&'static str, &'static str)| {
        let mut f = good.to_vec();
        f.push(extra);
        f
    };
    let bad_blocks: Vec<Vec<(&str, &str)>> = vec![
        with(("X-Upper", "1")),
        with(("x y", "1")),
        with(("x", "a\rb")),
        with(("x", "a ")),
        with((":foo", "1")),
        with((":status", "200")),
        vec![
            ("x", "1"),
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
        ],
        with((":method", "GET")),
        with(("connection", "keep-alive")),
        with(("transfer-encoding", "chunked")),
        with(("te", "gzip")),
        with(("content-length", "5")),
        vec![(":method", "GET"), (":scheme", "http"), (":path", "")],
        vec![(":scheme", "http"), (":path", "/")],
        vec![(":method", "GET"), (":path", "/")],
        vec![(":method", "GET"), (":scheme", "http")],
    ];
    let mut cases: Vec<(String, Vec<u8>)> = bad_blocks
        .iter()
        .map(|f| (format!("{f:?}"), headers(1, f, true)))
        .collect();
    // content-length against the DATA that came: fewer, more.
    let post = |len: &'static str| {
        headers(
            1,
            &[
                (":method", "POST"),
                (":scheme", "http"),
                (":path", "/"),
                ("content-length", len),
            ],
            false,
        )
    };
    let mut short = post("5");
    encode_frame(&mut short, FrameType::DATA, flags::END_STREAM, 1, b"abc");
    cases.push(("content-length 5, DATA 3".into(), short));
    let mut long = post("2");
    encode_frame(&mut long, FrameType::DATA, 0, 1, b"abc");
    encode_frame(&mut long, FrameType::DATA, flags::END_STREAM, 1, b"d");
    cases.push(("content-length 2, DATA 3 then 1".into(), long));
    let mut trailers = post("5");
    encode_frame(&mut trailers, FrameType::DATA, 0, 1, b"abc");
    trailers.extend(headers(1, &[("x-sum", "1")], true));
    cases.push(("content-length 5, DATA 3, trailers".into(), trailers));
    let mut pseudo_trailers = post("3");
    encode_frame(&mut pseudo_trailers, FrameType::DATA, 0, 1, b"abc");
    pseudo_trailers.extend(headers(1, &[(":path", "/")], true));
    cases.push(("a pseudo-header in trailers".into(), pseudo_trailers));
    // A stream that depends on itself, by HEADERS or by PRIORITY.
    let block = {
        let f = headers(1, &good, true);
        f[HEADER_LEN..].to_vec()
    };
    let mut self_dep = Vec::new();
    let mut payload = 1u32.to_be_bytes().to_vec();
    payload.push(15);
    payload.extend_from_slice(&block);
    encode_frame(&mut self_dep, FrameType::HEADERS, 0x25, 1, &payload);
    cases.push(("HEADERS depending on itself".into(), self_dep));
    let mut priority = Vec::new();
    encode_frame(&mut priority, FrameType::PRIORITY, 0, 1, &[0, 0, 0, 1, 15]);
    cases.push(("PRIORITY depending on itself".into(), priority));
    for (name, input) in cases {
        let (mut conn, mut out) = connected();
        step(&mut conn, &input, &mut out);
        let got = replies(&out);
        let r = got.get(&1).cloned().unwrap_or_default();
        assert_eq!(r.reset, Some(Reason::PROTOCOL_ERROR), "{name}: {got:?}");
        assert!(r.fields.is_empty() && r.body.is_empty(), "{name}: answered");
        out.clear();
        step(&mut conn, &request(3, "GET", "/"), &mut out);
        assert_eq!(
            replies(&out)[&3].body,
            b"Hello World\n",
            "{name}: served on"
        );
        assert!(!conn.is_closed(), "{name}");
    }
}

/// DATA in flight when we reset its stream is taken quietly: the
/// connection window is given back, nothing else.
#[test]
fn late_data_on_a_stream_we_reset_is_dropped() {
    let (mut conn, mut out) = connected();
    let mut input = headers(
        1,
        &[
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/"),
            ("content-length", "1"),
        ],
        false,
    );
    encode_frame(&mut input, FrameType::DATA, 0, 1, b"ab");
    encode_frame(&mut input, FrameType::DATA, flags::END_STREAM, 1, b"cd");
    step(&mut conn, &input, &mut out);
    let f: Vec<(FrameType, u32)> = {
        let mut v = Vec::new();
        let mut rest = &out[..];
        while let Some(h) = FrameHeader::parse(rest) {
            v.push((h.kind, h.stream));
            rest = &rest[HEADER_LEN + h.length as usize..];
        }
        v
    };
    assert_eq!(
        f,
        [
            (FrameType::WINDOW_UPDATE, 0),
            (FrameType::WINDOW_UPDATE, 1),
            (FrameType::RST_STREAM, 1),
            (FrameType::WINDOW_UPDATE, 0),
        ]
    );
}

/// A block that is not HPACK ends the connection: COMPRESSION_ERROR.
#[test]
fn an_undecodable_block_is_a_compression_error() {
    for block in [
        &[0x80][..],
        &[0xbe],
        &[0x82, 0x20],
        &[0x00, 0x81, 0x18, 0x01, 0x61],
    ] {
        let (mut conn, mut out) = connected();
        let mut input = Vec::new();
        encode_frame(&mut input, FrameType::HEADERS, 5, 1, block);
        let err = conn.handle_input(&input, &mut out).unwrap_err();
        assert_eq!(err.reason(), Reason::COMPRESSION_ERROR, "{block:?}");
        assert!(conn.is_closed());
    }
}

/// Blind, nothing is decoded: a block that is not HPACK is answered as
/// `/` is, with the seed's two fields.
#[test]
fn a_blind_engine_reads_nothing() {
    let mut out = Vec::new();
    let handler = Handler {
        blind: true,
        ..Handler::default()
    };
    let mut conn = MiniConnection::new(
        &mut out,
        Config {
            handler,
            offload: false,
        },
    );
    let mut hello = CLIENT_PREFACE.to_vec();
    encode_frame(&mut hello, FrameType::SETTINGS, 0, 0, &[]);
    encode_frame(&mut hello, FrameType::HEADERS, 5, 1, &[0x80, 0xff]);
    hello.extend(request(3, "DELETE", "/nothing"));
    step(&mut conn, &hello, &mut out);
    let got = replies(&out);
    for s in [1, 3] {
        assert_eq!(
            got[&s].fields,
            [
                (":status".to_string(), "200".to_string()),
                ("content-type".to_string(), "text/html".to_string())
            ]
        );
        assert_eq!(got[&s].body, b"Hello World\n");
    }
}

/// Work comes from each request's route: on the driver's thread, held
/// for its workers (offload), or as a due time (`delay`).
#[test]
fn each_route_brings_its_own_work() {
    let mut out = Vec::new();
    let mut conn = MiniConnection::new(
        &mut out,
        Config {
            handler: Handler::default(),
            offload: true,
        },
    );
    let mut hello = CLIENT_PREFACE.to_vec();
    encode_frame(&mut hello, FrameType::SETTINGS, 0, 0, &[]);
    hello.extend(request(1, "GET", "/cpu/2ms"));
    hello.extend(request(3, "GET", "/sleep/1ms"));
    hello.extend(request(5, "GET", "/delay/3ms"));
    hello.extend(request(7, "GET", "/"));
    out.clear();
    step(&mut conn, &hello, &mut out);
    assert_eq!(replies(&out).keys().copied().collect::<Vec<_>>(), [0, 7]);
    let mut held = Vec::new();
    conn.take_held(|s, w| held.push((s, w)));
    let ms = Duration::from_millis;
    assert_eq!(held, [(1, Work::Cpu(ms(2))), (3, Work::Sleep(ms(1)))]);
    assert!(conn.wants_time());
    let t0 = Instant::now();
    conn.handle_timeout(t0);
    assert_eq!(conn.poll_timeout(), Some(t0 + ms(3)));
    let mut none = Vec::new();
    conn.take_work(|w| none.push(w));
    assert!(
        none.is_empty(),
        "offloaded, nothing for the driver's thread"
    );
}

/// A field the client indexed into the dynamic table is checked when it
/// is inserted, and its verdict kept: a bad one is malformed at every
/// reference to it, a good one is taken at every reference (the checks
/// are not repeated, `Check::field_known`).
#[test]
fn an_indexed_field_keeps_its_verdict() {
    let (mut conn, mut out) = connected();
    let pseudo: [(&[u8], &[u8]); 3] = [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":path", b"/"),
    ];
    let block = |extra: (&[u8], &[u8]), index: bool| {
        let mut b = Vec::new();
        let mut enc = crate::hpack::Encoder::new(0, false);
        enc.encode(pseudo, &mut b);
        match index {
            true => {
                b.push(0x40);
                encode::string(&mut b, extra.0, false);
                encode::string(&mut b, extra.1, false);
            }
            false => b.push(0xbe), // the newest dynamic entry, index 62
        }
        b
    };
    let mut input = Vec::new();
    let mut send = |stream: u32, b: Vec<u8>| {
        encode_frame(&mut input, FrameType::HEADERS, 5, stream, &b);
    };
    send(1, block((b"x-bad", b"a\nb"), true));
    send(3, block((b"", b""), false));
    send(5, block((b"x-good", b"fine"), true));
    send(7, block((b"", b""), false));
    step(&mut conn, &input, &mut out);
    let got = replies(&out);
    assert_eq!(got[&1].reset, Some(Reason::PROTOCOL_ERROR));
    assert_eq!(
        got[&3].reset,
        Some(Reason::PROTOCOL_ERROR),
        "referenced again: still bad"
    );
    assert_eq!(got[&5].body, b"Hello World\n");
    assert_eq!(got[&7].body, b"Hello World\n");
    assert!(conn.decoder.table().verdict(0), "the good entry is marked");
}
