//! HTTP/2 wire types (RFC 9113 §4.1, §6, §7): the 9-octet frame header, frame
//! types, flags and error codes. Sans-IO, shared by every engine and by tests.
//!
//! Wire codes are open newtypes so that unknown values round-trip.

use std::fmt;

/// "The size of the frame header is 9 octets" (RFC 9113 §4.1).
pub const HEADER_LEN: usize = 9;

/// "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" (RFC 9113 §3.4).
pub const CLIENT_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// SETTINGS_MAX_FRAME_SIZE initial value and the smallest allowed (RFC 9113 §6.5.2).
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;
/// The largest SETTINGS_MAX_FRAME_SIZE allowed (RFC 9113 §6.5.2).
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;
/// Every flow-control window's initial size (RFC 9113 §6.9.2).
pub const DEFAULT_WINDOW_SIZE: u32 = 65_535;
/// The largest flow-control window (RFC 9113 §6.9.1).
pub const MAX_WINDOW_SIZE: u32 = (1 << 31) - 1;

/// A frame type (RFC 9113 §6). Unknown types are kept, and ignored by engines.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameType(pub u8);

impl FrameType {
    pub const DATA: Self = Self(0x0);
    pub const HEADERS: Self = Self(0x1);
    pub const PRIORITY: Self = Self(0x2);
    pub const RST_STREAM: Self = Self(0x3);
    pub const SETTINGS: Self = Self(0x4);
    pub const PUSH_PROMISE: Self = Self(0x5);
    pub const PING: Self = Self(0x6);
    pub const GOAWAY: Self = Self(0x7);
    pub const WINDOW_UPDATE: Self = Self(0x8);
    pub const CONTINUATION: Self = Self(0x9);

    /// The RFC name, or `UNKNOWN` for an extension type.
    pub fn name(self) -> &'static str {
        match self.0 {
            0x0 => "DATA",
            0x1 => "HEADERS",
            0x2 => "PRIORITY",
            0x3 => "RST_STREAM",
            0x4 => "SETTINGS",
            0x5 => "PUSH_PROMISE",
            0x6 => "PING",
            0x7 => "GOAWAY",
            0x8 => "WINDOW_UPDATE",
            0x9 => "CONTINUATION",
            _ => "UNKNOWN",
        }
    }
}

impl fmt::Debug for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            "UNKNOWN" => write!(f, "UNKNOWN(0x{:x})", self.0),
            name => f.write_str(name),
        }
    }
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Frame flags (RFC 9113 §6); which bits mean what depends on the type.
pub mod flags {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// SETTINGS parameter identifiers (RFC 9113 §6.5.2).
pub mod setting {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
}

/// An error code (RFC 9113 §7), carried by GOAWAY and RST_STREAM.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reason(pub u32);

impl Reason {
    pub const NO_ERROR: Self = Self(0x0);
    pub const PROTOCOL_ERROR: Self = Self(0x1);
    pub const INTERNAL_ERROR: Self = Self(0x2);
    pub const FLOW_CONTROL_ERROR: Self = Self(0x3);
    pub const SETTINGS_TIMEOUT: Self = Self(0x4);
    pub const STREAM_CLOSED: Self = Self(0x5);
    pub const FRAME_SIZE_ERROR: Self = Self(0x6);
    pub const REFUSED_STREAM: Self = Self(0x7);
    pub const CANCEL: Self = Self(0x8);
    pub const COMPRESSION_ERROR: Self = Self(0x9);
    pub const CONNECT_ERROR: Self = Self(0xa);
    pub const ENHANCE_YOUR_CALM: Self = Self(0xb);
    pub const INADEQUATE_SECURITY: Self = Self(0xc);
    pub const HTTP_1_1_REQUIRED: Self = Self(0xd);

    pub fn name(self) -> &'static str {
        const NAMES: [&str; 14] = [
            "NO_ERROR",
            "PROTOCOL_ERROR",
            "INTERNAL_ERROR",
            "FLOW_CONTROL_ERROR",
            "SETTINGS_TIMEOUT",
            "STREAM_CLOSED",
            "FRAME_SIZE_ERROR",
            "REFUSED_STREAM",
            "CANCEL",
            "COMPRESSION_ERROR",
            "CONNECT_ERROR",
            "ENHANCE_YOUR_CALM",
            "INADEQUATE_SECURITY",
            "HTTP_1_1_REQUIRED",
        ];
        NAMES.get(self.0 as usize).copied().unwrap_or("UNKNOWN")
    }
}

impl fmt::Debug for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            "UNKNOWN" => write!(f, "UNKNOWN(0x{:x})", self.0),
            name => f.write_str(name),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The fixed 9-octet header in front of every frame (RFC 9113 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length, 24 bits.
    pub length: u32,
    pub kind: FrameType,
    pub flags: u8,
    /// Stream identifier, 31 bits; the reserved bit is dropped on parse
    /// ("MUST be ignored when receiving", RFC 9113 §4.1).
    pub stream: u32,
}

impl FrameHeader {
    /// Parses the first 9 octets of `buf`; `None` if fewer are there yet
    /// (a partial frame is not an error: more bytes may come).
    pub fn parse(buf: &[u8]) -> Option<Self> {
        let h: &[u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Self {
            length: u32::from_be_bytes([0, h[0], h[1], h[2]]),
            kind: FrameType(h[3]),
            flags: h[4],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        })
    }

    /// Appends the 9 octets to `dst`. `length` must fit in 24 bits.
    pub fn encode(&self, dst: &mut Vec<u8>) {
        debug_assert!(self.length <= MAX_MAX_FRAME_SIZE);
        let len = self.length.to_be_bytes();
        dst.extend_from_slice(&len[1..]);
        dst.push(self.kind.0);
        dst.push(self.flags);
        dst.extend_from_slice(&(self.stream & 0x7fff_ffff).to_be_bytes());
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Appends a whole frame (header and payload) to `dst`.
pub fn encode_frame(dst: &mut Vec<u8>, kind: FrameType, flags: u8, stream: u32, payload: &[u8]) {
    FrameHeader {
        length: payload.len() as u32,
        kind,
        flags,
        stream,
    }
    .encode(dst);
    dst.extend_from_slice(payload);
}

/// Appends a GOAWAY frame (RFC 9113 §6.8) with no debug data.
pub fn encode_goaway(dst: &mut Vec<u8>, last_stream: u32, reason: Reason) {
    let mut payload = [0u8; 8];
    payload[..4].copy_from_slice(&(last_stream & 0x7fff_ffff).to_be_bytes());
    payload[4..].copy_from_slice(&reason.0.to_be_bytes());
    encode_frame(dst, FrameType::GOAWAY, 0, 0, &payload);
}

/// Appends a WINDOW_UPDATE frame (RFC 9113 §6.9).
pub fn encode_window_update(dst: &mut Vec<u8>, stream: u32, increment: u32) {
    encode_frame(
        dst,
        FrameType::WINDOW_UPDATE,
        0,
        stream,
        &(increment & 0x7fff_ffff).to_be_bytes(),
    );
}

/// Reads the (last stream id, error code) of a GOAWAY payload.
pub fn parse_goaway(payload: &[u8]) -> Option<(u32, Reason)> {
    let p: &[u8; 8] = payload.get(..8)?.try_into().ok()?;
    let last = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff;
    Some((last, Reason(u32::from_be_bytes([p[4], p[5], p[6], p[7]]))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc_layout() {
        // HEADERS, length 11, END_STREAM|END_HEADERS, stream 3, reserved bit set.
        let bytes = [0x00, 0x00, 0x0b, 0x01, 0x05, 0x80, 0x00, 0x00, 0x03, 0xff];
        let h = FrameHeader::parse(&bytes).unwrap();
        assert_eq!(h.length, 11);
        assert_eq!(h.kind, FrameType::HEADERS);
        assert!(h.has(flags::END_STREAM) && h.has(flags::END_HEADERS));
        assert!(!h.has(flags::PADDED));
        assert_eq!(h.stream, 3, "the reserved bit is ignored");
    }

    #[test]
    fn partial_header_is_none() {
        assert_eq!(FrameHeader::parse(&[0, 0, 0, 4, 0, 0, 0, 0]), None);
        assert_eq!(FrameHeader::parse(&[]), None);
    }

    #[test]
    fn encode_parse_round_trip() {
        for (length, kind, flags, stream) in [
            (0, FrameType::SETTINGS, flags::ACK, 0),
            (MAX_MAX_FRAME_SIZE, FrameType(0xfe), 0xff, 0x7fff_ffff),
            (16_384, FrameType::DATA, flags::END_STREAM, 1),
        ] {
            let h = FrameHeader {
                length,
                kind,
                flags,
                stream,
            };
            let mut buf = Vec::new();
            h.encode(&mut buf);
            assert_eq!(buf.len(), HEADER_LEN);
            assert_eq!(FrameHeader::parse(&buf), Some(h));
        }
    }

    #[test]
    fn goaway_layout() {
        let mut buf = Vec::new();
        encode_goaway(&mut buf, 5, Reason::FRAME_SIZE_ERROR);
        assert_eq!(
            buf,
            [0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 6],
            "RFC 9113 §6.8: last stream id then error code"
        );
        assert_eq!(
            parse_goaway(&buf[HEADER_LEN..]),
            Some((5, Reason::FRAME_SIZE_ERROR))
        );
    }

    /// Every frame type and error code by its RFC 9113 name (§6 and §7,
    /// the IANA tables of §11), as the trace and the logs print them.
    #[test]
    fn names_are_the_rfc_names() {
        let types = [
            "DATA",
            "HEADERS",
            "PRIORITY",
            "RST_STREAM",
            "SETTINGS",
            "PUSH_PROMISE",
            "PING",
            "GOAWAY",
            "WINDOW_UPDATE",
            "CONTINUATION",
        ];
        for (code, name) in types.iter().enumerate() {
            assert_eq!(FrameType(code as u8).name(), *name);
            assert_eq!(FrameType(code as u8).to_string(), *name);
        }
        assert_eq!(FrameType(0xa).name(), "UNKNOWN");
        let reasons = [
            "NO_ERROR",
            "PROTOCOL_ERROR",
            "INTERNAL_ERROR",
            "FLOW_CONTROL_ERROR",
            "SETTINGS_TIMEOUT",
            "STREAM_CLOSED",
            "FRAME_SIZE_ERROR",
            "REFUSED_STREAM",
            "CANCEL",
            "COMPRESSION_ERROR",
            "CONNECT_ERROR",
            "ENHANCE_YOUR_CALM",
            "INADEQUATE_SECURITY",
            "HTTP_1_1_REQUIRED",
        ];
        for (code, name) in reasons.iter().enumerate() {
            assert_eq!(Reason(code as u32).name(), *name);
            assert_eq!(Reason(code as u32).to_string(), *name);
        }
        assert_eq!(Reason(0xe).name(), "UNKNOWN");
    }

    /// A WINDOW_UPDATE is the RFC's layout, the reserved bit cleared.
    #[test]
    fn window_update_layout() {
        let mut buf = Vec::new();
        encode_window_update(&mut buf, 3, 0x8000_0100);
        assert_eq!(buf, [0, 0, 4, 8, 0, 0, 0, 0, 3, 0, 0, 1, 0]);
    }

    #[test]
    fn unknown_codes_round_trip() {
        assert_eq!(format!("{}", Reason(0x42)), "UNKNOWN(0x42)");
        assert_eq!(
            format!("{}", Reason::ENHANCE_YOUR_CALM),
            "ENHANCE_YOUR_CALM"
        );
        assert_eq!(format!("{}", FrameType(0xbb)), "UNKNOWN(0xbb)");
        assert_eq!(FrameType::CONTINUATION.name(), "CONTINUATION");
    }

    mod props {
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            /// Encode, then parse: the same header (the reserved bit of
            /// the stream id dropped both ways), and the same octets again.
            #[test]
            fn headers_round_trip(
                length in 0u32..=MAX_MAX_FRAME_SIZE,
                kind in any::<u8>(),
                flags in any::<u8>(),
                stream in any::<u32>(),
            ) {
                let h = FrameHeader { length, kind: FrameType(kind), flags, stream };
                let mut wire = Vec::new();
                h.encode(&mut wire);
                prop_assert_eq!(wire.len(), HEADER_LEN);
                let back = FrameHeader::parse(&wire).unwrap();
                prop_assert_eq!(back, FrameHeader { stream: stream & 0x7fff_ffff, ..h });
                let mut again = Vec::new();
                back.encode(&mut again);
                prop_assert_eq!(again, wire);
            }

            /// Any 9 octets parse, and encode back to themselves but for
            /// the reserved bit; fewer are not a header yet.
            #[test]
            fn any_nine_octets_parse(octets in proptest::array::uniform9(any::<u8>())) {
                let h = FrameHeader::parse(&octets).unwrap();
                let mut wire = Vec::new();
                h.encode(&mut wire);
                let mut expected = octets;
                expected[5] &= 0x7f;
                prop_assert_eq!(wire, expected.to_vec());
                prop_assert_eq!(FrameHeader::parse(&octets[..8]), None);
            }
        }
    }
}
