//! Mirrors "6. 开发模板 / 生产者" in `seeds/001_dfc3700d69cd8878.txt` (`async def
//! producer_handler(websocket): while True: message = await producer(); await
//! websocket.send(message)`; the same in `seeds/003_f7096015a45346c8.txt`): the handler sends
//! whatever `producer()` makes, `message1`, `message2`... one every 3 seconds (the count is shared
//! by every connection, a global in the seed). Sending fails once the client has left, which ends
//! the loop.
//!
//! ```sh
//! cargo run --example producer                      # ws://localhost:8765
//! cargo run --example producer -- 127.0.0.1:9000
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wskit::Connection;

static COUNT: AtomicU64 = AtomicU64::new(0);

async fn producer() -> String {
    tokio::time::sleep(Duration::from_secs(3)).await; // simulate waiting for something to send
    let count = COUNT.fetch_add(1, Ordering::Relaxed) + 1;
    format!("message{count}")
}

async fn producer_handler(ws: Connection) -> wskit::Result<()> {
    loop {
        let message = producer().await;
        ws.send(message).await?;
    }
}

#[tokio::main]
async fn main() -> wskit::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "localhost:8765".into());
    let server = wskit::serve(producer_handler, addr).await?;
    server.run_until(wskit::shutdown_signal()).await
}
