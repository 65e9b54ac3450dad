//! The client-side scenario: the library under test is the client, the server is wskit's echo
//! server. Each connection sends a 20-byte text message, waits for its echo and checks it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;

use crate::load::{LoadOptions, LoadResult, Shared, measure};
use crate::servers::MAX_MESSAGE;
use crate::{Result, payload};

/// A client library under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    /// `wskit::connect`.
    Wskit,
    /// `tokio_tungstenite::client_async_with_config`.
    Tungstenite,
}

/// Run the client-side load with `client` against the server at `addr`.
///
/// # Errors
///
/// A failed connection, or an echo that differs from what was sent.
pub async fn run(client: Client, addr: SocketAddr, options: &LoadOptions) -> Result<LoadResult> {
    let count = options.conns.unwrap_or(10).max(1);
    let text = String::from_utf8(payload::text(20, 1))?;
    let uri = format!("ws://{addr}/");
    let shared = Arc::new(Shared::default());
    let start = Instant::now();
    let tasks = match client {
        Client::Wskit => {
            let mut conns = Vec::with_capacity(count);
            for _ in 0..count {
                conns.push(
                    wskit::connect(uri.as_str())
                        .no_compression()
                        .ping_interval(None)
                        .max_size(Some(MAX_MESSAGE))
                        .await?,
                );
            }
            let message = wskit::Message::from(text.as_str());
            conns
                .into_iter()
                .map(|ws| shared.spawn(wskit_loop(ws, message.clone(), Arc::clone(&shared))))
                .collect()
        }
        Client::Tungstenite => {
            let config = tungstenite::protocol::WebSocketConfig::default()
                .max_message_size(Some(MAX_MESSAGE))
                .max_frame_size(Some(MAX_MESSAGE));
            let mut conns = Vec::with_capacity(count);
            for _ in 0..count {
                let stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                let (ws, _response) =
                    tokio_tungstenite::client_async_with_config(uri.as_str(), stream, Some(config))
                        .await?;
                conns.push(ws);
            }
            let message = tungstenite::Message::text(text.as_str());
            conns
                .into_iter()
                .map(|ws| shared.spawn(tungstenite_loop(ws, message.clone(), Arc::clone(&shared))))
                .collect()
        }
    };
    let open_secs = start.elapsed().as_secs_f64();
    measure(&shared, options, tasks, count, open_secs).await
}

/// Ping-pong on one wskit client connection.
async fn wskit_loop(
    ws: wskit::Connection,
    message: wskit::Message,
    shared: Arc<Shared>,
) -> Result<()> {
    let len = message.len() as u64;
    while !shared.stopped() {
        ws.send(message.clone()).await?;
        let echo = ws.recv().await?;
        if echo != message {
            return Err(format!("wskit client: echo {echo:?} differs from {message:?}").into());
        }
        shared.add(1, len);
    }
    Ok(())
}

/// Ping-pong on one tokio-tungstenite client connection.
async fn tungstenite_loop(
    mut ws: tokio_tungstenite::WebSocketStream<TcpStream>,
    message: tungstenite::Message,
    shared: Arc<Shared>,
) -> Result<()> {
    let len = message.len() as u64;
    while !shared.stopped() {
        ws.send(message.clone()).await?;
        loop {
            match ws.next().await {
                Some(Ok(echo)) if echo.is_text() || echo.is_binary() => {
                    if echo != message {
                        return Err(format!(
                            "tungstenite client: echo {echo:?} differs from {message:?}"
                        )
                        .into());
                    }
                    break;
                }
                // Pings are answered by tungstenite itself.
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err("tungstenite client: the server closed".into()),
            }
        }
        shared.add(1, len);
    }
    Ok(())
}
