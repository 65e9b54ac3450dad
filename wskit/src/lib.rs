//! # wskit
//!
//! WebSocket servers and clients for tokio, with the API and the defaults of Python's
//! `websockets`, on top of the sans-I/O core [`wskit_proto`] (re-exported as [`proto`]).
//!
//! - [`serve`] a handler: one call per connection, with a [`Connection`];
//! - [`connect`] to a `ws://` or `wss://` URI, or keep [reconnecting](Connect::reconnecting);
//! - [`recv`](Connection::recv) / [`send`](Connection::send) messages, iterate with
//!   [`next`](Connection::next), [`close`](Connection::close), measure
//!   [`ping`](Connection::ping) latency, and [`broadcast`] to many connections.
//!
//! ```no_run
//! use wskit::{Connection, Result};
//!
//! // Echo every message back, like the seeds' first example.
//! async fn echo(mut ws: Connection) -> Result<()> {
//!     while let Some(message) = ws.next().await {
//!         ws.send(message?).await?;
//!     }
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<()> {
//!     let server = wskit::serve(echo, "localhost:8765").await?;
//!     server.run_until(wskit::shutdown_signal()).await
//! }
//! ```
//!
//! Every option has Python websockets' default: 1 MiB messages, a queue of 16 frames, a
//! 32 KiB write buffer, keepalive pings every 20 s with a 20 s timeout, 10 s to open and to
//! close, permessage-deflate on (window 12 bits, memLevel 5), with one measured exception:
//! compression level 1 instead of 6 (see `DeflateConfig::compression_level`).
//!
//! ## How a connection works
//!
//! Each connection has a driver future that owns the socket. It reads whatever has arrived,
//! runs the protocol, queues messages for [`Connection::recv`], answers pings and close frames
//! even while the application is not receiving, sends keepalive pings, and writes everything
//! that is waiting with one system call where it can: messages sent while it was busy go out
//! together. On a server, the driver and the handler run in the same task, so a message
//! goes from the socket to the handler and back without a task switch or a channel.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
// Without an I/O layer (neither `tokio` nor `sync`), only the shared pieces are built.
#![cfg_attr(
    not(any(feature = "tokio", feature = "sync")),
    allow(dead_code, unused_imports, unused_macros, unreachable_pub)
)]

mod addr;
#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "tokio")]
mod broadcast;
#[cfg(feature = "tokio")]
mod channels;
#[cfg(feature = "tokio")]
pub mod client;
#[cfg(feature = "tokio")]
pub mod connection;
#[cfg(feature = "tokio")]
mod connection_set;
mod data;
pub mod error;
#[cfg(feature = "tokio")]
mod guides;
#[cfg(feature = "tokio")]
mod handshake;
#[cfg(feature = "hyper")]
pub mod hyper;
mod options;
#[cfg(feature = "tokio")]
mod router;
#[cfg(feature = "tokio")]
pub mod server;

/// The runtime-free parsers of the session layer, for the fuzz targets in `fuzz/`. Not part
/// of the API: no stability, no documentation.
#[doc(hidden)]
pub mod __fuzz {
    use crate::ProxyError;

    /// The longest head a proxy's answer to CONNECT may have.
    pub const MAX_CONNECT_RESPONSE: usize = crate::session::proxy::MAX_CONNECT_RESPONSE;

    /// A proxy's answer to CONNECT so far.
    pub fn http_connect_response(buf: &[u8]) -> Result<Option<usize>, ProxyError> {
        crate::session::proxy::http_connect_response(buf)
    }

    /// The first 5 bytes of a SOCKS5 proxy's answer to CONNECT.
    pub fn socks5_reply(head: [u8; 5]) -> Result<usize, ProxyError> {
        crate::session::proxy::socks5_reply(head)
    }

    /// A SOCKS5 proxy's answer to the credentials.
    pub fn socks5_auth_reply(reply: [u8; 2]) -> Result<(), ProxyError> {
        crate::session::proxy::socks5_auth_reply(reply)
    }

    /// A route parameter, percent-decoded.
    pub fn percent_decode(raw: &str) -> Option<String> {
        crate::session::route::percent_decode(raw)
    }

    /// The route table of `patterns` matched against `target`: the route's number and
    /// parameters, or the refusal's status.
    pub fn route(patterns: &[&str], target: &str) -> Result<(usize, Vec<(String, String)>), u16> {
        let mut table = crate::session::route::RouteTable::default();
        for pattern in patterns {
            table.insert(pattern);
        }
        table
            .find(target)
            .map(|(index, params)| {
                let params = params
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                (index, params)
            })
            .map_err(|response| response.status)
    }

    /// The username and password of a request whose `Authorization` header is `value`, as
    /// Basic authentication reads it (`None` when it is not well-formed).
    pub fn basic_credentials(value: &str) -> Option<(String, String)> {
        let mut request = wskit_proto::Request::get("/");
        request.headers.append("Authorization", value);
        crate::session::auth::credentials(&request)
    }
}
mod session;
#[cfg(feature = "sync")]
pub mod sync;
#[cfg(feature = "tls")]
pub mod tls;

pub use addr::PeerAddr;
#[cfg(feature = "tokio")]
pub use broadcast::{Broadcast, broadcast};
#[cfg(feature = "tokio")]
pub use channels::Channels;
#[cfg(all(unix, feature = "tokio"))]
pub use client::unix_connect;
#[cfg(feature = "tokio")]
pub use client::{Connect, Reconnecting, connect};
#[cfg(feature = "tokio")]
pub use connection::{Connection, Pong};
#[cfg(feature = "tokio")]
pub use connection_set::ConnectionSet;
pub use error::{Closed, Error, ProxyError, Result};
#[cfg(all(unix, feature = "tokio"))]
pub use router::unix_route;
#[cfg(feature = "tokio")]
pub use router::{Routed, Router, route};
#[cfg(all(unix, feature = "tokio"))]
pub use server::unix_serve;
#[cfg(feature = "tokio")]
pub use server::{Server, accept, serve, serve_listener, shutdown_signal};
pub use session::auth::{BasicAuth, Username};
pub use session::client::{Backoff, WsUri};
pub use session::route::Params;
#[cfg(feature = "tls")]
pub use tls::ServerTls;
pub use wskit_proto as proto;
pub use wskit_proto::connection::Fragment;
pub use wskit_proto::session::ConnectionConfig;
pub use wskit_proto::{
    CloseCode, CloseFrame, DeflateConfig, Headers, HttpLimits, HttpVersion, Limits, Message,
    Request, Response, Role, State, Utf8Bytes,
};

/// The README's examples, compiled as doc tests so they cannot rot.
#[cfg(all(doctest, feature = "tokio"))]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
