//! Mirrors the client of "四、开发指南 / 1. Hello World" in `seeds/001_dfc3700d69cd8878.txt` (`name =
//! input("What's your name? ")`), the `hello` client of `seeds/003_f7096015a45346c8.txt` too: it
//! asks for a name, sends it, prints `>>> NAME`, then the greeting as `<<< Hello NAME!`.
//!
//! ```sh
//! cargo run --example hello_client                  # to ws://localhost:8765
//! cargo run --example hello_client -- ws://127.0.0.1:9000
//! ```
//!
//! Start `cargo run --example hello_server` first.

use std::io::Write;

#[tokio::main]
async fn main() -> wskit::Result<()> {
    let uri = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://localhost:8765".into());
    let ws = wskit::connect(uri).await?;

    let name = input("What's your name? ")?;
    ws.send(&name).await?;
    println!(">>> {name}");

    let greeting = ws.recv().await?;
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
