//! HPACK decoding, ns per header block: h2lab's decoder against the
//! maintained crates, on the blocks our servers see (docs/bench.md has the
//! figures and the command: `cargo bench --bench hpack`).
//!
//! The blocks: the built-in load client's (static entries and one
//! literal, 8 octets), h2load's second request on a connection (its
//! fields indexed in the dynamic table after the first), and a browser's
//! request of about 600 octets (`load --browser-headers`), first on its
//! connection (Huffman literals with indexing) and then again (indexed).
//! Each decoder decodes the same block over and over on one connection's
//! state, handing each field to a callback that counts octets; `h2lab +
//! checks` also checks the request (RFC 9113 §8.2–8.3) as `mini` does.
//! The `h2` crate's decoder is private: it is reached through its frame
//! codec (`unstable`), which also parses the frame and builds an
//! `http::HeaderMap` per block, what the crate does per request; its
//! floor (the 3-octet block of three static entries) is measured beside.

use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};

use criterion::{criterion_group, criterion_main, Criterion};
use h2lab::hpack::{Decoder, Encoder};

type Fields = Vec<(&'static [u8], &'static [u8])>;

fn request(path: &'static [u8], authority: &'static [u8]) -> Fields {
    vec![
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":path", path),
        (b":authority", authority),
    ]
}

/// A block's name, its octets, and the blocks that came before it on its
/// connection.
type Case = (&'static str, Vec<u8>, Vec<Vec<u8>>);

/// The blocks, each as sent on a connection after the ones before it.
fn blocks() -> Vec<Case> {
    // The built-in client: static entries, the authority a raw literal.
    let builtin = vec![0x82, 0x86, 0x84, 0x01, 14]
        .into_iter()
        .chain(*b"127.0.0.1:8080")
        .collect();
    // h2load (nghttp2's deflater): everything indexed with Huffman.
    let mut h2load_fields = request(b"/", b"127.0.0.1:8080");
    h2load_fields.extend([
        (&b"accept"[..], &b"*/*"[..]),
        (b"accept-encoding", b"gzip, deflate"),
        (b"user-agent", b"h2load nghttp2/1.64.0"),
    ]);
    let mut enc = Encoder::new(4096, true);
    let mut first = Vec::new();
    enc.encode(h2load_fields.iter().copied(), &mut first);
    let mut again = Vec::new();
    enc.encode(h2load_fields.iter().copied(), &mut again);
    // A browser's subresource request with a cookie.
    let mut browser = request(b"/static/app.js", b"www.example.com");
    for (n, v) in h2lab::load::request::BROWSER_HEADERS {
        browser.push((n.as_bytes(), v.as_bytes()));
    }
    let mut enc = Encoder::new(4096, true);
    let mut browser_first = Vec::new();
    enc.encode(browser.iter().copied(), &mut browser_first);
    let mut browser_again = Vec::new();
    enc.encode(browser.iter().copied(), &mut browser_again);
    vec![
        ("three static entries", vec![0x82, 0x86, 0x84], vec![]),
        ("builtin client", builtin, vec![]),
        ("h2load", again, vec![first.clone()]),
        ("browser first", browser_first.clone(), vec![]),
        ("browser again", browser_again, vec![browser_first]),
    ]
}

/// An endless reader of one HEADERS frame for the `h2` codec.
struct Frames {
    frame: Vec<u8>,
    at: usize,
}

impl tokio::io::AsyncRead for Frames {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = buf.remaining().min(self.frame.len() - self.at);
        let at = self.at;
        buf.put_slice(&self.frame[at..at + n]);
        self.at = (at + n) % self.frame.len();
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for Frames {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A HEADERS frame (END_HEADERS | END_STREAM) of `block` on stream `id`.
fn headers_frame(block: &[u8], id: u32) -> Vec<u8> {
    let mut f = Vec::new();
    h2lab::frame::encode_frame(&mut f, h2lab::frame::FrameType::HEADERS, 5, id, block);
    f
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("hpack decode");
    for (name, block, prime) in blocks() {
        group.bench_function(format!("h2lab, {name}, {} octets", block.len()), |b| {
            let mut d = Decoder::new(4096);
            for p in &prime {
                d.decode(p, |_, _| {}).unwrap();
            }
            b.iter(|| {
                let mut n = 0usize;
                d.decode(black_box(&block), |k, v| n += k.len() + v.len())
                    .unwrap();
                black_box(n)
            })
        });
        group.bench_function(format!("h2lab + checks, {name}"), |b| {
            let mut d = Decoder::new(4096);
            for p in &prime {
                d.decode(p, |_, _| {}).unwrap();
            }
            b.iter(|| {
                let mut check = h2lab::engine::mini::request::Check::request();
                d.decode(black_box(&block), |k, v| check.field(k, v))
                    .unwrap();
                black_box(check.finish().unwrap())
            })
        });
        group.bench_function(format!("loona-hpack, {name}"), |b| {
            let mut d = loona_hpack::Decoder::new();
            for p in &prime {
                d.decode_with_cb(p, |_, _| {}).unwrap();
            }
            b.iter(|| {
                let mut n = 0usize;
                d.decode_with_cb(black_box(&block), |k, v| n += k.len() + v.len())
                    .unwrap();
                black_box(n)
            })
        });
        group.bench_function(format!("hpack, {name}"), |b| {
            let mut d = hpack::Decoder::new();
            for p in &prime {
                d.decode_with_cb(p, |_, _| {}).unwrap();
            }
            b.iter(|| {
                let mut n = 0usize;
                d.decode_with_cb(black_box(&block), |k, v| n += k.len() + v.len())
                    .unwrap();
                black_box(n)
            })
        });
        group.bench_function(format!("h2 codec, {name}"), |b| {
            let mut frame = Vec::new();
            for (i, p) in prime.iter().enumerate() {
                frame.extend(headers_frame(p, 2 * i as u32 + 1));
            }
            let mut codec: h2::Codec<Frames, bytes::Bytes> = h2::Codec::new(Frames {
                frame: [frame, headers_frame(&block, 1)].concat(),
                at: 0,
            });
            let waker = std::task::Waker::noop();
            let mut cx = Context::from_waker(waker);
            for _ in &prime {
                let _ = Pin::new(&mut codec).poll_next(&mut cx);
            }
            b.iter(|| {
                let f = Pin::new(&mut codec).poll_next(&mut cx);
                assert!(matches!(f, Poll::Ready(Some(Ok(_)))), "{f:?}");
                black_box(f)
            })
        });
    }
    group.finish();
}

use futures_core::Stream;

criterion_group!(benches, bench);
criterion_main!(benches);
