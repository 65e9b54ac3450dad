//! # wskit-bench
//!
//! End-to-end load benchmarks of wskit's echo server and client against tokio-tungstenite,
//! fastwebsockets and tokio-websockets. One binary, three commands:
//!
//! - `wskit-bench serve LIB ADDR [--deflate]`: an echo server ([`servers`]);
//! - `wskit-bench load SCENARIO ADDR [--secs N]`: a load generator that uses none of the
//!   libraries under test ([`load`], [`wire`]), or, for the client-side scenario, the clients
//!   under test ([`clients`]);
//! - `wskit-bench run [--secs N] [--rounds R] [--out docs/benchmarks-e2e.md]`: every scenario
//!   against every server, pinned to separate cores and interleaved in rounds ([`run`]), then
//!   a Markdown report and an SVG chart ([`report`]).
//!
//! Linux only: it reads `/proc` and pins with `taskset`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod clients;
pub mod fanout;
pub mod load;
pub mod payload;
pub mod report;
pub mod run;
pub mod servers;
pub mod sys;
pub mod wire;

/// Errors: whatever went wrong, as text for the user.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A result with an [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
