//! An axum 0.8 extractor that yields wskit connections (the `axum` feature): as short to use as
//! axum's own `extract::ws`, with wskit's options, negotiation (permessage-deflate included) and
//! every [`Connection`] feature (broadcast, ping latency, keepalive, limits, backpressure).
//!
//! ```no_run
//! use axum::Router;
//! use axum::routing::get;
//! use wskit::axum::WebSocketUpgrade;
//!
//! async fn echo(ws: wskit::Connection) {
//!     while let Ok(message) = ws.recv().await {
//!         if ws.send(message).await.is_err() {
//!             break;
//!         }
//!     }
//! }
//!
//! let app: Router = Router::new().route("/ws", get(|ws: WebSocketUpgrade| async move {
//!     ws.subprotocols(["chat"]).on_upgrade(echo)
//! }));
//! ```
//!
//! The extractor never rejects: a request that reaches the route and is not a valid handshake
//! is answered by [`on_upgrade`](WebSocketUpgrade::on_upgrade) as [`serve`](crate::serve)
//! answers it (426, 400, 403, 505, `process_request`'s own answer; a method the route does not
//! take is axum's to answer).
//!
//! WebSockets over HTTP/2 (RFC 8441) work too, as with [`crate::hyper`]: route them with
//! `any(..)` (or `on(MethodFilter::GET.or(MethodFilter::CONNECT), ..)`), since HTTP/2's
//! handshake is a CONNECT, not a GET; `axum::serve` enables extended CONNECT on its HTTP/2
//! connections.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;

use axum_core::body::Body;
use axum_core::extract::FromRequestParts;
use axum_core::response::Response;
use http::request::Parts;
use wskit_proto::Request;

use crate::connection::{Connection, PeerAddr};
use crate::server::ServerOptions;
use wskit_proto::HandshakeError;

/// The extractor: a WebSocket handshake request, to answer with
/// [`on_upgrade`](Self::on_upgrade). Set options with its builder methods first (the same as
/// [`serve`](crate::serve)'s).
pub struct WebSocketUpgrade {
    request: Result<Request, HandshakeError>,
    on_upgrade: Option<hyper::upgrade::OnUpgrade>,
    pub(crate) options: ServerOptions,
    remote_addr: Option<PeerAddr>,
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(Self {
            request: crate::hyper::request_from_parts(
                &parts.method,
                &parts.uri,
                parts.version,
                &parts.headers,
                &parts.extensions,
            ),
            on_upgrade: parts.extensions.remove::<hyper::upgrade::OnUpgrade>(),
            options: ServerOptions::default(),
            remote_addr: None,
        })
    }
}

impl WebSocketUpgrade {
    crate::options::shared_options!();

    crate::options::server_options!();

    /// The client's address, as the hooks and the connection report it (from axum's
    /// `ConnectInfo`, say). Default: unknown.
    pub fn remote_addr(mut self, addr: PeerAddr) -> Self {
        self.remote_addr = Some(addr);
        self
    }

    /// Answer the request: a 101, or a 200 in HTTP/2 (the connection then goes to `callback`,
    /// in a task of its own, once axum has handed it over, within `open_timeout`), or a
    /// refusal with its status.
    /// When `callback` returns, the connection closes with 1000; if it panics, with 1011, as a
    /// `serve` handler's.
    pub fn on_upgrade<F, Fut>(self, callback: F) -> Response
    where
        F: FnOnce(Connection) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (response, opening) = crate::hyper::decide::<Body>(
            self.request,
            self.on_upgrade,
            self.options,
            self.remote_addr,
        );
        if let Some(opening) = opening {
            // The callback and the connection's I/O in one task, as `serve` runs handlers.
            tokio::spawn(opening.run(callback));
        }
        response
    }
}

impl fmt::Debug for WebSocketUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("path", &self.request.as_ref().map(|r| r.path.as_str()))
            .finish_non_exhaustive()
    }
}
