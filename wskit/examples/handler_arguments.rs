//! Mirrors "常见问题 / 服务端 / 1. 如何向 handler 传递额外的参数" in `seeds/001_dfc3700d69cd8878.txt`
//! (`bound_handler = functools.partial(handler, extra_argument='spam')`; the same in
//! `seeds/003_f7096015a45346c8.txt`): the server calls the handler with the connection only, so
//! extra arguments go in a closure's captures: a value (`"spam"`), and state shared by every
//! connection (a visit counter behind an `Arc`).
//!
//! ```sh
//! cargo run --example handler_arguments             # ws://localhost:8765
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wskit::Connection;

async fn handler(
    ws: Connection,
    extra_argument: &str,
    visits: Arc<AtomicU64>,
) -> wskit::Result<()> {
    let visit = visits.fetch_add(1, Ordering::Relaxed) + 1;
    ws.send(format!("extra_argument={extra_argument}, visit #{visit}"))
        .await
}

#[tokio::main]
async fn main() -> wskit::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "localhost:8765".into());
    let visits = Arc::new(AtomicU64::new(0));
    let bound_handler = move |ws| handler(ws, "spam", Arc::clone(&visits));
    let server = wskit::serve(bound_handler, addr).await?;
    server.run_until(wskit::shutdown_signal()).await
}
