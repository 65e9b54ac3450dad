//! The echo servers: one per library, each with the library's default configuration except
//! for the message limit (64 MiB everywhere) and compression (off unless asked for); and an
//! axum app twice, upgrading with wskit's extractor and with axum's own `extract::ws`.
//!
//! Every server runs on a current-thread tokio runtime, one task per connection, and echoes each
//! text or binary message back as it is, with the library's plain receive-then-send loop.

use std::fmt;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::{Result, wire};

/// The largest message every server accepts.
pub const MAX_MESSAGE: usize = 64 << 20;

/// A library under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lib {
    /// wskit (this workspace).
    Wskit,
    /// tokio-tungstenite.
    Tungstenite,
    /// fastwebsockets.
    Fastwebsockets,
    /// tokio-websockets.
    TokioWebsockets,
    /// An axum 0.8 app whose route upgrades with wskit's extractor (`wskit::axum`).
    AxumWskit,
    /// The same axum app with axum's own `extract::ws`.
    AxumWs,
    /// wskit's blocking server (`wskit::sync`): a thread per connection, and its reader.
    WskitSync,
    /// tungstenite's blocking API, a thread per connection (the usual way to serve with it).
    TungsteniteSync,
}

impl Lib {
    /// Every library, in the order of the tables.
    pub const ALL: [Self; 6] = [
        Self::Wskit,
        Self::Tungstenite,
        Self::Fastwebsockets,
        Self::TokioWebsockets,
        Self::AxumWskit,
        Self::AxumWs,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Wskit => "wskit",
            Self::Tungstenite => "tungstenite",
            Self::Fastwebsockets => "fastwebsockets",
            Self::TokioWebsockets => "tokio-websockets",
            Self::AxumWskit => "axum-wskit",
            Self::AxumWs => "axum-ws",
            Self::WskitSync => "wskit-sync",
            Self::TungsteniteSync => "tungstenite-sync",
        }
    }

    /// The row label in the report.
    pub fn label(self) -> &'static str {
        match self {
            Self::AxumWskit => "axum + wskit",
            Self::AxumWs => "axum + extract::ws",
            Self::WskitSync => "wskit::sync (threads)",
            Self::TungsteniteSync => "tungstenite (threads)",
            other => other.crate_name(),
        }
    }

    /// The crate whose version the report gives.
    pub fn crate_name(self) -> &'static str {
        match self {
            Self::Wskit => "wskit",
            Self::Tungstenite => "tokio-tungstenite",
            Self::Fastwebsockets => "fastwebsockets",
            Self::TokioWebsockets => "tokio-websockets",
            Self::AxumWskit | Self::AxumWs => "axum",
            Self::WskitSync => "wskit",
            Self::TungsteniteSync => "tungstenite",
        }
    }

    /// The library for a command-line name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain([Self::WskitSync, Self::TungsteniteSync])
            .find(|lib| lib.name() == name || lib.label() == name)
    }

    /// Whether its server can negotiate permessage-deflate.
    pub fn has_deflate(self) -> bool {
        matches!(self, Self::Wskit | Self::AxumWskit)
    }
}

impl fmt::Display for Lib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A running server: serves until dropped or the runtime ends.
pub type Serving = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// Bind `lib`'s echo server to `addr` on the current runtime: returns the bound address and the
/// future that serves.
///
/// # Errors
///
/// The address cannot be bound, or `deflate` is asked of a library without it.
pub async fn start(lib: Lib, addr: SocketAddr, deflate: bool) -> Result<(SocketAddr, Serving)> {
    if deflate && !lib.has_deflate() {
        return Err(format!("{lib} has no permessage-deflate support").into());
    }
    if lib == Lib::Wskit {
        let serve = wskit::serve(wskit_echo, addr)
            .max_size(Some(MAX_MESSAGE))
            // The peers send no keepalive pings; neither does wskit here.
            .ping_interval(None);
        let serve = if deflate {
            serve.compression(Some(wskit::DeflateConfig::default()))
        } else {
            serve.no_compression()
        };
        let server = serve.await?;
        let local = server
            .local_addr()
            .ok_or("wskit server has no TCP address")?;
        return Ok((
            local,
            Box::pin(async move { server.run().await.map_err(Into::into) }),
        ));
    }
    if matches!(lib, Lib::WskitSync | Lib::TungsteniteSync) {
        return start_blocking(lib, addr);
    }
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    if matches!(lib, Lib::AxumWskit | Lib::AxumWs) {
        return Ok((local, Box::pin(axum_app(listener, lib, deflate))));
    }
    Ok((local, Box::pin(accept_loop(listener, lib))))
}

/// An axum app whose every path upgrades to an echo, with wskit's extractor or axum's own,
/// served by `axum::serve` (hyper) with TCP_NODELAY like the other servers.
async fn axum_app(listener: TcpListener, lib: Lib, deflate: bool) -> Result<()> {
    use axum::routing::any;
    use axum::serve::ListenerExt as _;
    let route = if lib == Lib::AxumWskit {
        any(move |ws: wskit::axum::WebSocketUpgrade| async move {
            let ws = ws.max_size(Some(MAX_MESSAGE)).ping_interval(None);
            let ws = if deflate {
                ws.compression(Some(wskit::DeflateConfig::default()))
            } else {
                ws.no_compression()
            };
            ws.on_upgrade(|ws| async move {
                let _ = wskit_echo(ws).await;
            })
        })
    } else {
        any(|ws: axum::extract::ws::WebSocketUpgrade| async move {
            ws.max_message_size(MAX_MESSAGE)
                .max_frame_size(MAX_MESSAGE)
                .on_upgrade(axum_ws_echo)
        })
    };
    let app = axum::Router::new().fallback(route);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

/// axum's `extract::ws` echo: recv/send, as in axum's own example.
async fn axum_ws_echo(mut socket: axum::extract::ws::WebSocket) {
    use axum::extract::ws::Message;
    while let Some(Ok(message)) = socket.recv().await {
        if matches!(message, Message::Text(_) | Message::Binary(_))
            && socket.send(message).await.is_err()
        {
            return;
        }
    }
}

/// Run `lib`'s echo server on `addr` in this process, on a current-thread runtime, printing
/// `listening on ADDR` on standard output once bound. Never returns unless it fails.
///
/// # Errors
///
/// As [`start`].
pub fn serve(lib: Lib, addr: &str, deflate: bool) -> Result<()> {
    serve_with(addr, |addr| start(lib, addr, deflate))
}

/// Bind with `start` on `addr` on a current-thread runtime, print `listening on ADDR` once
/// bound, then serve.
///
/// # Errors
///
/// A bad address, or what `start` or the serving future return.
pub(crate) fn serve_with<F>(addr: &str, start: impl FnOnce(SocketAddr) -> F) -> Result<()>
where
    F: Future<Output = Result<(SocketAddr, Serving)>>,
{
    crate::sys::raise_nofile();
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| format!("bad address {addr}: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (local, serving) = start(addr).await?;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {local}")?;
        stdout.flush()?;
        drop(stdout);
        serving.await
    })
}

/// A blocking server on threads of its own; the future only keeps it.
fn start_blocking(lib: Lib, addr: SocketAddr) -> Result<(SocketAddr, Serving)> {
    if lib == Lib::WskitSync {
        let server = wskit::sync::serve(wskit_sync_echo, addr)
            .max_size(Some(MAX_MESSAGE))
            .ping_interval(None)
            .no_compression()
            .start()?;
        let local = server
            .local_addr()
            .ok_or("wskit server has no TCP address")?;
        return Ok((
            local,
            Box::pin(async move {
                let _server = server;
                std::future::pending::<Result<()>>().await
            }),
        ));
    }
    let listener = std::net::TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || tungstenite_sync_echo(stream));
        }
    });
    Ok((local, Box::pin(std::future::pending::<Result<()>>())))
}

/// wskit's blocking echo handler.
fn wskit_sync_echo(ws: wskit::sync::Connection) -> wskit::Result<()> {
    for message in &ws {
        ws.send(message?)?;
    }
    Ok(())
}

/// tungstenite's blocking echo, on the connection's thread.
fn tungstenite_sync_echo(stream: std::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    let config = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let Ok(mut ws) = tungstenite::accept_with_config(stream, Some(config)) else {
        return;
    };
    loop {
        match ws.read() {
            Ok(message) if message.is_text() || message.is_binary() => {
                if ws.send(message).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// wskit's echo handler.
async fn wskit_echo(mut ws: wskit::Connection) -> wskit::Result<()> {
    while let Some(message) = ws.next().await {
        ws.send(message?).await?;
    }
    Ok(())
}

/// Accept connections for a peer library, one task each.
async fn accept_loop(listener: TcpListener, lib: Lib) -> Result<()> {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, or a connection reset before accept: go on.
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Errors end one connection (the load generator hangs up without a close frame).
        match lib {
            Lib::Tungstenite => drop(tokio::spawn(tungstenite_echo(stream))),
            Lib::Fastwebsockets => drop(tokio::spawn(fastwebsockets_echo(stream))),
            Lib::TokioWebsockets => drop(tokio::spawn(tokio_websockets_echo(stream))),
            Lib::Wskit | Lib::AxumWskit | Lib::AxumWs | Lib::WskitSync | Lib::TungsteniteSync => {
                unreachable!("wskit, axum and the blocking servers accept their own connections")
            }
        }
    }
}

/// tokio-tungstenite's echo: `accept_async_with_config`, then next/send.
async fn tungstenite_echo(stream: TcpStream) -> Result<()> {
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let mut ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_text() || message.is_binary() {
            ws.send(message).await?;
        }
    }
    Ok(())
}

/// tokio-websockets' echo: `ServerBuilder::accept`, then next/send.
async fn tokio_websockets_echo(stream: TcpStream) -> Result<()> {
    let limits = tokio_websockets::Limits::default().max_payload_len(Some(MAX_MESSAGE));
    let (_request, mut ws) = tokio_websockets::ServerBuilder::new()
        .limits(limits)
        .accept(stream)
        .await?;
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_text() || message.is_binary() {
            ws.send(message).await?;
        }
    }
    Ok(())
}

/// fastwebsockets' echo: the HTTP upgrade by hand (fastwebsockets does it with hyper
/// otherwise), `WebSocket::after_handshake`, and a `FragmentCollector` loop as in its example.
async fn fastwebsockets_echo(mut stream: TcpStream) -> Result<()> {
    use fastwebsockets::{FragmentCollector, OpCode, Role, WebSocket};
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0; 1024];
    let response = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(len) = request.parse(&buf)? {
            // Clients send nothing before the 101; anything after the request would be lost.
            if len != buf.len() {
                return Err("data after the upgrade request".into());
            }
            let key = request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))
                .ok_or("no Sec-WebSocket-Key")?;
            break wire::server_response(key.value);
        }
        if buf.len() > 16 * 1024 {
            return Err("upgrade request too large".into());
        }
    };
    stream.write_all(response.as_bytes()).await?;
    let mut ws = WebSocket::after_handshake(stream, Role::Server);
    ws.set_max_message_size(MAX_MESSAGE);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}
