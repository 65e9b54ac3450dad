//! Upgrade a hyper 1 request to a wskit [`Connection`]: for any hyper-based server (the
//! `hyper` feature).
//!
//! [`upgrade`] takes the request, validates it with the same policy and options as
//! [`serve`](crate::serve), and gives the response for hyper to send (a 101 with the negotiated
//! extension and subprotocol, or a refusal with its status) and, after a 101, an [`Opening`]:
//! [`run`](Opening::run) a handler on it (the connection's I/O and the handler in one task, as
//! `serve` does), or await it for the connection.
//!
//! ```no_run
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper::body::Incoming;
//!
//! async fn echo(ws: wskit::Connection) -> wskit::Result<()> {
//!     while let Some(message) = ws.clone().next().await {
//!         ws.send(message?).await?;
//!     }
//!     Ok(())
//! }
//!
//! async fn handle(mut request: hyper::Request<Incoming>) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
//!     let (response, opening) = wskit::hyper::upgrade(&mut request).subprotocols(["chat"]).answer();
//!     if let Some(opening) = opening {
//!         tokio::spawn(opening.run(echo));
//!     }
//!     Ok(response)
//! }
//! ```
//!
//! The server's connection must allow upgrades (`http1::Builder::serve_connection(..)
//! .with_upgrades()`).
//!
//! # HTTP/2
//!
//! The same code serves WebSockets over HTTP/2 (RFC 8441) when hyper's HTTP/2 server allows
//! extended CONNECT (`http2::Builder::enable_connect_protocol()`; axum's `serve` does): the
//! request is a CONNECT with `:protocol = websocket`, the answer a 200 on its stream, and the
//! WebSocket runs on that stream, permessage-deflate included, beside the connection's other
//! streams. HTTP/2's own limits are hyper's settings: `max_concurrent_streams` bounds the
//! WebSockets (and requests) open at once on a connection, the flow-control windows
//! (`initial_stream_window_size`, `initial_connection_window_size`) hold a sender back until
//! the peer reads. A stream reset (RST_STREAM) or a lost connection ends its WebSocket with
//! 1006. For a graceful shutdown, call hyper's `graceful_shutdown()` on the connection (it
//! sends GOAWAY, so no new stream opens) and close its WebSockets with 1001 while the
//! connection is still polled: their streams would hold it open. The guide has the whole
//! server.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;

use bytes::Bytes;
use hyper_util::rt::TokioIo;
use wskit_proto::{HttpVersion, Request, Response};

use crate::connection::{Connection, PeerAddr};
use crate::error::{Error, Result};
use crate::server::{ServerOptions, Upgrade, Upgrading};
use wskit_proto::{HandshakeError, Protocol};

/// Answer the WebSocket handshake `request` that hyper received, in HTTP/1.1 (a GET with
/// `Upgrade: websocket`) or HTTP/2 (an extended CONNECT); set options, then call
/// [`answer`](HyperUpgrade::answer). A request that is not a valid handshake is answered as
/// `serve` answers it (405, 426, 400, 505, ...): an HTTP/3 request gets 505, a header value
/// that is not UTF-8 gets 400.
pub fn upgrade<B>(request: &mut http::Request<B>) -> HyperUpgrade {
    HyperUpgrade {
        request: to_wskit(request),
        on_upgrade: Some(hyper::upgrade::on(request)),
        options: ServerOptions::default(),
        remote_addr: None,
    }
}

/// A hyper request being answered. Made by [`upgrade`].
#[must_use = "nothing is decided until answer() is called"]
pub struct HyperUpgrade {
    request: std::result::Result<Request, HandshakeError>,
    on_upgrade: Option<hyper::upgrade::OnUpgrade>,
    pub(crate) options: ServerOptions,
    remote_addr: Option<PeerAddr>,
}

impl HyperUpgrade {
    crate::options::shared_options!();

    crate::options::server_options!();

    /// The client's address, as the hooks and the connection report it. Default: unknown.
    pub fn remote_addr(mut self, addr: PeerAddr) -> Self {
        self.remote_addr = Some(addr);
        self
    }

    /// Decide the answer: the response for hyper to send, and, if it opens a WebSocket (a 101,
    /// or a 200 to an HTTP/2 CONNECT), the connection to come.
    pub fn answer<R: From<Bytes>>(self) -> (http::Response<R>, Option<Opening>) {
        decide(
            self.request,
            self.on_upgrade,
            self.options,
            self.remote_addr,
        )
    }
}

/// The answer to an `http` request, for hyper and for axum: the response to send, and, after
/// a 101, the connection to come. A request that could not be represented gets serve's answer
/// to one that does not parse; an accepted one without hyper's upgrade (a server connection
/// without `with_upgrades`) or with a hook's invalid header gets a 500.
pub(crate) fn decide<R: From<Bytes>>(
    request: std::result::Result<Request, HandshakeError>,
    on_upgrade: Option<hyper::upgrade::OnUpgrade>,
    options: ServerOptions,
    remote_addr: Option<PeerAddr>,
) -> (http::Response<R>, Option<Opening>) {
    let request = match request {
        Ok(request) => request,
        Err(error) => {
            let protocol = Protocol::server(std::sync::Arc::clone(&options.protocol));
            let response = options.policy.answer_unparsed(&protocol, &error);
            return (to_http_or_500(&response), None);
        }
    };
    let open_timeout = options.open_timeout;
    let mut upgrade = Upgrade::with_options(request, options);
    if let Some(addr) = remote_addr {
        upgrade = upgrade.remote_addr(addr);
    }
    let upgrading = upgrade.answer();
    let Ok(response) = to_http(upgrading.response()) else {
        tracing::error!("a hook set a header that is not valid HTTP; refused with 500");
        return (internal_error(), None);
    };
    if !upgrading.is_accepted() {
        return (response, None);
    }
    let Some(on_upgrade) = on_upgrade else {
        tracing::error!("the server's connection does not allow upgrades; refused with 500");
        return (internal_error(), None);
    };
    let opening = Opening {
        upgrading,
        on_upgrade,
        open_timeout,
    };
    (response, Some(opening))
}

impl fmt::Debug for HyperUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HyperUpgrade")
            .field("path", &self.request.as_ref().map(|r| r.path.as_str()))
            .finish_non_exhaustive()
    }
}

/// The connection of an accepted upgrade: `.await` it after returning the response (101, or
/// 200 in HTTP/2) to hyper.
#[must_use = "the connection opens only when awaited"]
pub struct Opening {
    upgrading: Upgrading,
    on_upgrade: hyper::upgrade::OnUpgrade,
    open_timeout: Option<std::time::Duration>,
}

impl fmt::Debug for Opening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opening").finish_non_exhaustive()
    }
}

impl Opening {
    /// Run `handler` on the connection once hyper hands it over, polled in one task with the
    /// connection's I/O, as `serve` runs its handlers: spawn the returned future. Per message,
    /// this saves the wake-ups between a connection's task and a handler's task of its own
    /// (awaiting the `Opening` and spawning a handler); and the task, once open, holds only
    /// the connection and the handler (the hand-over is boxed, and freed then). `wskit::axum`
    /// runs its callbacks this way. The connection closes with 1000 when the handler returns
    /// `()` or `Ok`, with 1011 when it fails or panics. When the hand-over fails or times out,
    /// the handler is not called (the reason is logged at debug level).
    pub fn run<H, F>(self, handler: H) -> impl Future<Output = ()> + Send + 'static
    where
        H: FnOnce(Connection) -> F + Send + 'static,
        F: Future + Send + 'static,
        F::Output: crate::server::HandlerResult,
    {
        let opening: crate::server::Opening<TokioIo<hyper::upgrade::Upgraded>, F> =
            Box::pin(async move {
                let upgraded = match self.open_timeout {
                    Some(timeout) => match tokio::time::timeout(timeout, self.on_upgrade).await {
                        Ok(upgraded) => upgraded,
                        Err(_) => {
                            tracing::debug!("upgrade timed out");
                            return None;
                        }
                    },
                    None => self.on_upgrade.await,
                };
                let upgraded = upgraded
                    .map_err(|error| tracing::debug!(%error, "upgrade failed"))
                    .ok()?;
                self.upgrading
                    .run(TokioIo::new(upgraded), handler)
                    .map_err(|error| tracing::debug!(%error, "upgrade failed"))
                    .ok()
            });
        crate::server::ServeTask::Opening(opening)
    }
}

impl IntoFuture for Opening {
    type Output = Result<Connection>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Connection>> + Send>>;

    /// # Errors
    ///
    /// [`Error::Io`] when hyper could not hand the connection over (the client left, or the
    /// server's connection does not allow upgrades); [`Error::Timeout`] when that took longer
    /// than `open_timeout`.
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let upgraded = match self.open_timeout {
                Some(timeout) => tokio::time::timeout(timeout, self.on_upgrade)
                    .await
                    .map_err(|_| Error::Timeout("opening handshake"))?,
                None => self.on_upgrade.await,
            }
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
            self.upgrading.open(TokioIo::new(upgraded))
        })
    }
}

/// The parts of hyper's request that the handshake reads.
fn to_wskit<B>(request: &http::Request<B>) -> std::result::Result<Request, HandshakeError> {
    request_from_parts(
        request.method(),
        request.uri(),
        request.version(),
        request.headers(),
        request.extensions(),
    )
}

/// The parts of an `http` request that the handshake reads, as wskit's request; the error
/// `serve` would answer a request it cannot represent with (505, 400).
pub(crate) fn request_from_parts(
    method: &http::Method,
    uri: &http::Uri,
    version: http::Version,
    headers: &http::HeaderMap,
    extensions: &http::Extensions,
) -> std::result::Result<Request, HandshakeError> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut converted = Request::new(method.as_str(), path);
    converted.version = match version {
        http::Version::HTTP_10 => HttpVersion::Http10,
        http::Version::HTTP_11 => HttpVersion::Http11,
        // RFC 8441: the `:protocol` pseudo-header reaches the service as an extension.
        http::Version::HTTP_2 => {
            converted.protocol = extensions
                .get::<hyper::ext::Protocol>()
                .map(|p| p.as_str().to_owned());
            HttpVersion::Http2
        }
        _ => return Err(HandshakeError::UnsupportedHttpVersion),
    };
    for (name, value) in headers {
        let value = std::str::from_utf8(value.as_bytes())
            .map_err(|_| HandshakeError::MalformedHttp("header value is not UTF-8"))?;
        converted.headers.append(name.as_str(), value);
    }
    // HTTP/2 carries the host in `:authority`: the hooks find it where HTTP/1.1 has it.
    if let Some(authority) = uri.authority()
        && !converted.headers.contains("Host")
    {
        converted.headers.append("Host", authority.as_str());
    }
    Ok(converted)
}

/// wskit's response as hyper's; an error for a header a hook made that is not valid HTTP.
pub(crate) fn to_http<R: From<Bytes>>(
    response: &Response,
) -> std::result::Result<http::Response<R>, http::Error> {
    let mut builder = http::Response::builder().status(response.status);
    for (name, value) in response.headers.iter() {
        // hyper sets Content-Length itself from the body.
        if name.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        builder = builder.header(name, value);
    }
    builder.body(R::from(response.body.clone()))
}

/// wskit's response as hyper's, or a 500 if a hook made it invalid.
pub(crate) fn to_http_or_500<R: From<Bytes>>(response: &Response) -> http::Response<R> {
    to_http(response).unwrap_or_else(|_| {
        tracing::error!("a hook set a header that is not valid HTTP; refused with 500");
        internal_error()
    })
}

/// A plain 500.
pub(crate) fn internal_error<R: From<Bytes>>() -> http::Response<R> {
    let mut response = http::Response::new(R::from(Bytes::from_static(b"Internal Server Error\n")));
    *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid handshake request in `version`.
    fn handshake(version: http::Version) -> http::Request<()> {
        http::Request::builder()
            .version(version)
            .uri("/chat?room=1")
            .header("Host", "example.com")
            .header("Upgrade", "websocket")
            .header("Connection", "Upgrade")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("Sec-WebSocket-Version", "13")
            .body(())
            .unwrap()
    }

    #[test]
    fn http_1_1_gets_its_101_http_2_its_200_and_http_3_505() {
        let (response, opening) = upgrade(&mut handshake(http::Version::HTTP_3)).answer::<Bytes>();
        assert_eq!(response.status(), 505);
        assert!(opening.is_none());
        // An HTTP/1.1 handshake sent as HTTP/2 is not RFC 8441's CONNECT.
        let (response, opening) = upgrade(&mut handshake(http::Version::HTTP_2)).answer::<Bytes>();
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers()["Allow"], "CONNECT");
        assert!(opening.is_none());

        let (response, opening) = upgrade(&mut handshake(http::Version::HTTP_11)).answer::<Bytes>();
        assert_eq!(response.status(), 101);
        assert_eq!(
            response.headers()["Sec-WebSocket-Accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert!(opening.is_some());

        let mut connect = http::Request::builder()
            .version(http::Version::HTTP_2)
            .method(http::Method::CONNECT)
            .uri("https://example.com/chat?room=1")
            .extension(hyper::ext::Protocol::from_static("websocket"))
            .header("Sec-WebSocket-Version", "13")
            .body(())
            .unwrap();
        let (response, opening) = upgrade(&mut connect).answer::<Bytes>();
        assert_eq!(response.status(), 200);
        assert!(!response.headers().contains_key("Sec-WebSocket-Accept"));
        assert!(opening.is_some());
        let request = to_wskit(&connect).unwrap();
        assert_eq!(request.version, HttpVersion::Http2);
        assert_eq!(request.protocol.as_deref(), Some("websocket"));
        assert_eq!(request.path, "/chat?room=1");
        assert_eq!(request.headers.get("Host"), Some("example.com"));
    }
}
