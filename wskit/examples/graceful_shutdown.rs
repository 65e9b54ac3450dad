//! Mirrors "常见问题 / 服务端 / 2. 如何关闭server" in `seeds/001_dfc3700d69cd8878.txt`
//! (`loop.add_signal_handler( signal.SIGTERM, stop.set_result, None)`, then `async with
//! websockets.serve(echo, ...): await stop`; the same in `seeds/003_f7096015a45346c8.txt`): an echo
//! server that stops on SIGTERM or Ctrl-C. It stops accepting, closes every connection with 1001
//! (going away), waits for them to close, prints `server closed` and exits with status 0.
//!
//! ```sh
//! cargo run --example graceful_shutdown             # ws://localhost:8765
//! kill -TERM <pid>                                  # or Ctrl-C
//! ```

use wskit::Connection;

async fn echo(mut ws: Connection) -> wskit::Result<()> {
    while let Some(message) = ws.next().await {
        ws.send(message?).await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> wskit::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "localhost:8765".into());
    let server = wskit::serve(echo, addr).await?;
    server.run_until(wskit::shutdown_signal()).await?;
    println!("server closed");
    Ok(())
}
