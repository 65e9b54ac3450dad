//! Mirrors "6. 开发模板 / 生产者 + 消费者" in `seeds/001_dfc3700d69cd8878.txt` (`done, pending = await
//! asyncio.wait([consumer_task, producer_task], return_when=asyncio.FIRST_COMPLETED)`; the same in
//! `seeds/003_f7096015a45346c8.txt`): the consumer and the producer run at once on one connection,
//! and when either ends, the other is cancelled. `tokio::select!` does both: it polls the two and
//! drops the one still running.
//!
//! ```sh
//! cargo run --example producer_consumer             # ws://localhost:8765
//! cargo run --example producer_consumer -- 127.0.0.1:9000
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
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

async fn handler(ws: Connection) -> wskit::Result<()> {
    tokio::select! {
        result = consumer_handler(ws.clone()) => result,
        result = producer_handler(ws) => result,
    }
}

#[tokio::main]
async fn main() -> wskit::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "localhost:8765".into());
    let server = wskit::serve(handler, addr).await?;
    server.run_until(wskit::shutdown_signal()).await
}
