//! The trace's vocabulary, in one place: action names, record kinds, the
//! client flags of the `poll` state machine and their letters, the record
//! every span and event becomes, and the CSV columns (DESIGN.md
//! "Instrumentation"). Dispatches, the writer and `compare` all take their
//! names from here.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::frame::{FrameHeader, FrameType};

/// What a row describes (the CSV's `kind` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", try_from = "String")]
#[repr(u8)]
pub enum Kind {
    Conn = 0,
    Action = 1,
    FrameIn = 2,
    FrameOut = 3,
    /// The dispatch's own work, not a client's (the poll loop's wait):
    /// client 0, its own track.
    Loop = 4,
}

impl TryFrom<String> for Kind {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        [
            Kind::Conn,
            Kind::Action,
            Kind::FrameIn,
            Kind::FrameOut,
            Kind::Loop,
        ]
        .into_iter()
        .find(|k| k.name() == s)
        .ok_or_else(|| format!("unknown kind {s:?}"))
    }
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Conn => "conn",
            Kind::Action => "action",
            Kind::FrameIn => "frame-in",
            Kind::FrameOut => "frame-out",
            Kind::Loop => "loop",
        }
    }
}

/// Every action and connection event, by the name traces give it. The
/// `poll` state machine chooses among these too: there is one list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Name {
    /// A connection was accepted (TCP options, TLS session made).
    Accept,
    /// Everything due has been sent: the connection is closed.
    Close,
    /// Accepted and closed at once (`--max-clients`).
    Refuse,
    /// ① Read from the socket.
    ReadSocket,
    /// ② Ciphertext given to TLS while the handshake is pending.
    Handshake,
    /// ② Ciphertext given to TLS and the plaintext it yields taken out.
    Decrypt,
    /// ③ The engine runs on decrypted plaintext.
    Engine,
    /// ④ The engine's answer given to TLS.
    Encrypt,
    /// ⑤ Ciphertext moved from TLS to the out buffer.
    MoveEncrypted,
    /// ⑥ The out buffer written to the socket.
    WriteSocket,
    /// The poll loop waits for events (its own track, client 0).
    PollWait,
}

impl Name {
    pub const ALL: [Name; 11] = [
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
        Name::PollWait,
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
            Name::PollWait => "poll_wait",
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            Name::Accept | Name::Close | Name::Refuse => Kind::Conn,
            Name::PollWait => Kind::Loop,
            _ => Kind::Action,
        }
    }

    /// The name whose code (`name as u64`) is `code`.
    pub fn from_code(code: u64) -> Option<Name> {
        Name::ALL.get(code as usize).copied()
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The flags of one `poll` client, in a fixed order (see [`Flags::LETTERS`]):
/// the CSV `state` column of its actions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u16);

impl Flags {
    /// ① The socket may have data (set by a readable event, cleared by `WouldBlock`).
    pub const CAN_READ: Self = Self(1 << 0);
    /// ② The in buffer holds ciphertext not yet given to TLS.
    pub const HAS_INPUT: Self = Self(1 << 1);
    /// ③ Decrypted plaintext waits for the engine.
    pub const HAS_DECRYPTED: Self = Self(1 << 2);
    /// ⓤ The engine's answer waits to be encrypted.
    pub const HAS_PLAINTEXT: Self = Self(1 << 3);
    /// ④ TLS can take plaintext: the handshake is over (always, without TLS).
    pub const TLS_READY: Self = Self(1 << 4);
    /// ⑤ TLS has ciphertext to send.
    pub const HAS_CIPHERTEXT: Self = Self(1 << 5);
    /// Ⓔ The out buffer holds bytes for the socket.
    pub const HAS_OUTPUT: Self = Self(1 << 6);
    /// ⑥ The socket may take bytes (set by a writable event, cleared by `WouldBlock`).
    pub const CAN_WRITE: Self = Self(1 << 7);
    /// Too much waits to be sent: stop reading until it is written.
    pub const BACKLOG: Self = Self(1 << 8);
    /// Nothing more will be read (EOF, GOAWAY, error): flush, then close.
    pub const CLOSING: Self = Self(1 << 9);

    pub const COUNT: usize = 10;
    /// One character per flag, in bit order, for traces and debugging;
    /// a clear flag shows as `-`.
    pub const LETTERS: [char; Self::COUNT] = ['r', 'i', 'd', 'u', 't', 'c', 'o', 'w', 'b', 'x'];

    pub const fn empty() -> Self {
        Self(0)
    }

    pub const fn bits(self) -> u16 {
        self.0
    }

    pub const fn from_bits(bits: u16) -> Self {
        Self(bits & ((1 << Self::COUNT) - 1))
    }

    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn set(&mut self, flag: Self, on: bool) {
        if on {
            self.0 |= flag.0;
        } else {
            self.0 &= !flag.0;
        }
    }

    pub const fn with(self, flag: Self) -> Self {
        Self(self.0 | flag.0)
    }

    /// The flags as ASCII, one letter per flag in fixed order, `-` when clear.
    pub fn letters(self) -> [u8; Self::COUNT] {
        let mut out = [b'-'; Self::COUNT];
        for (i, letter) in Self::LETTERS.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                out[i] = *letter as u8;
            }
        }
        out
    }
}

impl fmt::Display for Flags {
    /// E.g. `ri--t--w--`: can read, has input, TLS ready, can write.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let letters = self.letters();
        f.write_str(std::str::from_utf8(&letters).expect("ASCII"))
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flags({self})")
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
    /// Which of the trace's threads recorded it (an index into the
    /// metadata's thread names).
    pub thread: u16,
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

/// The CSV header: the columns of DESIGN.md, in order.
pub const CSV_HEADER: &str = "ts_ns,dur_ns,client,kind,name,stream,bytes,state";

/// One row of the CSV action log as a reader sees it (the writer formats
/// [`Record`]s by hand for speed; its tests read them back through this).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvRow {
    pub ts_ns: u64,
    pub dur_ns: u64,
    pub client: u64,
    pub kind: Kind,
    /// An action name or a frame type.
    pub name: String,
    /// Frames only.
    pub stream: Option<u32>,
    pub bytes: u64,
    /// Actions: the client's flags (`poll` only); frames: the frame flags
    /// by name, `|`-joined.
    pub state: String,
}

impl CsvRow {
    /// A frame the server sent that ended a stream: one response.
    pub fn is_response(&self) -> bool {
        self.kind == Kind::FrameOut
            && (self.name == "DATA" || self.name == "HEADERS")
            && self.state.split('|').any(|f| f == "END_STREAM")
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn flags_print_in_fixed_order() {
        assert_eq!(Flags::empty().to_string(), "----------");
        let f = Flags::CAN_READ.with(Flags::TLS_READY).with(Flags::CLOSING);
        assert_eq!(f.to_string(), "r---t----x");
        assert_eq!(Flags::from_bits(u16::MAX).to_string(), "ridutcowbx");
    }

    #[test]
    fn kinds_serialize_as_the_csv_names() {
        for kind in [
            Kind::Conn,
            Kind::Action,
            Kind::FrameIn,
            Kind::FrameOut,
            Kind::Loop,
        ] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
            assert_eq!(serde_json::from_str::<Kind>(&json).unwrap(), kind);
        }
        let err = serde_json::from_str::<Kind>("\"oops\"").unwrap_err();
        assert!(err.to_string().contains("unknown kind \"oops\""), "{err}");
    }
}
