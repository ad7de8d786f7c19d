//! HTTP/2 engines: who speaks the protocol. Sans-IO: they take plaintext and
//! append the plaintext to send to a caller-owned buffer.

pub mod mini;

pub use mini::{EngineError, MiniConnection, Status, RESPONSE_BODY};
