//! The client side of HTTP/2 for the load generator, sans-IO: it appends
//! what to send to a caller-owned buffer, takes what the server sent, and
//! reports each finished request. Requests are one prebuilt header block
//! (`GET`, HPACK without the dynamic table). Of a response only `:status`
//! is read, the first field of its header block (RFC 9113 §8.3); we set
//! SETTINGS_HEADER_TABLE_SIZE to 0, so the server cannot index into a
//! dynamic table and no general HPACK decoder is needed (the one we tried
//! built a Huffman table per string, and was 90% of the client's time).
//!
//! Driver order: [`ClientConnection::new`] (queues the preface and
//! SETTINGS), then [`ClientConnection::send_request`] while
//! [`ClientConnection::can_send`], and [`ClientConnection::handle_input`]
//! for every chunk received.

use std::collections::HashMap;

use crate::frame::{
    encode_frame, encode_window_update, flags, parse_goaway, setting, FrameHeader, FrameType,
    Reason, CLIENT_PREFACE, DEFAULT_MAX_FRAME_SIZE, HEADER_LEN,
};

/// Our receive windows: big, and topped up long before they run out.
const WINDOW: u32 = 1 << 30;
/// Headers of one response, at most (CONTINUATION included).
const MAX_HEADER_BLOCK: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("server sent a frame of {0} octets, over the maximum frame size")]
    FrameTooLarge(u32),
    #[error("server's header block is larger than 64 KiB")]
    HeaderBlockTooLarge,
    #[error("server broke the protocol: {0}")]
    Protocol(&'static str),
}

/// A request that ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    pub stream: u32,
    /// A 2xx or 3xx status with the whole response: succeeded.
    pub ok: bool,
}

/// The connection's state after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Open,
    /// The server sent GOAWAY: no new requests; those above `last_stream`
    /// were not processed (and are reported failed).
    GoingAway {
        last_stream: u32,
        reason: Reason,
    },
}

#[derive(Debug, Default)]
struct Stream {
    status: Option<u16>,
}

pub struct ClientConnection {
    request: Vec<u8>,
    next_stream: u32,
    open: HashMap<u32, Stream>,
    /// The server's SETTINGS_MAX_CONCURRENT_STREAMS (unlimited until told).
    max_streams: u32,
    pending: Vec<u8>,
    /// A header block being gathered: (stream, END_STREAM, octets).
    headers: Option<(u32, bool, Vec<u8>)>,
    /// DATA octets received since the last connection WINDOW_UPDATE.
    unacked: u32,
    state: State,
    /// The server's first SETTINGS arrived: the connection is being served.
    established: bool,
}

impl ClientConnection {
    /// A new connection to `authority` (`host:port`); queues the preface,
    /// our SETTINGS and a connection window of 1 GiB into `out`.
    pub fn new(authority: &str, https: bool, out: &mut Vec<u8>) -> Self {
        out.extend_from_slice(CLIENT_PREFACE);
        let mut settings = Vec::with_capacity(12);
        let settings_list = [
            (setting::HEADER_TABLE_SIZE, 0),
            (setting::ENABLE_PUSH, 0),
            (setting::INITIAL_WINDOW_SIZE, WINDOW),
        ];
        for (id, value) in settings_list {
            settings.extend_from_slice(&id.to_be_bytes());
            settings.extend_from_slice(&value.to_be_bytes());
        }
        encode_frame(out, FrameType::SETTINGS, 0, 0, &settings);
        encode_window_update(out, 0, WINDOW - 65_535);
        Self {
            request: request_block(authority, https),
            next_stream: 1,
            open: HashMap::new(),
            max_streams: u32::MAX,
            pending: Vec::new(),
            headers: None,
            unacked: 0,
            state: State::Open,
            established: false,
        }
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

    /// Queues one GET; returns its stream id.
    pub fn send_request(&mut self, out: &mut Vec<u8>) -> u32 {
        let stream = self.next_stream;
        self.next_stream += 2;
        encode_frame(
            out,
            FrameType::HEADERS,
            flags::END_STREAM | flags::END_HEADERS,
            stream,
            &self.request,
        );
        self.open.insert(stream, Stream::default());
        stream
    }

    /// Takes octets from the server; answers what must be answered into
    /// `out` and calls `done` for every request that ended.
    pub fn handle_input(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        mut done: impl FnMut(Finished),
    ) -> Result<State, ClientError> {
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(input);
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
        result.map(|()| self.state)
    }

    /// The connection ended: every request still open failed.
    pub fn fail_all(&mut self, mut done: impl FnMut(Finished)) {
        for (stream, _) in self.open.drain() {
            done(Finished { stream, ok: false });
        }
    }

    fn handle_frame(
        &mut self,
        head: FrameHeader,
        payload: &[u8],
        out: &mut Vec<u8>,
        done: &mut impl FnMut(Finished),
    ) -> Result<(), ClientError> {
        if let Some((stream, _, _)) = &self.headers {
            if head.kind != FrameType::CONTINUATION || head.stream != *stream {
                return Err(ClientError::Protocol("header block interrupted"));
            }
        }
        match head.kind {
            FrameType::SETTINGS if !head.has(flags::ACK) => {
                self.established = true;
                for p in payload.chunks_exact(6) {
                    if u16::from_be_bytes([p[0], p[1]]) == 0x3 {
                        self.max_streams = u32::from_be_bytes([p[2], p[3], p[4], p[5]]);
                    }
                }
                encode_frame(out, FrameType::SETTINGS, flags::ACK, 0, &[]);
            }
            FrameType::PING if !head.has(flags::ACK) => {
                encode_frame(out, FrameType::PING, flags::ACK, 0, payload);
            }
            FrameType::HEADERS | FrameType::CONTINUATION => {
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
                let (_, _, block) = self.headers.as_mut().expect("set above");
                if block.len() + fragment.len() > MAX_HEADER_BLOCK {
                    return Err(ClientError::HeaderBlockTooLarge);
                }
                block.extend_from_slice(fragment);
                if head.has(flags::END_HEADERS) {
                    let (stream, end, block) = self.headers.take().expect("set above");
                    self.on_header_block(stream, end, &block, done)?;
                }
            }
            FrameType::DATA => {
                self.unacked = self.unacked.saturating_add(head.length);
                if self.unacked >= WINDOW / 2 {
                    encode_window_update(out, 0, self.unacked);
                    self.unacked = 0;
                }
                if head.has(flags::END_STREAM) {
                    self.finish(head.stream, done);
                }
            }
            FrameType::RST_STREAM => {
                if let Some(_s) = self.open.remove(&head.stream) {
                    done(Finished {
                        stream: head.stream,
                        ok: false,
                    });
                }
            }
            FrameType::GOAWAY => {
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
                    self.open.remove(&stream);
                    done(Finished { stream, ok: false });
                }
            }
            FrameType::PUSH_PROMISE => {
                return Err(ClientError::Protocol("PUSH_PROMISE with push disabled"))
            }
            _ => {} // WINDOW_UPDATE (our requests have no body), PRIORITY, unknown
        }
        Ok(())
    }

    fn on_header_block(
        &mut self,
        stream: u32,
        end_stream: bool,
        block: &[u8],
        done: &mut impl FnMut(Finished),
    ) -> Result<(), ClientError> {
        let status = status_of(block);
        if let Some(s) = self.open.get_mut(&stream) {
            // Informational (1xx) heads are followed by the real one.
            if s.status.is_none_or(|old| (100..200).contains(&old)) {
                s.status = status;
            }
        }
        if end_stream {
            self.finish(stream, done);
        }
        Ok(())
    }

    fn finish(&mut self, stream: u32, done: &mut impl FnMut(Finished)) {
        if let Some(s) = self.open.remove(&stream) {
            let ok = s.status.is_some_and(|st| (200..400).contains(&st));
            done(Finished { stream, ok });
        }
    }
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1); returns it and
/// the octets it took.
fn hpack_int(p: &[u8], n: u8) -> Option<(usize, usize)> {
    let max = (1usize << n) - 1;
    let first = usize::from(*p.first()?) & max;
    if first < max {
        return Some((first, 1));
    }
    let (mut value, mut shift) = (max, 0u32);
    for (i, &b) in p.iter().enumerate().skip(1).take(4) {
        value += usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
        shift += 7;
    }
    None
}

/// Huffman codes of the digits (RFC 7541 Appendix B): '0'..'2' in 5 bits,
/// '3'..'9' in 6; a status code needs nothing else.
fn huffman_digits(data: &[u8]) -> Option<String> {
    let (mut acc, mut bits, mut out) = (0u32, 0u32, String::new());
    for &b in data {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        loop {
            if bits >= 5 && (acc >> (bits - 5)) & 0x1f <= 2 {
                out.push(char::from(b'0' + ((acc >> (bits - 5)) & 0x1f) as u8));
                bits -= 5;
            } else if bits >= 6 && (0x19..=0x1f).contains(&((acc >> (bits - 6)) & 0x3f)) {
                out.push(char::from(
                    b'3' + (((acc >> (bits - 6)) & 0x3f) - 0x19) as u8,
                ));
                bits -= 6;
            } else {
                break;
            }
            acc &= (1 << bits) - 1;
        }
    }
    // What is left must be padding: fewer than 8 one-bits (§5.2).
    (bits < 8 && acc == (1 << bits) - 1).then_some(out)
}

/// The `:status` of a response header block: its first field, indexed in
/// the static table or a literal with the static name `:status` (index 8),
/// after any dynamic table size updates.
fn status_of(block: &[u8]) -> Option<u16> {
    let mut p = block;
    while p.first()? & 0xe0 == 0x20 {
        let (_, used) = hpack_int(p, 5)?;
        p = &p[used..];
    }
    let first = *p.first()?;
    if first & 0x80 != 0 {
        let (index, _) = hpack_int(p, 7)?;
        const STATIC: [u16; 7] = [200, 204, 206, 304, 400, 404, 500];
        return STATIC.get(index.checked_sub(8)?).copied();
    }
    let prefix = if first & 0x40 != 0 { 6 } else { 4 };
    let (name, used) = hpack_int(p, prefix)?;
    if name != 8 {
        return None;
    }
    p = &p[used..];
    let huffman = p.first()? & 0x80 != 0;
    let (len, used) = hpack_int(p, 7)?;
    let value = p.get(used..used + len)?;
    let text = match huffman {
        true => huffman_digits(value)?,
        false => String::from_utf8(value.to_vec()).ok()?,
    };
    text.parse().ok()
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

/// `GET /` for `authority`: indexed `:method GET`, `:scheme`, `:path /`,
/// and `:authority` as a literal without indexing (RFC 7541 §6.2.2), so
/// the server's table never changes.
fn request_block(authority: &str, https: bool) -> Vec<u8> {
    let mut block = vec![0x82, if https { 0x87 } else { 0x86 }, 0x84, 0x01];
    // A 7-bit-prefix length, not Huffman coded.
    let len = authority.len();
    if len < 127 {
        block.push(len as u8);
    } else {
        block.push(127);
        let mut rest = len - 127;
        while rest >= 128 {
            block.push((rest % 128) as u8 | 0x80);
            rest /= 128;
        }
        block.push(rest as u8);
    }
    block.extend_from_slice(authority.as_bytes());
    block
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::MiniConnection;

    #[test]
    fn request_block_is_a_static_get() {
        let block = request_block("localhost:8443", true);
        let mut expected = vec![0x82, 0x87, 0x84, 0x01, 14];
        expected.extend_from_slice(b"localhost:8443");
        assert_eq!(block, expected);
        // A long authority takes a multi-octet length (RFC 7541 §5.1).
        let long = request_block(&"x".repeat(300), false);
        assert_eq!(&long[..7], &[0x82, 0x86, 0x84, 0x01, 127, 173, 1]);
        assert_eq!(long.len(), 7 + 300);
    }

    #[test]
    fn status_from_every_encoding() {
        assert_eq!(status_of(&[0x88]), Some(200), "indexed");
        assert_eq!(
            status_of(&[0x8d, 0x5f, 0x00]),
            Some(404),
            "indexed, more fields"
        );
        assert_eq!(
            status_of(&[0x20, 0x88]),
            Some(200),
            "after a table size update"
        );
        assert_eq!(
            status_of(&[0x48, 3, b'2', b'0', b'1']),
            Some(201),
            "literal, indexing"
        );
        assert_eq!(
            status_of(&[0x08, 3, b'5', b'0', b'3']),
            Some(503),
            "literal, no indexing"
        );
        // RFC 7541 C.6.1 and C.6.2: "302" and "307", Huffman coded.
        assert_eq!(status_of(&[0x48, 0x82, 0x64, 0x02]), Some(302));
        assert_eq!(status_of(&[0x48, 0x83, 0x64, 0x0e, 0xff]), Some(307));
        assert_eq!(huffman_digits(&[0x10, 0x01]).as_deref(), Some("200"));
        assert_eq!(status_of(&[0xbe]), None, "a dynamic index");
        assert_eq!(status_of(&[0x41, 1, b'x']), None, "not :status");
        assert_eq!(status_of(&[]), None);
        assert_eq!(status_of(&[0x48, 0x05, b'2']), None, "truncated");
    }

    /// Our client against our mini engine, in memory.
    #[test]
    fn pipelined_requests_against_the_mini_engine() {
        let (mut to_server, mut to_client) = (Vec::new(), Vec::new());
        let mut client = ClientConnection::new("localhost", false, &mut to_server);
        let mut server = MiniConnection::accept(&mut to_client);
        for _ in 0..10 {
            client.send_request(&mut to_server);
        }
        let mut finished = Vec::new();
        for _ in 0..4 {
            let _ = server.handle_input(&to_server, &mut to_client).unwrap();
            to_server.clear();
            client
                .handle_input(&to_client, &mut to_server, |f| finished.push(f))
                .unwrap();
            to_client.clear();
        }
        assert_eq!(finished.len(), 10);
        assert!(finished.iter().all(|f| f.ok));
        assert_eq!(client.in_flight(), 0);
    }

    #[test]
    fn goaway_fails_the_unprocessed_requests() {
        let mut out = Vec::new();
        let mut client = ClientConnection::new("h", false, &mut out);
        for _ in 0..3 {
            client.send_request(&mut out); // streams 1, 3, 5
        }
        let mut goaway = Vec::new();
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
        let mut client = ClientConnection::new("h", false, &mut out);
        let stream = client.send_request(&mut out);
        let mut frame = Vec::new();
        // :status 404 (static index 13), END_STREAM | END_HEADERS.
        encode_frame(&mut frame, FrameType::HEADERS, 5, stream, &[0x8d]);
        let mut results = Vec::new();
        client
            .handle_input(&frame, &mut out, |f| results.push(f))
            .unwrap();
        assert_eq!(results, [Finished { stream, ok: false }]);
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
            let mut client = ClientConnection::new("h", true, &mut out);
            for _ in 0..5 {
                client.send_request(&mut out);
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
        let mut client = ClientConnection::new("h", false, &mut out);
        let err = client
            .handle_input(&[0, 0x40, 1, 0, 0, 0, 0, 0, 1], &mut out, |_| {})
            .unwrap_err();
        assert_eq!(err, ClientError::FrameTooLarge(16_385));
    }
}
