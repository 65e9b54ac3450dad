//! # wskit-proto
//!
//! The WebSocket protocol, RFC 6455 with RFC 7692 permessage-deflate, for clients and servers,
//! as a sans-I/O state machine. It has no sockets, no async runtime, no threads and no clock:
//!
//! ```text
//!            bytes read from the transport            events for the application
//!  socket ──> Protocol::receive_data ──> [Protocol] ──> Protocol::poll_event ──> app
//!  socket <── Protocol::data_to_send <── [Protocol] <── Protocol::send_text ... <── app
//!              bytes to write                          commands from the application
//! ```
//!
//! It does not read or write sockets, keep time (keepalive pings and close timeouts belong to
//! the I/O layer, e.g. the `wskit` crate), or spawn anything. That keeps it deterministic to
//! test and fuzz, and usable from any runtime, or none.
//!
//! What it does:
//!
//! - [frames](frame) with every RFC 6455 rule (masking, reserved bits and opcodes, control
//!   frames, continuations), each violation answered with the right [`CloseCode`];
//! - [masking](mask) on a wide path, and [UTF-8 validation](utf8) that fails fast across
//!   fragments;
//! - the [opening handshake](handshake) on both sides, with limits and typed errors that map to
//!   HTTP statuses;
//! - [permessage-deflate](extensions::permessage_deflate), negotiated on both sides and enforced
//!   against the message size limit while inflating;
//! - the closing handshake and [limits] on everything a peer controls.
//!
//! ## Example: a whole conversation in memory
//!
//! ```
//! use wskit_proto::{CloseCode, Config, Event, Message, Protocol, State};
//!
//! let mut client = Protocol::client(Config::default());
//! let mut server = Protocol::server(Config::default());
//!
//! // Opening handshake.
//! let request = client.connect_request("example.com", "/chat");
//! client.send_request(&request).unwrap();
//! server.receive_data(&client.take_data_to_send()).unwrap();
//! let Some(Event::Request(request)) = server.poll_event() else { unreachable!() };
//! let response = server.accept(&request).unwrap();
//! server.send_response(&response).unwrap();
//! client.receive_data(&server.take_data_to_send()).unwrap();
//! assert!(matches!(client.poll_event(), Some(Event::Response(r)) if r.status == 101));
//! assert!(client.is_compressed()); // permessage-deflate is on by default
//!
//! // A message, then the closing handshake started by the client.
//! client.send_text(b"Hello!", true).unwrap();
//! client.send_close(CloseCode::NORMAL, "bye").unwrap();
//! server.receive_data(&client.take_data_to_send()).unwrap();
//! assert_eq!(server.poll_event(), Some(Event::Message(Message::from("Hello!"))));
//! assert!(matches!(server.poll_event(), Some(Event::Close(frame)) if frame.reason == "bye"));
//! // The server echoed the close frame and closes TCP first.
//! assert!(server.should_close_transport());
//! client.receive_data(&server.take_data_to_send()).unwrap();
//! client.receive_eof().unwrap();
//! assert_eq!(client.state(), State::Closed);
//! assert_eq!(client.close_code(), Some(CloseCode::NORMAL));
//! ```

// One block is allowed, with its SAFETY comment, its guard test and its measured reason:
// `Utf8Bytes::as_str` (message.rs).
#![deny(unsafe_code)]
#![warn(missing_docs)]

/// `with_*` builder methods for the public fields of a `#[non_exhaustive]` settings type, so
/// that code outside the crate can build one from its `Default` in one expression. Used by
/// wskit-proto and wskit; not part of the API.
#[doc(hidden)]
#[macro_export]
macro_rules! setters {
    ($($field:ident, $setter:ident: $ty:ty;)*) => {
        $(
            #[doc = concat!("This value with [`", stringify!($field), "`](Self::", stringify!($field), ") set to `value`.")]
            #[must_use]
            pub fn $setter(mut self, value: $ty) -> Self {
                self.$field = value;
                self
            }
        )*
    };
}

pub mod close;
pub mod connection;
pub mod error;
pub mod extensions;
pub mod frame;
pub mod handshake;
pub mod limits;
pub mod mask;
pub mod message;
pub mod output;
pub mod session;
pub mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use connection::{Config, Event, Fragment, InputBuffer, Protocol, Role, State};
pub use error::{Error, HandshakeError, InvalidState, ProtocolError};
pub use extensions::DeflateConfig;
pub use frame::{FrameHeader, OpCode};
pub use handshake::{Headers, HttpVersion, Request, Response};
pub use limits::{HttpLimits, Limits};
pub use message::{Message, NotText, Utf8Bytes};
pub use output::Output;

#[cfg(test)]
mod tests;
