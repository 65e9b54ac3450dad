//! Shared helpers: servers on ephemeral loopback ports, and bounded waits.

use std::future::IntoFuture;
use std::time::Duration;

use wskit::{Connection, Server};

/// A bound on every wait in these tests, so that a bug fails a test instead of hanging it.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// Await `future`, failing the test if it takes longer than [`WAIT`].
pub(crate) async fn within<F: IntoFuture>(future: F) -> F::Output {
    tokio::time::timeout(WAIT, future).await.expect("timed out")
}

/// An echo handler.
pub(crate) async fn echo(ws: Connection) -> wskit::Result<()> {
    loop {
        match ws.recv().await {
            Ok(message) => ws.send(message).await?,
            Err(error) if error.is_closed_ok() => return Ok(()),
            Err(error) => return Err(error),
        }
    }
}

/// The `ws://` URI of a server on loopback.
pub(crate) fn uri(server: &Server, path: &str) -> String {
    format!("ws://{}{path}", server.local_addr().expect("a TCP server"))
}

/// Wait until `condition` holds, checking every few milliseconds, failing the test after
/// [`WAIT`]. For state that another task updates without notifying anyone.
pub(crate) async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A handler that waits for the connection to close (receiving and dropping messages).
pub(crate) async fn idle(ws: Connection) {
    while ws.recv().await.is_ok() {}
}

/// A free loopback address: bound, then released for a process of the test to take.
pub(crate) fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}
