//! The seeds' hello client on the blocking API (`wskit::sync`, as Python's
//! `websockets.sync.client`): it asks for a name, sends it, prints `>>> NAME`, then the greeting
//! as `<<< Hello NAME!`.
//!
//! ```sh
//! cargo run --features sync --example sync_hello_client                  # to ws://localhost:8765
//! cargo run --features sync --example sync_hello_client -- ws://127.0.0.1:9000
//! ```
//!
//! Start `cargo run --features sync --example sync_hello_server` (or the async `hello_server`)
//! first.

use std::io::Write;

fn main() -> wskit::Result<()> {
    let uri = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://localhost:8765".into());
    let ws = wskit::sync::connect(uri).open()?;

    let name = input("What's your name? ")?;
    ws.send(&name)?;
    println!(">>> {name}");

    let greeting = ws.recv()?;
    println!("<<< {greeting}");
    Ok(())
}

/// Python's `input()`: print a prompt, read a line from stdin.
fn input(prompt: &str) -> std::io::Result<String> {
    print!("{prompt}");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
