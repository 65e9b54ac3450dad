//! # wskit-proto
//!
//! The WebSocket protocol, RFC 6455 with RFC 7692 permessage-deflate, as a sans-I/O state
//! machine. It has no sockets, no async runtime and no clock: bytes in, events out; commands
//! in, bytes out.

#![warn(missing_docs)]

pub mod close;
pub mod connection;
pub mod error;
pub mod extensions;
pub mod frame;
pub mod handshake;
pub mod limits;
pub mod mask;
pub mod message;
pub mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use connection::{Role, State};
pub use error::{Error, HandshakeError, InvalidState, ProtocolError};
pub use extensions::DeflateConfig;
pub use frame::{Frame, FrameHeader, OpCode};
pub use handshake::{Headers, Request, Response};
pub use limits::{HttpLimits, Limits};
pub use message::{Message, NotText, Utf8Bytes};
