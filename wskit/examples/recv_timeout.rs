//! Mirrors "常见问题 / 两端通用 / 1. 如何设置 recv() 的超时时间？" in `seeds/001_dfc3700d69cd8878.txt` (`await
//! asyncio.wait_for(websocket.recv(), timeout=10)`): an echo server that waits at most 10 seconds
//! (or the second argument) for each message, then closes the idle connection with 1000 and the
//! reason `idle timeout`. `recv` is cancel safe: a message arriving as the timeout fires is not
//! lost.
//!
//! ```sh
//! cargo run --example recv_timeout                  # ws://localhost:8765, 10 s
//! cargo run --example recv_timeout -- 127.0.0.1:9000 2.5   # 2.5 s
//! ```

use std::time::Duration;

use wskit::{CloseCode, Connection};

async fn echo(ws: Connection, timeout: Duration) -> wskit::Result<()> {
    loop {
        match tokio::time::timeout(timeout, ws.recv()).await {
            Ok(Err(error)) if error.is_closed_ok() => return Ok(()),
            Ok(message) => ws.send(message?).await?,
            Err(_elapsed) => return ws.close(CloseCode::NORMAL, "idle timeout").await,
        }
    }
}

#[tokio::main]
async fn main() -> wskit::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "localhost:8765".into());
    let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let timeout = Duration::from_secs_f64(seconds);
    let server = wskit::serve(move |ws| echo(ws, timeout), addr).await?;
    server.run_until(wskit::shutdown_signal()).await
}
