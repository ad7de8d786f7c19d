//! The `h2` engine: the `h2` crate serves the same response as the mini
//! engine (the seed's `:none/http2`, which used the full HTTP2 library).
//! Not sans-IO: it drives any async byte stream, so it runs where a tokio
//! runtime does (the `tokio` dispatch, or a runtime per connection).

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};

use super::RESPONSE_BODY;

/// Serves one connection until the client goes; `responses` counts the
/// responses sent, also when the connection ends in an error.
pub async fn serve<T>(io: T, responses: &mut u64) -> Result<(), h2::Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = h2::server::handshake(io).await?;
    while let Some(request) = conn.accept().await {
        let (_request, mut respond) = request?;
        let response = http::Response::builder()
            .status(200)
            .header("content-type", "text/html")
            .body(())
            .expect("a static response is valid");
        // The request body, if any, is not read: the answer never depends on it.
        let mut body = respond.send_response(response, false)?;
        body.send_data(Bytes::from_static(RESPONSE_BODY), true)?;
        *responses += 1;
    }
    Ok(())
}
