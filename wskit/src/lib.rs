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

#[cfg(feature = "axum")]
pub mod axum;
mod broadcast;
pub mod client;
pub mod connection;
mod connection_set;
mod data;
pub mod error;
mod guides;
mod handshake;
#[cfg(feature = "hyper")]
pub mod hyper;
mod options;
mod router;
pub mod server;
mod session;
#[cfg(feature = "rustls")]
pub mod tls;

pub use broadcast::{Broadcast, broadcast};
#[cfg(unix)]
pub use client::unix_connect;
pub use client::{Backoff, Connect, Reconnecting, WsUri, connect};
pub use connection::{Connection, ConnectionConfig, PeerAddr, Pong};
pub use connection_set::ConnectionSet;
pub use error::{Closed, Error, ProxyError, Result};
#[cfg(unix)]
pub use router::unix_route;
pub use router::{Routed, Router, route};
#[cfg(unix)]
pub use server::unix_serve;
pub use server::{Server, accept, serve, serve_listener, shutdown_signal};
pub use session::auth::{BasicAuth, Username};
pub use session::route::Params;
#[cfg(feature = "rustls")]
pub use tls::ServerTls;
pub use wskit_proto as proto;
pub use wskit_proto::connection::Fragment;
pub use wskit_proto::{
    CloseCode, CloseFrame, DeflateConfig, Headers, HttpLimits, HttpVersion, Limits, Message,
    Request, Response, Role, State, Utf8Bytes,
};

/// The README's examples, compiled as doc tests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
