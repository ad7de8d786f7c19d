use super::*;
use crate::frame::encode_window_update;
use crate::frame::parse_goaway;

const SETTINGS_EMPTY: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];
/// Ours: SETTINGS_MAX_CONCURRENT_STREAMS 100, the rest as they are.
const SERVER_SETTINGS: [u8; 15] = [0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100];
const SETTINGS_ACK: [u8; 9] = [0, 0, 0, 4, 1, 0, 0, 0, 0];
/// HEADERS, END_STREAM | END_HEADERS, stream 1: `:method GET`, `:scheme http`, `:path /`.
const GET_1: [u8; 12] = [0, 0, 3, 1, 5, 0, 0, 0, 1, 0x82, 0x86, 0x84];

/// Hands `input` to the engine and pulls every response it can send.
fn step(conn: &mut MiniConnection, input: &[u8], out: &mut Vec<u8>) -> Result<Status> {
    let status = conn.handle_input(input, out);
    conn.poll_transmit(out, usize::MAX);
    status
}

fn connected() -> (MiniConnection, Vec<u8>) {
    let mut out = Vec::new();
    let mut conn = MiniConnection::accept(&mut out);
    assert_eq!(out, SERVER_SETTINGS, "the server speaks first");
    out.clear();
    let mut hello = CLIENT_PREFACE.to_vec();
    hello.extend_from_slice(&SETTINGS_EMPTY);
    assert_eq!(step(&mut conn, &hello, &mut out), Ok(Status::Open));
    assert_eq!(out, SETTINGS_ACK);
    out.clear();
    (conn, out)
}

/// Splits `out` into (header, payload) frames; panics on a partial frame.
fn frames(mut out: &[u8]) -> Vec<(FrameHeader, Vec<u8>)> {
    let mut v = Vec::new();
    while !out.is_empty() {
        let h = FrameHeader::parse(out).expect("whole header");
        let end = HEADER_LEN + h.length as usize;
        v.push((h, out[HEADER_LEN..end].to_vec()));
        out = &out[end..];
    }
    v
}

fn expect_goaway(out: &[u8], reason: Reason) {
    let (h, payload) = frames(out).pop().expect("a frame");
    assert_eq!(h.kind, FrameType::GOAWAY);
    assert_eq!(parse_goaway(&payload).unwrap().1, reason);
}

/// The octets of a reading engine's answer to GET `/` with a 12-octet
/// body, but the body: its HEADERS frame (`:status` 200 indexed, then
/// `content-type: text/html`, `content-length: 12` and the 29-octet
/// `date`, literals without indexing: a two-octet name index and a
/// length octet each) and the DATA frame's header.
const HEADERS_OF_12: u32 = 1 + (3 + 9) + (3 + 2) + (3 + 29);
const ANSWER_HEAD: usize = HEADER_LEN + HEADERS_OF_12 as usize + HEADER_LEN;

#[test]
fn a_blind_get_gets_the_seed_response_with_stream_patched() {
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
    hello.extend_from_slice(&SETTINGS_EMPTY);
    assert_eq!(step(&mut conn, &hello, &mut out), Ok(Status::Open));
    out.clear();
    assert_eq!(step(&mut conn, &GET_1, &mut out), Ok(Status::Open));
    let expected: Vec<u8> = [
        &[0, 0, 11, 1, 4, 0, 0, 0, 1][..],
        &[
            0x88, 0x0f, 0x10, 0x87, 0x49, 0x7c, 0xa5, 0x89, 0xd3, 0x4d, 0x1f,
        ],
        &[0, 0, 12, 0, 1, 0, 0, 0, 1],
        b"Hello World\n",
    ]
    .concat();
    assert_eq!(out, expected);
    assert_eq!(conn.responses(), 1);
}

#[test]
fn pipelined_requests_split_at_every_octet() {
    let (mut conn, _) = connected();
    let mut input = Vec::new();
    for stream in [1u32, 3, 5, 7] {
        let mut get = GET_1;
        get[5..9].copy_from_slice(&stream.to_be_bytes());
        input.extend_from_slice(&get);
    }
    let mut out = Vec::new();
    for byte in &input {
        assert_eq!(
            step(&mut conn, std::slice::from_ref(byte), &mut out),
            Ok(Status::Open)
        );
    }
    let streams: Vec<u32> = frames(&out)
        .iter()
        .filter(|(h, _)| h.kind == FrameType::DATA && h.has(flags::END_STREAM))
        .map(|(h, _)| h.stream)
        .collect();
    assert_eq!(streams, [1, 3, 5, 7]);
}

#[test]
fn preface_split_anywhere_is_accepted() {
    for cut in 0..CLIENT_PREFACE.len() {
        let mut out = Vec::new();
        let mut conn = MiniConnection::accept(&mut out);
        out.clear();
        let (a, b) = CLIENT_PREFACE.split_at(cut);
        assert_eq!(step(&mut conn, a, &mut out), Ok(Status::Open));
        assert_eq!(step(&mut conn, b, &mut out), Ok(Status::Open));
        assert_eq!(step(&mut conn, &SETTINGS_EMPTY, &mut out), Ok(Status::Open));
        assert_eq!(out, SETTINGS_ACK, "cut at {cut}");
    }
}

#[test]
fn wrong_preface_is_a_protocol_error_with_goaway() {
    let mut out = Vec::new();
    let mut conn = MiniConnection::accept(&mut out);
    out.clear();
    let err = conn
        .handle_input(b"GET / HTTP/1.1\r\n\r\n", &mut out)
        .unwrap_err();
    assert_eq!(err, EngineError::PrefaceMismatch { offset: 0 });
    expect_goaway(&out, Reason::PROTOCOL_ERROR);
    assert!(conn.is_closed());
    out.clear();
    assert_eq!(step(&mut conn, &GET_1, &mut out), Ok(Status::Closed));
    assert!(out.is_empty(), "nothing more after the GOAWAY");
}

#[test]
fn ping_is_echoed_with_ack() {
    let (mut conn, mut out) = connected();
    let ping = [0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
    assert_eq!(step(&mut conn, &ping, &mut out), Ok(Status::Open));
    assert_eq!(out, [0, 0, 8, 6, 1, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    out.clear();
    let ack = [0, 0, 8, 6, 1, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
    assert_eq!(step(&mut conn, &ack, &mut out), Ok(Status::Open));
    assert!(out.is_empty(), "a PING ACK is not answered");
}

#[test]
fn ignored_frames_send_nothing() {
    let (mut conn, mut out) = connected();
    let input: Vec<u8> = [
        &[0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 0, 0x10, 0][..], // WINDOW_UPDATE
        &[0, 0, 5, 2, 0, 0, 0, 0, 3, 0, 0, 0, 0, 16],    // PRIORITY
        &[0, 0, 2, 0xfa, 0, 0, 0, 0, 9, 1, 2],           // unknown type
        &SETTINGS_ACK,
    ]
    .concat();
    assert_eq!(step(&mut conn, &input, &mut out), Ok(Status::Open));
    assert!(out.is_empty());
}

#[test]
fn goaway_from_client_closes() {
    let (mut conn, mut out) = connected();
    let goaway = [0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(step(&mut conn, &goaway, &mut out), Ok(Status::Closed));
    assert!(conn.is_closed());
    assert_eq!(conn.handle_eof(&mut out), Ok(()));
    assert!(out.is_empty());
}

#[test]
fn headers_continuation_then_data_ends_request() {
    let (mut conn, mut out) = connected();
    let input: Vec<u8> = [
        &[0, 0, 1, 1, 0, 0, 0, 0, 1, 0x83][..], // HEADERS, POST, no END_*
        &[0, 0, 2, 9, 4, 0, 0, 0, 1, 0x86, 0x84], // CONTINUATION END_HEADERS
        &[0, 0, 3, 0, 0, 0, 0, 0, 1, b'a', b'b', b'c'], // DATA
        &[0, 0, 0, 0, 1, 0, 0, 0, 1],           // DATA END_STREAM
    ]
    .concat();
    assert_eq!(step(&mut conn, &input, &mut out), Ok(Status::Open));
    let kinds: Vec<(FrameType, u32)> = frames(&out)
        .iter()
        .map(|(h, _)| (h.kind, h.stream))
        .collect();
    assert_eq!(
        kinds,
        [
            (FrameType::WINDOW_UPDATE, 0),
            (FrameType::WINDOW_UPDATE, 1),
            (FrameType::HEADERS, 1),
            (FrameType::DATA, 1)
        ]
    );
}

/// Each input after a good handshake, and the error code its GOAWAY carries.
#[test]
fn protocol_violations_get_the_rfc_error_code() {
    let cases: &[(&str, &[u8], Reason)] = &[
        (
            "frame over max size",
            &[0, 0x40, 0x01, 0, 0, 0, 0, 0, 1],
            Reason::FRAME_SIZE_ERROR,
        ),
        (
            "DATA on stream 0",
            &[0, 0, 0, 0, 1, 0, 0, 0, 0],
            Reason::PROTOCOL_ERROR,
        ),
        (
            "HEADERS on stream 0",
            &[0, 0, 0, 1, 5, 0, 0, 0, 0],
            Reason::PROTOCOL_ERROR,
        ),
        (
            "HEADERS on even stream",
            &[0, 0, 0, 1, 5, 0, 0, 0, 2],
            Reason::PROTOCOL_ERROR,
        ),
        (
            "DATA on idle stream",
            &[0, 0, 0, 0, 1, 0, 0, 0, 9],
            Reason::PROTOCOL_ERROR,
        ),
        (
            "SETTINGS on stream 1",
            &[0, 0, 0, 4, 0, 0, 0, 0, 1],
            Reason::PROTOCOL_ERROR,
        ),
        (
            "SETTINGS length 5",
            &[0, 0, 5, 4, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
            Reason::FRAME_SIZE_ERROR,
        ),
        (
            "SETTINGS ACK with payload",
            &[0, 0, 6, 4, 1, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0],
            Reason::FRAME_SIZE_ERROR,
        ),
        (
            "ENABLE_PUSH 2",
            &[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 2],
            Reason::PROTOCOL_ERROR,
        ),
        (
            "INITIAL_WINDOW_SIZE 2^31",
            &[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 4, 0x80, 0, 0, 0],
            Reason::FLOW_CONTROL_ERROR,
        ),
        (
            "MAX_FRAME_SIZE 100",
            &[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 100],
            Reason::PROTOCOL_ERROR,
        ),
        (
            "PING length 7",
            &[0, 0, 7, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7],
            Reason::FRAME_SIZE_ERROR,
        ),
        (
            "PING on stream 1",
            &[0, 0, 8, 6, 0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8],
            Reason::PROTOCOL_ERROR,
        ),
        (
            "PUSH_PROMISE",
            &[0, 0, 4, 5, 4, 0, 0, 0, 1, 0, 0, 0, 2],
            Reason::PROTOCOL_ERROR,
        ),
        (
            "WINDOW_UPDATE 0",
            &[0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            Reason::PROTOCOL_ERROR,
        ),
        (
            "WINDOW_UPDATE length 3",
            &[0, 0, 3, 8, 0, 0, 0, 0, 0, 0, 0, 1],
            Reason::FRAME_SIZE_ERROR,
        ),
        (
            "RST_STREAM on stream 0",
            &[0, 0, 4, 3, 0, 0, 0, 0, 0, 0, 0, 0, 8],
            Reason::PROTOCOL_ERROR,
        ),
        (
            "RST_STREAM on idle stream",
            &[0, 0, 4, 3, 0, 0, 0, 0, 7, 0, 0, 0, 8],
            Reason::PROTOCOL_ERROR,
        ),
        (
            "PRIORITY length 4",
            &[0, 0, 4, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0],
            Reason::FRAME_SIZE_ERROR,
        ),
        (
            "GOAWAY on stream 1",
            &[0, 0, 8, 7, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
            Reason::PROTOCOL_ERROR,
        ),
        (
            "padding too long",
            &[0, 0, 2, 1, 0xd, 0, 0, 0, 1, 5, 0],
            Reason::PROTOCOL_ERROR,
        ),
        (
            "CONTINUATION alone",
            &[0, 0, 0, 9, 4, 0, 0, 0, 1],
            Reason::PROTOCOL_ERROR,
        ),
        (
            "PING inside a header block",
            &[
                0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 8, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
            Reason::PROTOCOL_ERROR,
        ),
        (
            "HEADERS again on a closed stream",
            &[
                0, 0, 3, 1, 5, 0, 0, 0, 1, 0x82, 0x86, 0x84, 0, 0, 3, 1, 5, 0, 0, 0, 1, 0x82, 0x86,
                0x84,
            ],
            Reason::STREAM_CLOSED,
        ),
    ];
    for (name, input, reason) in cases {
        let (mut conn, mut out) = connected();
        let err = step(&mut conn, input, &mut out).expect_err(name);
        assert_eq!(err.reason(), *reason, "{name}: {err}");
        expect_goaway(&out, *reason);
        assert!(conn.is_closed(), "{name}");
    }
}

#[test]
fn first_frame_must_be_settings() {
    let mut out = Vec::new();
    let mut conn = MiniConnection::accept(&mut out);
    let mut input = CLIENT_PREFACE.to_vec();
    input.extend_from_slice(&GET_1);
    let err = step(&mut conn, &input, &mut out).unwrap_err();
    assert_eq!(err.reason(), Reason::PROTOCOL_ERROR);
}

#[test]
fn eof_mid_frame_is_truncation() {
    let (mut conn, mut out) = connected();
    assert_eq!(step(&mut conn, &GET_1[..7], &mut out), Ok(Status::Open));
    assert!(out.is_empty());
    assert_eq!(
        conn.handle_eof(&mut out),
        Err(EngineError::Truncated { pending: 7 })
    );
    expect_goaway(&out, Reason::PROTOCOL_ERROR);
}

#[test]
fn eof_mid_preface_is_truncation_and_clean_eof_is_not() {
    let mut out = Vec::new();
    let mut conn = MiniConnection::accept(&mut out);
    assert_eq!(
        step(&mut conn, &CLIENT_PREFACE[..10], &mut out),
        Ok(Status::Open)
    );
    assert_eq!(
        conn.handle_eof(&mut out),
        Err(EngineError::Truncated { pending: 10 })
    );

    let (mut conn, mut out) = connected();
    assert_eq!(conn.handle_eof(&mut out), Ok(()));
    assert!(out.is_empty());
}

/// Uploads past SETTINGS_MAX_CONCURRENT_STREAMS are refused, each on
/// its own stream, and the connection goes on.
#[test]
fn open_uploads_past_max_streams_are_refused() {
    let (mut conn, mut out) = connected();
    let mut input = Vec::new();
    for i in 0..DEFAULT_MAX_STREAMS + 3 {
        // HEADERS with END_HEADERS but no END_STREAM: the request stays open.
        input.extend_from_slice(&[0, 0, 3, 1, 4]);
        input.extend_from_slice(&(2 * i + 1).to_be_bytes());
        input.extend_from_slice(&[0x83, 0x86, 0x84]);
    }
    assert_eq!(step(&mut conn, &input, &mut out), Ok(Status::Open));
    let refused: Vec<u32> = frames(&out)
        .iter()
        .filter(|(h, p)| {
            h.kind == FrameType::RST_STREAM && p[..] == Reason::REFUSED_STREAM.0.to_be_bytes()
        })
        .map(|(h, _)| h.stream)
        .collect();
    assert_eq!(refused, [201, 203, 205]);
    assert_eq!(conn.open.len(), DEFAULT_MAX_STREAMS as usize);
}

/// A header block that never ends is cut off: at 64 CONTINUATION frames,
/// empty ones included, and at 64 KiB of fragments; up to the limit it is
/// an unfinished request, then a whole one.
#[test]
fn endless_header_blocks_are_enhance_your_calm() {
    let headers = [0, 0, 1, 1, 0, 0, 0, 0, 1, 0x82]; // GET, no END_*
    let empty = [0, 0, 0, 9, 0, 0, 0, 0, 1]; // CONTINUATION
    let (mut conn, mut out) = connected();
    let mut input = headers.to_vec();
    for _ in 0..MAX_CONTINUATIONS {
        input.extend_from_slice(&empty);
    }
    assert_eq!(step(&mut conn, &input, &mut out), Ok(Status::Open));
    assert!(conn.in_header_block());
    let err = step(&mut conn, &empty, &mut out).unwrap_err();
    assert_eq!(err.reason(), Reason::ENHANCE_YOUR_CALM);

    let (mut conn, mut out) = connected();
    let mut input = headers.to_vec();
    for _ in 0..4 {
        input.extend_from_slice(&[0, 0x40, 0, 9, 0, 0, 0, 0, 1]); // 16 KiB
        input.extend_from_slice(&[0x20; 16 * 1024]);
    }
    let err = step(&mut conn, &input, &mut out).unwrap_err();
    assert_eq!(err.reason(), Reason::ENHANCE_YOUR_CALM);

    let (mut conn, mut out) = connected();
    let mut input = headers.to_vec();
    input.extend_from_slice(&empty);
    input.extend_from_slice(&[0, 0, 1, 9, 4, 0, 0, 0, 1, 0x84]); // END_HEADERS
    assert_eq!(step(&mut conn, &input, &mut out), Ok(Status::Open));
    assert!(!conn.in_header_block());
}

/// Pseudo-random input must never panic, and the buffered remainder stays
/// below one maximal frame.
#[test]
fn random_input_never_panics_and_stays_bounded() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..2000 {
        let (mut conn, mut out) = connected();
        for _ in 0..8 {
            let len = (next() % 64) as usize;
            let mut chunk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Mostly small lengths so that frames complete and get parsed.
            if chunk.len() > 3 && next() % 2 == 0 {
                chunk[0] = 0;
                chunk[1] = 0;
                chunk[2] %= 16;
            }
            if step(&mut conn, &chunk, &mut out).is_err() {
                break;
            }
            assert!(conn.pending.len() < HEADER_LEN + DEFAULT_MAX_FRAME_SIZE as usize);
        }
        let _ = conn.handle_eof(&mut out);
        frames(&out); // what we send is always whole frames
    }
}

// Flow control and the pull: large bodies.

/// A GET on `stream`.
fn get(stream: u32) -> Vec<u8> {
    let mut get = GET_1.to_vec();
    get[5..9].copy_from_slice(&stream.to_be_bytes());
    get
}

fn window_update(stream: u32, inc: u32) -> Vec<u8> {
    let mut f = Vec::new();
    encode_window_update(&mut f, stream, inc);
    f
}

fn settings(params: &[(u16, u32)]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (id, value) in params {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    let mut f = Vec::new();
    encode_frame(&mut f, FrameType::SETTINGS, 0, 0, &payload);
    f
}

/// A connection that answers with a `len`-octet body, past its hello.
fn serving(len: u64) -> MiniConnection {
    let handler = Handler {
        body: Body::new(len).unwrap(),
        ..Handler::default()
    };
    serving_with(handler, false)
}

/// A connection past its SETTINGS, answering as `handler` says.
fn serving_with(handler: Handler, offload: bool) -> MiniConnection {
    let mut out = Vec::new();
    let mut conn = MiniConnection::new(&mut out, Config { handler, offload });
    let mut hello = CLIENT_PREFACE.to_vec();
    hello.extend_from_slice(&SETTINGS_EMPTY);
    assert_eq!(conn.handle_input(&hello, &mut out), Ok(Status::Open));
    conn
}

/// DATA octets per stream in `out`, checked against the body pattern as
/// they come; and the streams whose DATA ended.
fn data_of(out: &[u8], got: &mut std::collections::BTreeMap<u32, u64>) -> Vec<u32> {
    let mut ended = Vec::new();
    for (h, payload) in frames(out) {
        if h.kind == FrameType::DATA {
            let at = got.entry(h.stream).or_default();
            assert!(Body::matches(*at, &payload), "stream {} at {at}", h.stream);
            *at += payload.len() as u64;
            if h.has(flags::END_STREAM) {
                ended.push(h.stream);
            }
        }
    }
    ended
}

#[test]
fn a_large_body_goes_as_the_windows_open_in_frames_of_the_allowed_size() {
    let mut conn = serving(100_000);
    let mut out = Vec::new();
    assert_eq!(conn.handle_input(&get(1), &mut out), Ok(Status::Open));
    assert!(out.is_empty(), "responses wait for the pull");
    assert!(conn.wants_transmit());
    conn.poll_transmit(&mut out, usize::MAX);
    let sizes: Vec<(FrameType, u32)> = frames(&out)
        .iter()
        .map(|(h, _)| (h.kind, h.length))
        .collect();
    assert_eq!(
        sizes,
        [
            (FrameType::HEADERS, HEADERS_OF_12 - 2 + 6),
            (FrameType::DATA, 16_384),
            (FrameType::DATA, 16_384),
            (FrameType::DATA, 16_384),
            (FrameType::DATA, 16_383)
        ],
        "the default windows: 65,535 octets"
    );
    assert!(!conn.wants_transmit(), "blocked by the windows");
    let mut got = Default::default();
    assert!(data_of(&out, &mut got).is_empty());
    // The stream's window alone does not open the connection's.
    out.clear();
    assert_eq!(
        step(&mut conn, &window_update(1, 50_000), &mut out),
        Ok(Status::Open)
    );
    assert!(out.is_empty());
    assert_eq!(
        step(&mut conn, &window_update(0, 20_000), &mut out),
        Ok(Status::Open)
    );
    assert_eq!(
        frames(&out).iter().map(|(h, _)| h.length).sum::<u32>(),
        20_000
    );
    assert!(data_of(&out, &mut got).is_empty());
    out.clear();
    assert_eq!(
        step(&mut conn, &window_update(0, 50_000), &mut out),
        Ok(Status::Open)
    );
    let ended = data_of(&out, &mut got);
    assert_eq!(ended, [1]);
    assert_eq!(got[&1], 100_000);
    assert!(!conn.wants_transmit());
    assert_eq!(conn.queued_responses(), 0);
}

#[test]
fn streams_take_turns_a_frame_each() {
    let mut conn = serving(50_000);
    let mut out = Vec::new();
    let big = [(setting::INITIAL_WINDOW_SIZE, 1 << 20)];
    assert_eq!(step(&mut conn, &settings(&big), &mut out), Ok(Status::Open));
    assert_eq!(
        step(&mut conn, &window_update(0, 1 << 20), &mut out),
        Ok(Status::Open)
    );
    out.clear();
    let mut gets = get(1);
    gets.extend(get(3));
    gets.extend(get(5));
    assert_eq!(step(&mut conn, &gets, &mut out), Ok(Status::Open));
    let order: Vec<u32> = frames(&out)
        .iter()
        .filter(|(h, _)| h.kind == FrameType::DATA)
        .map(|(h, _)| h.stream)
        .collect();
    assert_eq!(order, [1, 3, 5, 1, 3, 5, 1, 3, 5, 1, 3, 5]);
    let mut got = Default::default();
    assert_eq!(data_of(&out, &mut got), [1, 3, 5]);
    assert!(got.values().all(|&n| n == 50_000));
}

#[test]
fn output_never_passes_the_room_given_whatever_the_body() {
    let mut conn = serving(64 << 20);
    let mut out = Vec::new();
    let big = [
        (setting::INITIAL_WINDOW_SIZE, frame::MAX_WINDOW_SIZE),
        (setting::MAX_FRAME_SIZE, frame::MAX_MAX_FRAME_SIZE),
    ];
    assert_eq!(step(&mut conn, &settings(&big), &mut out), Ok(Status::Open));
    let more = window_update(0, frame::MAX_WINDOW_SIZE - 65_535);
    assert_eq!(conn.handle_input(&more, &mut out), Ok(Status::Open));
    let mut gets = Vec::new();
    for stream in (1..200).step_by(2) {
        gets.extend(get(stream));
    }
    out.clear();
    assert_eq!(conn.handle_input(&gets, &mut out), Ok(Status::Open));
    assert!(out.is_empty());
    let mut got = Default::default();
    let mut pulls = 0;
    for room in [100_000usize, 256 * 1024, 20_000].iter().cycle().take(300) {
        out.clear();
        let n = conn.poll_transmit(&mut out, *room);
        assert!(n <= *room, "{n} > {room}");
        assert!(frames(&out)
            .iter()
            .all(|(h, _)| h.length as usize <= MAX_DATA_FRAME));
        data_of(&out, &mut got);
        pulls += 1;
    }
    assert_eq!(pulls, 300);
    assert_eq!(got.len(), 100, "every stream has had its turn");
}

#[test]
fn a_new_initial_window_applies_to_open_streams_and_may_go_negative() {
    let mut conn = serving(200_000);
    let mut out = Vec::new();
    assert_eq!(
        step(&mut conn, &window_update(0, 1 << 20), &mut out),
        Ok(Status::Open)
    );
    assert_eq!(step(&mut conn, &get(1), &mut out), Ok(Status::Open));
    out.clear();
    // 65,535 sent; the window shrinks to 1,000: it is now -64,535.
    assert_eq!(
        step(
            &mut conn,
            &settings(&[(setting::INITIAL_WINDOW_SIZE, 1000)]),
            &mut out
        ),
        Ok(Status::Open)
    );
    assert_eq!(frames(&out).len(), 1, "the ACK only");
    out.clear();
    assert_eq!(
        step(&mut conn, &window_update(1, 64_535), &mut out),
        Ok(Status::Open)
    );
    assert!(out.is_empty(), "window back to 0");
    assert_eq!(
        step(&mut conn, &window_update(1, 1_500), &mut out),
        Ok(Status::Open)
    );
    assert_eq!(
        frames(&out).iter().map(|(h, _)| h.length).sum::<u32>(),
        1_500
    );
    // A stream opened now starts at 1,000.
    out.clear();
    assert_eq!(step(&mut conn, &get(3), &mut out), Ok(Status::Open));
    let on3: u32 = frames(&out)
        .iter()
        .filter(|(h, _)| h.kind == FrameType::DATA && h.stream == 3)
        .map(|(h, _)| h.length)
        .sum();
    assert_eq!(on3, 1000);
}

#[test]
fn window_overflow_fails_the_connection_or_resets_the_stream() {
    let mut conn = serving(100_000);
    let mut out = Vec::new();
    let err = step(
        &mut conn,
        &window_update(0, frame::MAX_WINDOW_SIZE),
        &mut out,
    )
    .unwrap_err();
    assert_eq!(err.reason(), Reason::FLOW_CONTROL_ERROR);
    expect_goaway(&out, Reason::FLOW_CONTROL_ERROR);

    let mut conn = serving(100_000);
    let mut out = Vec::new();
    let mut gets = get(1);
    gets.extend(get(3));
    assert_eq!(step(&mut conn, &gets, &mut out), Ok(Status::Open));
    out.clear();
    assert_eq!(
        step(
            &mut conn,
            &window_update(1, frame::MAX_WINDOW_SIZE),
            &mut out
        ),
        Ok(Status::Open)
    );
    let f = frames(&out);
    assert_eq!((f[0].0.kind, f[0].0.stream), (FrameType::RST_STREAM, 1));
    assert_eq!(f[0].1, Reason::FLOW_CONTROL_ERROR.0.to_be_bytes());
    assert_eq!(conn.queued_responses(), 1, "stream 3 goes on");
    // On an idle stream it is a connection error.
    let err = step(&mut conn, &window_update(9, 1), &mut out).unwrap_err();
    assert_eq!(err.reason(), Reason::PROTOCOL_ERROR);
}

#[test]
fn an_empty_body_is_headers_with_end_stream() {
    let mut conn = serving(0);
    let mut out = Vec::new();
    assert_eq!(step(&mut conn, &get(1), &mut out), Ok(Status::Open));
    let f = frames(&out);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].0.kind, FrameType::HEADERS);
    assert_eq!(f[0].0.flags, flags::END_HEADERS | flags::END_STREAM);
    assert_eq!(conn.queued_responses(), 0);
}

/// A client that never opens its windows cannot queue responses without
/// bound: past the cap, requests are refused (and may be retried).
#[test]
fn the_response_queue_is_bounded_by_refusals() {
    let mut conn = serving(100);
    let mut out = Vec::new();
    assert_eq!(
        step(
            &mut conn,
            &settings(&[(setting::INITIAL_WINDOW_SIZE, 0)]),
            &mut out
        ),
        Ok(Status::Open)
    );
    let mut gets = Vec::new();
    let n = DEFAULT_MAX_STREAMS + 10;
    for i in 0..n {
        gets.extend(get(2 * i + 1));
    }
    out.clear();
    assert_eq!(step(&mut conn, &gets, &mut out), Ok(Status::Open));
    assert_eq!(conn.queued_responses(), DEFAULT_MAX_STREAMS as usize);
    let refused = frames(&out)
        .iter()
        .filter(|(h, p)| {
            h.kind == FrameType::RST_STREAM && p[..] == Reason::REFUSED_STREAM.0.to_be_bytes()
        })
        .count();
    assert_eq!(refused, 10);
    assert!(
        !conn.wants_transmit(),
        "every HEADERS went; no window for DATA"
    );
}

// Answers held for a time (`delay:`) or for the driver's work (`--offload`).

#[test]
fn a_delayed_answer_goes_when_its_time_has_come() {
    let d = std::time::Duration::from_millis(5);
    let mut conn = serving_with(
        Handler {
            work: Work::Delay(d),
            ..Handler::default()
        },
        false,
    );
    let mut out = Vec::new();
    assert_eq!(step(&mut conn, &get(1), &mut out), Ok(Status::Open));
    assert!(out.is_empty(), "nothing before its time");
    assert!(conn.awaits_answers());
    assert_eq!(
        conn.poll_timeout(),
        None,
        "not stamped before the time is given"
    );
    let t0 = std::time::Instant::now();
    conn.handle_timeout(t0);
    assert_eq!(conn.poll_timeout(), Some(t0 + d));
    conn.handle_timeout(t0 + d / 2);
    assert!(!conn.wants_transmit());
    conn.handle_timeout(t0 + d);
    assert!(conn.wants_transmit());
    conn.poll_transmit(&mut out, usize::MAX);
    let mut got = Default::default();
    assert_eq!(data_of(&out, &mut got), [1]);
    assert!(!conn.awaits_answers());
    assert_eq!(conn.poll_timeout(), None);
}

#[test]
fn held_answers_go_when_released_in_any_order() {
    let mut conn = serving_with(
        Handler {
            work: Work::Cpu(std::time::Duration::from_millis(1)),
            ..Handler::default()
        },
        true,
    );
    let mut out = Vec::new();
    let mut gets = get(1);
    gets.extend(get(3));
    gets.extend(get(5));
    assert_eq!(step(&mut conn, &gets, &mut out), Ok(Status::Open));
    assert!(out.is_empty());
    let mut held = Vec::new();
    conn.take_held(|s, _| held.push(s));
    assert_eq!(held, [1, 3, 5]);
    conn.take_held(|s, _| held.push(s));
    assert_eq!(held.len(), 3, "each is taken once");
    let mut got = Default::default();
    conn.release(5);
    conn.poll_transmit(&mut out, usize::MAX);
    assert_eq!(data_of(&out, &mut got), [5]);
    out.clear();
    conn.release(1);
    conn.poll_transmit(&mut out, usize::MAX);
    assert_eq!(data_of(&out, &mut got), [1]);
    assert!(conn.awaits_answers(), "3 still works");
    // Reset by the client meanwhile: its release finds nothing.
    let mut rst = Vec::new();
    encode_frame(&mut rst, FrameType::RST_STREAM, 0, 3, &[0, 0, 0, 8]);
    out.clear();
    assert_eq!(step(&mut conn, &rst, &mut out), Ok(Status::Open));
    conn.release(3);
    conn.poll_transmit(&mut out, usize::MAX);
    assert!(out.is_empty());
    assert!(!conn.awaits_answers());
}

/// Small answers go at once while the room given lasts, the rest queue
/// behind them: in order, and never more than the room at once.
#[test]
fn small_answers_go_at_once_within_the_room_and_queue_in_order() {
    let mut conn = serving(12);
    let mut gets = Vec::new();
    for i in 0..100u32 {
        gets.extend(get(2 * i + 1));
    }
    let mut out = Vec::new();
    let one = ANSWER_HEAD + 12;
    let room = one * 10 + 20;
    let status = conn.handle_input_within(&gets, &mut out, room);
    assert_eq!(status, Ok(Status::Open));
    assert_eq!(out.len(), one * 10, "ten whole answers fit");
    assert_eq!(conn.queued_responses(), 90);
    conn.poll_transmit(&mut out, usize::MAX);
    let mut got = Default::default();
    let ended = data_of(&out, &mut got);
    assert_eq!(ended, (0..100u32).map(|i| 2 * i + 1).collect::<Vec<_>>());
}

// What the driver asks of the engine: each signal and count checked on
// its own (mutation testing found them unchecked by the unit tests).

/// A GET of `path` on `stream`, the path a literal.
fn get_path(stream: u32, path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86];
    crate::hpack::encode::literal(&mut block, 4, path.as_bytes());
    let mut f = Vec::new();
    encode_frame(
        &mut f,
        FrameType::HEADERS,
        flags::END_STREAM | flags::END_HEADERS,
        stream,
        &block,
    );
    f
}

#[test]
fn established_once_the_hello_is_in_and_whole_frames_are_counted() {
    let mut out = Vec::new();
    let mut conn = MiniConnection::accept(&mut out);
    assert!(!conn.is_established());
    assert_eq!(conn.frames(), 0);
    assert_eq!(
        conn.handle_input(CLIENT_PREFACE, &mut out),
        Ok(Status::Open)
    );
    assert!(!conn.is_established(), "the preface alone");
    assert_eq!(
        conn.handle_input(&SETTINGS_EMPTY[..5], &mut out),
        Ok(Status::Open)
    );
    assert_eq!(conn.frames(), 0, "half a frame");
    assert_eq!(
        conn.handle_input(&SETTINGS_EMPTY[5..], &mut out),
        Ok(Status::Open)
    );
    assert!(conn.is_established());
    assert_eq!(conn.frames(), 1);
    assert_eq!(
        step(&mut conn, &[get(1), get(3)].concat(), &mut out),
        Ok(Status::Open)
    );
    assert_eq!(conn.frames(), 3);
    assert!(conn
        .handle_input(b"not a frame at all, far too long", &mut out)
        .is_err());
    assert!(!conn.is_established(), "closed");
}

#[test]
fn with_body_answers_with_that_body() {
    let mut out = Vec::new();
    let mut conn = MiniConnection::with_body(&mut out, Body::new(100).unwrap());
    let mut hello = CLIENT_PREFACE.to_vec();
    hello.extend_from_slice(&SETTINGS_EMPTY);
    assert_eq!(step(&mut conn, &hello, &mut out), Ok(Status::Open));
    out.clear();
    assert_eq!(step(&mut conn, &get(1), &mut out), Ok(Status::Open));
    let mut got = std::collections::BTreeMap::new();
    assert_eq!(data_of(&out, &mut got), [1]);
    assert_eq!(got[&1], 100);
}

#[test]
fn the_date_is_the_clocks_and_a_blind_answer_has_none() {
    let day = 1_800_000_000;
    let mut conn = serving(12);
    let mut out = Vec::new();
    for (stream, secs) in [(1, day), (3, day + 86_400)] {
        conn.set_date(secs);
        out.clear();
        assert_eq!(step(&mut conn, &get(stream), &mut out), Ok(Status::Open));
        let text = crate::engine::date::HttpDate::at(secs).text().to_vec();
        assert!(
            out.windows(text.len()).any(|w| w == text),
            "stream {stream}: no date of {secs}"
        );
    }
    // Blind: the seed's octets, whatever the clock says.
    let handler = Handler {
        blind: true,
        ..Handler::default()
    };
    let mut blind = serving_with(handler, false);
    let mut seed = Vec::new();
    assert_eq!(step(&mut blind, &get(1), &mut seed), Ok(Status::Open));
    blind.set_date(day);
    out.clear();
    assert_eq!(step(&mut blind, &get(3), &mut out), Ok(Status::Open));
    seed[5..9].copy_from_slice(&3u32.to_be_bytes());
    let data_at = HEADER_LEN + FrameHeader::parse(&seed).unwrap().length as usize;
    seed[data_at + 5..data_at + 9].copy_from_slice(&3u32.to_be_bytes());
    assert_eq!(out, seed);
}

#[test]
fn only_a_delayed_answer_asks_for_the_time() {
    let mut conn = serving(12);
    let mut out = Vec::new();
    assert_eq!(step(&mut conn, &get(1), &mut out), Ok(Status::Open));
    assert!(!conn.wants_time());
    assert_eq!(
        conn.handle_input(&get_path(3, "/delay/1ms"), &mut out),
        Ok(Status::Open)
    );
    assert!(conn.wants_time());
    conn.handle_timeout(Instant::now());
    assert!(!conn.wants_time(), "stamped");
}

/// `--body-file`: an answer waits for the driver's read, and each gets
/// the octets read for it.
#[test]
fn file_answers_carry_what_was_read_for_each() {
    let path = std::env::temp_dir().join(format!("h2lab-mini-file-{}", std::process::id()));
    std::fs::write(&path, [b'x'; 20]).unwrap();
    let file = crate::engine::file::BodyFile::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let handler = Handler {
        file: Some(file),
        ..Handler::default()
    };
    let mut conn = serving_with(handler, false);
    let mut out = Vec::new();
    assert_eq!(
        step(&mut conn, &[get(1), get(3)].concat(), &mut out),
        Ok(Status::Open)
    );
    assert!(
        frames(&out).iter().all(|(h, _)| h.kind != FrameType::DATA),
        "no body before it is read"
    );
    let mut reads = [b'A', b'B'].into_iter();
    conn.fill_bodies(|data| data.extend_from_slice(&[reads.next().unwrap(); 20]));
    assert_eq!(reads.next(), None, "one read per answer");
    out.clear();
    conn.poll_transmit(&mut out, usize::MAX);
    let bodies: Vec<(u32, Vec<u8>)> = frames(&out)
        .into_iter()
        .filter(|(h, _)| h.kind == FrameType::DATA)
        .map(|(h, p)| (h.stream, p))
        .collect();
    assert_eq!(bodies, [(1, vec![b'A'; 20]), (3, vec![b'B'; 20])]);
}

#[test]
fn wants_transmit_says_whether_a_frame_could_go() {
    let mut conn = serving(100_000);
    let mut out = Vec::new();
    // Streams start with no window, the connection with 65,535.
    let zero = settings(&[(setting::INITIAL_WINDOW_SIZE, 0)]);
    assert_eq!(step(&mut conn, &zero, &mut out), Ok(Status::Open));
    assert!(!conn.wants_transmit(), "nothing queued");
    assert_eq!(conn.handle_input(&get(1), &mut out), Ok(Status::Open));
    assert!(conn.wants_transmit(), "its HEADERS");
    conn.poll_transmit(&mut out, usize::MAX);
    assert!(!conn.wants_transmit(), "no stream window");
    assert_eq!(
        conn.handle_input(&window_update(1, 1 << 30), &mut out),
        Ok(Status::Open)
    );
    assert!(conn.wants_transmit(), "both windows open");
    out.clear();
    conn.poll_transmit(&mut out, usize::MAX);
    let mut got = std::collections::BTreeMap::new();
    data_of(&out, &mut got);
    assert_eq!(got[&1], 65_535, "the connection's window");
    assert!(!conn.wants_transmit(), "no connection window");
    assert_eq!(
        conn.handle_input(&window_update(0, 10), &mut out),
        Ok(Status::Open)
    );
    assert!(conn.wants_transmit());
}

/// What is in `out` before a pull takes none of its room, and the count
/// returned is what the pull appended.
#[test]
fn a_pull_counts_only_what_it_appends() {
    let pull = |before: usize| {
        let mut conn = serving(100_000);
        let mut out = vec![7u8; before];
        assert_eq!(conn.handle_input(&get(1), &mut out), Ok(Status::Open));
        let n = conn.poll_transmit(&mut out, 20_000);
        assert_eq!(n, out.len() - before);
        out.split_off(before)
    };
    let alone = pull(0);
    assert!(
        alone.len() > 16_000 && alone.len() <= 20_000,
        "{}",
        alone.len()
    );
    assert_eq!(pull(5_000), alone);
}

/// Small answers by the thousand: the prebuilt path keeps the
/// connection's window too, and stops at its last octet.
#[test]
fn small_answers_stop_at_the_connections_window() {
    let mut conn = serving(12);
    let mut out = Vec::new();
    let mut got = std::collections::BTreeMap::new();
    let mut stream = 1;
    for _ in 0..60 {
        let batch: Vec<u8> = (0..95).flat_map(|i| get(stream + 2 * i)).collect();
        stream += 2 * 95;
        out.clear();
        assert_eq!(step(&mut conn, &batch, &mut out), Ok(Status::Open));
        data_of(&out, &mut got);
        // Unanswered streams stay open: keep under the limit.
        if got.values().sum::<u64>() >= 65_535 {
            break;
        }
    }
    assert_eq!(got.values().sum::<u64>(), 65_535);
    assert!(got.values().all(|&n| n <= 12));
}

/// A header block up to [`MAX_HEADER_BLOCK`] is taken whole, spread over
/// CONTINUATIONs.
#[test]
fn a_header_block_of_60_kib_is_answered() {
    let mut conn = serving(12);
    let mut out = Vec::new();
    let mut block = vec![0x82, 0x86, 0x84];
    block.push(0x00);
    crate::hpack::encode::string(&mut block, b"x-big", false);
    crate::hpack::encode::string(&mut block, &vec![b'a'; 60 * 1024], false);
    let mut input = Vec::new();
    let mut chunks = block.chunks(16_000).peekable();
    let mut first = true;
    while let Some(chunk) = chunks.next() {
        let end = if chunks.peek().is_none() {
            flags::END_HEADERS
        } else {
            0
        };
        let (kind, fl) = match first {
            true => (FrameType::HEADERS, flags::END_STREAM | end),
            false => (FrameType::CONTINUATION, end),
        };
        encode_frame(&mut input, kind, fl, 1, chunk);
        first = false;
    }
    assert_eq!(step(&mut conn, &input, &mut out), Ok(Status::Open));
    let mut got = std::collections::BTreeMap::new();
    assert_eq!(data_of(&out, &mut got), [1], "answered");
}

/// A connection error still lets the responses begun before it send what
/// they can at once, up to 64 KiB, before its GOAWAY.
#[test]
fn a_failing_connection_flushes_up_to_64_kib_first() {
    let mut conn = serving(1 << 20);
    let mut out = Vec::new();
    let open = [
        settings(&[(setting::INITIAL_WINDOW_SIZE, 1 << 30)]),
        window_update(0, 1 << 30),
        get(1),
    ]
    .concat();
    assert_eq!(conn.handle_input(&open, &mut out), Ok(Status::Open));
    out.clear();
    // PING with 7 octets: FRAME_SIZE_ERROR.
    let mut bad = Vec::new();
    encode_frame(&mut bad, FrameType::PING, 0, 0, &[0; 7]);
    assert!(conn.handle_input(&bad, &mut out).is_err());
    let mut got = std::collections::BTreeMap::new();
    data_of(&out[..out.len() - 17], &mut got);
    assert!(got[&1] > 60_000 && got[&1] <= 65_536, "{}", got[&1]);
    expect_goaway(&out, Reason::FRAME_SIZE_ERROR);
}

/// A preface that goes wrong in its second part says where, counted from
/// its first octet.
#[test]
fn a_preface_mismatch_says_its_offset_across_reads() {
    let mut out = Vec::new();
    let mut conn = MiniConnection::accept(&mut out);
    assert_eq!(
        conn.handle_input(&CLIENT_PREFACE[..10], &mut out),
        Ok(Status::Open)
    );
    let mut rest = CLIENT_PREFACE[10..].to_vec();
    rest[3] ^= 0xff;
    let err = conn.handle_input(&rest, &mut out).unwrap_err();
    assert_eq!(err, EngineError::PrefaceMismatch { offset: 13 });
}

/// The default answer's prebuilt octets go only whole, only within the
/// room and only once: HEADERS sent alone (no window yet) are not sent
/// again with the body.
#[test]
fn the_prebuilt_answer_goes_whole_within_the_room_and_once() {
    // Too little room for the whole answer: the HEADERS alone, at most.
    let mut conn = serving(12);
    let mut out = Vec::new();
    assert_eq!(conn.handle_input(&get(1), &mut out), Ok(Status::Open));
    let n = conn.poll_transmit(&mut out, ANSWER_HEAD);
    assert!(n <= ANSWER_HEAD, "{n}");
    // No stream window: the HEADERS go alone, then the body once it opens.
    let mut conn = serving(12);
    let zero = settings(&[(setting::INITIAL_WINDOW_SIZE, 0)]);
    assert_eq!(step(&mut conn, &zero, &mut out), Ok(Status::Open));
    out.clear();
    assert_eq!(step(&mut conn, &get(1), &mut out), Ok(Status::Open));
    let kinds =
        |out: &[u8]| -> Vec<FrameType> { frames(out).into_iter().map(|(h, _)| h.kind).collect() };
    assert_eq!(kinds(&out), [FrameType::HEADERS]);
    out.clear();
    assert_eq!(
        step(&mut conn, &window_update(1, 100), &mut out),
        Ok(Status::Open)
    );
    assert_eq!(kinds(&out), [FrameType::DATA]);
    let mut got = std::collections::BTreeMap::new();
    assert_eq!(data_of(&out, &mut got), [1]);
    assert_eq!(got[&1], 12);
}

/// Room for exactly a whole answer (its HEADERS, its DATA header and body)
/// takes it whole; room for exactly its HEADERS takes those.
#[test]
fn room_for_exactly_an_answer_takes_it() {
    let request = get_path(1, "/bytes/100");
    let mut whole = Vec::new();
    let mut conn = serving(12);
    assert_eq!(conn.handle_input(&request, &mut whole), Ok(Status::Open));
    conn.poll_transmit(&mut whole, usize::MAX);
    let headers = HEADER_LEN + FrameHeader::parse(&whole).unwrap().length as usize;
    assert_eq!(whole.len(), headers + HEADER_LEN + 100);
    for (room, expected) in [(whole.len(), whole.len()), (headers, headers)] {
        let mut conn = serving(12);
        let mut out = Vec::new();
        assert_eq!(conn.handle_input(&request, &mut out), Ok(Status::Open));
        assert_eq!(conn.poll_transmit(&mut out, room), expected, "room {room}");
        assert_eq!(out, whole[..expected]);
    }
}

/// The first frame must be a SETTINGS that is not an ACK: a frame of
/// another type without flags, and a SETTINGS ACK, are both refused.
#[test]
fn the_first_frame_is_a_settings_without_ack() {
    for (what, first) in [
        ("WINDOW_UPDATE", window_update(0, 10)),
        ("SETTINGS ACK", SETTINGS_ACK.to_vec()),
    ] {
        let mut out = Vec::new();
        let mut conn = MiniConnection::accept(&mut out);
        let input = [CLIENT_PREFACE, &first[..]].concat();
        let err = step(&mut conn, &input, &mut out).unwrap_err();
        assert_eq!(err.reason(), Reason::PROTOCOL_ERROR, "{what}");
    }
}

/// Inside a header block only CONTINUATION on the same stream may come.
#[test]
fn a_header_block_takes_only_its_own_continuation() {
    let mut open = Vec::new();
    encode_frame(
        &mut open,
        FrameType::HEADERS,
        flags::END_STREAM,
        1,
        &[0x82, 0x86],
    );
    let mut other = Vec::new();
    encode_frame(
        &mut other,
        FrameType::CONTINUATION,
        flags::END_HEADERS,
        3,
        &[0x84],
    );
    for (what, next) in [
        ("CONTINUATION on stream 3", other),
        ("PING", {
            let mut ping = Vec::new();
            encode_frame(&mut ping, FrameType::PING, 0, 0, &[0; 8]);
            ping
        }),
    ] {
        let mut conn = serving(12);
        let mut out = Vec::new();
        assert_eq!(conn.handle_input(&open, &mut out), Ok(Status::Open));
        let err = conn.handle_input(&next, &mut out).unwrap_err();
        assert_eq!(err.reason(), Reason::PROTOCOL_ERROR, "{what}");
    }
}

/// GOAWAY: shorter than 8 octets is FRAME_SIZE_ERROR; with debug data
/// after its 8, it closes the connection quietly.
#[test]
fn goaway_needs_eight_octets_and_may_carry_more() {
    let mut conn = serving(12);
    let mut out = Vec::new();
    let mut short = Vec::new();
    encode_frame(&mut short, FrameType::GOAWAY, 0, 0, &[0; 4]);
    let err = conn.handle_input(&short, &mut out).unwrap_err();
    assert_eq!(err.reason(), Reason::FRAME_SIZE_ERROR);
    let mut conn = serving(12);
    let mut long = Vec::new();
    encode_frame(&mut long, FrameType::GOAWAY, 0, 0, b"\0\0\0\0\0\0\0\0bye");
    assert_eq!(conn.handle_input(&long, &mut out), Ok(Status::Closed));
}

/// DATA on a stream already answered and closed is STREAM_CLOSED, not a
/// stream never opened.
#[test]
fn data_on_a_finished_stream_is_stream_closed() {
    let mut conn = serving(12);
    let mut out = Vec::new();
    assert_eq!(step(&mut conn, &get(1), &mut out), Ok(Status::Open));
    let mut data = Vec::new();
    encode_frame(&mut data, FrameType::DATA, 0, 1, b"late");
    let err = conn.handle_input(&data, &mut out).unwrap_err();
    assert_eq!(err.reason(), Reason::STREAM_CLOSED);
}

/// An empty DATA frame on a stream we reset gives nothing back (a
/// WINDOW_UPDATE of 0 would be the client's PROTOCOL_ERROR).
#[test]
fn empty_data_on_a_reset_stream_gives_nothing_back() {
    let mut conn = serving(12);
    let mut out = Vec::new();
    // `te: gzip`: malformed, the stream is reset.
    let mut block = vec![0x82, 0x86, 0x84, 0x00];
    crate::hpack::encode::string(&mut block, b"te", false);
    crate::hpack::encode::string(&mut block, b"gzip", false);
    let mut headers = Vec::new();
    encode_frame(
        &mut headers,
        FrameType::HEADERS,
        flags::END_HEADERS,
        1,
        &block,
    );
    assert_eq!(step(&mut conn, &headers, &mut out), Ok(Status::Open));
    assert!(frames(&out)
        .iter()
        .any(|(h, _)| h.kind == FrameType::RST_STREAM));
    out.clear();
    let mut empty = Vec::new();
    encode_frame(&mut empty, FrameType::DATA, 0, 1, b"");
    assert_eq!(step(&mut conn, &empty, &mut out), Ok(Status::Open));
    assert!(out.is_empty(), "{out:?}");
    let mut some = Vec::new();
    encode_frame(&mut some, FrameType::DATA, 0, 1, b"abc");
    assert_eq!(step(&mut conn, &some, &mut out), Ok(Status::Open));
    assert_eq!(out, window_update(0, 3));
}

/// Padding is not content: a padded DATA frame whose content is what
/// content-length said ends the request, answered.
#[test]
fn padded_data_counts_only_its_content() {
    let mut conn = serving(12);
    let mut out = Vec::new();
    // POST / with content-length: 5 (name index 28).
    let mut block = vec![0x83, 0x86, 0x84];
    crate::hpack::encode::literal(&mut block, 28, b"5");
    let mut input = Vec::new();
    encode_frame(
        &mut input,
        FrameType::HEADERS,
        flags::END_HEADERS,
        1,
        &block,
    );
    // Pad length 3, five octets of content, three of padding.
    let payload = [&[3u8][..], b"hello", &[0, 0, 0]].concat();
    encode_frame(
        &mut input,
        FrameType::DATA,
        flags::END_STREAM | flags::PADDED,
        1,
        &payload,
    );
    assert_eq!(step(&mut conn, &input, &mut out), Ok(Status::Open));
    let mut got = std::collections::BTreeMap::new();
    assert_eq!(data_of(&out, &mut got), [1], "answered, not reset");
}

/// content-length over several DATA frames: the sum must match at the
/// end, neither short nor over; frames before the end may be any part.
#[test]
fn content_length_is_checked_at_the_end_of_the_body() {
    let post = |stream: u32| {
        let mut block = vec![0x83, 0x86, 0x84];
        crate::hpack::encode::literal(&mut block, 28, b"5");
        let mut f = Vec::new();
        encode_frame(
            &mut f,
            FrameType::HEADERS,
            flags::END_HEADERS,
            stream,
            &block,
        );
        f
    };
    let data = |stream: u32, end: bool, octets: &[u8]| {
        let mut f = Vec::new();
        let fl = if end { flags::END_STREAM } else { 0 };
        encode_frame(&mut f, FrameType::DATA, fl, stream, octets);
        f
    };
    let reset = |out: &[u8], stream: u32| {
        frames(out)
            .iter()
            .any(|(h, _)| h.kind == FrameType::RST_STREAM && h.stream == stream)
    };
    let mut conn = serving(12);
    let mut out = Vec::new();
    let input = [post(1), data(1, false, b"ab"), data(1, true, b"cde")].concat();
    assert_eq!(step(&mut conn, &input, &mut out), Ok(Status::Open));
    let mut got = std::collections::BTreeMap::new();
    assert_eq!(data_of(&out, &mut got), [1], "five in two frames");
    assert!(!reset(&out, 1));
    out.clear();
    let short = [post(3), data(3, true, b"abc")].concat();
    assert_eq!(step(&mut conn, &short, &mut out), Ok(Status::Open));
    assert!(reset(&out, 3), "three of five");
}
