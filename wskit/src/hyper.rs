//! Upgrade a hyper 1 request to a wskit [`Connection`]: for any hyper-based server (the
//! `hyper` feature).
//!
//! [`upgrade`] takes the request, validates it with the same policy and options as
//! [`serve`](crate::serve), and gives the response for hyper to send (a 101 with the negotiated
//! extension and subprotocol, or a refusal with its status) and, after a 101, a future that
//! resolves to the connection once hyper has handed the connection over.
//!
//! ```no_run
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper::body::Incoming;
//!
//! async fn handle(mut request: hyper::Request<Incoming>) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
//!     let (response, opening) = wskit::hyper::upgrade(&mut request).subprotocols(["chat"]).answer();
//!     if let Some(opening) = opening {
//!         tokio::spawn(async move {
//!             let Ok(ws) = opening.await else { return };
//!             while let Ok(message) = ws.recv().await {
//!                 if ws.send(message).await.is_err() {
//!                     break;
//!                 }
//!             }
//!         });
//!     }
//!     Ok(response)
//! }
//! ```
//!
//! The server's connection must allow upgrades (`http1::Builder::serve_connection(..)
//! .with_upgrades()`).

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;

use bytes::Bytes;
use hyper_util::rt::TokioIo;
use wskit_proto::{HttpVersion, Request, Response};

use crate::connection::{Connection, PeerAddr};
use crate::error::{Error, Result};
use crate::server::{ServerOptions, Upgrade, Upgrading};

/// Answer the WebSocket handshake `request` that hyper received; set options, then call
/// [`answer`](HyperUpgrade::answer). A request that is not a valid handshake is answered as
/// `serve` answers it (405, 426, 400, 505, ...).
pub fn upgrade<B>(request: &mut http::Request<B>) -> HyperUpgrade {
    HyperUpgrade {
        request: to_wskit(request),
        on_upgrade: hyper::upgrade::on(request),
        options: ServerOptions::default(),
        remote_addr: None,
    }
}

/// A hyper request being answered. Made by [`upgrade`].
#[must_use = "nothing is decided until answer() is called"]
pub struct HyperUpgrade {
    request: Request,
    on_upgrade: hyper::upgrade::OnUpgrade,
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

    /// Decide the answer: the response for hyper to send, and, if it is a 101, the connection
    /// to come.
    pub fn answer<R: From<Bytes>>(self) -> (http::Response<R>, Option<Opening>) {
        let mut upgrade = Upgrade::with_options(self.request, self.options);
        if let Some(addr) = self.remote_addr {
            upgrade = upgrade.remote_addr(addr);
        }
        let upgrading = upgrade.answer();
        let response = to_http(upgrading.response());
        let opening = upgrading.is_accepted().then(|| Opening {
            upgrading,
            on_upgrade: self.on_upgrade,
        });
        (response, opening)
    }
}

impl fmt::Debug for HyperUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HyperUpgrade")
            .field("path", &self.request.path)
            .finish_non_exhaustive()
    }
}

/// The connection of an accepted upgrade: `.await` it after returning the 101 to hyper.
#[must_use = "the connection opens only when awaited"]
pub struct Opening {
    upgrading: Upgrading,
    on_upgrade: hyper::upgrade::OnUpgrade,
}

impl fmt::Debug for Opening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opening").finish_non_exhaustive()
    }
}

impl IntoFuture for Opening {
    type Output = Result<Connection>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Connection>> + Send>>;

    /// # Errors
    ///
    /// [`Error::Io`] when hyper could not hand the connection over (the client left, or the
    /// server's connection does not allow upgrades).
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let upgraded = self
                .on_upgrade
                .await
                .map_err(|e| Error::Io(std::io::Error::other(e)))?;
            self.upgrading.open(TokioIo::new(upgraded))
        })
    }
}

/// The parts of hyper's request that the handshake reads.
fn to_wskit<B>(request: &http::Request<B>) -> Request {
    request_from_parts(
        request.method(),
        request.uri(),
        request.version(),
        request.headers(),
    )
}

/// The parts of an `http` request that the handshake reads, as wskit's request.
pub(crate) fn request_from_parts(
    method: &http::Method,
    uri: &http::Uri,
    version: http::Version,
    headers: &http::HeaderMap,
) -> Request {
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut converted = Request::new(method.as_str(), path);
    converted.version = if version == http::Version::HTTP_10 {
        HttpVersion::Http10
    } else {
        HttpVersion::Http11
    };
    for (name, value) in headers {
        // Header values that are not UTF-8 are kept as Latin-1, as HTTP allows.
        let value = match value.to_str() {
            Ok(value) => value.to_owned(),
            Err(_) => value.as_bytes().iter().map(|&b| char::from(b)).collect(),
        };
        converted.headers.append(name.as_str(), value);
    }
    converted
}

/// wskit's response as hyper's.
pub(crate) fn to_http<R: From<Bytes>>(response: &Response) -> http::Response<R> {
    let mut builder = http::Response::builder().status(response.status);
    for (name, value) in response.headers.iter() {
        // hyper sets Content-Length itself from the body.
        if name.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        builder = builder.header(name, value);
    }
    builder
        .body(R::from(response.body.clone()))
        .unwrap_or_else(|_| {
            // Only a header that is not valid HTTP (a hook's) gets here.
            let mut fallback = http::Response::new(R::from(Bytes::from_static(b"Bad response\n")));
            *fallback.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        })
}
