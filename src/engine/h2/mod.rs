//! The `h2` engine: the `h2` crate serves the same answers as the mini
//! engine, by method and path ([`super::route`]), with the same header
//! fields (the seed's `:none/http2`, which used the full HTTP2 library).
//! Not sans-IO: it drives any async byte stream, so it runs where a tokio
//! runtime does (the `tokio` dispatch, or a runtime per connection).

mod coalesce;

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite};

pub use coalesce::{Coalesce, Gate, HOLD_AT_MOST};

use super::body;
use super::date::HttpDate;
use super::route::{Answer, Method, Route, ALLOWED};
use super::{Handler, Work};

/// A body up to this size goes with one `send_data` (the crate holds it
/// until the windows let it go); a larger one through the crate's
/// capacity API, a frame's worth at a time, so that what the crate holds
/// per stream stays bounded whatever the size.
const SMALL_BODY: u64 = 16 * 1024;

/// A connection past its handshake (our SETTINGS sent, the client's
/// preface read), ready for [`serve`].
pub struct Handshaken<T> {
    conn: h2::server::Connection<Coalesce<T>, Bytes>,
    gate: Arc<Gate>,
}

/// The server side of the HTTP/2 handshake on `io` (with TLS, the TLS
/// handshake happens within it, as the crate reads).
pub async fn handshake<T>(io: T, max_streams: u32) -> Result<Handshaken<T>, h2::Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let gate = Arc::new(Gate::default());
    // The mini engine's limits, advertised: a client past the stream limit
    // (`--max-streams`) is refused streams instead of growing the server
    // without bound, and
    // a header list past the mini engine's header-block cap is refused
    // (the crate's default is 16 MiB per request). Bodies larger than
    // SMALL_BODY go out through the capacity API, at most 64 KiB held per
    // stream (default 400 KiB).
    let conn = h2::server::Builder::new()
        .max_concurrent_streams(max_streams)
        .max_header_list_size(super::mini::MAX_HEADER_BLOCK as u32)
        .max_send_buffer_size(64 * 1024)
        .handshake(Coalesce::new(io, gate.clone()))
        .await?;
    Ok(Handshaken { conn, gate })
}

/// Serves one connection until the client goes; `responses` counts the
/// responses begun, also when the connection ends in an error. Each
/// request is answered by its method and path (`handler` is the answer
/// to `/`); `work` is called once per request with its route's work: it
/// does the work and returns `None`, or returns what the answer must wait
/// for. Large bodies are sent as the client's windows open, the streams
/// served in turn. Each request
/// is read to its end before it is answered (its body, released to flow
/// control as it comes and dropped, then its trailers), so that uploads of
/// any size complete and the crate checks content-length and trailers.
/// What the crate writes is gathered per wake-up ([`Coalesce`]): every
/// request that has arrived is accepted and answered before one write
/// carries all the answers.
pub async fn serve<T>(
    handshaken: Handshaken<T>,
    responses: &mut u64,
    work: &mut impl FnMut(Work) -> Option<Wait>,
    handler: Handler,
) -> Result<(), h2::Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let Handshaken { mut conn, gate } = handshaken;
    let mut uploads: Vec<Upload> = Vec::new();
    let mut sending: Vec<Sending> = Vec::new();
    // Requests whose answer waits (`delay:`, offloaded work).
    let mut waiting: Vec<(Wait, SendResponse<Bytes>, Answer)> = Vec::new();
    let mut date = HttpDate::default();
    let mut answered = |respond, what: Answer, sending: &mut Vec<Sending>| {
        date.set(crate::wall_clock::unix_secs());
        if let Some(s) = answer(respond, &what, &date, handler.file.as_ref()) {
            sending.push(s);
        }
        *responses += 1;
    };
    poll_fn(|cx| {
        gate.hold();
        let mut opened = false;
        loop {
            let progress = match conn.poll_accept(cx) {
                Poll::Ready(Some(Ok((request, respond)))) => {
                    let method = Method::parse(request.method().as_str().as_bytes());
                    let route = Route::parse(request.uri().path().as_bytes());
                    let what = Answer::to(method, route, &handler);
                    let body = request.into_body();
                    match body.is_end_stream() {
                        true => match work(what.work) {
                            None => answered(respond, what, &mut sending),
                            Some(wait) => waiting.push((wait, respond, what)),
                        },
                        false => uploads.push(Upload {
                            body,
                            respond,
                            answer: what,
                        }),
                    }
                    true
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                // Closing, the crate shuts the stream down, which writes
                // whatever is held.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                // Nothing new: bodies that have come to their end are
                // answered (the connection is then polled again to send).
                Poll::Pending => {
                    let before = uploads.len() + sending.len() + waiting.len();
                    // Large bodies go on as the crate gives capacity.
                    sending.retain_mut(|s| s.poll_send(cx).is_pending());
                    let mut i = 0;
                    while i < waiting.len() {
                        match waiting[i].0.as_mut().poll(cx) {
                            Poll::Pending => i += 1,
                            Poll::Ready(()) => {
                                let (_, respond, what) = waiting.swap_remove(i);
                                answered(respond, what, &mut sending);
                            }
                        }
                    }
                    let mut i = 0;
                    while i < uploads.len() {
                        match uploads[i].poll_read(cx) {
                            Poll::Pending => i += 1,
                            // Err: a stream error; the crate has reset it.
                            Poll::Ready(read) => {
                                let upload = uploads.swap_remove(i);
                                if read.is_ok() {
                                    let what = upload.answer;
                                    match work(what.work) {
                                        None => answered(upload.respond, what, &mut sending),
                                        Some(wait) => waiting.push((wait, upload.respond, what)),
                                    }
                                }
                            }
                        }
                    }
                    uploads.len() + sending.len() + waiting.len() < before
                }
            };
            match progress {
                true if opened => {
                    gate.hold();
                    opened = false;
                }
                true => {}
                // Nothing more for now: one more turn with the gate open
                // writes what was held.
                false if !opened && gate.open() => opened = true,
                false => return Poll::Pending,
            }
        }
    })
    .await
}

/// What a request's answer waits for: a timer (`delay:`), or work done
/// elsewhere (`--offload`).
pub type Wait = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A request whose body is still coming.
struct Upload {
    body: RecvStream,
    respond: SendResponse<Bytes>,
    answer: Answer,
}

impl Upload {
    /// Reads what has come, giving its room back to flow control at once;
    /// ready at the end of the trailers.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), h2::Error>> {
        while let Some(data) = ready!(self.body.poll_data(cx)) {
            let n = data?.len();
            self.body.flow_control().release_capacity(n)?;
        }
        ready!(self.body.poll_trailers(cx))?;
        Poll::Ready(Ok(()))
    }
}

/// Sends the response's head, and its body if it is small; a large body
/// comes back to be sent as capacity comes. A stream the client reset
/// ends there (that stream only).
fn answer(
    mut respond: SendResponse<Bytes>,
    what: &Answer,
    date: &HttpDate,
    file: Option<&super::file::BodyFile>,
) -> Option<Sending> {
    use http::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, DATE};
    let mut response = http::Response::new(());
    *response.status_mut() = http::StatusCode::from_u16(what.status).ok()?;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(what.content_type.as_str()),
    );
    if what.has_content_length() {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(what.length));
    }
    if what.allow {
        headers.insert(ALLOW, HeaderValue::from_static(ALLOWED));
    }
    if let Ok(d) = HeaderValue::from_bytes(date.text()) {
        headers.insert(DATE, d);
    }
    let len = what.body_len();
    let mut stream = respond.send_response(response, len == 0).ok()?;
    if len == 0 {
        return None;
    }
    // `--body-file`: read for this answer, as a file server does.
    let data = match (what.file, file) {
        (true, Some(f)) => {
            let mut v = Vec::new();
            f.read(&mut v);
            v.resize(len as usize, 0);
            Some(Bytes::from(v))
        }
        _ => None,
    };
    if len <= SMALL_BODY {
        let first = match &data {
            Some(d) => d.clone(),
            None => piece(0, len as usize),
        };
        let _ = stream.send_data(first, true);
        return None;
    }
    Some(Sending {
        stream,
        sent: 0,
        len,
        data,
    })
}

/// The body's octets `offset..offset + n` (n at most 64 KiB), without a copy.
fn piece(offset: u64, n: usize) -> Bytes {
    let all = body::repeated();
    let start = (offset % body::PATTERN.len() as u64) as usize;
    Bytes::from_static(all).slice(start..start + n)
}

/// A large body being sent.
struct Sending {
    stream: SendStream<Bytes>,
    sent: u64,
    len: u64,
    /// `--body-file`'s octets, read for this answer; else the pattern.
    data: Option<Bytes>,
}

impl Sending {
    /// Sends as much as the crate gives capacity for; ready when the body
    /// is all sent or the stream is gone.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while self.sent < self.len {
            let left = self.len - self.sent;
            self.stream.reserve_capacity(left.min(64 * 1024) as usize);
            let n = match ready!(self.stream.poll_capacity(cx)) {
                Some(Ok(n)) if n > 0 => n.min(left as usize),
                Some(Ok(_)) => continue,
                // Reset by the client, or the connection is going.
                Some(Err(_)) | None => return Poll::Ready(()),
            };
            let end = self.sent + n as u64 == self.len;
            let octets = match &self.data {
                Some(d) => d.slice(self.sent as usize..self.sent as usize + n),
                None => piece(self.sent, n),
            };
            if self.stream.send_data(octets, end).is_err() {
                return Poll::Ready(());
            }
            self.sent += n as u64;
        }
        Poll::Ready(())
    }
}
