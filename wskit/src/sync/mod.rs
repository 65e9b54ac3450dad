//! The blocking API: WebSocket servers and clients for threads, without an async runtime,
//! with the same names, options, defaults and errors as the async API (Python websockets'
//! `websockets.sync` beside `websockets.asyncio`).
//!
//! ```no_run
//! use wskit::sync::Connection;
//!
//! // The seeds' hello server, blocking: a thread per connection (and its reader thread).
//! fn hello(ws: Connection) -> wskit::Result<()> {
//!     let name = ws.recv()?;
//!     ws.send(format!("Hello {name}!"))
//! }
//!
//! let server = wskit::sync::serve(hello, "localhost:8765").start()?;
//! # server.close();
//! server.run_until_signal()?;
//! # Ok::<(), wskit::Error>(())
//! ```
//!
//! Both layers drive the same runtime-free code: the protocol ([`wskit_proto::Protocol`]), the
//! session around it ([`wskit_proto::session::Session`]: the receive queue and its marks,
//! message assembly, pings and their latency, keepalive, close deadlines) and the server's
//! handshake policy (origins, subprotocols, `process_request` / `process_response`, Basic
//! authentication, routes, limits).
//!
//! # Threading model
//!
//! - **A reader thread per connection** (128 KiB stack) reads from the socket, feeds the
//!   protocol, queues the messages for [`Connection::recv`], answers pings and close frames
//!   whether or not anyone receives, and runs every deadline: before each read it sets the
//!   socket's read timeout to the session's next deadline ([`Session::poll_timeout`]), at
//!   most a second away, so a read that times out is the moment to send a keepalive ping,
//!   fail a connection whose pong is late (1011), or close one whose closing handshake is
//!   overdue (a close started by another thread is seen within a second). It stops reading
//!   while `max_queue` frames (pieces of messages) wait, and resumes when a receiver has
//!   taken them down to a quarter.
//! - **Writes happen on the thread that sends**, outside every lock: a sender queues its
//!   frames in the protocol under the connection's lock, then writes whatever is queued,
//!   unless another thread is writing: it waits for that thread's batch, and takes over if
//!   its frames are not in it. So frames go out in the order they were queued (compressed
//!   messages in the order they were compressed), and `send` returns once its frames are in
//!   the socket's buffer. A write that makes no progress for a second runs the deadlines
//!   itself, so a peer that stopped reading cannot stop keepalive or the close timeout. The
//!   reader thread writes pongs and close frames for at most a second at a time, keeping the
//!   rest for the next writer, and goes back to reading.
//! - **TLS** (`wss://`, rustls) keeps its state under a lock of its own, taken to decrypt
//!   what the reader read and to encrypt what a writer writes, never across a blocking read
//!   or write.
//! - **A server** runs an accept thread per listener and a thread per connection, which runs
//!   the TLS and WebSocket handshakes (within `open_timeout`), then the handler, then the
//!   closing handshake (1000, or 1011 if the handler failed or panicked). `max_connections`
//!   bounds the open connections and their threads: handshakes beyond it get 503; a
//!   handshake in progress has a thread for at most `open_timeout`.
//! - **Graceful shutdown**: [`Server::close`] stops accepting (it wakes the accept threads by
//!   connecting to them), closes every connection with 1001 and [`Server::wait_closed`]
//!   waits for the handlers; [`Server::run_until_signal`] does it on SIGTERM or Ctrl-C, learnt
//!   by a signal-hook thread.
//! - **Timeouts**: `open_timeout` covers connecting, the proxy's exchange, the TLS handshake
//!   and the WebSocket handshake; not the name lookup, which std's resolver does blocking
//!   (`getaddrinfo`) without a timeout. `ping_interval`, `ping_timeout` and `close_timeout`
//!   are the reader thread's, as above. [`Connection::recv_timeout`] bounds one receive.
//!
//! An idle connection costs two threads on a server (its handler's and its reader's) and one
//! on a client, which is what sets the blocking API's limits: use the async API for tens of
//! thousands of connections.
//!
//! [`Session::poll_timeout`]: wskit_proto::session::Session::poll_timeout

pub mod broadcast;
pub mod client;
pub mod connection;
mod handshake;
pub mod router;
pub mod server;

pub use broadcast::{Broadcast, broadcast};
#[cfg(unix)]
pub use client::unix_connect;
pub use client::{Connect, Reconnecting, connect};
pub use connection::{Connection, ConnectionConfig, Messages, Pong};
#[cfg(unix)]
pub use router::unix_route;
pub use router::{Router, route};
#[cfg(unix)]
pub use server::unix_serve;
pub use server::{HandlerResult, Handshake, Serve, Server, serve, serve_listener};
