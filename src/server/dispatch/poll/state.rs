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
        Name::Engine => f.contains(Flags::HAS_DECRYPTED),
        Name::Encrypt => f.contains(Flags::HAS_PLAINTEXT) && tls_ready,
        Name::MoveEncrypted => f.contains(Flags::HAS_CIPHERTEXT),
        Name::WriteSocket => f.contains(Flags::HAS_OUTPUT) && f.contains(Flags::CAN_WRITE),
        Name::Close => {
            let encryptable = f.contains(Flags::HAS_PLAINTEXT) && tls_ready;
            let unsent = f.contains(Flags::HAS_OUTPUT) || f.contains(Flags::HAS_CIPHERTEXT);
            f.contains(Flags::CLOSING) && !unsent && !encryptable
        }
        Name::Accept | Name::Refuse | Name::PollWait => false,
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
}
