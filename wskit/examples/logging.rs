//! Mirrors "3. 打开调试信息" in `seeds/001_dfc3700d69cd8878.txt` (`logger =
//! logging.getLogger('websockets')`, `logger.addHandler(logging.StreamHandler())`; the same in
//! `seeds/003_f7096015a45346c8.txt`): an echo server whose logs go to stderr. wskit logs with
//! `tracing`, and `tracing-subscriber` prints them: connections opened and closed (info),
//! handshakes, close frames and errors (debug), frames (trace). The filter is `wskit=debug` unless
//! `RUST_LOG` says otherwise.
//!
//! ```sh
//! cargo run --example logging                       # ws://localhost:8765
//! RUST_LOG=wskit=trace cargo run --example logging  # every frame
//! ```

use tracing_subscriber::EnvFilter;
use wskit::Connection;

async fn echo(mut ws: Connection) -> wskit::Result<()> {
    while let Some(message) = ws.next().await {
        ws.send(message?).await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> wskit::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "wskit=debug".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr) // like Python's StreamHandler
        .init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "localhost:8765".into());
    let server = wskit::serve(echo, addr).await?;
    server.run_until(wskit::shutdown_signal()).await
}
