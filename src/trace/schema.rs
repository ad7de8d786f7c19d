//! The trace's vocabulary, in one place: action names, record kinds, the
//! client flags of the `poll` state machine and their letters, the record
//! every action and frame event becomes, and the CSV columns
//! (docs/DESIGN.md, "The trace: vocabulary and rules"). Dispatches, the
//! writer and `compare` all take their names from here.

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
    /// A request's work (`serve --work`), inside the `engine` slice that
    /// answers it.
    Work,
}

impl Name {
    pub const ALL: [Name; 12] = [
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
        Name::Work,
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
            Name::Work => "work",
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
    /// The engine has response frames it may send now (within the client's
    /// windows), waiting for room in the buffers: a large body.
    pub const SENDING: Self = Self(1 << 10);

    pub const COUNT: usize = 11;
    /// One character per flag, in bit order, for traces and debugging;
    /// a clear flag shows as `-`.
    pub const LETTERS: [char; Self::COUNT] =
        ['r', 'i', 'd', 'u', 't', 'c', 'o', 'w', 'b', 'x', 's'];

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

/// A [`Record`] as the recorder keeps it: 32 octets, half of a cache line,
/// so that recording writes half as much as a `Record` and the same memory
/// holds twice as many. Narrower fields saturate: client and bytes at
/// `u32::MAX`, a state at `u32::MAX - 1`, a duration at 2^48 ns (78 hours).
/// It is also the spool's format ([`Packed::to_bytes`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct Packed {
    ts_ns: u64,
    /// The duration in ns (low 48 bits) and the thread's index (high 16).
    dur_thread: u64,
    client: u32,
    bytes: u32,
    /// An action's state (`u32::MAX`: none), or a frame's stream id.
    aux: u32,
    /// An action's name code, or [`Packed::FRAME_IN`]/[`Packed::FRAME_OUT`].
    tag: u8,
    frame_type: u8,
    frame_flags: u8,
    _pad: u8,
}

const DUR_BITS: u32 = 48;
const DUR_MAX: u64 = (1 << DUR_BITS) - 1;
const NO_STATE32: u32 = u32::MAX;

/// `n` as a `u32`, saturating.
fn sat32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Packed {
    const FRAME_IN: u8 = 0xfe;
    const FRAME_OUT: u8 = 0xff;
    /// Octets of [`Packed::to_bytes`].
    pub const SIZE: usize = 32;

    /// An action that started at `ts_ns` (its duration set on close).
    #[inline]
    pub fn action(ts_ns: u64, client: u64, name: Name, bytes: u64, state: u64) -> Self {
        let mut p = Self {
            ts_ns,
            client: sat32(client),
            bytes: sat32(bytes),
            tag: name as u8,
            ..Self::default()
        };
        p.set_state(state);
        p
    }

    /// A frame seen in (`out == false`) or out at `ts_ns`.
    #[inline]
    pub fn frame(ts_ns: u64, client: u64, out: bool, head: FrameHeader) -> Self {
        Self {
            ts_ns,
            dur_thread: 0,
            client: sat32(client),
            bytes: head.length,
            aux: head.stream,
            tag: if out { Self::FRAME_OUT } else { Self::FRAME_IN },
            frame_type: head.kind.0,
            frame_flags: head.flags,
            _pad: 0,
        }
    }

    pub fn ts_ns(&self) -> u64 {
        self.ts_ns
    }

    #[inline]
    pub fn set_bytes(&mut self, bytes: u64) {
        self.bytes = sat32(bytes);
    }

    #[inline]
    pub fn set_state(&mut self, state: u64) {
        self.aux = match state {
            NO_STATE => NO_STATE32,
            s => sat32(s).min(NO_STATE32 - 1),
        };
    }

    #[inline]
    pub fn set_dur(&mut self, dur_ns: u64) {
        self.dur_thread = self.dur_thread & !DUR_MAX | dur_ns.min(DUR_MAX);
    }

    pub fn dur_ns(&self) -> u64 {
        self.dur_thread & DUR_MAX
    }

    #[inline]
    pub fn set_thread(&mut self, thread: u16) {
        self.dur_thread = self.dur_thread & DUR_MAX | u64::from(thread) << DUR_BITS;
    }

    /// Packs a record (fields saturate, see above).
    pub fn pack(r: &Record) -> Self {
        let mut p = match (r.name, r.frame) {
            (Some(name), _) => Self::action(r.ts_ns, r.client, name, r.bytes, r.state),
            (None, Some(head)) => Self::frame(r.ts_ns, r.client, r.kind == Kind::FrameOut, head),
            (None, None) => Self::action(r.ts_ns, r.client, Name::Engine, r.bytes, r.state),
        };
        p.set_dur(r.dur_ns);
        p.set_thread(r.thread);
        p
    }

    pub fn unpack(&self) -> Record {
        let thread = (self.dur_thread >> DUR_BITS) as u16;
        let (kind, name, frame, state) = match self.tag {
            Self::FRAME_IN | Self::FRAME_OUT => {
                let head = FrameHeader {
                    length: self.bytes,
                    kind: FrameType(self.frame_type),
                    flags: self.frame_flags,
                    stream: self.aux,
                };
                let kind = match self.tag {
                    Self::FRAME_OUT => Kind::FrameOut,
                    _ => Kind::FrameIn,
                };
                (kind, None, Some(head), NO_STATE)
            }
            code => {
                let name = Name::from_code(code.into()).unwrap_or(Name::Engine);
                let state = match self.aux {
                    NO_STATE32 => NO_STATE,
                    s => s.into(),
                };
                (name.kind(), Some(name), None, state)
            }
        };
        Record {
            ts_ns: self.ts_ns,
            dur_ns: self.dur_ns(),
            client: self.client.into(),
            kind,
            name,
            frame,
            bytes: self.bytes.into(),
            state,
            thread,
        }
    }

    /// The spool's form: the fields in order, little-endian. On a
    /// little-endian machine it is the record's own memory, and a batch is
    /// copied as it lies ([`Packed::as_spool_bytes`]).
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..8].copy_from_slice(&self.ts_ns.to_le_bytes());
        b[8..16].copy_from_slice(&self.dur_thread.to_le_bytes());
        b[16..20].copy_from_slice(&self.client.to_le_bytes());
        b[20..24].copy_from_slice(&self.bytes.to_le_bytes());
        b[24..28].copy_from_slice(&self.aux.to_le_bytes());
        b[28] = self.tag;
        b[29] = self.frame_type;
        b[30] = self.frame_flags;
        b
    }

    /// Records in the spool's form, in one piece where the machine's byte
    /// order is the spool's (no copy), else record by record.
    pub fn as_spool_bytes(records: &[Packed]) -> std::borrow::Cow<'_, [u8]> {
        if cfg!(target_endian = "little") {
            std::borrow::Cow::Borrowed(bytemuck::cast_slice(records))
        } else {
            std::borrow::Cow::Owned(records.iter().flat_map(|r| r.to_bytes()).collect())
        }
    }

    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8"));
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4"));
        Self {
            ts_ns: u64_at(0),
            dur_thread: u64_at(8),
            client: u32_at(16),
            bytes: u32_at(20),
            aux: u32_at(24),
            tag: b[28],
            frame_type: b[29],
            frame_flags: b[30],
            _pad: 0,
        }
    }
}

const _: () = assert!(std::mem::size_of::<Packed>() == Packed::SIZE);

/// The CSV header: the columns of docs/DESIGN.md, in order.
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
    fn packed_records_keep_what_fits_and_saturate_the_rest() {
        let mut p = Packed::action(5, 7, Name::WriteSocket, 1 << 40, 0b101);
        p.set_dur(1234);
        p.set_thread(700);
        let r = p.unpack();
        assert_eq!(
            (r.ts_ns, r.dur_ns, r.client, r.kind, r.name, r.bytes, r.state, r.thread),
            (
                5,
                1234,
                7,
                Kind::Action,
                Some(Name::WriteSocket),
                u64::from(u32::MAX),
                0b101,
                700
            )
        );
        // A long wait, a huge client id, and a state past 32 bits.
        let mut p = Packed::action(0, u64::MAX, Name::PollWait, 0, u64::MAX - 1);
        p.set_dur(u64::MAX);
        p.set_thread(u16::MAX);
        let r = p.unpack();
        assert_eq!(
            (r.kind, r.dur_ns, r.thread),
            (Kind::Loop, (1 << 48) - 1, u16::MAX)
        );
        assert_eq!(
            (r.client, r.state),
            (u64::from(u32::MAX), u64::from(u32::MAX) - 1)
        );
        let no_state = Packed::action(0, 1, Name::Accept, 0, NO_STATE).unpack();
        assert_eq!((no_state.kind, no_state.state), (Kind::Conn, NO_STATE));
        let head = FrameHeader {
            length: 0xff_ffff,
            kind: FrameType::HEADERS,
            flags: 5,
            stream: 0x7fff_ffff,
        };
        let f = Packed::frame(9, 3, false, head).unpack();
        assert_eq!(
            (f.kind, f.frame, f.bytes, f.state),
            (Kind::FrameIn, Some(head), 0xff_ffff, NO_STATE)
        );
        assert_eq!(Packed::from_bytes(&p.to_bytes()), p);
        // A batch as the spool takes it is its records' spool forms in a row.
        let batch = [p, Packed::pack(&f), Packed::action(1, 2, Name::Work, 3, 4)];
        let joined: Vec<u8> = batch.iter().flat_map(|r| r.to_bytes()).collect();
        assert_eq!(&*Packed::as_spool_bytes(&batch), &joined[..]);
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
    fn flags_print_in_fixed_order() {
        assert_eq!(Flags::empty().to_string(), "-----------");
        let f = Flags::CAN_READ.with(Flags::TLS_READY).with(Flags::CLOSING);
        assert_eq!(f.to_string(), "r---t----x-");
        assert_eq!(Flags::from_bits(u16::MAX).to_string(), "ridutcowbxs");
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
