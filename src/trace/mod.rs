//! Instrumentation: a `tracing` span for every action a dispatch takes for a
//! client, an event for every HTTP/2 frame in and out, and a layer that
//! turns them into fixed-size [`Record`]s for a writer thread, which writes a
//! Chrome-trace JSON (Perfetto) and a CSV action log.
//!
//! All fields are numbers (names are codes into static tables), so building
//! a record needs no allocation. With the `trace` cargo feature off, the
//! helpers here compile to nothing; with it on but no `--trace`, a span
//! costs the `tracing` callsite check only.

mod layer;
mod writer;

use std::fmt;
use std::path::PathBuf;

use crate::frame::{FrameHeader, FrameType, HEADER_LEN};

pub use layer::{TraceLayer, Tracer};
pub use writer::CSV_HEADER;

/// The target of every h2lab span and event; the layer ignores all others
/// (the `h2` crate's own tracing among them).
pub const TARGET: &str = "h2lab";

/// What a row describes (the CSV's `kind` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Conn,
    Action,
    FrameIn,
    FrameOut,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Conn => "conn",
            Kind::Action => "action",
            Kind::FrameIn => "frame-in",
            Kind::FrameOut => "frame-out",
        }
    }
}

/// Every span name, as a code carried in the `name` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Name {
    Accept,
    Close,
    Refuse,
    ReadSocket,
    Handshake,
    Decrypt,
    Engine,
    Encrypt,
    MoveEncrypted,
    WriteSocket,
}

impl Name {
    const ALL: [Name; 10] = [
        Name::Accept,
        Name::Close,
        Name::Refuse,
        Name::ReadSocket,
        Name::Handshake,
        Name::Decrypt,
        Name::Engine,
        Name::Encrypt,
        Name::MoveEncrypted,
        Name::WriteSocket,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Name::Accept => "accept",
            Name::Close => "close",
            Name::Refuse => "refuse",
            Name::ReadSocket => "read_socket",
            Name::Handshake => "handshake",
            Name::Decrypt => "decrypt",
            Name::Engine => "engine",
            Name::Encrypt => "encrypt",
            Name::MoveEncrypted => "move_encrypted",
            Name::WriteSocket => "write_socket",
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            Name::Accept | Name::Close | Name::Refuse => Kind::Conn,
            _ => Kind::Action,
        }
    }

    fn from_code(code: u64) -> Option<Name> {
        Name::ALL.get(code as usize).copied()
    }
}

/// No `state` for the action (dispatches without explicit flags).
pub const NO_STATE: u64 = u64::MAX;

/// One row of the trace: an action (with its duration) or a frame event.
/// Fixed size and `Copy`: it travels to the writer thread without allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// Nanoseconds since the trace started.
    pub ts_ns: u64,
    /// 0 for an event.
    pub dur_ns: u64,
    pub client: u64,
    pub kind: Kind,
    /// The action, for actions and conn rows.
    pub name: Option<Name>,
    /// The frame, for frame rows.
    pub frame: Option<FrameHeader>,
    /// Octets moved by the action, or the frame's payload length.
    pub bytes: u64,
    /// The poll client's flags before the action ([`NO_STATE`]: none).
    pub state: u64,
}

impl Record {
    /// The CSV `name` column.
    pub fn name_str(&self) -> &'static str {
        match (self.name, self.frame) {
            (Some(n), _) => n.as_str(),
            (None, Some(f)) => f.kind.name(),
            (None, None) => "",
        }
    }
}

/// The frame flags set in `flags`, by their names for frame type `kind`,
/// joined by `|` (the CSV `state` column of frame rows).
pub struct FrameFlags {
    pub kind: FrameType,
    pub flags: u8,
}

impl fmt::Display for FrameFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        self.write_to(&mut out);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

impl FrameFlags {
    /// Appends the names to `out` (the writer's fast path: no `fmt`).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        use crate::frame::flags::*;
        let names: &[(u8, &str)] = match self.kind {
            FrameType::DATA => &[(END_STREAM, "END_STREAM"), (PADDED, "PADDED")],
            FrameType::HEADERS => &[
                (END_STREAM, "END_STREAM"),
                (END_HEADERS, "END_HEADERS"),
                (PADDED, "PADDED"),
                (PRIORITY, "PRIORITY"),
            ],
            FrameType::SETTINGS | FrameType::PING => &[(ACK, "ACK")],
            FrameType::CONTINUATION => &[(END_HEADERS, "END_HEADERS")],
            FrameType::PUSH_PROMISE => &[(END_HEADERS, "END_HEADERS"), (PADDED, "PADDED")],
            _ => &[],
        };
        let mut first = true;
        for (bit, name) in names {
            if self.flags & bit != 0 {
                if !first {
                    out.push(b'|');
                }
                out.extend_from_slice(name.as_bytes());
                first = false;
            }
        }
        let unnamed = names.iter().fold(self.flags, |rest, (bit, _)| rest & !bit);
        if unnamed != 0 {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            if !first {
                out.push(b'|');
            }
            out.extend_from_slice(b"0x");
            out.push(HEX[usize::from(unnamed >> 4)]);
            out.push(HEX[usize::from(unnamed & 15)]);
        }
    }
}

/// An entered action span; record the octets moved with [`ActionSpan::bytes`].
/// Dropping it closes the span (the layer then knows its duration).
#[must_use = "the span measures until it is dropped"]
pub struct ActionSpan {
    #[cfg(feature = "trace")]
    span: tracing::span::EnteredSpan,
}

impl ActionSpan {
    #[inline]
    pub fn bytes(&self, n: usize) {
        #[cfg(feature = "trace")]
        if !self.span.is_disabled() {
            self.span.record("bytes", n as u64);
        }
        #[cfg(not(feature = "trace"))]
        let _ = n;
    }
}

/// Opens the span of one action for `client`; `state` is the poll client's
/// flags ([`NO_STATE`] elsewhere).
#[inline]
pub fn action(client: u64, name: Name, state: u64) -> ActionSpan {
    #[cfg(feature = "trace")]
    {
        let span = tracing::trace_span!(
            target: "h2lab",
            "action",
            client,
            name = name as u64,
            state,
            bytes = tracing::field::Empty
        );
        ActionSpan {
            span: span.entered(),
        }
    }
    #[cfg(not(feature = "trace"))]
    {
        let _ = (client, name, state);
        ActionSpan {}
    }
}

/// Whether frame events are wanted at all: skip scanning when not.
#[inline]
pub fn frames_enabled() -> bool {
    #[cfg(feature = "trace")]
    {
        tracing::enabled!(target: "h2lab", tracing::Level::TRACE)
    }
    #[cfg(not(feature = "trace"))]
    {
        false
    }
}

/// Reports one frame seen going in (`out == false`) or out.
#[inline]
pub fn frame(client: u64, out: bool, head: FrameHeader) {
    #[cfg(feature = "trace")]
    tracing::trace!(
        target: "h2lab",
        client,
        out,
        kind = head.kind.0 as u64,
        flags = head.flags as u64,
        stream = head.stream as u64,
        length = head.length as u64
    );
    #[cfg(not(feature = "trace"))]
    let _ = (client, out, head);
}

/// Finds frame boundaries in one direction of a connection's plaintext, fed
/// in chunks of any size; sees headers only, never buffers a payload.
#[derive(Debug)]
pub struct FrameScanner {
    /// Octets of the client preface still to skip (inbound only).
    preface: usize,
    header: [u8; HEADER_LEN],
    have: usize,
    /// Payload octets of the current frame still to skip.
    skip: u64,
}

impl FrameScanner {
    /// For what the client sends: starts with the 24-octet preface.
    pub fn inbound() -> Self {
        Self {
            preface: crate::frame::CLIENT_PREFACE.len(),
            ..Self::outbound()
        }
    }

    pub fn outbound() -> Self {
        Self {
            preface: 0,
            header: [0; HEADER_LEN],
            have: 0,
            skip: 0,
        }
    }

    /// Calls `on_frame` for every frame header completed by `data`.
    pub fn scan(&mut self, mut data: &[u8], mut on_frame: impl FnMut(FrameHeader)) {
        while !data.is_empty() {
            if self.preface > 0 {
                let n = self.preface.min(data.len());
                self.preface -= n;
                data = &data[n..];
            } else if self.skip > 0 {
                let n = (self.skip.min(data.len() as u64)) as usize;
                self.skip -= n as u64;
                data = &data[n..];
            } else {
                let n = (HEADER_LEN - self.have).min(data.len());
                self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
                self.have += n;
                data = &data[n..];
                if self.have == HEADER_LEN {
                    self.have = 0;
                    if let Some(head) = FrameHeader::parse(&self.header) {
                        self.skip = head.length.into();
                        on_frame(head);
                    }
                }
            }
        }
    }
}

/// Where and how much to trace.
#[derive(Clone, Debug)]
pub struct TraceConfig {
    /// Writes `PREFIX.json` and `PREFIX.csv`.
    pub prefix: PathBuf,
    /// Stop recording after this many records (the rest is counted).
    pub limit: Option<u64>,
    /// Records the queue to the writer thread holds; past it, records are
    /// dropped and counted.
    pub queue: usize,
}

/// The default queue: about 4 MiB of records.
pub const DEFAULT_QUEUE: usize = 64 * 1024;

impl TraceConfig {
    pub fn new(prefix: impl Into<PathBuf>) -> Self {
        Self {
            prefix: prefix.into(),
            limit: None,
            queue: DEFAULT_QUEUE,
        }
    }

    pub fn json_path(&self) -> PathBuf {
        with_suffix(&self.prefix, "json")
    }

    pub fn csv_path(&self) -> PathBuf {
        with_suffix(&self.prefix, "csv")
    }
}

fn with_suffix(prefix: &std::path::Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// What a finished trace holds and what it lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceSummary {
    /// Records written to both files.
    pub written: u64,
    /// Records lost because the writer's queue was full.
    pub dropped: u64,
    /// Records not taken because of the limit.
    pub unrecorded: u64,
}

impl fmt::Display for TraceSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} records written, {} dropped (queue full), {} not recorded (limit)",
            self.written, self.dropped, self.unrecorded
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the trace: {0}")]
    Write(std::io::Error),
    #[error("cannot start the trace writer: {0}")]
    Spawn(std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_finds_frames_across_any_split() {
        let mut stream = crate::frame::CLIENT_PREFACE.to_vec();
        stream.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // SETTINGS
        stream.extend_from_slice(&[0, 0, 3, 1, 5, 0, 0, 0, 1, 0x82, 0x86, 0x84]); // HEADERS
        stream.extend_from_slice(&[0, 0, 2, 0, 1, 0, 0, 0, 1, b'h', b'i']); // DATA
        for chunk in 1..stream.len() {
            let mut scanner = FrameScanner::inbound();
            let mut seen = Vec::new();
            for part in stream.chunks(chunk) {
                scanner.scan(part, |h| seen.push((h.kind, h.flags, h.stream, h.length)));
            }
            assert_eq!(
                seen,
                [
                    (FrameType::SETTINGS, 0, 0, 0),
                    (FrameType::HEADERS, 5, 1, 3),
                    (FrameType::DATA, 1, 1, 2)
                ],
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn frame_flags_print_by_name() {
        let s = |kind, flags| FrameFlags { kind, flags }.to_string();
        assert_eq!(s(FrameType::DATA, 1), "END_STREAM");
        assert_eq!(s(FrameType::HEADERS, 5), "END_STREAM|END_HEADERS");
        assert_eq!(s(FrameType::SETTINGS, 1), "ACK");
        assert_eq!(s(FrameType::SETTINGS, 0), "");
        assert_eq!(s(FrameType::GOAWAY, 0x80), "0x80");
    }

    #[test]
    fn names_round_trip_through_codes() {
        for name in Name::ALL {
            assert_eq!(Name::from_code(name as u64), Some(name));
        }
        assert_eq!(Name::from_code(99), None);
    }

    #[test]
    fn trace_paths_append_the_extension() {
        let c = TraceConfig::new("traces/run1");
        assert_eq!(c.json_path(), PathBuf::from("traces/run1.json"));
        assert_eq!(c.csv_path(), PathBuf::from("traces/run1.csv"));
    }
}
