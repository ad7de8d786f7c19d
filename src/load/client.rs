//! The client side of HTTP/2 for the load generator, sans-IO: it appends
//! what to send to a caller-owned buffer, takes what the server sent, and
//! reports each request that ended. Requests are prebuilt header blocks
//! ([`super::request`]); bodies go out as DATA within the server's flow
//! control windows and frame size. A response's header block is decoded
//! ([`crate::hpack`]) for its `:status`, and its fields counted (how many,
//! whether one is `date`: what the server did per response, for the
//! bench's equal-work columns). We set SETTINGS_HEADER_TABLE_SIZE to 0,
//! but the decoder keeps the table of the initial 4,096 octets: a server
//! may index before it has seen our SETTINGS, and h2o 2.2.5 indexes its
//! `server` and `date` fields whatever we said (a decoder we tried before
//! ours built a Huffman table per string, and was 90% of the client's
//! time; ours takes about 20 ns a block, benches/hpack.rs).
//!
//! Manners: at most [`DEFAULT_STREAMS`] requests before the server's
//! SETTINGS arrive, never more than its SETTINGS_MAX_CONCURRENT_STREAMS;
//! REFUSED_STREAM and streams a GOAWAY left unprocessed are reported as
//! such, so that the driver can send them again.
//!
//! Driver order: [`ClientConnection::new`] (queues the preface and
//! SETTINGS), then [`ClientConnection::send_request`] while
//! [`ClientConnection::can_send`], and [`ClientConnection::handle_input`]
//! for every chunk received.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::request::{Expect, Request};
use crate::engine::Body;
use crate::frame::{
    encode_frame, encode_window_update, flags, parse_goaway, setting, FrameHeader, FrameType,
    Reason, CLIENT_PREFACE, DEFAULT_MAX_FRAME_SIZE, HEADER_LEN, MAX_WINDOW_SIZE,
};

/// Our receive windows by default: big, and topped up long before they
/// run out.
pub const WINDOW: u32 = 1 << 30;
/// Headers of one response, at most (CONTINUATION included).
const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// Requests open before the server's SETTINGS say how many it takes: the
/// least RFC 9113 §6.5.2 recommends a server allows.
pub const DEFAULT_STREAMS: u32 = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("server sent a frame of {0} octets, over the maximum frame size")]
    FrameTooLarge(u32),
    #[error("server's header block is larger than 64 KiB")]
    HeaderBlockTooLarge,
    #[error("server broke the protocol: {0}")]
    Protocol(&'static str),
    #[error("the server does not speak HTTP/2 here: {0}")]
    NotHttp2(String),
    #[error("server's flow-control window went over 2^31-1")]
    FlowControl,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A whole response with this status.
    Status(u16),
    /// The server reset the stream with this code.
    Reset(Reason),
    /// REFUSED_STREAM: not processed, safe to send again.
    Refused,
    /// Above a GOAWAY's last stream: not processed, safe to send again.
    Unprocessed,
    /// The connection ended first.
    Lost,
    /// A whole response whose body was not the one expected (`load
    /// --expect-body`, or its route's): this many DATA octets, or the
    /// right number with other content.
    WrongBody { octets: u64 },
    /// A whole response with another status than its route's
    /// (`/status/CODE`).
    WrongStatus(u16),
}

/// A request that ended, with the tag the driver gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished<T> {
    pub stream: u32,
    pub outcome: Outcome,
    pub tag: T,
    /// DATA octets the response carried (goodput).
    pub body: u64,
}

impl<T> Finished<T> {
    /// A 2xx or 3xx status with the whole response: succeeded.
    pub fn ok(&self) -> bool {
        matches!(self.outcome, Outcome::Status(s) if (200..400).contains(&s))
    }
}

/// The connection's state after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Open,
    /// The server sent GOAWAY: no new requests; those above `last_stream`
    /// were not processed (and are reported [`Outcome::Unprocessed`]).
    GoingAway {
        last_stream: u32,
        reason: Reason,
    },
}

#[derive(Debug)]
struct Stream<T> {
    /// The driver's own data for this request (when it started, ...).
    tag: T,
    status: Option<u16>,
    /// DATA octets received since this stream's last WINDOW_UPDATE.
    unacked: u32,
    /// What the server's window lets us send on this stream.
    send_window: i64,
    /// The request body not yet sent, from this offset.
    body: Option<(Arc<[u8]>, usize)>,
    /// DATA octets of the response so far, and whether they were all the
    /// expected body's (with `--expect-body`).
    received: u64,
    intact: bool,
    /// What the answer must be (its route's, or `--expect-body`).
    expect: Expect,
}

impl<T> Stream<T> {
    /// DATA of the response: counted, and checked against the expected
    /// body if `check`.
    fn take(&mut self, data: &[u8], check: bool) {
        if check && self.intact {
            self.intact = Body::matches(self.received, data);
        }
        self.received += data.len() as u64;
    }
}

/// Octets the server sent, by kind (h2load's "traffic" line).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub headers: u64,
    pub data: u64,
    /// Response header blocks, the fields in them, and the blocks with a
    /// `date`.
    pub blocks: u64,
    pub fields: u64,
    pub dated: u64,
}

/// Stream ids are small odd numbers handed out in order: a multiply is
/// hash enough (SipHash was a visible share of the client's time).
#[derive(Default)]
pub struct StreamIdHasher(u64);

impl std::hash::Hasher for StreamIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type StreamMap<V> = HashMap<u32, V, std::hash::BuildHasherDefault<StreamIdHasher>>;

/// One connection's client side; `T` is what the driver keeps with each
/// request, handed back when it ends.
pub struct ClientConnection<T> {
    next_stream: u32,
    open: StreamMap<Stream<T>>,
    /// The server's SETTINGS_MAX_CONCURRENT_STREAMS (unlimited once its
    /// SETTINGS came without one).
    max_streams: u32,
    /// The server's SETTINGS_INITIAL_WINDOW_SIZE and MAX_FRAME_SIZE.
    initial_window: i64,
    max_frame: u32,
    /// The connection window the server gives our DATA.
    send_window: i64,
    /// Streams with body octets still to send, in order.
    uploading: VecDeque<u32>,
    pending: Vec<u8>,
    /// A header block being gathered: (stream, END_STREAM, octets).
    headers: Option<(u32, bool, Vec<u8>)>,
    /// DATA octets received since the last connection WINDOW_UPDATE.
    unacked: u32,
    state: State,
    /// The server's first SETTINGS arrived: the connection is being served.
    established: bool,
    pub received: Received,
    /// Every response's body must be this one (`--expect-body`), unless
    /// its route says otherwise.
    expect: Option<Body>,
    /// Our connection and stream windows, given back at half.
    window: u32,
    /// Requests given as fields (`--browser-headers`) are encoded with
    /// this connection's dynamic table (made at the first).
    encoder: Option<crate::hpack::Encoder>,
    /// The server's SETTINGS_HEADER_TABLE_SIZE, for the encoder.
    table_size: usize,
    /// Scratch for an encoded block.
    block: Vec<u8>,
    /// The responses' header blocks.
    decoder: crate::hpack::Decoder,
}

impl<T: Copy> ClientConnection<T> {
    /// A new connection; queues the preface, our SETTINGS and a connection
    /// window of 1 GiB into `out`.
    pub fn new(out: &mut Vec<u8>) -> Self {
        Self::with_window(out, WINDOW)
    }

    /// [`ClientConnection::new`] with connection and stream windows of
    /// `window` octets (at least 65,535, at most 2^31-1).
    pub fn with_window(out: &mut Vec<u8>, window: u32) -> Self {
        let window = window.clamp(65_535, MAX_WINDOW_SIZE);
        out.extend_from_slice(CLIENT_PREFACE);
        let mut settings = Vec::with_capacity(12);
        let settings_list = [
            (setting::HEADER_TABLE_SIZE, 0),
            (setting::ENABLE_PUSH, 0),
            (setting::INITIAL_WINDOW_SIZE, window),
        ];
        for (id, value) in settings_list {
            settings.extend_from_slice(&id.to_be_bytes());
            settings.extend_from_slice(&value.to_be_bytes());
        }
        encode_frame(out, FrameType::SETTINGS, 0, 0, &settings);
        if window > 65_535 {
            encode_window_update(out, 0, window - 65_535);
        }
        Self {
            next_stream: 1,
            open: StreamMap::default(),
            max_streams: DEFAULT_STREAMS,
            initial_window: 65_535,
            max_frame: DEFAULT_MAX_FRAME_SIZE,
            send_window: 65_535,
            uploading: VecDeque::new(),
            pending: Vec::new(),
            headers: None,
            unacked: 0,
            state: State::Open,
            established: false,
            received: Received::default(),
            expect: None,
            window,
            encoder: None,
            table_size: crate::hpack::DEFAULT_TABLE_SIZE,
            block: Vec::new(),
            decoder: crate::hpack::Decoder::new(crate::hpack::DEFAULT_TABLE_SIZE),
        }
    }

    /// Every response's body must be `body`, octet for octet; one that is
    /// not ends as [`Outcome::WrongBody`].
    pub fn expect_body(&mut self, body: Option<Body>) {
        self.expect = body;
    }

    pub fn in_flight(&self) -> usize {
        self.open.len()
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The server has spoken HTTP/2 on this connection (its SETTINGS came).
    pub fn is_established(&self) -> bool {
        self.established
    }

    /// A new request may be sent now (the connection is open, below the
    /// server's stream limit, and stream ids are left).
    pub fn can_send(&self) -> bool {
        self.state == State::Open
            && (self.open.len() as u64) < u64::from(self.max_streams)
            && self.next_stream < (1 << 31) - 2
    }

    /// Stream ids are used up: the driver should open a new connection.
    pub fn exhausted(&self) -> bool {
        self.next_stream >= (1 << 31) - 2
    }

    /// Queues one request (and as much of its body as the windows allow);
    /// returns its stream id.
    pub fn send_request(&mut self, request: &Request, tag: T, out: &mut Vec<u8>) -> u32 {
        let stream = self.next_stream;
        self.next_stream += 2;
        let end = match request.body {
            None => flags::END_STREAM,
            Some(_) => 0,
        };
        let block = match &request.fields {
            None => &request.block[..],
            Some(fields) => {
                let size = self.table_size;
                let enc = self
                    .encoder
                    .get_or_insert_with(|| crate::hpack::Encoder::new(size, true));
                enc.resize(size);
                self.block.clear();
                enc.encode(
                    fields.iter().map(|(n, v)| (&n[..], &v[..])),
                    &mut self.block,
                );
                &self.block[..]
            }
        };
        // A block past the smallest frame size goes on in CONTINUATIONs
        // (a request with a large -H).
        let max = DEFAULT_MAX_FRAME_SIZE as usize;
        let mut at = block.len().min(max);
        let ended = |at: usize| match at == block.len() {
            true => flags::END_HEADERS,
            false => 0,
        };
        encode_frame(
            out,
            FrameType::HEADERS,
            end | ended(at),
            stream,
            &block[..at],
        );
        while at < block.len() {
            let n = (block.len() - at).min(max);
            let f = ended(at + n);
            encode_frame(out, FrameType::CONTINUATION, f, stream, &block[at..at + n]);
            at += n;
        }
        let body = request.body.clone().map(|b| (b, 0));
        let has_body = body.is_some();
        self.open.insert(
            stream,
            Stream {
                tag,
                status: None,
                unacked: 0,
                send_window: self.initial_window,
                body,
                received: 0,
                intact: true,
                expect: Expect {
                    body: request.expect.body.or(self.expect),
                    status: request.expect.status,
                },
            },
        );
        if has_body {
            self.uploading.push_back(stream);
            self.pump(out);
        }
        stream
    }

    /// Sends request bodies as far as the windows allow, in order.
    fn pump(&mut self, out: &mut Vec<u8>) {
        while let Some(&id) = self.uploading.front() {
            let Some(s) = self.open.get_mut(&id) else {
                self.uploading.pop_front();
                continue;
            };
            let Some((body, at)) = &mut s.body else {
                self.uploading.pop_front();
                continue;
            };
            let left = body.len() - *at;
            let room = s.send_window.min(self.send_window).max(0) as usize;
            let n = left.min(room).min(self.max_frame as usize);
            if n == 0 && left > 0 {
                // Blocked on this stream's window or the connection's:
                // later streams wait their turn (keeps the order simple).
                return;
            }
            let last = n == left;
            encode_frame(
                out,
                FrameType::DATA,
                if last { flags::END_STREAM } else { 0 },
                id,
                &body[*at..*at + n],
            );
            *at += n;
            s.send_window -= n as i64;
            self.send_window -= n as i64;
            if last {
                s.body = None;
                self.uploading.pop_front();
            }
        }
    }

    /// Takes octets from the server; answers what must be answered into
    /// `out` and calls `done` for every request that ended.
    pub fn handle_input(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        mut done: impl FnMut(Finished<T>),
    ) -> Result<State, ClientError> {
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(input);
        if !self.established {
            not_a_server_preface(&buf)?;
        }
        let mut pos = 0;
        let result = loop {
            let Some(head) = FrameHeader::parse(&buf[pos..]) else {
                break Ok(());
            };
            // We never raise SETTINGS_MAX_FRAME_SIZE: this is the limit.
            if head.length > DEFAULT_MAX_FRAME_SIZE {
                break Err(ClientError::FrameTooLarge(head.length));
            }
            let end = pos + HEADER_LEN + head.length as usize;
            if end > buf.len() {
                break Ok(());
            }
            if let Err(e) = self.handle_frame(head, &buf[pos + HEADER_LEN..end], out, &mut done) {
                break Err(e);
            }
            pos = end;
        };
        buf.drain(..pos);
        self.pending = buf;
        if result.is_ok() && !self.uploading.is_empty() {
            self.pump(out);
        }
        result.map(|()| self.state)
    }

    /// The connection ended: every request still open is lost.
    pub fn fail_all(&mut self, mut done: impl FnMut(Finished<T>)) {
        self.uploading.clear();
        for (stream, s) in self.open.drain() {
            done(Finished {
                stream,
                outcome: Outcome::Lost,
                tag: s.tag,
                body: s.received,
            });
        }
    }

    /// The tags of the requests still open.
    pub fn open_tags(&self) -> impl Iterator<Item = &T> {
        self.open.values().map(|s| &s.tag)
    }

    fn handle_frame(
        &mut self,
        head: FrameHeader,
        payload: &[u8],
        out: &mut Vec<u8>,
        done: &mut impl FnMut(Finished<T>),
    ) -> Result<(), ClientError> {
        if let Some((stream, _, _)) = &self.headers {
            if head.kind != FrameType::CONTINUATION || head.stream != *stream {
                return Err(ClientError::Protocol("header block interrupted"));
            }
        }
        match head.kind {
            FrameType::SETTINGS if !head.has(flags::ACK) => self.on_settings(payload, out),
            FrameType::PING if !head.has(flags::ACK) => {
                encode_frame(out, FrameType::PING, flags::ACK, 0, payload);
                Ok(())
            }
            FrameType::HEADERS | FrameType::CONTINUATION => {
                self.on_header_fragment(head, payload, out, done)
            }
            FrameType::DATA => self.on_data(head, payload, out, done),
            FrameType::RST_STREAM => self.on_rst_stream(head, payload, done),
            FrameType::GOAWAY => self.on_goaway(payload, done),
            FrameType::WINDOW_UPDATE => self.on_window_update(head, payload),
            FrameType::PUSH_PROMISE => {
                Err(ClientError::Protocol("PUSH_PROMISE with push disabled"))
            }
            _ => Ok(()), // PRIORITY, unknown
        }
    }

    /// The server's SETTINGS (the first establishes the connection): applied
    /// and acknowledged.
    fn on_settings(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), ClientError> {
        if !self.established {
            self.established = true;
            self.max_streams = u32::MAX;
        }
        self.apply_settings(payload)?;
        encode_frame(out, FrameType::SETTINGS, flags::ACK, 0, &[]);
        Ok(())
    }

    /// A HEADERS or CONTINUATION: its fragment joins the open block; a
    /// whole block is a response's head.
    fn on_header_fragment(
        &mut self,
        head: FrameHeader,
        payload: &[u8],
        out: &mut Vec<u8>,
        done: &mut impl FnMut(Finished<T>),
    ) -> Result<(), ClientError> {
        let fragment = match head.kind {
            FrameType::HEADERS => {
                let block = header_fragment(head, payload)?;
                self.headers = Some((head.stream, head.has(flags::END_STREAM), Vec::new()));
                block
            }
            _ if self.headers.is_none() => {
                return Err(ClientError::Protocol("CONTINUATION without HEADERS"))
            }
            _ => payload,
        };
        self.received.headers += u64::from(head.length);
        let (_, _, block) = self.headers.as_mut().expect("set above");
        if block.len() + fragment.len() > MAX_HEADER_BLOCK {
            return Err(ClientError::HeaderBlockTooLarge);
        }
        block.extend_from_slice(fragment);
        if head.has(flags::END_HEADERS) {
            let (stream, end, block) = self.headers.take().expect("set above");
            self.on_header_block(stream, end, &block, out, done)?;
        }
        Ok(())
    }

    /// A DATA frame: counted (and checked, with `--expect-body`), its
    /// window given back at half, and its stream finished at END_STREAM.
    fn on_data(
        &mut self,
        head: FrameHeader,
        payload: &[u8],
        out: &mut Vec<u8>,
        done: &mut impl FnMut(Finished<T>),
    ) -> Result<(), ClientError> {
        self.received.data += u64::from(head.length);
        let data = data_of(head, payload)?;
        self.unacked = self.unacked.saturating_add(head.length);
        if self.unacked >= self.window / 2 {
            encode_window_update(out, 0, self.unacked);
            self.unacked = 0;
        }
        if head.has(flags::END_STREAM) {
            // One lookup per response: the last DATA is taken in `finish`.
            self.finish(head.stream, data, out, done);
        } else if let Some(s) = self.open.get_mut(&head.stream) {
            let check = s.expect.body.is_some();
            s.take(data, check);
            s.unacked = s.unacked.saturating_add(head.length);
            if s.unacked >= self.window / 2 {
                encode_window_update(out, head.stream, s.unacked);
                s.unacked = 0;
            }
        }
        Ok(())
    }

    /// A reset stream ends as refused (REFUSED_STREAM) or reset.
    fn on_rst_stream(
        &mut self,
        head: FrameHeader,
        payload: &[u8],
        done: &mut impl FnMut(Finished<T>),
    ) -> Result<(), ClientError> {
        let code = payload
            .get(..4)
            .map(|c| Reason(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .ok_or(ClientError::Protocol("short RST_STREAM"))?;
        if let Some(s) = self.open.remove(&head.stream) {
            let outcome = match code {
                Reason::REFUSED_STREAM => Outcome::Refused,
                code => Outcome::Reset(code),
            };
            done(Finished {
                stream: head.stream,
                outcome,
                tag: s.tag,
                body: s.received,
            });
        }
        Ok(())
    }

    /// GOAWAY: the connection goes away; the streams past its last one
    /// were not processed.
    fn on_goaway(
        &mut self,
        payload: &[u8],
        done: &mut impl FnMut(Finished<T>),
    ) -> Result<(), ClientError> {
        let (last_stream, reason) =
            parse_goaway(payload).ok_or(ClientError::Protocol("short GOAWAY"))?;
        self.state = State::GoingAway {
            last_stream,
            reason,
        };
        let lost: Vec<u32> = self
            .open
            .keys()
            .copied()
            .filter(|s| *s > last_stream)
            .collect();
        for stream in lost {
            if let Some(s) = self.open.remove(&stream) {
                done(Finished {
                    stream,
                    outcome: Outcome::Unprocessed,
                    tag: s.tag,
                    body: s.received,
                });
            }
        }
        Ok(())
    }

    /// WINDOW_UPDATE: room for our request bodies, never past 2^31-1.
    fn on_window_update(&mut self, head: FrameHeader, payload: &[u8]) -> Result<(), ClientError> {
        let inc = payload
            .get(..4)
            .map(|c| i64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]) & 0x7fff_ffff))
            .ok_or(ClientError::Protocol("short WINDOW_UPDATE"))?;
        let window = match head.stream {
            0 => Some(&mut self.send_window),
            id => self.open.get_mut(&id).map(|s| &mut s.send_window),
        };
        if let Some(w) = window {
            *w += inc;
            if *w > i64::from(MAX_WINDOW_SIZE) {
                return Err(ClientError::FlowControl);
            }
        }
        Ok(())
    }

    /// The server's SETTINGS: its stream limit, and the window and frame
    /// size our request bodies must keep to.
    fn apply_settings(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        if payload.len() % 6 != 0 {
            return Err(ClientError::Protocol("SETTINGS length not a multiple of 6"));
        }
        for p in payload.chunks_exact(6) {
            let value = u32::from_be_bytes([p[2], p[3], p[4], p[5]]);
            match u16::from_be_bytes([p[0], p[1]]) {
                0x3 => self.max_streams = value,
                setting::HEADER_TABLE_SIZE => {
                    self.table_size = (value as usize).min(crate::hpack::DEFAULT_TABLE_SIZE)
                }
                setting::INITIAL_WINDOW_SIZE => {
                    if value > MAX_WINDOW_SIZE {
                        return Err(ClientError::FlowControl);
                    }
                    let delta = i64::from(value) - self.initial_window;
                    self.initial_window = i64::from(value);
                    for s in self.open.values_mut() {
                        s.send_window += delta;
                    }
                }
                setting::MAX_FRAME_SIZE => {
                    if !(DEFAULT_MAX_FRAME_SIZE..=crate::frame::MAX_MAX_FRAME_SIZE).contains(&value)
                    {
                        return Err(ClientError::Protocol(
                            "SETTINGS_MAX_FRAME_SIZE out of range",
                        ));
                    }
                    self.max_frame = value;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn on_header_block(
        &mut self,
        stream: u32,
        end_stream: bool,
        block: &[u8],
        out: &mut Vec<u8>,
        done: &mut impl FnMut(Finished<T>),
    ) -> Result<(), ClientError> {
        let head = read_head(&mut self.decoder, block)?;
        self.received.blocks += 1;
        self.received.fields += u64::from(head.fields);
        self.received.dated += u64::from(head.dated);
        let status = head.status;
        if let Some(s) = self.open.get_mut(&stream) {
            // Informational (1xx) heads are followed by the real one.
            if s.status.is_none_or(|old| (100..200).contains(&old)) {
                s.status = status;
            }
        }
        if end_stream {
            self.finish(stream, &[], out, done);
        }
        Ok(())
    }

    /// Stream `stream` ended, with `last` its last DATA (empty when a
    /// HEADERS frame ended it).
    fn finish(
        &mut self,
        stream: u32,
        last: &[u8],
        out: &mut Vec<u8>,
        done: &mut impl FnMut(Finished<T>),
    ) {
        if let Some(mut s) = self.open.remove(&stream) {
            s.take(last, s.expect.body.is_some());
            if s.body.is_some() {
                // Answered before its body was all sent (RFC 9113 §8.1):
                // the rest is not wanted.
                let code = Reason::NO_ERROR.0.to_be_bytes();
                encode_frame(out, FrameType::RST_STREAM, 0, stream, &code);
            }
            // A response without a status is not one: the stream was reset
            // in all but name.
            let wrong = match s.expect.body {
                Some(body) => !s.intact || s.received != body.len(),
                None => false,
            };
            let outcome = match s.status {
                Some(st) if s.expect.status.is_some_and(|want| want != st) => {
                    Outcome::WrongStatus(st)
                }
                Some(_) if wrong => Outcome::WrongBody { octets: s.received },
                Some(st) => Outcome::Status(st),
                None => Outcome::Reset(Reason::PROTOCOL_ERROR),
            };
            done(Finished {
                stream,
                outcome,
                tag: s.tag,
                body: s.received,
            });
        }
    }
}

/// A DATA frame's data, without its padding (RFC 9113 §6.1).
fn data_of(head: FrameHeader, payload: &[u8]) -> Result<&[u8], ClientError> {
    if !head.has(flags::PADDED) {
        return Ok(payload);
    }
    let pad = usize::from(
        *payload
            .first()
            .ok_or(ClientError::Protocol("empty padded DATA"))?,
    );
    payload
        .get(1..payload.len().saturating_sub(pad))
        .filter(|_| pad < payload.len())
        .ok_or(ClientError::Protocol(
            "DATA padding longer than its payload",
        ))
}

/// What a server sends first must be a SETTINGS frame (RFC 9113 §3.4); if
/// the first octets are something else, say what they look like.
fn not_a_server_preface(buf: &[u8]) -> Result<(), ClientError> {
    if b"HTTP/".starts_with(&buf[..buf.len().min(5)]) && buf.len() < 5 {
        return Ok(()); // too early to tell
    }
    if buf.starts_with(b"HTTP/") {
        let line = buf
            .split(|&b| b == b'\r' || b == b'\n')
            .next()
            .unwrap_or(buf);
        let line = String::from_utf8_lossy(&line[..line.len().min(60)]).to_string();
        return Err(ClientError::NotHttp2(format!(
            "it answered HTTP/1 ({line})"
        )));
    }
    if buf.len() >= 3 && matches!(buf[0], 0x15 | 0x16) && buf[1] == 0x03 {
        return Err(ClientError::NotHttp2(
            "it answered with TLS: use https://".into(),
        ));
    }
    let head = &buf[..buf.len().min(16)];
    if buf.len() >= 9
        && head
            .iter()
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        let line = buf.split(|&b| b == b'\n').next().unwrap_or(buf);
        let line = String::from_utf8_lossy(&line[..line.len().min(40)])
            .trim()
            .to_string();
        return Err(ClientError::NotHttp2(format!(
            "it answered text, not frames ({line:?}…): an HTTP/1 server?"
        )));
    }
    if buf.len() >= 4 && buf[3] != FrameType::SETTINGS.0 {
        return Err(ClientError::NotHttp2(format!(
            "its first frame is {:?}, not SETTINGS",
            FrameType(buf[3]).name()
        )));
    }
    Ok(())
}

/// What a response's header block says: its `:status`, how many fields,
/// whether one is `date`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Head {
    status: Option<u16>,
    fields: u32,
    dated: bool,
}

fn read_head(decoder: &mut crate::hpack::Decoder, block: &[u8]) -> Result<Head, ClientError> {
    let mut head = Head::default();
    decoder
        .decode(block, |name, value| {
            head.fields += 1;
            match name {
                b":status" if head.status.is_none() => {
                    head.status = std::str::from_utf8(value)
                        .ok()
                        .filter(|v| v.len() == 3)
                        .and_then(|v| v.parse().ok());
                }
                b"date" => head.dated = true,
                _ => {}
            }
        })
        .map_err(|_| ClientError::Protocol("a response header block that is not HPACK"))?;
    Ok(head)
}

/// The header block fragment of a HEADERS frame, past padding and priority.
fn header_fragment(head: FrameHeader, payload: &[u8]) -> Result<&[u8], ClientError> {
    let mut p = payload;
    let mut pad = 0;
    if head.has(flags::PADDED) {
        pad = usize::from(*p.first().ok_or(ClientError::Protocol("short HEADERS"))?);
        p = &p[1..];
    }
    if head.has(flags::PRIORITY) {
        p = p.get(5..).ok_or(ClientError::Protocol("short HEADERS"))?;
    }
    p.get(
        ..p.len()
            .checked_sub(pad)
            .ok_or(ClientError::Protocol("padding too long"))?,
    )
    .ok_or(ClientError::Protocol("padding too long"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::MiniConnection;

    fn get() -> Request {
        super::super::request::Spec {
            method: "GET".into(),
            authority: "localhost".into(),
            path: "/".into(),
            ..Default::default()
        }
        .encode()
    }

    /// The server's preface: SETTINGS with these (id, value) pairs.
    fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
        let mut payload = Vec::new();
        for (id, v) in pairs {
            payload.extend_from_slice(&id.to_be_bytes());
            payload.extend_from_slice(&v.to_be_bytes());
        }
        let mut f = Vec::new();
        encode_frame(&mut f, FrameType::SETTINGS, 0, 0, &payload);
        f
    }

    #[test]
    fn status_from_every_encoding() {
        let status =
            |block: &[u8]| read_head(&mut crate::hpack::Decoder::new(0), block).map(|h| h.status);
        assert_eq!(status(&[0x88]), Ok(Some(200)), "indexed");
        assert_eq!(
            status(&[0x8d, 0x5f, 0x00]),
            Ok(Some(404)),
            "indexed, more fields"
        );
        assert_eq!(
            status(&[0x20, 0x88]),
            Ok(Some(200)),
            "after a table size update"
        );
        assert_eq!(
            status(&[0x48, 3, b'2', b'0', b'1']),
            Ok(Some(201)),
            "literal, indexing"
        );
        assert_eq!(
            status(&[0x08, 3, b'5', b'0', b'3']),
            Ok(Some(503)),
            "literal, no indexing"
        );
        // RFC 7541 C.6.1 and C.6.2: "302" and "307", Huffman coded.
        assert_eq!(status(&[0x48, 0x82, 0x64, 0x02]), Ok(Some(302)));
        assert_eq!(status(&[0x48, 0x83, 0x64, 0x0e, 0xff]), Ok(Some(307)));
        assert_eq!(status(&[0x41, 1, b'x']), Ok(None), "not :status");
        assert_eq!(status(&[]), Ok(None));
        assert!(
            status(&[0xbe]).is_err(),
            "a dynamic index, with the table empty"
        );
        assert!(status(&[0x48, 0x05, b'2']).is_err(), "truncated");
        let mut d = crate::hpack::Decoder::new(0);
        let head = read_head(&mut d, &[0x88, 0x0f, 0x12, 3, b'M', b'o', b'n']).unwrap();
        assert_eq!(
            head,
            Head {
                status: Some(200),
                fields: 2,
                dated: true
            }
        );
    }

    /// Our client against our mini engine, in memory.
    #[test]
    fn pipelined_requests_against_the_mini_engine() {
        let (mut to_server, mut to_client) = (Vec::new(), Vec::new());
        let mut client = ClientConnection::<()>::new(&mut to_server);
        let mut server = MiniConnection::accept(&mut to_client);
        for _ in 0..10 {
            client.send_request(&get(), (), &mut to_server);
        }
        let mut finished = Vec::new();
        for _ in 0..4 {
            let _ = server.handle_input(&to_server, &mut to_client).unwrap();
            server.poll_transmit(&mut to_client, usize::MAX);
            to_server.clear();
            client
                .handle_input(&to_client, &mut to_server, |f| finished.push(f))
                .unwrap();
            to_client.clear();
        }
        assert_eq!(finished.len(), 10);
        assert!(finished.iter().all(|f| f.ok()));
        assert_eq!(client.in_flight(), 0);
    }

    #[test]
    fn goaway_fails_the_unprocessed_requests() {
        let mut out = Vec::new();
        let mut client = ClientConnection::<()>::new(&mut out);
        for _ in 0..3 {
            client.send_request(&get(), (), &mut out); // streams 1, 3, 5
        }
        let mut goaway = settings(&[]);
        crate::frame::encode_goaway(&mut goaway, 1, Reason::NO_ERROR);
        let mut failed = Vec::new();
        let state = client
            .handle_input(&goaway, &mut out, |f| failed.push(f.stream))
            .unwrap();
        failed.sort();
        assert_eq!(failed, [3, 5]);
        assert!(!client.can_send());
        assert!(matches!(state, State::GoingAway { last_stream: 1, .. }));
    }

    #[test]
    fn a_non_2xx_status_is_a_failure() {
        let mut out = Vec::new();
        let mut client = ClientConnection::<()>::new(&mut out);
        let stream = client.send_request(&get(), (), &mut out);
        let mut frame = settings(&[]);
        // :status 404 (static index 13), END_STREAM | END_HEADERS.
        encode_frame(&mut frame, FrameType::HEADERS, 5, stream, &[0x8d]);
        let mut results = Vec::new();
        client
            .handle_input(&frame, &mut out, |f| results.push(f))
            .unwrap();
        let want = Finished {
            stream,
            outcome: Outcome::Status(404),
            tag: (),
            body: 0,
        };
        assert_eq!(results, [want]);
        assert!(!want.ok());
    }

    /// Arbitrary server bytes end in an error or not, never in a panic, and
    /// the partial-frame buffer stays under one maximal frame.
    #[test]
    fn random_server_input_never_panics() {
        let mut seed = 0x1234_5678_9abc_def1u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let mut out = Vec::new();
            let mut client = ClientConnection::<()>::new(&mut out);
            client
                .handle_input(&settings(&[]), &mut out, |_| {})
                .unwrap();
            for _ in 0..5 {
                client.send_request(&get(), (), &mut out);
            }
            for _ in 0..8 {
                let len = (next() % 48) as usize;
                let mut chunk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                if chunk.len() > 8 && next() % 2 == 0 {
                    // Small frames on our streams, so that they get parsed.
                    chunk[0] = 0;
                    chunk[1] = 0;
                    chunk[2] %= 24;
                    chunk[3] %= 10;
                    chunk[5..9].copy_from_slice(&((next() % 6) as u32 * 2 + 1).to_be_bytes());
                }
                if client.handle_input(&chunk, &mut out, |_| {}).is_err() {
                    break;
                }
                assert!(client.pending.len() < HEADER_LEN + DEFAULT_MAX_FRAME_SIZE as usize);
            }
            client.fail_all(|_| {});
            assert_eq!(client.in_flight(), 0);
        }
    }

    #[test]
    fn oversized_frames_are_an_error() {
        let mut out = Vec::new();
        let mut client = ClientConnection::<()>::new(&mut out);
        let err = client
            .handle_input(&[0, 0x40, 1, 4, 0, 0, 0, 0, 0], &mut out, |_| {})
            .unwrap_err();
        assert_eq!(err, ClientError::FrameTooLarge(16_385));
    }

    #[test]
    fn streams_wait_for_the_servers_settings_and_keep_to_its_limit() {
        let mut out = Vec::new();
        let mut client = ClientConnection::<()>::new(&mut out);
        let mut sent = 0;
        while client.can_send() {
            client.send_request(&get(), (), &mut out);
            sent += 1;
        }
        assert_eq!(sent, DEFAULT_STREAMS);
        // The server takes 150: 50 more; then it lowers it to 10 and
        // refuses one.
        client
            .handle_input(&settings(&[(0x3, 150)]), &mut out, |_| {})
            .unwrap();
        while client.can_send() {
            client.send_request(&get(), (), &mut out);
            sent += 1;
        }
        assert_eq!(sent, 150);
        let mut input = settings(&[(0x3, 10)]);
        encode_frame(
            &mut input,
            FrameType::RST_STREAM,
            0,
            299,
            &7u32.to_be_bytes(),
        );
        let mut ended = Vec::new();
        client
            .handle_input(&input, &mut out, |f| ended.push(f))
            .unwrap();
        assert_eq!(
            ended,
            [Finished {
                stream: 299,
                outcome: Outcome::Refused,
                tag: (),
                body: 0,
            }]
        );
        assert!(!client.can_send());
    }

    /// A body larger than the server's windows goes out as they open, in
    /// frames no larger than the server allows.
    #[test]
    fn bodies_keep_to_flow_control() {
        let mut out = Vec::new();
        let mut client = ClientConnection::<()>::new(&mut out);
        client
            .handle_input(&settings(&[(0x4, 1000), (0x5, 16_384)]), &mut out, |_| {})
            .unwrap();
        out.clear();
        let mut request = get();
        request.body = Some(Arc::from(vec![7u8; 70_000]));
        let stream = client.send_request(&request, (), &mut out);
        let data = |out: &[u8]| -> usize {
            crate::frame::FrameHeader::parse(out).unwrap();
            let mut n = 0;
            let mut p = out;
            while let Some(h) = FrameHeader::parse(p) {
                if h.kind == FrameType::DATA {
                    assert!(h.length <= 16_384);
                    n += h.length as usize;
                }
                p = &p[HEADER_LEN + h.length as usize..];
            }
            n
        };
        assert_eq!(data(&out), 1000, "the stream's window");
        out.clear();
        let mut update = Vec::new();
        encode_window_update(&mut update, stream, 100_000);
        client.handle_input(&update, &mut out, |_| {}).unwrap();
        assert_eq!(data(&out), 64_535, "now the connection's window");
        out.clear();
        let mut update = Vec::new();
        encode_window_update(&mut update, 0, 10_000);
        client.handle_input(&update, &mut out, |_| {}).unwrap();
        assert_eq!(data(&out), 4_465, "the rest");
        assert!(client.uploading.is_empty());
    }

    #[test]
    fn what_is_not_http2_is_named() {
        for (input, says) in [
            (&b"HTTP/1.1 400 Bad Request\r\n\r\n"[..], "HTTP/1"),
            (
                &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32][..],
                "use https://",
            ),
            (&[0, 0, 0, 0x1, 0, 0, 0, 0, 1][..], "not SETTINGS"),
            (&b"<!DOCTYPE HTML>\n<html>"[..], "an HTTP/1 server?"),
        ] {
            let mut out = Vec::new();
            let mut client = ClientConnection::<()>::new(&mut out);
            let err = client.handle_input(input, &mut out, |_| {}).unwrap_err();
            assert!(err.to_string().contains(says), "{err}");
        }
        let mut out = Vec::new();
        let mut client = ClientConnection::<()>::new(&mut out);
        assert!(client.handle_input(b"HTT", &mut out, |_| {}).is_ok());
    }
}
