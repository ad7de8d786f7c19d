//! The mini engine: a deliberately simplified server side of HTTP/2, the
//! counterpart of the seed's TLS-SERVER/MINI-HTTP2, made safe.
//!
//! It reads what it is asked: every request's header block is decoded
//! (HPACK, [`crate::hpack`]) and checked field by field as it is decoded
//! (RFC 9113 §8.2–§8.3, [`request`]), and the answer follows from its
//! method and path ([`super::route`]), with `date`, `content-length` and
//! `content-type`. A malformed request is a stream error (RST_STREAM
//! PROTOCOL_ERROR), the connection lives on; a block that cannot be
//! decoded is a connection error (COMPRESSION_ERROR). With
//! [`Config::blind`] it does the seed's job instead: no decoding, every
//! request answered with the same prebuilt response (what reading costs
//! is then a figure, `h2lab ab`).
//!
//! Driver order (sans-IO, like quinn-proto): [`MiniConnection::accept`] once
//! (it queues the server SETTINGS), then [`MiniConnection::handle_input`] for
//! every chunk of plaintext received and [`MiniConnection::handle_eof`] when
//! the peer stops sending; after each call, send what was appended to `out`.
//! Responses are not written by `handle_input`: it queues them, and the
//! driver pulls their frames with [`MiniConnection::poll_transmit`] as it
//! has room (quinn-proto's `poll_transmit`), for as long as
//! [`MiniConnection::wants_transmit`] says. So a connection's output is
//! bounded by the driver's room whatever the body size and the number of
//! streams.
//!
//! A sender within HTTP/2 flow control: the client's connection and stream
//! windows are tracked (SETTINGS_INITIAL_WINDOW_SIZE changes apply to open
//! streams and may make windows negative, §6.9.2), DATA is split at
//! SETTINGS_MAX_FRAME_SIZE, and the streams being answered take turns one
//! frame each (round-robin), so that one large response does not starve
//! the others.
//!
//! Simplifications, on purpose: most frame errors that RFC 9113 allows to
//! be stream errors are treated as connection errors (malformed requests,
//! a stream that depends on itself, a stream past
//! SETTINGS_MAX_CONCURRENT_STREAMS and a stream window past 2^31-1 reset
//! that stream only); priorities are checked and otherwise ignored.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::body::Body;
use super::date::HttpDate;
use super::route::{Answer, Method, Route};
use super::{Handler, Work};
use crate::frame::{
    self, encode_frame, encode_goaway, encode_window_update, flags, setting, FrameHeader,
    FrameType, Reason, CLIENT_PREFACE, DEFAULT_MAX_FRAME_SIZE, HEADER_LEN, MAX_WINDOW_SIZE,
};

/// SETTINGS_MAX_CONCURRENT_STREAMS unless said otherwise (`--max-streams`):
/// h2o's and nghttpd's.
pub const DEFAULT_MAX_STREAMS: u32 = 100;

/// The most streams `--max-streams` may allow: it bounds the memory of a
/// connection (its open requests and queued responses).
pub const MAX_STREAMS_LIMIT: u32 = 4096;

/// Streams we reset whose late frames (DATA in flight, trailers) are
/// still taken quietly: the last this many.
const RESET_MEMORY: usize = 8;

/// The most CONTINUATION frames one header block may take, and the most
/// octets its fragments may add up to; past either the client gets
/// ENHANCE_YOUR_CALM. A block split over frames is gathered before it is
/// decoded, so this bounds its memory; and a block that never ends (a
/// "CONTINUATION flood", empty frames included) would hold the connection
/// and cost a frame's work each.
pub const MAX_CONTINUATIONS: u32 = 64;
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// What a gathered header block may keep of its buffer between blocks.
const KEEP_BLOCK: usize = 16 * 1024;

/// What the responses begun before a connection error may still send.
const FAIL_FLUSH: usize = 64 * 1024;

/// The largest DATA frame sent, whatever SETTINGS_MAX_FRAME_SIZE allows.
pub const MAX_DATA_FRAME: usize = 64 * 1024;

/// The blind response's header block (`:status 200`, `content-type:
/// text/html`, HPACK static table and Huffman literal, no dynamic table
/// entry): the seed's `*HEADER-FRAME*`.
const BLIND_HEADERS: [u8; 11] = [
    0x88, 0x0f, 0x10, 0x87, 0x49, 0x7c, 0xa5, 0x89, 0xd3, 0x4d, 0x1f,
];

/// How a connection answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// The answer to `/` (`--body`, `--work`); SETTINGS_MAX_CONCURRENT_STREAMS
    /// (at most [`MAX_STREAMS_LIMIT`]); blind: the seed's answer, no
    /// request read, every one answered as `/` is (`--blind`).
    pub handler: Handler,
    /// `cpu:` and `sleep:` work is done by the driver's workers: their
    /// answers wait for [`MiniConnection::release`] (`--offload`).
    pub offload: bool,
}

/// Why a connection ended in error. A GOAWAY has been queued when one is due.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("client preface mismatch at octet {offset} (not an HTTP/2 prior-knowledge client?)")]
    PrefaceMismatch { offset: usize },
    #[error("connection error {reason}: {detail}")]
    Protocol {
        reason: Reason,
        detail: &'static str,
    },
    #[error("connection closed in the middle of a frame ({pending} octets of it received)")]
    Truncated { pending: usize },
}

impl EngineError {
    /// The RFC 9113 error code sent (or due) in the GOAWAY.
    pub fn reason(&self) -> Reason {
        match self {
            Self::PrefaceMismatch { .. } | Self::Truncated { .. } => Reason::PROTOCOL_ERROR,
            Self::Protocol { reason, .. } => *reason,
        }
    }
}

/// What the connection wants after a call.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Keep reading.
    Open,
    /// The client sent GOAWAY: send what is queued, then close.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// `n` octets of the client preface matched so far.
    Preface(usize),
    /// "The first frame sent [after the preface] MUST be SETTINGS" (§3.4).
    FirstSettings,
    Frames,
    Closed,
}

/// An open header block: HEADERS without END_HEADERS, waiting for
/// CONTINUATION (its fragments gather in `MiniConnection::block`).
#[derive(Debug, Clone, Copy)]
struct HeaderBlock {
    stream: u32,
    end_stream: bool,
    /// The HEADERS said the stream depends on itself.
    self_dependent: bool,
    /// CONTINUATION frames so far, and the octets of every fragment.
    continuations: u32,
    octets: usize,
}

/// Whether a queued response may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    Now,
    /// Delayed (`delay:`) this long, waiting for the driver's next
    /// `handle_timeout` to learn the time its request ended.
    Unstamped(Duration),
    At(Instant),
    /// Waiting for its release (offloaded work); `true` once handed to the
    /// driver.
    Held(bool),
}

/// A request whose body is still coming.
#[derive(Debug, Clone, Copy)]
struct OpenStream {
    id: u32,
    /// The WINDOW_UPDATE credit the client gave it meanwhile.
    credit: i64,
    /// Its answer, known from its header block.
    answer: Answer,
    /// What its content-length says is still to come.
    expect: Option<u64>,
}

/// A response on its way out: its HEADERS, then its body in DATA frames
/// as the windows allow.
#[derive(Debug, Clone)]
struct Outgoing {
    stream: u32,
    answer: Answer,
    /// A `--body-file` answer's octets, once the driver has read them
    /// ([`MiniConnection::fill_bodies`]); nothing goes before.
    data: Option<Box<[u8]>>,
    due: Due,
    headers_sent: bool,
    /// Body octets sent so far.
    sent: u64,
    /// What the client's stream window lets us send (may be negative).
    window: i64,
}

/// One server-side connection of the mini engine.
#[derive(Debug)]
pub struct MiniConnection {
    state: State,
    /// The start of a frame whose rest has not arrived; always shorter than
    /// one maximal frame, so memory stays bounded.
    pending: Vec<u8>,
    /// The highest stream id the client has opened.
    last_stream: u32,
    /// Streams whose request has not ended yet.
    open: Vec<OpenStream>,
    header_block: Option<HeaderBlock>,
    /// The fragments of a header block split over frames, gathered.
    block: Vec<u8>,
    decoder: crate::hpack::Decoder,
    /// The streams we reset last, newest at `reset_at - 1`.
    reset: [u32; RESET_MEMORY],
    reset_at: usize,
    responses: u64,
    /// Whole frames handled: progress, which single octets are not.
    frames: u64,
    config: Config,
    /// The answer to GET `/`.
    default: Answer,
    date: HttpDate,
    /// The default answer, when its body fits one DATA frame of the
    /// smallest maximum size: the whole response (HEADERS, then DATA
    /// with END_STREAM) prebuilt with stream ids 0, copied and patched in
    /// one go when the windows allow (the seed's answer: 41 octets), and
    /// the length of its HEADERS frame. Built again when the date changes.
    whole: Option<(Box<[u8]>, usize)>,
    /// Responses being sent, in turn (at most `max_streams`).
    sending: VecDeque<Outgoing>,
    /// Work of the answers begun since the driver last took it
    /// ([`MiniConnection::take_work`]), done on its thread.
    work: Vec<Work>,
    /// Answers whose body the driver must read from `--body-file`
    /// ([`MiniConnection::fill_bodies`]), by stream.
    unread: Vec<u32>,
    /// The client's SETTINGS_INITIAL_WINDOW_SIZE and MAX_FRAME_SIZE.
    initial_window: i64,
    max_frame: u32,
    /// What the client's connection window lets us send.
    conn_window: i64,
    /// During `handle_input_within`: what answers may still add to `out`
    /// at once.
    direct_room: usize,
}

type Result<T> = std::result::Result<T, EngineError>;

fn violation(reason: Reason, detail: &'static str) -> EngineError {
    EngineError::Protocol { reason, detail }
}

impl MiniConnection {
    /// A new connection with the default [`Config`]; queues the server's
    /// SETTINGS frame into `out` (the server may speak first, RFC 9113
    /// §3.4).
    pub fn accept(out: &mut Vec<u8>) -> Self {
        Self::new(out, Config::default())
    }

    /// [`MiniConnection::accept`], answering `/` with `body`.
    pub fn with_body(out: &mut Vec<u8>, body: Body) -> Self {
        let handler = Handler {
            body,
            ..Handler::default()
        };
        Self::new(
            out,
            Config {
                handler,
                ..Config::default()
            },
        )
    }

    /// A new connection answering as `config` says; queues our SETTINGS
    /// (SETTINGS_MAX_CONCURRENT_STREAMS, the rest at their initial values)
    /// into `out`.
    pub fn new(out: &mut Vec<u8>, mut config: Config) -> Self {
        let max = &mut config.handler.max_streams;
        *max = (*max).clamp(1, MAX_STREAMS_LIMIT);
        let mut settings = [0u8; 6];
        settings[..2].copy_from_slice(&setting::MAX_CONCURRENT_STREAMS.to_be_bytes());
        settings[2..].copy_from_slice(&max.to_be_bytes());
        encode_frame(out, FrameType::SETTINGS, 0, 0, &settings);
        let default = Answer::default_for(&config.handler);
        let date = HttpDate::default();
        let whole = prebuilt(&default, config.handler.blind, &date);
        Self {
            state: State::Preface(0),
            pending: Vec::new(),
            last_stream: 0,
            open: Vec::new(),
            header_block: None,
            block: Vec::new(),
            decoder: crate::hpack::Decoder::new(crate::hpack::DEFAULT_TABLE_SIZE),
            reset: [0; RESET_MEMORY],
            reset_at: 0,
            responses: 0,
            frames: 0,
            config,
            default,
            date,
            whole,
            sending: VecDeque::new(),
            work: Vec::new(),
            unread: Vec::new(),
            initial_window: i64::from(frame::DEFAULT_WINDOW_SIZE),
            max_frame: DEFAULT_MAX_FRAME_SIZE,
            conn_window: i64::from(frame::DEFAULT_WINDOW_SIZE),
            direct_room: 0,
        }
    }

    /// The wall-clock time, seconds since the Unix epoch, for the `date`
    /// of the answers to come (formatted again only when it changes).
    pub fn set_date(&mut self, unix_secs: u64) {
        if self.date.set(unix_secs) && !self.config.handler.blind {
            self.whole = prebuilt(&self.default, false, &self.date);
        }
    }

    /// The time: delayed responses whose request ended since the last
    /// call are due their delay from `now`; those due by `now` may go.
    pub fn handle_timeout(&mut self, now: Instant) {
        for s in &mut self.sending {
            match s.due {
                Due::Unstamped(delay) => s.due = Due::At(now + delay),
                Due::At(t) if t <= now => s.due = Due::Now,
                _ => {}
            }
        }
    }

    /// A delayed answer has begun since the last
    /// [`MiniConnection::handle_timeout`]: the driver should call it now.
    pub fn wants_time(&self) -> bool {
        self.sending
            .iter()
            .any(|s| matches!(s.due, Due::Unstamped(_)))
    }

    /// When the next delayed response is due: the driver should call
    /// [`MiniConnection::handle_timeout`] then (or at once, if a request
    /// ended since its last call).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sending
            .iter()
            .filter_map(|s| match s.due {
                Due::At(t) => Some(t),
                _ => None,
            })
            .min()
    }

    /// Some answer waits for its time or its release: a connection whose
    /// client stopped sending is not done yet.
    pub fn awaits_answers(&self) -> bool {
        self.sending.iter().any(|s| s.due != Due::Now)
    }

    /// The requests held for the driver's work (with
    /// [`Config::offload`]) that it has not taken yet, in order, with
    /// their work.
    pub fn take_held(&mut self, mut each: impl FnMut(u32, Work)) {
        for s in &mut self.sending {
            if s.due == Due::Held(false) {
                s.due = Due::Held(true);
                each(s.stream, s.answer.work);
            }
        }
    }

    /// Answers from `--body-file` begun since the last call: `read` fills
    /// each one's body (the driver reads the file, one read per answer,
    /// as a file server does). Call it after every input.
    pub fn fill_bodies(&mut self, mut read: impl FnMut(&mut Vec<u8>)) {
        for stream in std::mem::take(&mut self.unread) {
            if let Some(s) = self.sending.iter_mut().find(|s| s.stream == stream) {
                let mut data = Vec::new();
                read(&mut data);
                data.resize(s.answer.body_len() as usize, 0);
                s.data = Some(data.into_boxed_slice());
            }
        }
    }

    /// The work of the answers begun since the last call that the
    /// driver's thread must do before they go (`cpu:`, `sleep:` without
    /// offload), in order.
    pub fn take_work(&mut self, mut each: impl FnMut(Work)) {
        for w in self.work.drain(..) {
            each(w);
        }
    }

    /// The driver's work for `stream` is done: its response may go. A
    /// stream the client has reset meanwhile is no longer there.
    pub fn release(&mut self, stream: u32) {
        if let Some(s) = self.sending.iter_mut().find(|s| s.stream == stream) {
            s.due = Due::Now;
        }
    }

    /// Responses begun so far (one per request; their frames go out
    /// through [`MiniConnection::poll_transmit`]).
    pub fn responses(&self) -> u64 {
        self.responses
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The client's preface and first SETTINGS have arrived.
    pub fn is_established(&self) -> bool {
        self.state == State::Frames
    }

    /// Whole frames taken from the client so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// A header block has begun (HEADERS without END_HEADERS) and not
    /// ended: the request is not whole yet.
    pub fn in_header_block(&self) -> bool {
        self.header_block.is_some()
    }

    /// Takes plaintext from the client and appends what to send to `out`.
    /// On error the connection is closed and a GOAWAY is queued.
    pub fn handle_input(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Status> {
        self.handle_input_within(input, out, 0)
    }

    /// [`MiniConnection::handle_input`], answering small requests at once
    /// while their answers fit in `room` octets (nothing queued before
    /// them, the windows open): the pull without its queue, for the common
    /// case. What does not fit is queued for
    /// [`MiniConnection::poll_transmit`] as usual. Returns as
    /// `handle_input` does; `room` bounds what answers add to `out`.
    pub fn handle_input_within(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        room: usize,
    ) -> Result<Status> {
        self.direct_room = room;
        let status = self.take_input(input, out);
        self.direct_room = 0;
        status
    }

    fn take_input(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<Status> {
        if let State::Preface(matched) = self.state {
            let want = &CLIENT_PREFACE[matched..];
            let n = want.len().min(input.len());
            if let Some(i) = (0..n).find(|&i| input[i] != want[i]) {
                return Err(self.fail(
                    EngineError::PrefaceMismatch {
                        offset: matched + i,
                    },
                    out,
                ));
            }
            input = &input[n..];
            self.state = if matched + n == CLIENT_PREFACE.len() {
                State::FirstSettings
            } else {
                State::Preface(matched + n)
            };
        }
        if self.state == State::Closed {
            return Ok(Status::Closed);
        }
        if self.pending.is_empty() {
            // The common case: whole frames straight from the caller's buffer.
            let used = self.handle_frames(input, out)?;
            self.pending.extend_from_slice(&input[used..]);
        } else {
            let mut buf = std::mem::take(&mut self.pending);
            buf.extend_from_slice(input);
            let used = self.handle_frames(&buf, out)?;
            buf.drain(..used);
            self.pending = buf;
        }
        Ok(if self.state == State::Closed {
            Status::Closed
        } else {
            Status::Open
        })
    }

    /// The client will send nothing more. A half-received preface or frame is
    /// an error (a GOAWAY is queued, in case the client still reads).
    pub fn handle_eof(&mut self, out: &mut Vec<u8>) -> Result<()> {
        let pending = match self.state {
            State::Closed => return Ok(()),
            State::Preface(n) => n,
            _ => self.pending.len(),
        };
        if pending > 0 {
            return Err(self.fail(EngineError::Truncated { pending }, out));
        }
        self.state = State::Closed;
        Ok(())
    }

    /// Ends the connection in error: what the responses begun before it
    /// can send at once (up to [`FAIL_FLUSH`] octets) goes first, then the
    /// GOAWAY, the last frame; the rest of their bodies is dropped.
    fn fail(&mut self, err: EngineError, out: &mut Vec<u8>) -> EngineError {
        self.poll_transmit(out, FAIL_FLUSH);
        encode_goaway(out, self.last_stream, err.reason());
        self.state = State::Closed;
        self.pending = Vec::new();
        self.sending = VecDeque::new();
        err
    }

    /// Some response can send a frame now: its HEADERS, or DATA within
    /// both windows. The driver should call [`MiniConnection::poll_transmit`]
    /// as it has room.
    pub fn wants_transmit(&self) -> bool {
        !self.sending.is_empty()
            && self.sending.iter().any(|s| {
                s.due == Due::Now && (!s.headers_sent || (s.window > 0 && self.conn_window > 0))
            })
    }

    /// Responses begun and not yet wholly sent.
    pub fn queued_responses(&self) -> usize {
        self.sending.len()
    }

    /// Appends frames of the queued responses to `out`, at most `room`
    /// octets of them: each response in turn gets one frame (its HEADERS,
    /// with its first DATA if that fits), within the client's windows and
    /// frame size. Returns the octets appended; 0 when nothing can go.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>, room: usize) -> usize {
        let start = out.len();
        // Responses in a row that could send nothing: a whole round of them
        // ends the pull.
        let mut stuck = 0;
        while stuck < self.sending.len() {
            let left = room.saturating_sub(out.len() - start);
            let Some(mut s) = self.sending.pop_front() else {
                break;
            };
            let sent = self.send_frames(&mut s, out, left);
            if s.headers_sent && s.sent == s.answer.body_len() {
                stuck = 0;
                continue;
            }
            self.sending.push_back(s);
            stuck = if sent { 0 } else { stuck + 1 };
        }
        if self.sending.is_empty() && self.sending.capacity() > 64 {
            // A burst is over: an idle connection keeps no big queue.
            self.sending = VecDeque::new();
        }
        out.len() - start
    }

    /// One turn of response `s`: its HEADERS if they have not gone, and one
    /// DATA frame if the windows, the frame size and `left` allow one that
    /// is not needlessly small. Returns whether anything was appended.
    fn send_frames(&mut self, s: &mut Outgoing, out: &mut Vec<u8>, mut left: usize) -> bool {
        if s.due != Due::Now || (s.answer.file && s.answer.send_body && s.data.is_none()) {
            return false;
        }
        let len = s.answer.body_len();
        let mut sent = false;
        // The common case, a small default answer with room in every
        // window: one copy of the prebuilt frames and two stream ids
        // patched in.
        let whole = self
            .whole
            .as_ref()
            .filter(|_| !s.headers_sent && s.answer == self.default);
        if let Some((whole, headers_len)) = whole {
            let n = len as i64;
            if left >= whole.len() && s.window >= n && self.conn_window >= n {
                let start = out.len();
                out.extend_from_slice(whole);
                let id = s.stream.to_be_bytes();
                for at in [start + 5, start + headers_len + 5] {
                    out[at..at + 4].copy_from_slice(&id);
                }
                s.headers_sent = true;
                s.sent = len;
                s.window -= n;
                self.conn_window -= n;
                return true;
            }
        }
        if !s.headers_sent {
            let start = out.len();
            let end = if len == 0 { flags::END_STREAM } else { 0 };
            headers_frame(
                &s.answer,
                self.config.handler.blind,
                &self.date,
                s.stream,
                end,
                out,
            );
            let n = out.len() - start;
            if n > left {
                out.truncate(start);
                return false;
            }
            s.headers_sent = true;
            left -= n;
            sent = true;
        }
        let remaining = len - s.sent;
        if remaining == 0 {
            return sent;
        }
        let allowed = s
            .window
            .min(self.conn_window)
            .min(i64::from(self.max_frame))
            .min(MAX_DATA_FRAME as i64)
            .min(remaining as i64);
        if allowed <= 0 {
            return sent;
        }
        let allowed = allowed as usize;
        // The frame is cut by `left` only if a fair share still fits: the
        // rest waits for the next pull rather than going as a sliver.
        let fits = left.saturating_sub(HEADER_LEN);
        if fits < allowed.min(1024) {
            return sent;
        }
        let n = allowed.min(fits);
        let end = if s.sent + n as u64 == len {
            flags::END_STREAM
        } else {
            0
        };
        FrameHeader {
            length: n as u32,
            kind: FrameType::DATA,
            flags: end,
            stream: s.stream,
        }
        .encode(out);
        match &s.data {
            Some(data) => out.extend_from_slice(&data[s.sent as usize..s.sent as usize + n]),
            None => Body::append(s.sent, n, out),
        }
        s.sent += n as u64;
        s.window -= n as i64;
        self.conn_window -= n as i64;
        true
    }

    /// Handles every whole frame at the start of `data`; returns the octets used.
    fn handle_frames(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<usize> {
        let mut pos = 0;
        while let Some(head) = FrameHeader::parse(&data[pos..]) {
            // "An endpoint MUST send an error code of FRAME_SIZE_ERROR if a frame
            // exceeds the size defined in SETTINGS_MAX_FRAME_SIZE" (§4.2);
            // checked before the payload arrives, so it is never buffered.
            if head.length > DEFAULT_MAX_FRAME_SIZE {
                let err = violation(Reason::FRAME_SIZE_ERROR, "frame larger than 16384 octets");
                return Err(self.fail(err, out));
            }
            let end = pos + HEADER_LEN + head.length as usize;
            let Some(payload) = data.get(pos + HEADER_LEN..end) else {
                break;
            };
            if let Err(err) = self.handle_frame(head, payload, out) {
                return Err(self.fail(err, out));
            }
            self.frames += 1;
            pos = end;
            if self.state == State::Closed {
                return Ok(data.len());
            }
        }
        Ok(pos)
    }

    fn handle_frame(&mut self, head: FrameHeader, payload: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if self.state == State::FirstSettings {
            if head.kind != FrameType::SETTINGS || head.has(flags::ACK) {
                return Err(violation(
                    Reason::PROTOCOL_ERROR,
                    "the first frame after the preface must be SETTINGS",
                ));
            }
            self.state = State::Frames;
        }
        // "A receiver MUST treat the receipt of any other type of frame or a
        // frame on a different stream [in a header block] as a connection error
        // of type PROTOCOL_ERROR" (§6.10).
        if let Some(block) = self.header_block {
            if head.kind != FrameType::CONTINUATION || head.stream != block.stream {
                return Err(violation(
                    Reason::PROTOCOL_ERROR,
                    "header block interrupted before END_HEADERS",
                ));
            }
        }
        match head.kind {
            FrameType::DATA => self.on_data(head, payload, out),
            FrameType::HEADERS => self.on_headers(head, payload, out),
            FrameType::CONTINUATION => self.on_continuation(head, payload, out),
            FrameType::PRIORITY => self.on_priority(head, payload, out),
            FrameType::RST_STREAM => self.on_rst_stream(head),
            FrameType::SETTINGS => self.on_settings(head, payload, out),
            FrameType::PUSH_PROMISE => Err(violation(
                Reason::PROTOCOL_ERROR,
                "a client cannot send PUSH_PROMISE",
            )),
            FrameType::PING => on_ping(head, payload, out),
            FrameType::GOAWAY => {
                need_connection(head, "GOAWAY on a stream other than 0")?;
                if payload.len() < 8 {
                    return Err(violation(Reason::FRAME_SIZE_ERROR, "GOAWAY shorter than 8"));
                }
                self.state = State::Closed;
                Ok(())
            }
            FrameType::WINDOW_UPDATE => self.on_window_update(head, payload, out),
            _ => Ok(()), // "Implementations MUST ignore ... unknown ... types" (§5.5)
        }
    }

    fn on_data(&mut self, head: FrameHeader, payload: &[u8], out: &mut Vec<u8>) -> Result<()> {
        need_stream(head, "DATA on stream 0")?;
        check_padding(head, payload, 0)?;
        let Some(i) = self.open.iter().position(|o| o.id == head.stream) else {
            if self.was_reset(head.stream) {
                // In flight when we reset it: its octets still count on
                // the connection's window, which is given back.
                if head.length > 0 {
                    encode_window_update(out, 0, head.length);
                }
                return Ok(());
            }
            return Err(if head.stream > self.last_stream {
                violation(Reason::PROTOCOL_ERROR, "DATA on an idle stream")
            } else {
                violation(Reason::STREAM_CLOSED, "DATA on a closed stream")
            });
        };
        // Give back the flow-control credit at once, so uploads never stall.
        if head.length > 0 {
            encode_window_update(out, 0, head.length);
            if !head.has(flags::END_STREAM) {
                encode_window_update(out, head.stream, head.length);
            }
        }
        // What content-length said must be what comes (§8.1.1); padding
        // is not content.
        let pad = match head.has(flags::PADDED) {
            true => 1 + usize::from(payload[0]),
            false => 0,
        };
        let content = (payload.len() - pad) as u64;
        let open = &mut self.open[i];
        if let Some(left) = open.expect.as_mut() {
            let short = head.has(flags::END_STREAM) && *left != content;
            match left.checked_sub(content) {
                Some(l) if !short => *left = l,
                _ => {
                    self.reset_stream(head.stream, Reason::PROTOCOL_ERROR, out);
                    return Ok(());
                }
            }
        }
        if head.has(flags::END_STREAM) {
            self.respond(head.stream, None, out);
        }
        Ok(())
    }

    fn on_headers(&mut self, head: FrameHeader, payload: &[u8], out: &mut Vec<u8>) -> Result<()> {
        need_stream(head, "HEADERS on stream 0")?;
        let priority = if head.has(flags::PRIORITY) { 5 } else { 0 };
        check_padding(head, payload, priority)?;
        let stream = head.stream;
        if stream > self.last_stream {
            // "Streams initiated by a client MUST use odd-numbered stream
            // identifiers" (§5.1.1).
            if stream % 2 == 0 {
                return Err(violation(
                    Reason::PROTOCOL_ERROR,
                    "client opened an even-numbered stream",
                ));
            }
            self.last_stream = stream;
        } else if !self.is_open(stream) && !self.was_reset(stream) {
            return Err(violation(
                Reason::STREAM_CLOSED,
                "HEADERS on a closed stream",
            ));
        } else if !head.has(flags::END_STREAM) {
            // Trailers "MUST" carry END_STREAM (§8.1).
            return Err(violation(
                Reason::PROTOCOL_ERROR,
                "trailers without END_STREAM",
            ));
        }
        let pad = match head.has(flags::PADDED) {
            true => 1 + usize::from(payload[0]),
            false => 0,
        };
        let fields = usize::from(head.has(flags::PADDED)) + priority;
        let fragment = &payload[fields..payload.len() + usize::from(head.has(flags::PADDED)) - pad];
        let block = HeaderBlock {
            stream,
            end_stream: head.has(flags::END_STREAM),
            self_dependent: priority > 0 && depends_on(&payload[fields - 5..]) == stream,
            continuations: 0,
            octets: fragment.len(),
        };
        if head.has(flags::END_HEADERS) {
            self.end_header_block(block, fragment, out)
        } else {
            if !self.config.handler.blind {
                self.block.extend_from_slice(fragment);
            }
            self.header_block = Some(block);
            Ok(())
        }
    }

    fn on_continuation(
        &mut self,
        head: FrameHeader,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        // Same stream as the open block: checked in handle_frame.
        let Some(mut block) = self.header_block else {
            return Err(violation(
                Reason::PROTOCOL_ERROR,
                "CONTINUATION without a preceding HEADERS",
            ));
        };
        block.continuations += 1;
        block.octets += head.length as usize;
        if block.continuations > MAX_CONTINUATIONS || block.octets > MAX_HEADER_BLOCK {
            return Err(violation(
                Reason::ENHANCE_YOUR_CALM,
                "header block over 64 CONTINUATION frames or 64 KiB",
            ));
        }
        self.header_block = Some(block);
        if !self.config.handler.blind {
            self.block.extend_from_slice(payload);
        }
        if head.has(flags::END_HEADERS) {
            self.header_block = None;
            let gathered = std::mem::take(&mut self.block);
            let result = self.end_header_block(block, &gathered, out);
            self.block = gathered;
            self.block.clear();
            if self.block.capacity() > KEEP_BLOCK {
                self.block = Vec::new();
            }
            result?;
        }
        Ok(())
    }

    /// A whole header block: decoded (for the dynamic table, even when the
    /// stream is refused), checked, and the request opened, ended or
    /// reset.
    fn end_header_block(
        &mut self,
        block: HeaderBlock,
        fragment: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let trailers = self.is_open(block.stream) || self.was_reset(block.stream);
        let head = match self.config.handler.blind {
            true => Ok(request::Head {
                method: Method::Get,
                route: Route::Default,
                content_length: None,
            }),
            false => {
                let mut check = match trailers {
                    true => request::Check::trailers(),
                    false => request::Check::request(),
                };
                self.decoder
                    .decode_known(fragment, |n, v, known| check.field_known(n, v, known))
                    .map_err(|e| violation(Reason::COMPRESSION_ERROR, e.0))?;
                check.finish()
            }
        };
        if self.was_reset(block.stream) {
            return Ok(()); // trailers of a stream we reset: decoded, dropped
        }
        if block.self_dependent {
            // "A stream cannot depend on itself" (§5.3.1).
            self.reset_stream(block.stream, Reason::PROTOCOL_ERROR, out);
            return Ok(());
        }
        let Ok(head) = head else {
            // Malformed (§8.1.1): a stream error.
            self.reset_stream(block.stream, Reason::PROTOCOL_ERROR, out);
            return Ok(());
        };
        if trailers {
            let ok = self
                .open
                .iter()
                .find(|o| o.id == block.stream)
                .is_some_and(|o| o.expect.unwrap_or(0) == 0);
            match ok {
                true => self.respond(block.stream, None, out),
                // content-length said more than came (§8.1.1).
                false => self.reset_stream(block.stream, Reason::PROTOCOL_ERROR, out),
            }
            return Ok(());
        }
        // A new stream: within SETTINGS_MAX_CONCURRENT_STREAMS (§5.1.2).
        if self.open.len() + self.sending.len() >= self.config.handler.max_streams as usize {
            self.reset_stream(block.stream, Reason::REFUSED_STREAM, out);
            return Ok(());
        }
        let answer = match self.config.handler.blind {
            true => self.default,
            false => Answer::to(head.method, head.route, &self.config.handler),
        };
        if block.end_stream {
            if head.content_length.unwrap_or(0) != 0 {
                self.reset_stream(block.stream, Reason::PROTOCOL_ERROR, out);
                return Ok(());
            }
            self.respond(block.stream, Some(answer), out);
        } else {
            self.open.push(OpenStream {
                id: block.stream,
                credit: 0,
                answer,
                expect: head.content_length,
            });
        }
        Ok(())
    }

    /// Ends one stream in error (RST_STREAM): its request and answer are
    /// dropped, and its late frames taken quietly.
    fn reset_stream(&mut self, stream: u32, reason: Reason, out: &mut Vec<u8>) {
        encode_frame(
            out,
            FrameType::RST_STREAM,
            0,
            stream,
            &reason.0.to_be_bytes(),
        );
        self.open.retain(|o| o.id != stream);
        self.sending.retain(|s| s.stream != stream);
        self.reset[self.reset_at % RESET_MEMORY] = stream;
        self.reset_at += 1;
    }

    /// Whether we reset `stream` lately.
    fn was_reset(&self, stream: u32) -> bool {
        stream != 0 && self.reset.contains(&stream)
    }

    fn on_rst_stream(&mut self, head: FrameHeader) -> Result<()> {
        need_stream(head, "RST_STREAM on stream 0")?;
        need_length(head, 4, "RST_STREAM length not 4")?;
        if head.stream > self.last_stream {
            return Err(violation(
                Reason::PROTOCOL_ERROR,
                "RST_STREAM on an idle stream",
            ));
        }
        self.open.retain(|o| o.id != head.stream);
        self.sending.retain(|s| s.stream != head.stream);
        Ok(())
    }

    fn on_priority(&mut self, head: FrameHeader, payload: &[u8], out: &mut Vec<u8>) -> Result<()> {
        need_stream(head, "PRIORITY on stream 0")?;
        need_length(head, 5, "PRIORITY length not 5")?;
        if depends_on(payload) == head.stream {
            // "A stream cannot depend on itself" (§5.3.1).
            self.reset_stream(head.stream, Reason::PROTOCOL_ERROR, out);
        }
        Ok(())
    }

    fn is_open(&self, stream: u32) -> bool {
        self.open.iter().any(|o| o.id == stream)
    }

    /// The request on `stream` is whole: its response joins the queue.
    /// `answer` for a request that was never open; else the open one's.
    fn respond(&mut self, stream: u32, answer: Option<Answer>, out: &mut Vec<u8>) {
        let (credit, answer) = match self.open.iter().position(|o| o.id == stream) {
            Some(i) => {
                let o = self.open.swap_remove(i);
                (o.credit, o.answer)
            }
            None => (0, answer.unwrap_or(self.default)),
        };
        let due = match answer.work {
            Work::Delay(d) => Due::Unstamped(d),
            w if w.holds_a_thread() && self.config.offload => Due::Held(false),
            w => {
                if !w.is_none() {
                    self.work.push(w);
                }
                Due::Now
            }
        };
        if answer.file && answer.send_body && answer.length > 0 {
            self.unread.push(stream);
        }
        let mut s = Outgoing {
            stream,
            answer,
            data: None,
            due,
            headers_sent: false,
            sent: 0,
            window: self.initial_window + credit,
        };
        self.responses += 1;
        // Nothing queued before it and room given: a small answer goes at
        // once, in order, and never queues.
        let fits = self
            .whole
            .as_ref()
            .is_some_and(|w| w.0.len() <= self.direct_room && answer == self.default);
        if due == Due::Now && self.sending.is_empty() && fits {
            let before = out.len();
            if self.send_frames(&mut s, out, self.direct_room) {
                self.direct_room -= out.len() - before;
                if s.sent == s.answer.body_len() {
                    return;
                }
            }
        }
        self.sending.push_back(s);
    }

    /// WINDOW_UPDATE: more room on the connection or on one stream. Past
    /// 2^31-1 the connection fails, or the stream is reset (§6.9.1).
    fn on_window_update(
        &mut self,
        head: FrameHeader,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        need_length(head, 4, "WINDOW_UPDATE length not 4")?;
        let inc =
            u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff;
        if inc == 0 {
            return Err(violation(
                Reason::PROTOCOL_ERROR,
                "WINDOW_UPDATE with an increment of 0",
            ));
        }
        let inc = i64::from(inc);
        let max = i64::from(MAX_WINDOW_SIZE);
        if head.stream == 0 {
            self.conn_window += inc;
            if self.conn_window > max {
                return Err(violation(
                    Reason::FLOW_CONTROL_ERROR,
                    "connection window above 2^31-1",
                ));
            }
            return Ok(());
        }
        if head.stream > self.last_stream {
            return Err(violation(
                Reason::PROTOCOL_ERROR,
                "WINDOW_UPDATE on an idle stream",
            ));
        }
        let initial = self.initial_window;
        let window = if let Some(s) = self.sending.iter_mut().find(|s| s.stream == head.stream) {
            s.window += inc;
            s.window
        } else if let Some(o) = self.open.iter_mut().find(|o| o.id == head.stream) {
            o.credit += inc;
            initial + o.credit
        } else {
            return Ok(()); // a closed stream: nothing to send on it
        };
        if window > max {
            let code = Reason::FLOW_CONTROL_ERROR.0.to_be_bytes();
            encode_frame(out, FrameType::RST_STREAM, 0, head.stream, &code);
            self.sending.retain(|s| s.stream != head.stream);
            self.open.retain(|o| o.id != head.stream);
        }
        Ok(())
    }

    /// The client's SETTINGS: its window for new streams (the change
    /// applies to the open ones too, §6.9.2) and its largest frame;
    /// acknowledged.
    fn on_settings(&mut self, head: FrameHeader, payload: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let Some(settings) = check_settings(head, payload)? else {
            return Ok(()); // an ACK
        };
        if let Some(window) = settings.initial_window {
            let delta = i64::from(window) - self.initial_window;
            self.initial_window = i64::from(window);
            let max = i64::from(MAX_WINDOW_SIZE);
            for s in &mut self.sending {
                s.window += delta;
                if s.window > max {
                    return Err(violation(
                        Reason::FLOW_CONTROL_ERROR,
                        "INITIAL_WINDOW_SIZE made a stream window above 2^31-1",
                    ));
                }
            }
        }
        if let Some(size) = settings.max_frame {
            self.max_frame = size;
        }
        encode_frame(out, FrameType::SETTINGS, flags::ACK, 0, &[]);
        Ok(())
    }
}

/// The whole response of `answer` for a body of 1 to 16,384 octets (one
/// DATA frame at any SETTINGS_MAX_FRAME_SIZE), stream ids 0, and the
/// length of its HEADERS frame; `None` otherwise.
fn prebuilt(answer: &Answer, blind: bool, date: &HttpDate) -> Option<(Box<[u8]>, usize)> {
    let len = answer.body_len();
    if len == 0 || len > u64::from(DEFAULT_MAX_FRAME_SIZE) || answer.file {
        return None;
    }
    let mut whole = Vec::with_capacity(128 + HEADER_LEN + len as usize);
    headers_frame(answer, blind, date, 0, 0, &mut whole);
    let headers_len = whole.len();
    FrameHeader {
        length: len as u32,
        kind: FrameType::DATA,
        flags: flags::END_STREAM,
        stream: 0,
    }
    .encode(&mut whole);
    Body::append(0, len as usize, &mut whole);
    Some((whole.into_boxed_slice(), headers_len))
}

/// Appends the HEADERS frame of `answer` on `stream` (END_HEADERS, and
/// `end`): the seed's block when `blind`, else [`response::block`].
fn headers_frame(
    answer: &Answer,
    blind: bool,
    date: &HttpDate,
    stream: u32,
    end: u8,
    out: &mut Vec<u8>,
) {
    let start = out.len();
    FrameHeader {
        length: 0,
        kind: FrameType::HEADERS,
        flags: flags::END_HEADERS | end,
        stream,
    }
    .encode(out);
    match blind {
        true => out.extend_from_slice(&BLIND_HEADERS),
        false => response::block(answer, date, out),
    }
    let n = (out.len() - start - HEADER_LEN) as u32;
    out[start..start + 3].copy_from_slice(&n.to_be_bytes()[1..]);
}

/// What a client's SETTINGS change for us.
struct Settings {
    initial_window: Option<u32>,
    max_frame: Option<u32>,
}

/// Checks a SETTINGS frame; `None` for an ACK.
fn check_settings(head: FrameHeader, payload: &[u8]) -> Result<Option<Settings>> {
    need_connection(head, "SETTINGS on a stream other than 0")?;
    if head.has(flags::ACK) {
        return match head.length {
            0 => Ok(None),
            _ => Err(violation(
                Reason::FRAME_SIZE_ERROR,
                "SETTINGS ACK with a payload",
            )),
        };
    }
    if payload.len() % 6 != 0 {
        return Err(violation(
            Reason::FRAME_SIZE_ERROR,
            "SETTINGS length not a multiple of 6",
        ));
    }
    let mut settings = Settings {
        initial_window: None,
        max_frame: None,
    };
    for param in payload.chunks_exact(6) {
        let id = u16::from_be_bytes([param[0], param[1]]);
        let value = u32::from_be_bytes([param[2], param[3], param[4], param[5]]);
        match id {
            setting::ENABLE_PUSH if value > 1 => {
                return Err(violation(Reason::PROTOCOL_ERROR, "ENABLE_PUSH not 0 or 1"))
            }
            setting::INITIAL_WINDOW_SIZE if value > frame::MAX_WINDOW_SIZE => {
                return Err(violation(
                    Reason::FLOW_CONTROL_ERROR,
                    "INITIAL_WINDOW_SIZE above 2^31-1",
                ))
            }
            setting::MAX_FRAME_SIZE
                if !(DEFAULT_MAX_FRAME_SIZE..=frame::MAX_MAX_FRAME_SIZE).contains(&value) =>
            {
                return Err(violation(
                    Reason::PROTOCOL_ERROR,
                    "MAX_FRAME_SIZE out of range",
                ))
            }
            setting::INITIAL_WINDOW_SIZE => settings.initial_window = Some(value),
            setting::MAX_FRAME_SIZE => settings.max_frame = Some(value),
            _ => {} // unknown settings MUST be ignored (§6.5.2)
        }
    }
    Ok(Some(settings))
}

fn on_ping(head: FrameHeader, payload: &[u8], out: &mut Vec<u8>) -> Result<()> {
    need_connection(head, "PING on a stream other than 0")?;
    need_length(head, 8, "PING length not 8")?;
    if !head.has(flags::ACK) {
        encode_frame(out, FrameType::PING, flags::ACK, 0, payload);
    }
    Ok(())
}

/// The stream a priority (HEADERS' or PRIORITY's five octets) depends on.
fn depends_on(priority: &[u8]) -> u32 {
    u32::from_be_bytes([priority[0], priority[1], priority[2], priority[3]]) & 0x7fff_ffff
}

/// Frames that belong to a stream: "MUST ... PROTOCOL_ERROR" on stream 0.
fn need_stream(head: FrameHeader, detail: &'static str) -> Result<()> {
    match head.stream {
        0 => Err(violation(Reason::PROTOCOL_ERROR, detail)),
        _ => Ok(()),
    }
}

/// Connection-level frames: "MUST ... PROTOCOL_ERROR" on any other stream.
fn need_connection(head: FrameHeader, detail: &'static str) -> Result<()> {
    match head.stream {
        0 => Ok(()),
        _ => Err(violation(Reason::PROTOCOL_ERROR, detail)),
    }
}

/// Fixed-size frames: FRAME_SIZE_ERROR otherwise.
fn need_length(head: FrameHeader, len: u32, detail: &'static str) -> Result<()> {
    match head.length == len {
        true => Ok(()),
        false => Err(violation(Reason::FRAME_SIZE_ERROR, detail)),
    }
}

/// "If the length of the padding is the length of the frame payload or
/// greater, the recipient MUST treat this as a connection error of type
/// PROTOCOL_ERROR" (§6.1, §6.2). `fixed` counts other fields (priority).
fn check_padding(head: FrameHeader, payload: &[u8], fixed: usize) -> Result<()> {
    let pad_field = usize::from(head.has(flags::PADDED));
    if payload.len() < pad_field + fixed {
        return Err(violation(
            Reason::FRAME_SIZE_ERROR,
            "frame too short for its padding or priority fields",
        ));
    }
    if pad_field == 1 && usize::from(payload[0]) > payload.len() - 1 - fixed {
        return Err(violation(
            Reason::PROTOCOL_ERROR,
            "padding longer than the payload",
        ));
    }
    Ok(())
}

pub mod request;
mod response;

#[cfg(test)]
mod props;
#[cfg(test)]
mod reading;
#[cfg(test)]
mod tests;
