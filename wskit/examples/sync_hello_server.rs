//! The seeds' hello server on the blocking API (`wskit::sync`, as Python's
//! `websockets.sync.server`): it receives a name, prints `<<< NAME`, answers `Hello NAME!`,
//! prints `>>> Hello NAME!`, and returns, which closes the connection. No async runtime: a
//! thread per connection for the handler, and one for its reader.
//!
//! ```sh
//! cargo run --features sync --example sync_hello_server                  # ws://localhost:8765
//! cargo run --features sync --example sync_hello_server -- 127.0.0.1:9000
//! ```
//!
//! Then run `cargo run --features sync --example sync_hello_client` in another terminal.

use wskit::Result;
use wskit::sync::Connection;

fn handler(ws: Connection) -> Result<()> {
    let name = ws.recv()?;
    println!("<<< {name}");

    let greeting = format!("Hello {name}!");

    ws.send(&greeting)?;
    println!(">>> {greeting}");
    Ok(())
}

fn main() -> Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "localhost:8765".into());
    let server = wskit::sync::serve(handler, addr).start()?;
    server.run_until_signal() // run until SIGTERM or Ctrl-C
}
