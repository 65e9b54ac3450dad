//! An echo server on the blocking API (`wskit::sync`): every message back, messages up to
//! 16 MiB. Prints the address once it listens.
//!
//! ```sh
//! cargo run --release --features sync --example sync_echo_server -- 127.0.0.1:8765
//! ```

use wskit::sync::Connection;

fn echo(ws: Connection) -> wskit::Result<()> {
    for message in &ws {
        ws.send(message?)?;
    }
    Ok(())
}

fn main() -> wskit::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "localhost:8765".into());
    let server = wskit::sync::serve(echo, addr)
        .max_size(Some(16 << 20))
        .start()?;
    println!(
        "echo server listening on {}",
        server.local_addr().expect("a TCP address")
    );
    server.run_until_signal()
}
