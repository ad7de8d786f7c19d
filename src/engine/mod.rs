//! HTTP/2 engines: who speaks the protocol. `mini` is sans-IO: it takes
//! plaintext and appends the plaintext to send to a caller-owned buffer.
//! `h2` wraps the `h2` crate, which drives an async byte stream itself.

pub mod body;
pub mod h2;
pub mod mini;
pub mod work;

pub use body::Body;
pub use mini::{EngineError, Hold, MiniConnection, Status};
pub use work::Work;

/// What every request gets: its work, then a response with this body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Handler {
    pub work: Work,
    pub body: Body,
}
