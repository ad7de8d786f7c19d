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
//!
//! Simplifications, on purpose: no HPACK decoding, the client's flow-control
//! windows for our (tiny) responses are not tracked, and frame errors that
//! RFC 9113 allows to be stream errors are treated as connection errors.

use crate::frame::{
    self, encode_frame, encode_goaway, encode_window_update, flags, setting, FrameHeader,
    FrameType, Reason, CLIENT_PREFACE, DEFAULT_MAX_FRAME_SIZE, HEADER_LEN,
};

/// The response body, as the seed's `*DATA-FRAME*`.
pub const RESPONSE_BODY: &[u8; 12] = b"Hello World\n";

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

/// HEADERS (`:status 200`, `content-type: text/html`, HPACK static table
/// and Huffman literal, no dynamic table entry) and DATA with END_STREAM,
/// stream ids zero: the seed's `*HEADER-FRAME*` and `*DATA-FRAME*`.
const RESPONSE: [u8; 41] = [
    // HEADERS, length 11, END_HEADERS, stream 0 (patched)
    0, 0, 11, 1, 4, 0, 0, 0, 0, //
    0x88, 0x0f, 0x10, 0x87, 0x49, 0x7c, 0xa5, 0x89, 0xd3, 0x4d, 0x1f, //
    // DATA, length 12, END_STREAM, stream 0 (patched)
    0, 0, 12, 0, 1, 0, 0, 0, 0, //
    b'H', b'e', b'l', b'l', b'o', b' ', b'W', b'o', b'r', b'l', b'd', b'\n',
];
const RESPONSE_STREAM_OFFSETS: [usize; 2] = [5, 20 + 5];

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

/// One server-side connection of the mini engine.
#[derive(Debug)]
pub struct MiniConnection {
    state: State,
    /// The start of a frame whose rest has not arrived; always shorter than
    /// one maximal frame, so memory stays bounded.
    pending: Vec<u8>,
    /// The highest stream id the client has opened.
    last_stream: u32,
    /// Streams whose request has not ended yet (at most [`MAX_OPEN_STREAMS`]).
    open: Vec<u32>,
    header_block: Option<HeaderBlock>,
    responses: u64,
    /// Whole frames handled: progress, which single octets are not.
    frames: u64,
}

type Result<T> = std::result::Result<T, EngineError>;

fn violation(reason: Reason, detail: &'static str) -> EngineError {
    EngineError::Protocol { reason, detail }
}

impl MiniConnection {
    /// A new connection; queues the server's SETTINGS frame into `out`
    /// (the server may speak first, RFC 9113 §3.4).
    pub fn accept(out: &mut Vec<u8>) -> Self {
        out.extend_from_slice(&SERVER_SETTINGS);
        Self {
            state: State::Preface(0),
            pending: Vec::new(),
            last_stream: 0,
            open: Vec::new(),
            header_block: None,
            responses: 0,
            frames: 0,
        }
    }

    /// Responses queued so far (one per request).
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
    pub fn handle_input(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<Status> {
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

    fn fail(&mut self, err: EngineError, out: &mut Vec<u8>) -> EngineError {
        encode_goaway(out, self.last_stream, err.reason());
        self.state = State::Closed;
        self.pending = Vec::new();
        err
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
            FrameType::SETTINGS => on_settings(head, payload, out),
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
            FrameType::WINDOW_UPDATE => {
                need_length(head, 4, "WINDOW_UPDATE length not 4")?;
                let inc = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                if inc & 0x7fff_ffff == 0 {
                    return Err(violation(
                        Reason::PROTOCOL_ERROR,
                        "WINDOW_UPDATE with an increment of 0",
                    ));
                }
                Ok(()) // our responses are tiny: windows are not tracked
            }
            _ => Ok(()), // "Implementations MUST ignore ... unknown ... types" (§5.5)
        }
    }

    fn on_data(&mut self, head: FrameHeader, payload: &[u8], out: &mut Vec<u8>) -> Result<()> {
        need_stream(head, "DATA on stream 0")?;
        check_padding(head, payload, 0)?;
        let open = self.open.contains(&head.stream);
        if !open {
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
        } else if !self.open.contains(&stream) {
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
        } else if !self.open.contains(&block.stream) {
            if self.open.len() >= MAX_OPEN_STREAMS {
                return Err(violation(
                    Reason::ENHANCE_YOUR_CALM,
                    "too many requests with an unfinished body",
                ));
            }
            self.open.push(block.stream);
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
        self.open.retain(|&s| s != head.stream);
        Ok(())
    }

    fn respond(&mut self, stream: u32, out: &mut Vec<u8>) {
        self.open.retain(|&s| s != stream);
        let start = out.len();
        out.extend_from_slice(&RESPONSE);
        let id = stream.to_be_bytes();
        for offset in RESPONSE_STREAM_OFFSETS {
            out[start + offset..start + offset + 4].copy_from_slice(&id);
        }
        self.responses += 1;
    }
}

fn on_settings(head: FrameHeader, payload: &[u8], out: &mut Vec<u8>) -> Result<()> {
    need_connection(head, "SETTINGS on a stream other than 0")?;
    if head.has(flags::ACK) {
        return match head.length {
            0 => Ok(()),
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
            _ => {} // unknown settings MUST be ignored (§6.5.2)
        }
    }
    encode_frame(out, FrameType::SETTINGS, flags::ACK, 0, &[]);
    Ok(())
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
