//! The mini engine: a deliberately simplified server side of HTTP/2, the
//! counterpart of the seed's TLS-SERVER/MINI-HTTP2, made safe.
//!
//! It never decodes HPACK: every request gets the same prebuilt response, so
//! the only state kept per connection is the stream bookkeeping needed to
//! know when a request ends and to reject frames that RFC 9113 forbids.
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
//! Simplifications, on purpose: no HPACK decoding (every request gets the
//! same response), and most frame errors that RFC 9113 allows to be stream
//! errors are treated as connection errors (a stream window past 2^31-1
//! resets that stream only).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::body::Body;
use crate::frame::{
    self, encode_frame, encode_goaway, encode_window_update, flags, setting, FrameHeader,
    FrameType, Reason, CLIENT_PREFACE, DEFAULT_MAX_FRAME_SIZE, HEADER_LEN, MAX_WINDOW_SIZE,
};

/// Requests whose header block arrived without END_STREAM (uploads) that may
/// be open at once; past it the client gets ENHANCE_YOUR_CALM. It bounds the
/// memory of a connection.
pub const MAX_OPEN_STREAMS: usize = 256;

/// The most CONTINUATION frames one header block may take, and the most
/// octets its fragments may add up to; past either the client gets
/// ENHANCE_YOUR_CALM. The engine keeps nothing of a header block, but a
/// block that never ends (a "CONTINUATION flood", empty frames included)
/// would hold the connection and cost a frame's work each.
pub const MAX_CONTINUATIONS: u32 = 64;
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// Responses queued and not yet wholly sent, at most; a request past it
/// is refused (RST_STREAM REFUSED_STREAM, which a client may retry). It
/// bounds the memory of a client that sends requests and never opens its
/// windows.
pub const MAX_QUEUED_RESPONSES: usize = 4096;

/// What the responses begun before a connection error may still send.
const FAIL_FLUSH: usize = 64 * 1024;

/// The largest DATA frame sent, whatever SETTINGS_MAX_FRAME_SIZE allows.
pub const MAX_DATA_FRAME: usize = 64 * 1024;

/// The response's header block (`:status 200`, `content-type: text/html`,
/// HPACK static table and Huffman literal, no dynamic table entry): the
/// seed's `*HEADER-FRAME*`.
const RESPONSE_HEADERS: [u8; 11] = [
    0x88, 0x0f, 0x10, 0x87, 0x49, 0x7c, 0xa5, 0x89, 0xd3, 0x4d, 0x1f,
];
/// A HEADERS frame with that block.
const HEADERS_FRAME_LEN: usize = HEADER_LEN + RESPONSE_HEADERS.len();

/// The server's SETTINGS: empty, every parameter at its initial value.
const SERVER_SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];

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

/// An open header block: HEADERS without END_HEADERS, waiting for CONTINUATION.
#[derive(Debug, Clone, Copy)]
struct HeaderBlock {
    stream: u32,
    end_stream: bool,
    /// CONTINUATION frames so far, and the octets of every fragment.
    continuations: u32,
    octets: usize,
}

/// When the engine may answer a request whose request has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hold {
    /// At once (the seed's engine).
    #[default]
    Never,
    /// This long after the request ended (`--work delay:`): the engine
    /// keeps the due time and tells it by [`MiniConnection::poll_timeout`];
    /// the driver gives it the time by [`MiniConnection::handle_timeout`].
    Delay(Duration),
    /// When the driver says its work is done (`--offload`): it takes the
    /// held requests by [`MiniConnection::take_held`] and gives each back
    /// by [`MiniConnection::release`].
    Release,
}

/// Whether a queued response may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    Now,
    /// Delayed, waiting for the driver's next `handle_timeout` to learn
    /// the time its request ended.
    Unstamped,
    At(Instant),
    /// Waiting for its release; `true` once handed to the driver.
    Held(bool),
}

/// A response on its way out: its HEADERS, then its body in DATA frames
/// as the windows allow.
#[derive(Debug, Clone, Copy)]
struct Outgoing {
    stream: u32,
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
    /// Streams whose request has not ended yet (at most
    /// [`MAX_OPEN_STREAMS`]), with the WINDOW_UPDATE credit the client gave
    /// each meanwhile.
    open: Vec<(u32, i64)>,
    header_block: Option<HeaderBlock>,
    responses: u64,
    /// Whole frames handled: progress, which single octets are not.
    frames: u64,
    /// Every response's body.
    body: Body,
    /// A body that fits one DATA frame of the smallest maximum size: the
    /// whole response (HEADERS, then DATA with END_STREAM) prebuilt with
    /// stream ids 0, copied and patched in one go when the windows allow
    /// (the seed's answer: 41 octets).
    whole: Option<Box<[u8]>>,
    /// Responses being sent, in turn (at most [`MAX_QUEUED_RESPONSES`]).
    sending: VecDeque<Outgoing>,
    /// The client's SETTINGS_INITIAL_WINDOW_SIZE and MAX_FRAME_SIZE.
    initial_window: i64,
    max_frame: u32,
    /// What the client's connection window lets us send.
    conn_window: i64,
    hold: Hold,
    /// During `handle_input_within`: what answers may still add to `out`
    /// at once.
    direct_room: usize,
}

type Result<T> = std::result::Result<T, EngineError>;

fn violation(reason: Reason, detail: &'static str) -> EngineError {
    EngineError::Protocol { reason, detail }
}

impl MiniConnection {
    /// A new connection; queues the server's SETTINGS frame into `out`
    /// (the server may speak first, RFC 9113 §3.4).
    pub fn accept(out: &mut Vec<u8>) -> Self {
        Self::with_body(out, Body::default())
    }

    /// [`MiniConnection::accept`], answering every request with `body`.
    pub fn with_body(out: &mut Vec<u8>, body: Body) -> Self {
        out.extend_from_slice(&SERVER_SETTINGS);
        Self {
            state: State::Preface(0),
            pending: Vec::new(),
            last_stream: 0,
            open: Vec::new(),
            header_block: None,
            responses: 0,
            frames: 0,
            body,
            whole: prebuilt(body),
            sending: VecDeque::new(),
            initial_window: i64::from(frame::DEFAULT_WINDOW_SIZE),
            max_frame: DEFAULT_MAX_FRAME_SIZE,
            conn_window: i64::from(frame::DEFAULT_WINDOW_SIZE),
            hold: Hold::Never,
            direct_room: 0,
        }
    }

    /// Answers requests when `hold` says (at once by default).
    pub fn hold(mut self, hold: Hold) -> Self {
        self.hold = hold;
        self
    }

    /// The time: delayed responses whose request ended since the last
    /// call are due `delay` from `now`; those due by `now` may go.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Hold::Delay(delay) = self.hold else {
            return;
        };
        for s in &mut self.sending {
            match s.due {
                Due::Unstamped => s.due = Due::At(now + delay),
                Due::At(t) if t <= now => s.due = Due::Now,
                _ => {}
            }
        }
    }

    /// When the next delayed response is due: the driver should call
    /// [`MiniConnection::handle_timeout`] then (or at once, if a request
    /// ended since its last call).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !matches!(self.hold, Hold::Delay(_)) {
            return None;
        }
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
        self.hold != Hold::Never && self.sending.iter().any(|s| s.due != Due::Now)
    }

    /// The requests held for the driver's work ([`Hold::Release`]) that it
    /// has not taken yet, in order.
    pub fn take_held(&mut self, mut each: impl FnMut(u32)) {
        for s in &mut self.sending {
            if s.due == Due::Held(false) {
                s.due = Due::Held(true);
                each(s.stream);
            }
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
            if s.headers_sent && s.sent == self.body.len() {
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
        if s.due != Due::Now {
            return false;
        }
        let len = self.body.len();
        let mut sent = false;
        // The common case, a small answer with room in every window: one
        // copy of the prebuilt frames and two stream ids patched in.
        if let Some(whole) = self.whole.as_deref().filter(|_| !s.headers_sent) {
            let n = len as i64;
            if left >= whole.len() && s.window >= n && self.conn_window >= n {
                let start = out.len();
                out.extend_from_slice(whole);
                let id = s.stream.to_be_bytes();
                for at in [start + 5, start + HEADERS_FRAME_LEN + 5] {
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
            if left < HEADERS_FRAME_LEN {
                return false;
            }
            let end = if len == 0 { flags::END_STREAM } else { 0 };
            encode_frame(
                out,
                FrameType::HEADERS,
                flags::END_HEADERS | end,
                s.stream,
                &RESPONSE_HEADERS,
            );
            s.headers_sent = true;
            left -= HEADERS_FRAME_LEN;
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
        Body::append(s.sent, n, out);
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
            FrameType::CONTINUATION => self.on_continuation(head, out),
            FrameType::PRIORITY => {
                need_stream(head, "PRIORITY on stream 0")?;
                need_length(head, 5, "PRIORITY length not 5")
            }
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
        if !self.is_open(head.stream) {
            return Err(if head.stream > self.last_stream {
                violation(Reason::PROTOCOL_ERROR, "DATA on an idle stream")
            } else {
                violation(Reason::STREAM_CLOSED, "DATA on a closed stream")
            });
        }
        // Give back the flow-control credit at once, so uploads never stall.
        if head.length > 0 {
            encode_window_update(out, 0, head.length);
            if !head.has(flags::END_STREAM) {
                encode_window_update(out, head.stream, head.length);
            }
        }
        if head.has(flags::END_STREAM) {
            self.respond(head.stream, out);
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
        } else if !self.is_open(stream) {
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
        let block = HeaderBlock {
            stream,
            end_stream: head.has(flags::END_STREAM),
            continuations: 0,
            octets: payload.len(),
        };
        if head.has(flags::END_HEADERS) {
            self.end_header_block(block, out)
        } else {
            self.header_block = Some(block);
            Ok(())
        }
    }

    fn on_continuation(&mut self, head: FrameHeader, out: &mut Vec<u8>) -> Result<()> {
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
        if head.has(flags::END_HEADERS) {
            self.header_block = None;
            self.end_header_block(block, out)?;
        }
        Ok(())
    }

    fn end_header_block(&mut self, block: HeaderBlock, out: &mut Vec<u8>) -> Result<()> {
        if block.end_stream {
            self.respond(block.stream, out);
        } else if !self.is_open(block.stream) {
            if self.open.len() >= MAX_OPEN_STREAMS {
                return Err(violation(
                    Reason::ENHANCE_YOUR_CALM,
                    "too many requests with an unfinished body",
                ));
            }
            self.open.push((block.stream, 0));
        }
        Ok(())
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
        self.open.retain(|&(s, _)| s != head.stream);
        self.sending.retain(|s| s.stream != head.stream);
        Ok(())
    }

    fn is_open(&self, stream: u32) -> bool {
        self.open.iter().any(|&(s, _)| s == stream)
    }

    /// The request on `stream` is whole: its response joins the queue
    /// (or the client is refused the stream when the queue is full).
    fn respond(&mut self, stream: u32, out: &mut Vec<u8>) {
        let credit = match self.open.iter().position(|&(s, _)| s == stream) {
            Some(i) => self.open.swap_remove(i).1,
            None => 0,
        };
        if self.sending.len() >= MAX_QUEUED_RESPONSES {
            let code = Reason::REFUSED_STREAM.0.to_be_bytes();
            encode_frame(out, FrameType::RST_STREAM, 0, stream, &code);
            return;
        }
        let due = match self.hold {
            Hold::Never => Due::Now,
            Hold::Delay(_) => Due::Unstamped,
            Hold::Release => Due::Held(false),
        };
        let mut s = Outgoing {
            stream,
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
            .is_some_and(|w| w.len() <= self.direct_room);
        if due == Due::Now && self.sending.is_empty() && fits {
            let before = out.len();
            if self.send_frames(&mut s, out, self.direct_room) {
                self.direct_room -= out.len() - before;
                if s.sent == self.body.len() {
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
        } else if let Some((_, credit)) = self.open.iter_mut().find(|(s, _)| *s == head.stream) {
            *credit += inc;
            initial + *credit
        } else {
            return Ok(()); // a closed stream: nothing to send on it
        };
        if window > max {
            let code = Reason::FLOW_CONTROL_ERROR.0.to_be_bytes();
            encode_frame(out, FrameType::RST_STREAM, 0, head.stream, &code);
            self.sending.retain(|s| s.stream != head.stream);
            self.open.retain(|&(s, _)| s != head.stream);
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

/// The whole response for a body of 1 to 16,384 octets (one DATA frame at
/// any SETTINGS_MAX_FRAME_SIZE), stream ids 0; `None` otherwise.
fn prebuilt(body: Body) -> Option<Box<[u8]>> {
    let len = body.len();
    if len == 0 || len > u64::from(DEFAULT_MAX_FRAME_SIZE) {
        return None;
    }
    let mut whole = Vec::with_capacity(HEADERS_FRAME_LEN + HEADER_LEN + len as usize);
    encode_frame(
        &mut whole,
        FrameType::HEADERS,
        flags::END_HEADERS,
        0,
        &RESPONSE_HEADERS,
    );
    FrameHeader {
        length: len as u32,
        kind: FrameType::DATA,
        flags: flags::END_STREAM,
        stream: 0,
    }
    .encode(&mut whole);
    Body::append(0, len as usize, &mut whole);
    Some(whole.into_boxed_slice())
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

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
