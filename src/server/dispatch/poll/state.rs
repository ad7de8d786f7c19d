//! The `poll` dispatch's client state machine, made explicit (the seed's
//! client STATE and SELECT-NEXT-ACTION). Each client carries readiness
//! flags; [`select_next_action`], a pure function, picks the next step until
//! none is possible. Numbers are those of the data-flow diagram in docs/DESIGN.md:
//!
//! ```text
//! socket ─①read─▶ [in buf] ─②decrypt─▶ TLS ─③─▶ engine ─▶ ⓤ ─④encrypt─▶ TLS ─⑤move─▶ [out buf] Ⓔ ─⑥write─▶ socket
//! ```

use crate::trace::schema::{Flags, Name};

/// Whether `action` can make progress in a state with `f`; never for names
/// that are no step of a client (accept, refuse).
pub fn is_possible(action: Name, f: Flags) -> bool {
    let tls_ready = f.contains(Flags::TLS_READY);
    match action {
        // Not while the TLS (or plain) session holds output: it is not
        // counted in BACKLOG until moved to the out buffer, and reading on
        // before moving it let a client that never reads grow it without
        // bound (10 GET-pipelining clients: 3 GB in 2 s).
        Name::ReadSocket => {
            f.contains(Flags::CAN_READ)
                && !f.contains(Flags::BACKLOG)
                && !f.contains(Flags::CLOSING)
                && !f.contains(Flags::HAS_CIPHERTEXT)
        }
        Name::Handshake => f.contains(Flags::HAS_INPUT) && !tls_ready,
        Name::Decrypt => f.contains(Flags::HAS_INPUT) && tls_ready,
        // A large response is pulled only while there is room for it, and
        // (as for reading) not while the TLS session holds output, which
        // BACKLOG does not count.
        Name::Engine => {
            f.contains(Flags::HAS_DECRYPTED)
                || (f.contains(Flags::SENDING)
                    && !f.contains(Flags::BACKLOG)
                    && !f.contains(Flags::HAS_CIPHERTEXT))
        }
        Name::Encrypt => f.contains(Flags::HAS_PLAINTEXT) && tls_ready,
        Name::MoveEncrypted => f.contains(Flags::HAS_CIPHERTEXT),
        Name::WriteSocket => f.contains(Flags::HAS_OUTPUT) && f.contains(Flags::CAN_WRITE),
        Name::Close => {
            let encryptable = f.contains(Flags::HAS_PLAINTEXT) && tls_ready;
            let unsent = f.contains(Flags::HAS_OUTPUT)
                || f.contains(Flags::HAS_CIPHERTEXT)
                || f.contains(Flags::SENDING);
            f.contains(Flags::CLOSING) && !unsent && !encryptable
        }
        Name::Accept | Name::Refuse | Name::PollWait | Name::Work => false,
    }
}

/// The next step for a client, or `None` when it must wait for the socket.
///
/// The order drains input first — the engine before more decryption, and
/// decryption before more reading — so that everything a client pipelined
/// is answered before anything is written: many responses, one `write`.
/// Handshake replies are moved out before reading on, since the client
/// waits for them; `Close` comes only once everything due has been sent.
pub fn select_next_action(f: Flags) -> Option<Name> {
    const ORDER: [Name; 8] = [
        Name::Engine,
        Name::Handshake,
        Name::Decrypt,
        Name::ReadSocket,
        Name::Encrypt,
        Name::MoveEncrypted,
        Name::WriteSocket,
        Name::Close,
    ];
    if !f.contains(Flags::TLS_READY) && f.contains(Flags::HAS_CIPHERTEXT) {
        return Some(Name::MoveEncrypted);
    }
    ORDER.into_iter().find(|&a| is_possible(a, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The actions a client's state machine chooses among.
    const ACTIONS: [Name; 8] = [
        Name::ReadSocket,
        Name::Handshake,
        Name::Decrypt,
        Name::Engine,
        Name::Encrypt,
        Name::MoveEncrypted,
        Name::WriteSocket,
        Name::Close,
    ];

    fn all_states() -> impl Iterator<Item = Flags> {
        (0..1u16 << Flags::COUNT).map(Flags::from_bits)
    }

    /// The state with exactly `flags` set.
    fn state(flags: &[Flags]) -> Flags {
        flags.iter().fold(Flags::empty(), |f, &x| f.with(x))
    }

    /// Each action's rule, flag by flag, from docs/DESIGN.md's table: what
    /// makes it possible, and each flag that forbids it on its own.
    #[test]
    fn each_rule_flag_by_flag() {
        use Flags as F;
        let yes = |a: Name, flags: &[Flags]| assert!(is_possible(a, state(flags)), "{a} {flags:?}");
        let no = |a: Name, flags: &[Flags]| assert!(!is_possible(a, state(flags)), "{a} {flags:?}");
        yes(Name::ReadSocket, &[F::CAN_READ]);
        no(Name::ReadSocket, &[]);
        for forbids in [F::BACKLOG, F::CLOSING, F::HAS_CIPHERTEXT] {
            no(Name::ReadSocket, &[F::CAN_READ, forbids]);
        }
        yes(Name::Handshake, &[F::HAS_INPUT]);
        no(Name::Handshake, &[F::HAS_INPUT, F::TLS_READY]);
        yes(Name::Decrypt, &[F::HAS_INPUT, F::TLS_READY]);
        no(Name::Decrypt, &[F::HAS_INPUT]);
        no(Name::Decrypt, &[F::TLS_READY]);
        yes(
            Name::Engine,
            &[F::HAS_DECRYPTED, F::BACKLOG, F::HAS_CIPHERTEXT],
        );
        yes(Name::Engine, &[F::SENDING]);
        no(Name::Engine, &[F::SENDING, F::BACKLOG]);
        no(Name::Engine, &[F::SENDING, F::HAS_CIPHERTEXT]);
        no(Name::Engine, &[F::BACKLOG]);
        yes(Name::Encrypt, &[F::HAS_PLAINTEXT, F::TLS_READY]);
        no(Name::Encrypt, &[F::HAS_PLAINTEXT]);
        yes(Name::MoveEncrypted, &[F::HAS_CIPHERTEXT]);
        no(Name::MoveEncrypted, &[F::HAS_OUTPUT]);
        yes(Name::WriteSocket, &[F::HAS_OUTPUT, F::CAN_WRITE]);
        no(Name::WriteSocket, &[F::HAS_OUTPUT]);
        no(Name::WriteSocket, &[F::CAN_WRITE]);
        yes(Name::Close, &[F::CLOSING]);
        yes(Name::Close, &[F::CLOSING, F::HAS_PLAINTEXT]);
        no(Name::Close, &[]);
        for unsent in [F::HAS_OUTPUT, F::HAS_CIPHERTEXT, F::SENDING] {
            no(Name::Close, &[F::CLOSING, unsent]);
        }
        no(Name::Close, &[F::CLOSING, F::HAS_PLAINTEXT, F::TLS_READY]);
        for f in all_states() {
            for a in [Name::Accept, Name::Refuse, Name::PollWait, Name::Work] {
                assert!(!is_possible(a, f), "{a} is no step of a client");
            }
        }
    }

    /// Before the handshake is over, its replies leave first: the session's
    /// ciphertext is moved out before anything else, even new input.
    #[test]
    fn handshake_replies_leave_first() {
        use Flags as F;
        let waiting = state(&[F::HAS_CIPHERTEXT, F::HAS_INPUT, F::CAN_READ]);
        assert_eq!(select_next_action(waiting), Some(Name::MoveEncrypted));
        let ready = waiting.with(F::TLS_READY);
        assert_eq!(select_next_action(ready), Some(Name::Decrypt));
        assert_eq!(select_next_action(state(&[])), None);
    }

    #[test]
    fn every_state_gets_a_possible_action_or_none_only_when_stuck() {
        for f in all_states() {
            match select_next_action(f) {
                Some(a) => assert!(is_possible(a, f), "{f}: chose {a}, not possible"),
                None => {
                    let possible: Vec<Name> =
                        ACTIONS.into_iter().filter(|&a| is_possible(a, f)).collect();
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
            if is_possible(Name::Engine, f) && f.contains(Flags::TLS_READY) {
                assert_eq!(chosen, Some(Name::Engine), "{f}");
            }
            if chosen == Some(Name::WriteSocket) {
                assert!(
                    !is_possible(Name::ReadSocket, f),
                    "{f}: writes before reading all"
                );
            }
            if chosen == Some(Name::ReadSocket) {
                assert!(!f.contains(Flags::HAS_INPUT), "{f}: reads over unfed input");
                assert!(!f.contains(Flags::HAS_DECRYPTED), "{f}");
            }
        }
    }

    #[test]
    fn close_waits_for_everything_due() {
        for f in all_states() {
            if select_next_action(f) == Some(Name::Close) {
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
            let held = Flags::BACKLOG.bits() | Flags::CLOSING.bits() | Flags::HAS_CIPHERTEXT.bits();
            if f.bits() & held != 0 {
                assert_ne!(select_next_action(f), Some(Name::ReadSocket), "{f}");
            }
        }
    }

    #[test]
    fn handshake_replies_go_out_before_anything_else() {
        let f = Flags::CAN_READ
            .with(Flags::HAS_INPUT)
            .with(Flags::HAS_CIPHERTEXT);
        assert_eq!(select_next_action(f), Some(Name::MoveEncrypted));
        assert_eq!(
            select_next_action(Flags::CAN_READ.with(Flags::HAS_INPUT)),
            Some(Name::Handshake)
        );
    }

    #[test]
    fn a_typical_request_runs_in_order() {
        let ready = Flags::TLS_READY.with(Flags::CAN_WRITE);
        let steps = [
            (ready.with(Flags::CAN_READ), Name::ReadSocket),
            (
                ready.with(Flags::CAN_READ).with(Flags::HAS_INPUT),
                Name::Decrypt,
            ),
            (
                ready.with(Flags::CAN_READ).with(Flags::HAS_DECRYPTED),
                Name::Engine,
            ),
            (ready.with(Flags::HAS_PLAINTEXT), Name::Encrypt),
            (ready.with(Flags::HAS_CIPHERTEXT), Name::MoveEncrypted),
            (ready.with(Flags::HAS_OUTPUT), Name::WriteSocket),
        ];
        for (f, action) in steps {
            assert_eq!(select_next_action(f), Some(action), "{f}");
        }
        assert_eq!(select_next_action(ready), None, "waits for the socket");
        assert_eq!(
            select_next_action(ready.with(Flags::CLOSING)),
            Some(Name::Close)
        );
    }

    /// Sequences: a model client (octets in each buffer of the data flow,
    /// a socket with a send room, a handshake of a few steps) driven by
    /// `select_next_action` through turns, between which the peer sends,
    /// reads or closes, in any order. From every state it reaches: each
    /// chosen action is possible and changes something (the loop never
    /// spins), a turn ends within a bound set by what it had to do, what is held
    /// stays under the high-water mark plus one read's worth, `Close` comes
    /// only with nothing due, and a peer that reads gets everything.
    mod sequences {
        use proptest::prelude::*;

        use super::*;

        const READ: u32 = 16;
        const HIGH_WATER: u32 = 64;
        /// A request's response is larger than the request.
        const GROWTH: u32 = 3;

        #[derive(Clone, Copy, Debug, Default, PartialEq)]
        struct Model {
            socket_in: u32,
            eof: bool,
            input: u32,
            decrypted: u32,
            plaintext: u32,
            ciphertext: u32,
            output: u32,
            room: u32,
            handshake_left: u32,
            can_read: bool,
            can_write: bool,
            closing: bool,
            closed: bool,
        }

        impl Model {
            fn flags(&self) -> Flags {
                let mut f = Flags::empty();
                let mut set = |flag: Flags, on: bool| {
                    if on {
                        f = f.with(flag);
                    }
                };
                set(Flags::CAN_READ, self.can_read);
                set(Flags::HAS_INPUT, self.input > 0);
                set(Flags::HAS_DECRYPTED, self.decrypted > 0);
                set(Flags::HAS_PLAINTEXT, self.plaintext > 0);
                set(Flags::TLS_READY, self.handshake_left == 0);
                set(Flags::HAS_CIPHERTEXT, self.ciphertext > 0);
                set(Flags::HAS_OUTPUT, self.output > 0);
                set(Flags::CAN_WRITE, self.can_write);
                set(Flags::BACKLOG, self.output + self.plaintext > HIGH_WATER);
                set(Flags::CLOSING, self.closing);
                f
            }

            fn held(&self) -> u32 {
                self.input + self.decrypted + self.plaintext + self.ciphertext + self.output
            }

            fn perform(&mut self, action: Name) {
                match action {
                    Name::ReadSocket if self.socket_in > 0 => {
                        let n = self.socket_in.min(READ);
                        self.socket_in -= n;
                        self.input += n;
                    }
                    Name::ReadSocket if self.eof => {
                        self.closing = true;
                        self.can_read = false;
                    }
                    Name::ReadSocket => self.can_read = false,
                    Name::Handshake => {
                        self.input = 0;
                        self.handshake_left -= 1;
                        self.ciphertext += 5;
                    }
                    Name::Decrypt => {
                        self.decrypted += self.input;
                        self.input = 0;
                    }
                    Name::Engine => {
                        self.plaintext += GROWTH * self.decrypted;
                        self.decrypted = 0;
                    }
                    Name::Encrypt => {
                        self.ciphertext += self.plaintext;
                        self.plaintext = 0;
                    }
                    Name::MoveEncrypted => {
                        self.output += self.ciphertext;
                        self.ciphertext = 0;
                    }
                    Name::WriteSocket => {
                        let n = self.output.min(self.room);
                        if n == 0 {
                            self.can_write = false;
                        }
                        self.output -= n;
                        self.room -= n;
                    }
                    Name::Close => self.closed = true,
                    other => panic!("{other} is no step of a client"),
                }
            }

            /// One turn; the actions it took. It ends within a bound set by
            /// what there is to do: each read brings at most `READ` octets
            /// and starts at most 8 steps, and so does each handshake step.
            fn turn(&mut self) -> Result<usize, TestCaseError> {
                let bound = 8 * (self.socket_in / READ + self.handshake_left + 3) as usize;
                for taken in 0..bound {
                    let f = self.flags();
                    let Some(action) = select_next_action(f) else {
                        return Ok(taken);
                    };
                    prop_assert!(is_possible(action, f), "{f}: {action}");
                    if action == Name::Close {
                        prop_assert_eq!(self.output + self.ciphertext, 0, "{}", f);
                    }
                    let before = *self;
                    self.perform(action);
                    prop_assert_ne!(before, *self, "{} changed nothing from {}", action, f);
                    prop_assert!(
                        self.held() <= HIGH_WATER + (GROWTH + 2) * READ + 5,
                        "{} octets held after {} from {}",
                        self.held(),
                        action,
                        f
                    );
                    if self.closed {
                        return Ok(taken + 1);
                    }
                }
                Err(TestCaseError::fail(format!(
                    "a turn of {bound} actions: {self:?}"
                )))
            }
        }

        #[derive(Clone, Copy, Debug)]
        enum Event {
            Sends(u32),
            Reads(u32),
            Closes,
        }

        fn event() -> impl Strategy<Value = Event> {
            prop_oneof![
                4 => (1u32..100).prop_map(Event::Sends),
                4 => (1u32..200).prop_map(Event::Reads),
                1 => Just(Event::Closes),
            ]
        }

        proptest! {
            #[test]
            fn no_reachable_state_spins_or_overfills(
                handshake in 0u32..4,
                events in proptest::collection::vec(event(), 0..60),
            ) {
                let mut m = Model {
                    handshake_left: handshake,
                    can_write: true,
                    room: 100,
                    ..Model::default()
                };
                for e in events {
                    match e {
                        Event::Sends(n) if !m.eof => {
                            m.socket_in += n;
                            m.can_read = true;
                        }
                        Event::Sends(_) => {}
                        Event::Reads(n) => {
                            m.room += n;
                            m.can_write = true;
                        }
                        Event::Closes => {
                            m.eof = true;
                            m.can_read = true;
                        }
                    }
                    m.turn()?;
                    if m.closed {
                        return Ok(());
                    }
                }
                // The peer stops sending and reads everything: all that
                // was due goes out, and all it sent is read.
                for _ in 0..1000 {
                    m.room += 1000;
                    m.can_write = true;
                    if m.socket_in > 0 || m.eof {
                        m.can_read = true;
                    }
                    if m.turn()? == 0 || m.closed {
                        break;
                    }
                }
                prop_assert_eq!(m.plaintext, 0, "{:?}", m);
                prop_assert_eq!(m.output + m.ciphertext, 0, "{:?}", m);
                prop_assert!(m.socket_in == 0 || m.closed, "{:?}", m);
            }
        }
    }
}
