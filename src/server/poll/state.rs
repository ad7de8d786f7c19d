//! The `poll` dispatch's client state machine, made explicit (the seed's
//! client STATE and SELECT-NEXT-ACTION). Each client carries readiness
//! flags; [`select_next_action`], a pure function, picks the next step until
//! none is possible. Numbers are those of the data-flow diagram in DESIGN.md:
//!
//! ```text
//! socket ─①read─▶ [in buf] ─②decrypt─▶ TLS ─③─▶ engine ─▶ ⓤ ─④encrypt─▶ TLS ─⑤move─▶ [out buf] Ⓔ ─⑥write─▶ socket
//! ```

use std::fmt;

use crate::trace::Name;

/// The flags of one client, in a fixed order (see [`Flags::LETTERS`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u16);

impl Flags {
    /// ① The socket may have data (set by a readable event, cleared by `WouldBlock`).
    pub const CAN_READ: Self = Self(1 << 0);
    /// ② The in buffer holds ciphertext not yet given to TLS.
    pub const HAS_INPUT: Self = Self(1 << 1);
    /// ③ TLS may hold decrypted plaintext for the engine.
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
}

impl Flags {
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

/// One step of a client's data flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// ① Read from the socket into the in buffer.
    ReadSocket,
    /// ② Give ciphertext to TLS while the handshake is pending.
    Handshake,
    /// ② Give ciphertext to TLS for decryption.
    Decrypt,
    /// ③ Run the engine on the decrypted plaintext.
    Engine,
    /// ④ Give the engine's answer to TLS.
    Encrypt,
    /// ⑤ Move ciphertext from TLS to the out buffer.
    MoveEncrypted,
    /// ⑥ Write the out buffer to the socket.
    WriteSocket,
    /// Everything due has been sent: close the connection.
    Close,
}

impl Action {
    pub const ALL: [Action; 8] = [
        Action::ReadSocket,
        Action::Handshake,
        Action::Decrypt,
        Action::Engine,
        Action::Encrypt,
        Action::MoveEncrypted,
        Action::WriteSocket,
        Action::Close,
    ];

    /// The name of the action's span in traces.
    pub fn trace_name(self) -> Name {
        match self {
            Action::ReadSocket => Name::ReadSocket,
            Action::Handshake => Name::Handshake,
            Action::Decrypt => Name::Decrypt,
            Action::Engine => Name::Engine,
            Action::Encrypt => Name::Encrypt,
            Action::MoveEncrypted => Name::MoveEncrypted,
            Action::WriteSocket => Name::WriteSocket,
            Action::Close => Name::Close,
        }
    }

    /// The name used in traces.
    pub fn name(self) -> &'static str {
        self.trace_name().as_str()
    }

    /// Whether the action can make progress in a state with `flags`.
    pub fn is_possible(self, f: Flags) -> bool {
        let tls_ready = f.contains(Flags::TLS_READY);
        match self {
            Action::ReadSocket => {
                f.contains(Flags::CAN_READ)
                    && !f.contains(Flags::BACKLOG)
                    && !f.contains(Flags::CLOSING)
            }
            Action::Handshake => f.contains(Flags::HAS_INPUT) && !tls_ready,
            Action::Decrypt => f.contains(Flags::HAS_INPUT) && tls_ready,
            Action::Engine => f.contains(Flags::HAS_DECRYPTED),
            Action::Encrypt => f.contains(Flags::HAS_PLAINTEXT) && tls_ready,
            Action::MoveEncrypted => f.contains(Flags::HAS_CIPHERTEXT),
            Action::WriteSocket => f.contains(Flags::HAS_OUTPUT) && f.contains(Flags::CAN_WRITE),
            Action::Close => {
                let encryptable = f.contains(Flags::HAS_PLAINTEXT) && tls_ready;
                let unsent = f.contains(Flags::HAS_OUTPUT) || f.contains(Flags::HAS_CIPHERTEXT);
                f.contains(Flags::CLOSING) && !unsent && !encryptable
            }
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The next step for a client, or `None` when it must wait for the socket.
///
/// The order drains input first — the engine before more decryption, and
/// decryption before more reading — so that everything a client pipelined
/// is answered before anything is written: many responses, one `write`.
/// Handshake replies are moved out before reading on, since the client
/// waits for them; `Close` comes only once everything due has been sent.
pub fn select_next_action(f: Flags) -> Option<Action> {
    const ORDER: [Action; 8] = [
        Action::Engine,
        Action::Handshake,
        Action::Decrypt,
        Action::ReadSocket,
        Action::Encrypt,
        Action::MoveEncrypted,
        Action::WriteSocket,
        Action::Close,
    ];
    if !f.contains(Flags::TLS_READY) && f.contains(Flags::HAS_CIPHERTEXT) {
        return Some(Action::MoveEncrypted);
    }
    ORDER.into_iter().find(|a| a.is_possible(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_states() -> impl Iterator<Item = Flags> {
        (0..1u16 << Flags::COUNT).map(Flags::from_bits)
    }

    #[test]
    fn every_state_gets_a_possible_action_or_none_only_when_stuck() {
        for f in all_states() {
            match select_next_action(f) {
                Some(a) => assert!(a.is_possible(f), "{f}: chose {a}, not possible"),
                None => {
                    let possible: Vec<Action> = Action::ALL
                        .into_iter()
                        .filter(|a| a.is_possible(f))
                        .collect();
                    assert!(
                        possible.is_empty(),
                        "{f}: none chosen but {possible:?} possible"
                    );
                }
            }
        }
    }

    #[test]
    fn input_is_drained_before_reading_and_reading_before_writing() {
        for f in all_states() {
            let chosen = select_next_action(f);
            if Action::Engine.is_possible(f) && f.contains(Flags::TLS_READY) {
                assert_eq!(chosen, Some(Action::Engine), "{f}");
            }
            if chosen == Some(Action::WriteSocket) {
                assert!(
                    !Action::ReadSocket.is_possible(f),
                    "{f}: writes before reading all"
                );
            }
            if chosen == Some(Action::ReadSocket) {
                assert!(!f.contains(Flags::HAS_INPUT), "{f}: reads over unfed input");
                assert!(!f.contains(Flags::HAS_DECRYPTED), "{f}");
            }
        }
    }

    #[test]
    fn close_waits_for_everything_due() {
        for f in all_states() {
            if select_next_action(f) == Some(Action::Close) {
                assert!(f.contains(Flags::CLOSING));
                assert!(
                    !f.contains(Flags::HAS_OUTPUT) && !f.contains(Flags::HAS_CIPHERTEXT),
                    "{f}"
                );
            }
        }
    }

    #[test]
    fn backlog_and_closing_stop_reading() {
        for f in all_states() {
            if f.contains(Flags::BACKLOG) || f.contains(Flags::CLOSING) {
                assert_ne!(select_next_action(f), Some(Action::ReadSocket), "{f}");
            }
        }
    }

    #[test]
    fn handshake_replies_go_out_before_anything_else() {
        let f = Flags::CAN_READ
            .with(Flags::HAS_INPUT)
            .with(Flags::HAS_CIPHERTEXT);
        assert_eq!(select_next_action(f), Some(Action::MoveEncrypted));
        assert_eq!(
            select_next_action(Flags::CAN_READ.with(Flags::HAS_INPUT)),
            Some(Action::Handshake)
        );
    }

    #[test]
    fn a_typical_request_runs_in_order() {
        let ready = Flags::TLS_READY.with(Flags::CAN_WRITE);
        let steps = [
            (ready.with(Flags::CAN_READ), Action::ReadSocket),
            (
                ready.with(Flags::CAN_READ).with(Flags::HAS_INPUT),
                Action::Decrypt,
            ),
            (
                ready.with(Flags::CAN_READ).with(Flags::HAS_DECRYPTED),
                Action::Engine,
            ),
            (ready.with(Flags::HAS_PLAINTEXT), Action::Encrypt),
            (ready.with(Flags::HAS_CIPHERTEXT), Action::MoveEncrypted),
            (ready.with(Flags::HAS_OUTPUT), Action::WriteSocket),
        ];
        for (f, action) in steps {
            assert_eq!(select_next_action(f), Some(action), "{f}");
        }
        assert_eq!(select_next_action(ready), None, "waits for the socket");
        assert_eq!(
            select_next_action(ready.with(Flags::CLOSING)),
            Some(Action::Close)
        );
    }

    #[test]
    fn flags_print_in_fixed_order() {
        assert_eq!(Flags::empty().to_string(), "----------");
        let f = Flags::CAN_READ.with(Flags::TLS_READY).with(Flags::CLOSING);
        assert_eq!(f.to_string(), "r---t----x");
        assert_eq!(Flags::from_bits(u16::MAX).to_string(), "ridutcowbx");
    }
}
