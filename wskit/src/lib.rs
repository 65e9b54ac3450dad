//! # wskit
//!
//! WebSocket servers and clients for tokio, with the API and the defaults of Python's
//! `websockets`, on top of the sans-I/O core [`wskit_proto`].

#![warn(missing_docs)]

pub mod connection;
pub mod error;

pub use connection::{Connection, ConnectionConfig, PeerAddr, Pong};
pub use error::{Closed, Error, Result};
pub use wskit_proto::{
    CloseCode, CloseFrame, DeflateConfig, Headers, Limits, Message, Request, Response, Role,
    State, Utf8Bytes,
};
pub use wskit_proto::connection::Fragment;
