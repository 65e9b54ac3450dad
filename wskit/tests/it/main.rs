//! Integration tests over real loopback sockets: wskit client against wskit server.

mod support;

#[path = "../shared/examples.rs"]
mod example_support;

#[cfg(feature = "axum")]
mod axum;
mod basics;
mod broadcast;
mod channels;
mod client;
mod closing;
mod conformance;
mod connection;
mod examples;
mod handshake;
#[cfg(feature = "hyper")]
mod http2;
#[cfg(feature = "hyper")]
mod hyper;
mod interop;
mod keepalive;
mod layers;
mod limits;
mod proxy;
mod raw;
mod reconnecting;
mod routes;
mod server;
mod stream;
mod sync;
mod timeouts;
mod tls;
