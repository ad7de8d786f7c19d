//! Properties of the mini engine, over generated input cut at generated
//! points: it never panics, holds at most one unfinished frame, answers
//! exactly the requests that ended, and closes on the first violation with
//! a GOAWAY whose code is that violation's. `PROPTEST_CASES=N` runs more
//! cases (the README's "Properties and fuzzing").

use proptest::prelude::*;

use super::*;

/// What a well-behaved client may send, one step at a time.
#[derive(Clone, Debug)]
enum Step {
    /// GET in one HEADERS frame.
    Get,
    /// GET whose header block spans HEADERS and `n` CONTINUATIONs.
    SplitGet(u8),
    /// A request with a body of `n` octets in DATA frames of at most 1000.
    Upload(u16),
    Ping,
    Settings,
    WindowUpdate(u32),
    Priority,
    /// A frame of a type RFC 9113 does not define (ignored, §5.5).
    Unknown(u16),
}

/// What breaks the rules, with the code RFC 9113 gives it.
#[derive(Clone, Copy, Debug)]
enum Violation {
    EvenStream,
    StreamGoingBack,
    Oversized,
    PingLength,
    SettingsLength,
    WindowUpdateZero,
    WindowOverflow,
    ContinuationAlone,
    DataOnStreamZero,
    PushPromise,
    HeadersInterrupted,
}

impl Violation {
    fn reason(self) -> Reason {
        match self {
            Self::Oversized | Self::PingLength | Self::SettingsLength => Reason::FRAME_SIZE_ERROR,
            Self::StreamGoingBack => Reason::STREAM_CLOSED,
            Self::WindowOverflow => Reason::FLOW_CONTROL_ERROR,
            _ => Reason::PROTOCOL_ERROR,
        }
    }
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Get),
        1 => (1u8..5).prop_map(Step::SplitGet),
        1 => (1u16..3000).prop_map(Step::Upload),
        1 => Just(Step::Ping),
        1 => Just(Step::Settings),
        // Well-behaved: the connection window never passes 2^31-1.
        1 => (1u32..=1 << 20).prop_map(Step::WindowUpdate),
        1 => Just(Step::Priority),
        1 => (0u16..200).prop_map(Step::Unknown),
    ]
}

fn violation_strategy() -> impl Strategy<Value = Violation> {
    prop_oneof![
        Just(Violation::EvenStream),
        Just(Violation::StreamGoingBack),
        Just(Violation::Oversized),
        Just(Violation::PingLength),
        Just(Violation::SettingsLength),
        Just(Violation::WindowUpdateZero),
        Just(Violation::WindowOverflow),
        Just(Violation::ContinuationAlone),
        Just(Violation::DataOnStreamZero),
        Just(Violation::PushPromise),
        Just(Violation::HeadersInterrupted),
    ]
}

const GET_BLOCK: [u8; 3] = [0x82, 0x86, 0x84];

/// The client's octets for `steps`, and the streams whose requests end, in
/// order; the next stream id.
fn encode(steps: &[Step]) -> (Vec<u8>, Vec<u32>, u32) {
    let mut wire = CLIENT_PREFACE.to_vec();
    encode_frame(&mut wire, FrameType::SETTINGS, 0, 0, &[]);
    let mut ended = Vec::new();
    let mut next = 1u32;
    for s in steps {
        match *s {
            Step::Get => {
                let f = flags::END_STREAM | flags::END_HEADERS;
                encode_frame(&mut wire, FrameType::HEADERS, f, next, &GET_BLOCK);
                ended.push(next);
                next += 2;
            }
            Step::SplitGet(n) => {
                encode_frame(
                    &mut wire,
                    FrameType::HEADERS,
                    flags::END_STREAM,
                    next,
                    &[0x82],
                );
                for i in 0..n {
                    let last = i + 1 == n;
                    let f = if last { flags::END_HEADERS } else { 0 };
                    let piece: &[u8] = if last { &[0x86, 0x84] } else { &[] };
                    encode_frame(&mut wire, FrameType::CONTINUATION, f, next, piece);
                }
                ended.push(next);
                next += 2;
            }
            Step::Upload(n) => {
                encode_frame(
                    &mut wire,
                    FrameType::HEADERS,
                    flags::END_HEADERS,
                    next,
                    &GET_BLOCK,
                );
                let body = vec![b'x'; usize::from(n)];
                let chunks: Vec<&[u8]> = body.chunks(1000).collect();
                for (i, chunk) in chunks.iter().enumerate() {
                    let f = if i + 1 == chunks.len() {
                        flags::END_STREAM
                    } else {
                        0
                    };
                    encode_frame(&mut wire, FrameType::DATA, f, next, chunk);
                }
                ended.push(next);
                next += 2;
            }
            Step::Ping => encode_frame(&mut wire, FrameType::PING, 0, 0, b"12345678"),
            Step::Settings => {
                // SETTINGS_MAX_CONCURRENT_STREAMS = 100
                encode_frame(&mut wire, FrameType::SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]);
            }
            Step::WindowUpdate(inc) => {
                encode_frame(
                    &mut wire,
                    FrameType::WINDOW_UPDATE,
                    0,
                    0,
                    &inc.to_be_bytes(),
                );
            }
            Step::Priority => {
                encode_frame(&mut wire, FrameType::PRIORITY, 0, next, &[0, 0, 0, 0, 16]);
            }
            Step::Unknown(len) => {
                let payload = vec![7u8; usize::from(len)];
                encode_frame(&mut wire, FrameType(0xfa), 0, 0, &payload);
            }
        }
    }
    (wire, ended, next)
}

fn encode_violation(wire: &mut Vec<u8>, v: Violation, next: u32) {
    let f = flags::END_STREAM | flags::END_HEADERS;
    match v {
        Violation::EvenStream => encode_frame(wire, FrameType::HEADERS, f, next + 1, &GET_BLOCK),
        Violation::StreamGoingBack => {
            // A stream below one opened already (1 is opened first if need be).
            if next == 1 {
                encode_frame(wire, FrameType::HEADERS, f, 1, &GET_BLOCK);
            }
            encode_frame(wire, FrameType::HEADERS, f, 1, &GET_BLOCK);
        }
        Violation::Oversized => {
            // Only the header: the engine refuses before the payload comes.
            wire.extend_from_slice(&[0x00, 0x40, 0x01, 0x00, 0, 0, 0, 0, 1]);
        }
        Violation::PingLength => encode_frame(wire, FrameType::PING, 0, 0, b"1234567"),
        Violation::SettingsLength => encode_frame(wire, FrameType::SETTINGS, 0, 0, &[0, 3, 0]),
        Violation::WindowUpdateZero => {
            encode_frame(wire, FrameType::WINDOW_UPDATE, 0, 0, &[0, 0, 0, 0]);
        }
        Violation::WindowOverflow => {
            let inc = 0x7fff_ffffu32.to_be_bytes();
            encode_frame(wire, FrameType::WINDOW_UPDATE, 0, 0, &inc);
        }
        Violation::ContinuationAlone => {
            encode_frame(
                wire,
                FrameType::CONTINUATION,
                flags::END_HEADERS,
                next,
                &GET_BLOCK,
            );
        }
        Violation::DataOnStreamZero => encode_frame(wire, FrameType::DATA, 0, 0, b"x"),
        Violation::PushPromise => {
            encode_frame(
                wire,
                FrameType::PUSH_PROMISE,
                flags::END_HEADERS,
                next,
                &[0, 0, 0, 2],
            );
        }
        Violation::HeadersInterrupted => {
            encode_frame(wire, FrameType::HEADERS, flags::END_STREAM, next, &[0x82]);
            encode_frame(wire, FrameType::PING, 0, 0, b"12345678");
        }
    }
}

/// `wire` cut at the given points (each taken modulo its length).
fn pieces<'a>(wire: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    at.push(0);
    at.push(wire.len());
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| &wire[w[0]..w[1]]).collect()
}

/// The memory bound: at most one frame's header and largest payload.
const MAX_PENDING: usize = HEADER_LEN + DEFAULT_MAX_FRAME_SIZE as usize;

/// Feeds `pieces` one call each; the output, and the first error.
fn feed(pieces: &[&[u8]]) -> (Vec<u8>, Option<EngineError>, MiniConnection) {
    let mut out = Vec::new();
    let mut conn = MiniConnection::accept(&mut out);
    let mut first = None;
    for piece in pieces {
        if let Err(e) = conn.handle_input(piece, &mut out) {
            first.get_or_insert(e);
        }
        conn.poll_transmit(&mut out, usize::MAX);
        assert!(
            conn.pending.len() < MAX_PENDING,
            "{} pending",
            conn.pending.len()
        );
        assert!(conn.open.len() + conn.sending.len() <= DEFAULT_MAX_STREAMS as usize);
    }
    (out, first, conn)
}

/// Every frame of the server's output, whole.
fn frames_of(out: &[u8]) -> Vec<(FrameHeader, Vec<u8>)> {
    let mut v = Vec::new();
    let mut rest = out;
    while !rest.is_empty() {
        let h = FrameHeader::parse(rest).expect("the output is whole frames");
        let end = HEADER_LEN + h.length as usize;
        assert!(rest.len() >= end, "the output is whole frames");
        v.push((h, rest[HEADER_LEN..end].to_vec()));
        rest = &rest[end..];
    }
    v
}

proptest! {
    /// Any octets after a good hello, cut anywhere: no panic, bounded
    /// memory, whole frames out, and after an error a GOAWAY with its code
    /// and nothing more.
    #[test]
    fn arbitrary_input_never_panics_and_stays_bounded(
        junk in proptest::collection::vec(any::<u8>(), 0..4096),
        cuts in proptest::collection::vec(any::<usize>(), 0..16),
    ) {
        let (mut wire, _, _) = encode(&[]);
        wire.extend_from_slice(&junk);
        let (out, first, conn) = feed(&pieces(&wire, &cuts));
        let frames = frames_of(&out);
        if let Some(err) = first {
            let (last, payload) = frames.last().expect("a GOAWAY");
            prop_assert_eq!(last.kind, FrameType::GOAWAY);
            prop_assert_eq!(frame::parse_goaway(payload).unwrap().1, err.reason());
            prop_assert!(conn.is_closed());
            let goaways = frames.iter().filter(|(h, _)| h.kind == FrameType::GOAWAY).count();
            prop_assert_eq!(goaways, 1);
        }
    }

    /// Good requests of every shape, cut anywhere: each answered once, in
    /// order, with PING and SETTINGS acknowledged and no GOAWAY.
    #[test]
    fn every_request_that_ends_is_answered_once(
        steps in proptest::collection::vec(step(), 0..40),
        cuts in proptest::collection::vec(any::<usize>(), 0..24),
    ) {
        let (wire, ended, _) = encode(&steps);
        let (out, first, conn) = feed(&pieces(&wire, &cuts));
        prop_assert!(first.is_none(), "{:?}", first);
        prop_assert!(!conn.is_closed());
        prop_assert_eq!(conn.responses(), ended.len() as u64);
        let frames = frames_of(&out);
        let answered: Vec<u32> = frames
            .iter()
            .filter(|(h, _)| h.kind == FrameType::DATA && h.has(flags::END_STREAM))
            .map(|(h, _)| h.stream)
            .collect();
        prop_assert_eq!(&answered, &ended);
        let count = |kind, flag| frames.iter().filter(|(h, _)| h.kind == kind && h.flags == flag).count();
        let pings = steps.iter().filter(|s| matches!(s, Step::Ping)).count();
        let settings = steps.iter().filter(|s| matches!(s, Step::Settings)).count();
        prop_assert_eq!(count(FrameType::PING, flags::ACK), pings);
        prop_assert_eq!(count(FrameType::SETTINGS, flags::ACK), settings + 1);
        prop_assert_eq!(count(FrameType::GOAWAY, 0), 0);
    }

    /// Good requests, then one violation, then anything: the requests
    /// before it are answered, and the connection ends with one GOAWAY whose
    /// code is the violation's, whatever follows it.
    #[test]
    fn the_first_violation_names_the_goaway(
        steps in proptest::collection::vec(step(), 0..20),
        v in violation_strategy(),
        after in proptest::collection::vec(any::<u8>(), 0..512),
        cuts in proptest::collection::vec(any::<usize>(), 0..16),
    ) {
        let (mut wire, ended, next) = encode(&steps);
        encode_violation(&mut wire, v, next);
        wire.extend_from_slice(&after);
        let (out, first, conn) = feed(&pieces(&wire, &cuts));
        let err = first.expect("the violation is an error");
        prop_assert_eq!(err.reason(), v.reason(), "{:?}: {}", v, err);
        prop_assert!(conn.is_closed());
        let frames = frames_of(&out);
        let (last, payload) = frames.last().unwrap();
        prop_assert_eq!(last.kind, FrameType::GOAWAY);
        prop_assert_eq!(frame::parse_goaway(payload).unwrap().1, v.reason());
        let answered = frames
            .iter()
            .filter(|(h, _)| h.kind == FrameType::DATA && h.has(flags::END_STREAM))
            .count();
        // StreamGoingBack may answer the stream 1 it opened first.
        let extra = usize::from(matches!(v, Violation::StreamGoingBack) && next == 1);
        prop_assert_eq!(answered, ended.len() + extra);
    }
}

/// A malformed request, by kind (RFC 9113 §8.1.1, §8.2, §8.3, §5.3.1):
/// each is a stream error, RST_STREAM PROTOCOL_ERROR on its stream alone.
#[derive(Clone, Copy, Debug)]
enum Malformed {
    UppercaseName,
    NotATokenName,
    NulInValue,
    SpaceAtAnEnd,
    UnknownPseudo,
    ResponsePseudo,
    PseudoAfterRegular,
    RepeatedPseudo,
    ConnectionSpecific,
    TeNotTrailers,
    EmptyPath,
    NoMethod,
    NoScheme,
    NoPath,
    ContentLengthNotANumber,
    ContentLengthWithoutData,
    DependsOnItself,
}

const MALFORMED: [Malformed; 17] = [
    Malformed::UppercaseName,
    Malformed::NotATokenName,
    Malformed::NulInValue,
    Malformed::SpaceAtAnEnd,
    Malformed::UnknownPseudo,
    Malformed::ResponsePseudo,
    Malformed::PseudoAfterRegular,
    Malformed::RepeatedPseudo,
    Malformed::ConnectionSpecific,
    Malformed::TeNotTrailers,
    Malformed::EmptyPath,
    Malformed::NoMethod,
    Malformed::NoScheme,
    Malformed::NoPath,
    Malformed::ContentLengthNotANumber,
    Malformed::ContentLengthWithoutData,
    Malformed::DependsOnItself,
];

/// The HEADERS frame (END_STREAM) of a request on `stream`, malformed as
/// `m` says or well-formed; fields are raw literals without indexing.
fn request_frame(stream: u32, m: Option<Malformed>) -> Vec<u8> {
    let mut fields: Vec<(&[u8], &[u8])> = vec![
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":path", b"/"),
        (b":authority", b"h"),
    ];
    let regular = |f: &mut Vec<(&[u8], &[u8])>, n: &'static [u8], v: &'static [u8]| f.push((n, v));
    match m {
        None | Some(Malformed::DependsOnItself) => {}
        Some(Malformed::UppercaseName) => regular(&mut fields, b"X-Up", b"1"),
        Some(Malformed::NotATokenName) => regular(&mut fields, b"x(y)", b"1"),
        Some(Malformed::NulInValue) => regular(&mut fields, b"x", b"a\0b"),
        Some(Malformed::SpaceAtAnEnd) => regular(&mut fields, b"x", b"a\t"),
        Some(Malformed::UnknownPseudo) => regular(&mut fields, b":x", b"1"),
        Some(Malformed::ResponsePseudo) => regular(&mut fields, b":status", b"200"),
        Some(Malformed::PseudoAfterRegular) => fields.insert(0, (b"x", b"1")),
        Some(Malformed::RepeatedPseudo) => regular(&mut fields, b":path", b"/"),
        Some(Malformed::ConnectionSpecific) => regular(&mut fields, b"upgrade", b"h2c"),
        Some(Malformed::TeNotTrailers) => regular(&mut fields, b"te", b"gzip"),
        Some(Malformed::EmptyPath) => fields[2].1 = b"",
        Some(Malformed::NoMethod) => drop(fields.remove(0)),
        Some(Malformed::NoScheme) => drop(fields.remove(1)),
        Some(Malformed::NoPath) => drop(fields.remove(2)),
        Some(Malformed::ContentLengthNotANumber) => regular(&mut fields, b"content-length", b"1e3"),
        Some(Malformed::ContentLengthWithoutData) => regular(&mut fields, b"content-length", b"5"),
    }
    let mut payload = Vec::new();
    let mut flag = flags::END_STREAM | flags::END_HEADERS;
    if matches!(m, Some(Malformed::DependsOnItself)) {
        payload.extend_from_slice(&stream.to_be_bytes());
        payload.push(15);
        flag |= flags::PRIORITY;
    }
    for (n, v) in fields {
        payload.push(0);
        crate::hpack::encode::string(&mut payload, n, false);
        crate::hpack::encode::string(&mut payload, v, false);
    }
    let mut f = Vec::new();
    encode_frame(&mut f, FrameType::HEADERS, flag, stream, &payload);
    f
}

proptest! {
    /// Good and malformed requests of every kind mixed, cut anywhere: each
    /// malformed one is reset with PROTOCOL_ERROR and nothing else is said
    /// on its stream, each good one is answered, and the connection lives
    /// on to the end.
    #[test]
    fn every_malformed_request_is_its_own_stream_error(
        kinds in proptest::collection::vec(proptest::option::weighted(0.5, 0..MALFORMED.len()), 1..40),
        cuts in proptest::collection::vec(any::<usize>(), 0..16),
    ) {
        let (mut wire, _, _) = encode(&[]);
        for (i, k) in kinds.iter().enumerate() {
            wire.extend(request_frame(2 * i as u32 + 1, k.map(|k| MALFORMED[k])));
        }
        let (out, first, conn) = feed(&pieces(&wire, &cuts));
        prop_assert!(first.is_none(), "{:?}", first);
        prop_assert!(!conn.is_closed());
        let frames = frames_of(&out);
        for (i, k) in kinds.iter().enumerate() {
            let stream = 2 * i as u32 + 1;
            let mine: Vec<&(FrameHeader, Vec<u8>)> = frames.iter().filter(|(h, _)| h.stream == stream).collect();
            match k {
                Some(k) => {
                    prop_assert_eq!(mine.len(), 1, "{:?}: {:?}", MALFORMED[*k], mine);
                    prop_assert_eq!(mine[0].0.kind, FrameType::RST_STREAM);
                    prop_assert_eq!(&mine[0].1[..], &Reason::PROTOCOL_ERROR.0.to_be_bytes()[..]);
                }
                None => {
                    prop_assert!(mine.iter().any(|(h, p)| h.kind == FrameType::DATA && p == b"Hello World\n"), "{:?}", mine);
                }
            }
        }
        let good = kinds.iter().filter(|k| k.is_none()).count();
        prop_assert_eq!(conn.responses(), good as u64);
    }
}
