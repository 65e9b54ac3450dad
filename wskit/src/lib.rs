//! # wskit
//!
//! WebSocket servers and clients for tokio, with the API and the defaults of Python's
//! `websockets`, on top of the sans-I/O core [`wskit_proto`].

#![warn(missing_docs)]

mod broadcast;
pub mod client;
pub mod connection;
pub mod error;
mod handshake;
pub mod server;
#[cfg(feature = "rustls")]
pub mod tls;

pub use broadcast::{Broadcast, broadcast};
#[cfg(unix)]
pub use client::unix_connect;
pub use client::{Backoff, Connect, Reconnecting, WsUri, connect};
pub use connection::{Connection, ConnectionConfig, PeerAddr, Pong};
pub use error::{Closed, Error, Result};
#[cfg(unix)]
pub use server::unix_serve;
pub use server::{Server, serve, serve_listener, shutdown_signal};
#[cfg(feature = "rustls")]
pub use tls::ServerTls;
pub use wskit_proto::connection::Fragment;
pub use wskit_proto::{
    CloseCode, CloseFrame, DeflateConfig, Headers, Limits, Message, Request, Response, Role, State,
    Utf8Bytes,
};
