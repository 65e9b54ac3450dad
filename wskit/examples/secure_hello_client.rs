//! Mirrors `client_secure.py` of "2. wss 安全连接示例" in `seeds/001_dfc3700d69cd8878.txt`
//! (`ssl_context.load_verify_locations(localhost_pem)`; the same in
//! `seeds/003_f7096015a45346c8.txt`): the hello client over `wss://`, trusting the self-signed
//! certificate that `secure_hello_server` wrote to `$TMPDIR/wskit-localhost.pem`, as the seed's
//! client trusts `localhost.pem`.
//!
//! ```sh
//! cargo run --example secure_hello_server           # in one terminal
//! cargo run --example secure_hello_client           # in another: What's your name?
//! cargo run --example secure_hello_client -- wss://localhost:9000
//! ```

use std::io::Write;

#[tokio::main]
async fn main() -> wskit::Result<()> {
    let uri = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "wss://localhost:8765".into());
    let localhost_pem = std::env::temp_dir().join("wskit-localhost.pem");
    let ws = wskit::connect(uri).ca_file(localhost_pem).await?;

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
