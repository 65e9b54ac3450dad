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
//! The extractor never rejects: a request that is not a valid handshake is answered by
//! [`on_upgrade`](WebSocketUpgrade::on_upgrade) as [`serve`](crate::serve) answers it (405,
//! 426, 400, 505, `process_request`'s own answer), so routes behave the same on either.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;

use axum_core::body::Body;
use axum_core::extract::FromRequestParts;
use axum_core::response::Response;
use http::request::Parts;
use hyper_util::rt::TokioIo;
use wskit_proto::Request;

use crate::connection::{Connection, PeerAddr};
use crate::server::{ServerOptions, Upgrade};

/// The extractor: a WebSocket handshake request, to answer with
/// [`on_upgrade`](Self::on_upgrade). Set options with its builder methods first (the same as
/// [`serve`](crate::serve)'s).
pub struct WebSocketUpgrade {
    request: Request,
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

    /// Answer the request: a 101 (the connection then goes to `callback`, in a task of its
    /// own, once axum has handed it over), or a refusal with its status.
    pub fn on_upgrade<F, Fut>(self, callback: F) -> Response
    where
        F: FnOnce(Connection) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut upgrade = Upgrade::with_options(self.request, self.options);
        if let Some(addr) = self.remote_addr {
            upgrade = upgrade.remote_addr(addr);
        }
        let upgrading = upgrade.answer();
        let response: Response = crate::hyper::to_http::<Body>(upgrading.response());
        if !upgrading.is_accepted() {
            return response;
        }
        let Some(on_upgrade) = self.on_upgrade else {
            tracing::error!("the server's connection does not allow upgrades");
            let mut response = Response::new(Body::from("The server cannot upgrade.\n"));
            *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            return response;
        };
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(error) => {
                    tracing::debug!(%error, "upgrade failed");
                    return;
                }
            };
            match upgrading.open(TokioIo::new(upgraded)) {
                Ok(connection) => callback(connection).await,
                Err(error) => tracing::debug!(%error, "opening the connection failed"),
            }
        });
        response
    }
}

impl fmt::Debug for WebSocketUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("path", &self.request.path)
            .finish_non_exhaustive()
    }
}
