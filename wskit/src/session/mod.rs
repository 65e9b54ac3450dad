//! What every I/O layer needs and none of them owns: no runtime, no clock, no I/O here.
//!
//! - [`policy`]: the server's handshake policy (origins, subprotocols, `process_request`,
//!   `process_response`, the `Server` header), one piece for `serve` and for a server
//!   handshake on any stream.

//! - [`route`]: a router's patterns, matched during the handshake.
//! - [`auth`]: HTTP Basic authentication.
//! - [`proxy`]: a client's proxies: the environment, HTTP CONNECT and SOCKS5.
//! - [`client`]: a client's URI, redirects, options and backoff.
//! - [`handler`]: what a handler returns, and the close code it leads to.

pub(crate) mod auth;
pub(crate) mod client;
pub(crate) mod handler;
pub(crate) mod policy;
pub(crate) mod proxy;
pub(crate) mod route;
