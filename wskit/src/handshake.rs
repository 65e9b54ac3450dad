//! Driving the opening handshake of a [`Protocol`] over a stream, for both roles.

use std::future::poll_fn;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use wskit_proto::{Event, Protocol};

use crate::error::{Error, Result};

/// Write everything the protocol has queued.
pub(crate) async fn flush<S>(stream: &mut S, protocol: &mut Protocol) -> Result<()>
where
    S: AsyncWrite + Unpin,
{
    let data = protocol.take_data_to_send();
    if !data.is_empty() {
        stream.write_all(&data).await?;
        stream.flush().await?;
    }
    Ok(())
}

/// Read until the protocol produces its handshake event (a request on a server, a response on
/// a client). Bytes that arrive behind it stay buffered in the protocol.
pub(crate) async fn read_handshake_event<S>(
    stream: &mut S,
    protocol: &mut Protocol,
) -> Result<Event>
where
    S: AsyncRead + Unpin,
{
    loop {
        if let Some(event) = protocol.poll_event() {
            return Ok(event);
        }
        let n = poll_fn(|cx| {
            let mut input = protocol.input_buffer();
            input.reserve(4096);
            input.append_with(|spare| {
                tokio_util::io::poll_read_buf(Pin::new(&mut *stream), cx, spare)
            })
        })
        .await?;
        if n == 0 {
            // The peer left during the handshake: the connection is abandoned with the protocol
            // (which would say the same: `receive_eof` fails with this error while connecting).
            return Err(Error::Handshake(Box::new(
                wskit_proto::HandshakeError::UnexpectedEof,
            )));
        }
        if let Err(error) = protocol.receive_buffered() {
            return Err(crate::error::handshake_failure(protocol, error));
        }
    }
}
