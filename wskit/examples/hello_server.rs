//! Mirrors the server of "四、开发指南 / 1. Hello World" in `seeds/001_dfc3700d69cd8878.txt` (`async def
//! handler(server): name = await server.recv()`), the `hello` server of
//! `seeds/003_f7096015a45346c8.txt` too: it receives a name, prints `<<< NAME`, answers `Hello
//! NAME!`, prints `>>> Hello NAME!`, and returns, which closes the connection.
//!
//! ```sh
//! cargo run --example hello_server                  # ws://localhost:8765
//! cargo run --example hello_server -- 127.0.0.1:9000
//! ```
//!
//! Then run `cargo run --example hello_client` in another terminal.

use wskit::{Connection, Result};

async fn handler(ws: Connection) -> Result<()> {
    let name = ws.recv().await?;
    println!("<<< {name}");

    let greeting = format!("Hello {name}!");

    ws.send(&greeting).await?;
    println!(">>> {greeting}");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "localhost:8765".into());
    let server = wskit::serve(handler, addr).await?;
    server.run_until(wskit::shutdown_signal()).await // run until SIGTERM or Ctrl-C
}
