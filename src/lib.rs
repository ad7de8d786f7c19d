//! h2lab: a laboratory for HTTP/2 server architectures. One tiny service
//! ("Hello World\n" for every request) on interchangeable server designs
//! (dispatch × engine × TLS), each driving the same sans-IO engine and TLS
//! sessions.
//!
//! The core: [`frame`], [`engine`], [`tls`], [`server`] and [`trace`], on
//! the ground modules [`buffers`], [`identity`], [`wall_clock`] and
//! [`csv_file`]. The tools around it, each a subcommand: [`serve`],
//! [`certs`], [`compare`], [`load`], [`bench`] (with `report`); [`cli`] is
//! their shared plumbing and [`app`] dispatches to them. The layers, and
//! which module may import which: docs/DESIGN.md.
// `deny`, not `forbid`: four calls have no safe binding, glibc's
// `mallopt` and `malloc_trim` (`server::trim`), OpenSSL's `SSL_CTX_ctrl`
// for the record size (`tls::openssl_session`), and mapping the trace's
// spool file (`trace::writer::spool`, a shared mapping the kernel keeps
// when the server dies); and io_uring (`server::dispatch::poll::uring`)
// hands the kernel memory it uses until a completion: a submission, an
// accepted descriptor, the provided buffer ring (its entries and buffers,
// their allocation, the tail shared with the kernel, and a buffer read
// once a completion hands it back). They are the only
// `unsafe` in the crate, each in a function of its own with the
// invariant it relies on.
#![deny(unsafe_code)]
#![forbid(unused_must_use)]

pub mod analyze;
pub mod app;
pub mod bench;
pub mod buffers;
pub mod certs;
pub mod cli;
pub mod compare;
pub mod csv_file;
pub mod engine;
pub mod export;
pub mod frame;
pub mod hosts;
pub mod hpack;
pub mod identity;
pub mod load;
pub mod netns;
pub mod serve;
pub mod server;
pub mod tls;
pub mod trace;
pub mod wall_clock;

pub use server::{
    start, with_server, Dispatch, Engine, Server, ServerConfig, ServerError, Setup, Spread,
};
pub use tls::{ClientHello, ClientHelloHook, TlsProvider};
