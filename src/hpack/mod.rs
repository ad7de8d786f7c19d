//! HPACK, header compression for HTTP/2 (RFC 7541), sans-IO: the Huffman
//! code, the static and dynamic tables, a decoder that hands each field
//! of a block to a callback without keeping it, and the encoding both our
//! ends use (the server's responses, the load client's requests).
//! Imports nothing of the crate.

pub mod decode;
pub mod encode;
pub mod huffman;
pub mod table;

#[cfg(test)]
mod props;

pub use decode::{DecodeError, Decoder};
pub use encode::Encoder;

/// SETTINGS_HEADER_TABLE_SIZE's initial value (RFC 9113 §6.5.2).
pub const DEFAULT_TABLE_SIZE: usize = 4096;
