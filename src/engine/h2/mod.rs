//! The `h2` engine: the `h2` crate serves the same response as the mini
//! engine (the seed's `:none/http2`, which used the full HTTP2 library).
//! Not sans-IO: it drives any async byte stream, so it runs where a tokio
//! runtime does (the `tokio` dispatch, or a runtime per connection).

mod coalesce;

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use h2::server::SendResponse;
use tokio::io::{AsyncRead, AsyncWrite};

pub use coalesce::{Coalesce, Gate, HOLD_AT_MOST};

use super::RESPONSE_BODY;

/// Serves one connection until the client goes; `responses` counts the
/// responses sent, also when the connection ends in an error. What the
/// crate writes is gathered per wake-up ([`Coalesce`]): every request that
/// has arrived is accepted and answered before one write carries all the
/// answers.
pub async fn serve<T>(io: T, responses: &mut u64) -> Result<(), h2::Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let gate = Arc::new(Gate::default());
    let mut conn = h2::server::handshake(Coalesce::new(io, gate.clone())).await?;
    poll_fn(|cx| {
        gate.hold();
        let mut opened = false;
        loop {
            match conn.poll_accept(cx) {
                Poll::Ready(Some(Ok((_request, respond)))) => {
                    // The request body, if any, is not read: the answer
                    // never depends on it.
                    answer(respond)?;
                    *responses += 1;
                    if opened {
                        gate.hold();
                        opened = false;
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                // Closing, the crate shuts the stream down, which writes
                // whatever is held.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                // Nothing more for now: one more turn with the gate open
                // writes what was held.
                Poll::Pending if !opened && gate.open() => opened = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await
}

fn answer(mut respond: SendResponse<Bytes>) -> Result<(), h2::Error> {
    // Built from constants: no header name or value to parse per request.
    let mut response = http::Response::new(());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html"),
    );
    let mut body = respond.send_response(response, false)?;
    body.send_data(Bytes::from_static(RESPONSE_BODY), true)
}
