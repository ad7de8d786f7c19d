//! HTTP/2 engines: who speaks the protocol. `mini` is sans-IO: it takes
//! plaintext and appends the plaintext to send to a caller-owned buffer.
//! `h2` wraps the `h2` crate, which drives an async byte stream itself.

pub mod body;
pub mod date;
pub mod file;
pub mod h2;
pub mod mini;
pub mod route;
pub mod work;

pub use body::Body;
pub use mini::{EngineError, MiniConnection, Status};
pub use work::Work;

/// How requests are read and answered: `/` gets its work, then a
/// response with this body (the other routes: [`route`]); at most
/// `max_streams` at once per connection; `blind`, nothing is read and
/// every request gets the answer to `/` (the mini engine only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handler {
    pub work: Work,
    pub body: Body,
    pub max_streams: u32,
    pub blind: bool,
    /// `--body-file`: `/` is answered with this file, read per request
    /// (instead of `body`).
    pub file: Option<file::BodyFile>,
}

impl Default for Handler {
    fn default() -> Self {
        Self {
            work: Work::None,
            body: Body::default(),
            max_streams: mini::DEFAULT_MAX_STREAMS,
            blind: false,
            file: None,
        }
    }
}
