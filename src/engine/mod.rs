//! HTTP/2 engines: who speaks the protocol. `mini` is sans-IO: it takes
//! plaintext and appends the plaintext to send to a caller-owned buffer.
//! `h2` wraps the `h2` crate, which drives an async byte stream itself.

pub mod h2;
pub mod mini;
pub mod work;

pub use mini::{EngineError, MiniConnection, Status, RESPONSE_BODY};
pub use work::Work;
