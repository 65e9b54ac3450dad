//! Mirrors "6. 开发模板 / 消费者" in `seeds/001_dfc3700d69cd8878.txt` (`async def
//! consumer_handler(websocket, path): async for message in websocket: await consumer(message)`; the
//! same in `seeds/003_f7096015a45346c8.txt`): the handler hands each message it receives to
//! `consumer()`, which takes a second to process it and prints `consumer: MESSAGE`. The loop ends
//! when the client leaves.
//!
//! ```sh
//! cargo run --example consumer                      # ws://localhost:8765
//! cargo run --example consumer -- 127.0.0.1:9000
//! ```

use std::time::Duration;

use wskit::{Connection, Message};

async fn consumer(message: Message) {
    tokio::time::sleep(Duration::from_secs(1)).await; // simulate processing
    println!("consumer: {message}");
}

async fn consumer_handler(mut ws: Connection) -> wskit::Result<()> {
    while let Some(message) = ws.next().await {
        consumer(message?).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> wskit::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "localhost:8765".into());
    let server = wskit::serve(consumer_handler, addr).await?;
    server.run_until(wskit::shutdown_signal()).await
}
