//! The `h2` engine: the `h2` crate serves the same response as the mini
//! engine (the seed's `:none/http2`, which used the full HTTP2 library).
//! Not sans-IO: it drives any async byte stream, so it runs where a tokio
//! runtime does (the `tokio` dispatch, or a runtime per connection).

mod coalesce;

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use tokio::io::{AsyncRead, AsyncWrite};

pub use coalesce::{Coalesce, Gate, HOLD_AT_MOST};

use super::RESPONSE_BODY;

/// A connection past its handshake (our SETTINGS sent, the client's
/// preface read), ready for [`serve`].
pub struct Handshaken<T> {
    conn: h2::server::Connection<Coalesce<T>, Bytes>,
    gate: Arc<Gate>,
}

/// The server side of the HTTP/2 handshake on `io` (with TLS, the TLS
/// handshake happens within it, as the crate reads).
pub async fn handshake<T>(io: T) -> Result<Handshaken<T>, h2::Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let gate = Arc::new(Gate::default());
    // The mini engine's limits, advertised: a client past the stream limit
    // is refused streams instead of growing the server without bound, and
    // a header list past the mini engine's header-block cap is refused
    // (the crate's default is 16 MiB per request). Our responses are 12
    // octets: 64 KiB of send buffer per stream is plenty (default 400 KiB).
    let conn = h2::server::Builder::new()
        .max_concurrent_streams(super::mini::MAX_OPEN_STREAMS as u32)
        .max_header_list_size(super::mini::MAX_HEADER_BLOCK as u32)
        .max_send_buffer_size(64 * 1024)
        .handshake(Coalesce::new(io, gate.clone()))
        .await?;
    Ok(Handshaken { conn, gate })
}

/// Serves one connection until the client goes; `responses` counts the
/// responses sent, also when the connection ends in an error. `work` is
/// called once before each answer (the request's `--work`). Each request
/// is read to its end before it is answered (its body, released to flow
/// control as it comes and dropped, then its trailers), so that uploads of
/// any size complete and the crate checks content-length and trailers.
/// What the crate writes is gathered per wake-up ([`Coalesce`]): every
/// request that has arrived is accepted and answered before one write
/// carries all the answers.
pub async fn serve<T>(
    handshaken: Handshaken<T>,
    responses: &mut u64,
    work: &mut impl FnMut(),
) -> Result<(), h2::Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let Handshaken { mut conn, gate } = handshaken;
    let mut uploads: Vec<Upload> = Vec::new();
    poll_fn(|cx| {
        gate.hold();
        let mut opened = false;
        loop {
            let progress = match conn.poll_accept(cx) {
                Poll::Ready(Some(Ok((request, respond)))) => {
                    let body = request.into_body();
                    match body.is_end_stream() {
                        true => {
                            work();
                            *responses += u64::from(answer(respond));
                        }
                        false => uploads.push(Upload { body, respond }),
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
                    let before = uploads.len();
                    let mut i = 0;
                    while i < uploads.len() {
                        match uploads[i].poll_read(cx) {
                            Poll::Pending => i += 1,
                            // Err: a stream error; the crate has reset it.
                            Poll::Ready(read) => {
                                let upload = uploads.swap_remove(i);
                                if read.is_ok() {
                                    work();
                                    *responses += u64::from(answer(upload.respond));
                                }
                            }
                        }
                    }
                    uploads.len() < before
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

/// A request whose body is still coming.
struct Upload {
    body: RecvStream,
    respond: SendResponse<Bytes>,
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

/// Sends the response; false if the stream is gone (the client reset it),
/// which ends that stream only.
fn answer(mut respond: SendResponse<Bytes>) -> bool {
    // Built from constants: no header name or value to parse per request.
    let mut response = http::Response::new(());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html"),
    );
    match respond.send_response(response, false) {
        Ok(mut body) => body
            .send_data(Bytes::from_static(RESPONSE_BODY), true)
            .is_ok(),
        Err(_) => false,
    }
}
